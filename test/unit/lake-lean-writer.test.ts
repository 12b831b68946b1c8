import { Worker } from 'node:worker_threads';
import { parquetMetadata } from 'hyparquet';
import { readRleBitPackedHybrid } from 'hyparquet/src/encoding.js';
import { describe, expect, it } from 'vitest';
import { workerCalls } from '#adapters/worker-calls';
import { readParquetColumns } from '#core/parquet';
import { INVOICE_LINE_SCHEMA, leanColumns, StringTable } from '#lake/invoice-lines';
import { encodeLakeFile, leanEncoderWhere } from '#lake/invoice-lines-files';
import { rleBitPacked, writeLeanParquet } from '#lake/invoice-lines-parquet';
import { KeyIndex, LakeLines } from '#lake/lake-lines';

/** hyparquet's own reader over the hybrid encoding (the reader every lake file meets). */
function decode(bytes: Uint8Array, bitWidth: number, n: number): number[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Array<number>(n);
  readRleBitPackedHybrid({ view, offset: 0 }, bitWidth, out, bytes.byteLength);
  return out;
}

describe('the lean writer: RLE / bit-packed hybrid', () => {
  it('reads back as written for runs, mixes, odd lengths and every bit width up to 20', () => {
    let seed = 7;
    const random = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
      return seed;
    };
    for (const bitWidth of [0, 1, 2, 3, 7, 8, 9, 12, 16, 20]) {
      const max = 2 ** bitWidth;
      for (const n of [0, 1, 7, 8, 9, 63, 1000, 4097]) {
        // Runs of 1-30 equal values: some RLE, some bit-packed groups, a partial last group.
        const values: number[] = [];
        while (values.length < n) {
          const v = random() % max;
          for (let k = random() % 30; k >= 0 && values.length < n; k--) values.push(v);
        }
        const bytes = rleBitPacked(Int32Array.from(values), n, bitWidth);
        expect(decode(bytes, bitWidth, n), `width ${bitWidth}, ${n} values`).toEqual(values);
      }
    }
  });

  it('refuses a bit width past 24', () => {
    expect(() => rleBitPacked(new Int32Array(8), 8, 25)).toThrow('at most 24');
  });
});

describe('the lean writer on its thread', () => {
  /** A file's worth of lines: nulls, repeated and distinct strings, times, money. */
  function sample(n: number): LakeLines {
    const lines = new LakeLines(new StringTable());
    for (let i = 0; i < n; i++)
      lines.add(
        {
          invoiceNo: String(536365 + Math.floor(i / 7)),
          lineNo: (i % 7) + 1,
          dateKey: 20101201,
          invoiceMs: Date.UTC(2010, 11, 1, 8, 26) + Math.floor(i / 7) * 60_000,
          stockCode: `S${i % 97}`,
          description: i % 11 === 0 ? null : `THING ${i % 89} é`,
          customerId: i % 5 === 0 ? null : String(12000 + (i % 300)),
          country: i % 3 === 0 ? 'France' : 'United Kingdom',
          quantity: (i % 13) - 2,
          price: 1000 + i,
          isNonProduct: i % 17 === 0,
          producedAt: i % 2 === 0 ? null : 1_291_191_960_000 + i,
          acceptedAt: null,
          streamVisibleAt: i % 2 === 0 ? null : 1_291_191_961_000 + i,
        },
        'file',
        'landing/x.csv',
      );
    lines.lakeVisibleAt.fill(1_765_000_000_000, 0, n);
    return lines;
  }

  it('answers the same bytes as the writer on this thread, and they read back', async () => {
    const lines = sample(5000);
    const order = Array.from({ length: lines.length }, (_, i) => i);
    const here = writeLeanParquet(INVOICE_LINE_SCHEMA, leanColumns(lines, order), order.length);
    const there = await encodeLakeFile(lines, order);
    expect(Buffer.from(there).equals(Buffer.from(here))).toBe(true);
    // Made there: the thread ran (TypeScript loaded through tsx), not the fallback.
    expect(leanEncoderWhere()).toBe('thread');
    const { rowCount, columns } = await readParquetColumns(there, INVOICE_LINE_SCHEMA);
    expect(rowCount).toBe(5000);
    expect(Array.from(columns.description ?? []).slice(0, 3)).toEqual([null, 'THING 1 é', 'THING 2 é']);
    expect(columns.customer_id?.[5]).toBeNull();
    expect(columns.invoice_no?.[4999]).toBe(String(536365 + Math.floor(4999 / 7)));
  });
});

describe('the lean writer: numbers that repeat', () => {
  /** Lines whose prices, quantities and dates repeat, or (distinctPrices) whose prices do not. */
  function lines(n: number, distinctPrices: boolean): LakeLines {
    const out = new LakeLines(new StringTable());
    out.appendColumns(n, {
      invoiceNo: Array.from({ length: n }, (_, i) => String(536365 + Math.floor(i / 5))),
      lineNo: Array.from({ length: n }, (_, i) => (i % 5) + 1),
      dateKey: Array.from({ length: n }, (_, i) => 20101201 + Math.floor(i / 40_000)),
      invoiceMs: Array.from({ length: n }, (_, i) => Date.UTC(2010, 11, 1) + Math.floor(i / 5) * 60_000),
      stockCode: new Array(n).fill('85123A'),
      country: new Array(n).fill('France'),
      source: new Array(n).fill('file'),
      sourceKey: new Array(n).fill('landing/x.csv'),
      // Negative quantities (-1 among them), and prices whose totals pass 2^32 thousandths.
      quantity: Array.from({ length: n }, (_, i) => (i % 9) - 4),
      price: Array.from({ length: n }, (_, i) =>
        distinctPrices ? 1000 + i : ([2550, 0, 1_100_000_000][i % 3] as number),
      ),
      // NaN: none (a line without the time).
      producedAt: Array.from({ length: n }, (_, i) => (i % 2 === 0 ? Number.NaN : 1_291_191_960_000 + i)),
      lakeVisibleAt: new Array(n).fill(Date.UTC(2026, 11, 6)),
    });
    return out;
  }

  it('dictionary-encodes repeating numbers, writes PLAIN past 65,536 distinct, and both read back exactly', async () => {
    for (const [n, distinct] of [
      [3000, false],
      [70_000, true],
    ] as const) {
      const l = lines(n, distinct);
      const order = Array.from({ length: n }, (_, i) => i);
      const bytes = writeLeanParquet(INVOICE_LINE_SCHEMA, leanColumns(l, order), n);
      const meta = parquetMetadata(bytes.buffer.slice(bytes.byteOffset) as ArrayBuffer);
      const encodings = (name: string) =>
        meta.row_groups[0]?.columns.find((c) => c.meta_data?.path_in_schema[0] === name)?.meta_data
          ?.encodings;
      for (const name of ['date_key', 'invoice_date', 'quantity', 'line_total', 'lake_visible_at'])
        expect(encodings(name), name).toContain('RLE_DICTIONARY');
      expect(encodings('unit_price')).toEqual(distinct ? ['PLAIN'] : ['PLAIN', 'RLE_DICTIONARY']);
      expect(encodings('produced_at')).toEqual(['PLAIN']);
      const { columns } = await readParquetColumns(bytes, INVOICE_LINE_SCHEMA);
      const big = (v: unknown) => BigInt(v as bigint | number);
      for (let i = 0; i < n; i += n > 5000 ? 7 : 1) {
        const price = l.price[i] as number;
        const quantity = l.quantity[i] as number;
        expect(big(columns.unit_price?.[i])).toBe(BigInt(price));
        expect(big(columns.line_total?.[i])).toBe(BigInt(price) * BigInt(quantity));
        expect(Number(columns.quantity?.[i])).toBe(quantity);
        expect(Number(columns.date_key?.[i])).toBe(l.dateKey[i]);
        expect(big(columns.invoice_date?.[i])).toBe(BigInt(l.invoiceMs[i] as number) * 1000n);
        expect(big(columns.lake_visible_at?.[i])).toBe(BigInt(Date.UTC(2026, 11, 6)) * 1000n);
        const produced = l.producedAt[i] as number;
        expect(columns.produced_at?.[i] ?? null).toEqual(
          Number.isNaN(produced) ? null : BigInt(produced) * 1000n,
        );
      }
    }
  });
});

describe('the lean writer on its thread: refused columns', () => {
  it('throws a column the writer refuses, as it would here, and keeps using the thread', async () => {
    const lines = new LakeLines(new StringTable());
    lines.appendColumns(3000, {
      // A null in a required column, as no line the typer accepts has.
      invoiceNo: Array.from({ length: 3000 }, (_, i) => (i === 7 ? null : String(536365 + (i >> 3)))),
      lineNo: Array.from({ length: 3000 }, (_, i) => (i & 7) + 1),
      stockCode: new Array(3000).fill('85123A'),
      country: new Array(3000).fill('France'),
      source: new Array(3000).fill('file'),
      sourceKey: new Array(3000).fill('landing/x.csv'),
      price: new Array(3000).fill(2550),
      invoiceMs: new Array(3000).fill(Date.UTC(2010, 11, 1)),
      lakeVisibleAt: new Array(3000).fill(Date.UTC(2026, 11, 6)),
    });
    const order = Array.from({ length: lines.length }, (_, i) => i);
    await expect(encodeLakeFile(lines, order)).rejects.toThrow(
      'column invoice_no: a null in a required column',
    );
    expect(leanEncoderWhere()).toBe('thread');
  });
});

describe('worker calls', () => {
  it('rejects the calls pending when the worker dies, tells of it, and starts a new one for the next call', async () => {
    const source = `
      const { parentPort } = require('node:worker_threads');
      parentPort.on('message', ({ id, n }) => {
        if (n < 0) process.exit(3);
        parentPort.postMessage(n === 0 ? { id, error: 'zero' } : { id, value: n * 2 });
      });`;
    let started = 0;
    const deaths: string[] = [];
    const calls = workerCalls<number>(
      () => {
        started++;
        return new Worker(source, { eval: true });
      },
      (message) => new Error(`doubler: ${message}`),
      (err) => deaths.push(err.message),
    );
    expect(await calls.call({ n: 21 })).toBe(42);
    await expect(calls.call({ n: 0 })).rejects.toThrow('doubler: zero');
    await expect(calls.call({ n: -1 })).rejects.toThrow('doubler: the worker thread exited with 3');
    expect(await calls.call({ n: 2 })).toBe(4);
    expect(started).toBe(2);
    // A death is told once (a refused job is not one), so the fall-back to the caller's thread is seen.
    expect(deaths).toEqual(['doubler: the worker thread exited with 3']);
  });
});

describe('lake lines: memory and keys', () => {
  it('holds any whole number as a key: negative ones, -1 and 0 too', () => {
    const index = new KeyIndex(2);
    const keys = [-1, 0, 1, -(2 ** 40), 2 ** 52, -7, 4294967296, -4294967296];
    expect(keys.map((k, row) => index.add(k, row))).toEqual(keys.map(() => undefined));
    expect(keys.map((k) => index.get(k))).toEqual(keys.map((_, row) => row));
    expect(index.add(-1, 50)).toBe(0);
    expect(index.get(2)).toBeUndefined();
  });

  it('finds every key once across growth, and answers the row a key already has', () => {
    const index = new KeyIndex(4);
    const keys = Array.from({ length: 10_000 }, (_, i) => i * 1_000_001 + (i % 7) + 2 ** 40);
    expect(keys.map((k, row) => index.add(k, row)).filter((r) => r !== undefined)).toEqual([]);
    expect(keys.map((k) => index.get(k))).toEqual(keys.map((_, row) => row));
    expect(index.add(keys[17] as number, 99)).toBe(17);
    expect(index.get(12345)).toBeUndefined();
  });

  it('reuses released column memory: lines grown into it hold only their own rows', () => {
    const big = new LakeLines(new StringTable(), 1 << 18);
    big.appendColumns(3, { invoiceNo: ['1', '2', '3'], lineNo: [1, 2, 3], quantity: [5, 6, 7] });
    const memory = big.quantity.buffer;
    big.release();
    expect(big.length).toBe(0);
    const next = new LakeLines(new StringTable());
    next.appendColumns(70_000, {
      invoiceNo: Array.from({ length: 70_000 }, () => '9'),
      lineNo: new Array(70_000).fill(4),
    });
    expect(next.quantity.buffer).toBe(memory);
    expect(next.rows()[0]).toMatchObject({ invoiceNo: '9', lineNo: 4, quantity: 0 });
    expect(next.length).toBe(70_000);
  });
});
