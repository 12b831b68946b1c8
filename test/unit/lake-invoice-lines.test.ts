import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { DuckDBInstance } from '@duckdb/node-api';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { reconcileWith, warehouseLineSource } from '#batch/reconcile';
import { dateKey, wallClockMs } from '#core/dates';
import { type InvoiceLineInput, invoiceLineInput } from '#core/invoice-line';
import { thousandths } from '#core/money';
import { isNonProductCode } from '#core/non-product';
import { Rng, shuffle } from '#core/random';
import {
  compactLake,
  hyparquetLakeEncoder,
  INVOICE_LINES_PREFIX,
  type LakeEncoder,
  LakeLineCollector,
  type LakeLineInput,
  LakeLines,
  type LakeSource,
  leanLakeEncoder,
  listLakeFiles,
  partitionOf,
  readLakeFile,
  readLakeTotals,
  writeLakeLines,
} from '#lake/invoice-lines';
import { lakeLineSource } from '#lake/invoice-lines-reconcile';
import { createLakeSink } from '#lake/invoice-lines-sink';
import { catchUpLake } from '#lake/invoice-lines-stage';
import { type LoadedObject, markedVersions, OBJECTS_PREFIX } from '#lake/lake-manifest';
import { inputLine } from '#test/helpers/lines';

/** An in-memory bucket behind the SDK's own client, answering the four calls the lake makes. */
function memoryBucket() {
  const objects = new Map<string, Uint8Array>();
  const s3 = new S3Client({ region: 'eu-west-2', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
  const mock = mockClient(s3);
  mock.on(PutObjectCommand).callsFake((input) => {
    const body = input.Body;
    objects.set(input.Key, typeof body === 'string' ? new TextEncoder().encode(body) : new Uint8Array(body));
    return { ETag: '"x"' };
  });
  mock.on(GetObjectCommand).callsFake((input) => {
    const bytes = objects.get(input.Key);
    if (!bytes) throw Object.assign(new Error('NoSuchKey'), { name: 'NoSuchKey' });
    // The one method of the SDK's streaming body the lake reads.
    const Body = { transformToByteArray: async () => bytes } as unknown as GetObjectCommandOutput['Body'];
    return { Body } as GetObjectCommandOutput;
  });
  mock.on(DeleteObjectCommand).callsFake((input) => {
    objects.delete(input.Key);
    return {};
  });
  mock.on(ListObjectsV2Command).callsFake((input) => ({
    Contents: [...objects.keys()]
      .filter((k) => k.startsWith(input.Prefix ?? ''))
      .sort()
      .map((Key) => ({ Key, ETag: '"x"', Size: objects.get(Key)?.byteLength ?? 0 })),
    IsTruncated: false,
  }));
  return { store: { s3, bucket: 'lake-test' }, objects, mock, restore: () => mock.restore() };
}

/** The typer's view of a line (what the loader's typer hands over), from the test line builder. */
function typed(input: InvoiceLineInput, lineage: Partial<LakeLineInput> = {}): LakeLineInput {
  // The API's schema, as the typer checks an archive line with it.
  const line = invoiceLineInput.parse(input);
  const local = line.invoiceDate;
  return {
    invoiceNo: line.invoiceNo,
    lineNo: line.lineNo,
    dateKey: dateKey(local),
    invoiceMs: wallClockMs(local),
    stockCode: line.stockCode,
    description: line.description,
    customerId: line.customerId,
    country: line.country,
    quantity: line.quantity,
    price: thousandths(line.unitPrice) as number,
    isNonProduct: isNonProductCode(line.stockCode),
    producedAt: null,
    acceptedAt: null,
    streamVisibleAt: null,
    ...lineage,
  };
}

const FILE: LakeSource = { key: 'landing/drop.csv', etag: 'e1', source: 'file' };
const ARCHIVE: LakeSource = { key: 'archive/2011/12/09/12/a.json.gz', etag: 'e2', source: 'stream' };

function linesOf(
  source: LakeSource,
  lines: InvoiceLineInput[],
  lineage: Partial<LakeLineInput> = {},
): LakeLines {
  const out = new LakeLines();
  for (const l of lines) out.add(typed(l, lineage), source.source, source.key);
  return out;
}

/** Lines at the edges: exact money, month and year ends, both London summer-time switches. */
const EDGES: InvoiceLineInput[] = [
  inputLine({ invoiceNo: '536365', lineNo: 1, unitPrice: '0.001', quantity: 1 }),
  inputLine({ invoiceNo: '536365', lineNo: 2, unitPrice: '123456789.123', quantity: 1_000_000 }),
  inputLine({ invoiceNo: 'C536379', lineNo: 1, unitPrice: '27.50', quantity: -80995, stockCode: 'D' }),
  inputLine({ invoiceNo: 'A563185', lineNo: 1, unitPrice: '-11062.06', quantity: 1, stockCode: 'B' }),
  inputLine({ invoiceNo: '581587', lineNo: 1, invoiceDate: '2011-12-31T23:59:59' }),
  inputLine({ invoiceNo: '581588', lineNo: 1, invoiceDate: '2012-01-01T00:00:00', customerId: null }),
  inputLine({ invoiceNo: '550000', lineNo: 1, invoiceDate: '2011-03-31T23:30:00' }),
  // Summer time: 00:30 BST on 1 June is 23:30 UTC on 31 May; the partition is the London month.
  inputLine({ invoiceNo: '555000', lineNo: 1, invoiceDate: '2011-06-01T00:30:00' }),
  // The spring and autumn switch days themselves.
  inputLine({ invoiceNo: '548000', lineNo: 1, invoiceDate: '2011-03-27T00:30:00' }),
  inputLine({ invoiceNo: '573000', lineNo: 1, invoiceDate: '2011-10-30T01:30:00' }),
];

describe('lake invoice lines: partitions', () => {
  it('is the London calendar month of the invoice, as dim_date keys its day', () => {
    expect(partitionOf(dateKey('2011-06-01T00:30:00'))).toBe('year=2011/month=06/');
    expect(partitionOf(dateKey('2011-12-31T23:59:59'))).toBe('year=2011/month=12/');
    expect(partitionOf(dateKey('2012-01-01T00:00:00'))).toBe('year=2012/month=01/');
  });
});

describe('lake invoice lines: written, read back by DuckDB', () => {
  let dir: string;
  let instance: DuckDBInstance;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lake-lines-'));
    instance = await DuckDBInstance.create(':memory:');
  });
  afterAll(async () => {
    instance?.closeSync();
    await fs.rm(dir, { recursive: true, force: true });
  });

  async function query(objects: Map<string, Uint8Array>, sql: string) {
    await fs.rm(dir, { recursive: true, force: true });
    for (const [key, bytes] of objects) {
      if (!key.startsWith(INVOICE_LINES_PREFIX)) continue;
      await fs.mkdir(path.dirname(path.join(dir, key)), { recursive: true });
      await fs.writeFile(path.join(dir, key), bytes);
    }
    const glob = path.join(dir, INVOICE_LINES_PREFIX, '**', '*.parquet');
    const db = await instance.connect();
    try {
      const from = `read_parquet('${glob}', hive_partitioning = true,
        hive_types = {'year': INTEGER, 'month': INTEGER})`;
      return (await db.runAndReadAll(sql.replace('LAKE', from))).getRowObjectsJS();
    } finally {
      db.closeSync();
    }
  }

  it('has the fact columns, exact decimals and the London month as partition', async () => {
    const bucket = memoryBucket();
    try {
      const lines = linesOf(FILE, EDGES);
      await writeLakeLines(bucket.store, lines, { now: Date.parse('2026-12-06T10:00:00Z') });
      const types = await query(bucket.objects, 'DESCRIBE SELECT * FROM LAKE');
      expect(Object.fromEntries(types.map((r) => [r.column_name, r.column_type]))).toMatchObject({
        invoice_no: 'VARCHAR',
        line_no: 'INTEGER',
        invoice_date: 'TIMESTAMP',
        unit_price: 'DECIMAL(12,3)',
        line_total: 'DECIMAL(18,3)',
        produced_at: 'TIMESTAMP WITH TIME ZONE',
        lake_visible_at: 'TIMESTAMP WITH TIME ZONE',
      });
      const rows = await query(
        bucket.objects,
        `SELECT invoice_no, line_no, CAST(unit_price AS VARCHAR) AS price, CAST(line_total AS VARCHAR) AS total,
           strftime(invoice_date, '%Y-%m-%dT%H:%M:%S') AS at, printf('%04d-%02d', year, month) AS part,
           is_cancellation, is_adjustment, customer_id, source, source_key
         FROM LAKE ORDER BY invoice_no, line_no`,
      );
      const by = new Map(rows.map((r) => [`${r.invoice_no}#${r.line_no}`, r]));
      expect(rows).toHaveLength(EDGES.length);
      expect(by.get('536365#1')).toMatchObject({ price: '0.001', total: '0.001' });
      // 123,456,789,123,000.000: past a double's exact integers in thousandths.
      expect(by.get('536365#2')).toMatchObject({ price: '123456789.123', total: '123456789123000.000' });
      expect(by.get('C536379#1')).toMatchObject({ total: '-2227362.500', is_cancellation: true });
      expect(by.get('A563185#1')).toMatchObject({ price: '-11062.060', is_adjustment: true });
      expect(by.get('581587#1')).toMatchObject({ at: '2011-12-31T23:59:59', part: '2011-12' });
      expect(by.get('581588#1')).toMatchObject({
        at: '2012-01-01T00:00:00',
        part: '2012-01',
        customer_id: null,
      });
      expect(by.get('550000#1')).toMatchObject({ part: '2011-03' });
      expect(by.get('555000#1')).toMatchObject({ at: '2011-06-01T00:30:00', part: '2011-06' });
      expect(by.get('548000#1')).toMatchObject({ part: '2011-03' });
      expect(by.get('573000#1')).toMatchObject({ at: '2011-10-30T01:30:00', part: '2011-10' });
      expect(by.get('536365#1')).toMatchObject({ source: 'file', source_key: FILE.key });
      const [sum] = await query(
        bucket.objects,
        'SELECT CAST(sum(line_total) AS VARCHAR) AS revenue FROM LAKE',
      );
      const expected = EDGES.reduce(
        (n, l) => n + BigInt(l.quantity) * BigInt(thousandths(String(l.unitPrice)) as number),
        0n,
      );
      expect(sum?.revenue).toBe(`${expected / 1000n}.${String(expected % 1000n).padStart(3, '0')}`);
      // One file per partition: zero-padded Hive folders.
      const files = await listLakeFiles(bucket.store);
      expect([...files.keys()].sort()).toContain('year=2011/month=06/');
      for (const f of files.values()) expect(f).toHaveLength(1);
    } finally {
      bucket.restore();
    }
  });

  /** Strings a CSV or a dictionary could bend, lineage times, nulls, one day of many lines. */
  const AWKWARD: InvoiceLineInput[] = [
    ...EDGES,
    inputLine({ invoiceNo: '536370', lineNo: 1, description: 'a "quoted", comma\nnewline\ttab ' }),
    inputLine({ invoiceNo: '536370', lineNo: 2, description: '  spaces  ', customerId: '' }),
    inputLine({ invoiceNo: '536370', lineNo: 3, description: 'ÉTÉ 🌞 naïve', country: 'Côte d’Ivoire' }),
    inputLine({ invoiceNo: '536370', lineNo: 4, description: null, unitPrice: '0', quantity: 0 }),
    ...Array.from({ length: 3000 }, (_, i) =>
      inputLine({ invoiceNo: `5400${i % 50}`, lineNo: 10 + i, quantity: i - 1500, unitPrice: `${i}.25` }),
    ),
  ];

  it('holds the same schema and values from the lean writer and hyparquet-writer', async () => {
    const lineage = {
      producedAt: Date.parse('2026-12-06T09:59:58.123Z'),
      acceptedAt: Date.parse('2026-12-06T09:59:59.001Z'),
    };
    const written = async (encoder: LakeEncoder) => {
      const bucket = memoryBucket();
      const store = { ...bucket.store, encoder };
      await writeLakeLines(store, linesOf(ARCHIVE, AWKWARD, lineage), {
        now: Date.parse('2026-12-06T10:00:00Z'),
      });
      // A line whose lineage is only half known.
      await writeLakeLines(store, linesOf(FILE, [inputLine({ invoiceNo: '536399', lineNo: 1 })]), {
        now: Date.parse('2026-12-06T10:00:01Z'),
      });
      const ours = new LakeLines();
      for (const f of [...(await listLakeFiles(store)).values()].flat()) await readLakeFile(store, f, ours);
      const files = new Map(bucket.objects);
      bucket.restore();
      return { files, ours };
    };
    const lean = await written(leanLakeEncoder);
    const reference = await written(hyparquetLakeEncoder);
    expect([...lean.files.keys()].filter((k) => k.startsWith(INVOICE_LINES_PREFIX)).length).toBe(
      [...reference.files.keys()].filter((k) => k.startsWith(INVOICE_LINES_PREFIX)).length,
    );
    const all = 'SELECT * FROM LAKE ORDER BY invoice_no, line_no';
    const schema = 'DESCRIBE SELECT * FROM LAKE';
    const leanRows = await query(lean.files, all);
    expect(leanRows).toHaveLength(AWKWARD.length + 1);
    expect(leanRows).toEqual(await query(reference.files, all));
    expect(await query(lean.files, schema)).toEqual(await query(reference.files, schema));
    const elements = `SELECT name, type, repetition_type, converted_type, logical_type, scale, precision
      FROM parquet_schema('${path.join(dir, INVOICE_LINES_PREFIX, '**', '*.parquet')}') GROUP BY ALL ORDER BY ALL`;
    expect(await query(lean.files, elements)).toEqual(await query(reference.files, elements));
    // The lake's own reader (the merge reads files back) sees the same lines.
    expect(lean.ours.rows()).toEqual(reference.ours.rows());
  });
});

describe('lake invoice lines: the columns', () => {
  it('appends columns read back a block of rows at a time as it appends them whole', () => {
    const n = 7;
    const columns = {
      invoiceNo: Array.from({ length: n }, (_, k) => String(536365 + (k % 3))),
      description: Array.from({ length: n }, (_, k) => (k % 2 ? null : `ITEM ${k}`)),
      lineNo: Int32Array.from({ length: n }, (_, k) => k + 1),
      quantity: Float64Array.from({ length: n }, (_, k) => k * 2 - 3),
      invoiceMs: Float64Array.from({ length: n }, (_, k) => 1_291_192_000_000 + k * 60_000),
      producedAt: Float64Array.from({ length: n }, (_, k) => (k % 3 ? Number.NaN : k)),
      nonProduct: Array.from({ length: n }, (_, k) => k % 4 === 0),
    };
    const whole = new LakeLines();
    whole.appendColumns(n, columns);
    const blocks = new LakeLines(undefined, 2);
    blocks.appendColumns(3, columns, 0);
    blocks.appendColumns(3, columns, 3);
    blocks.appendColumns(1, columns, 6);
    expect(blocks.rows()).toEqual(whole.rows());
    expect(blocks.rows().map((r) => `${r.invoiceNo}/${r.lineNo}`)).toEqual(
      columns.invoiceNo.map((inv, k) => `${inv}/${k + 1}`),
    );
  });

  it('keeps every line past its first capacity, and lines of another table read the same appended', () => {
    const many = Array.from({ length: 40 }, (_, k) =>
      inputLine({
        invoiceNo: String(536365 + (k % 7)),
        lineNo: k + 1,
        customerId: k % 3 === 0 ? null : '17850',
        description: k % 5 === 0 ? null : `ITEM ${k % 4}`,
      }),
    );
    const first = new LakeLines(undefined, 4);
    for (const l of many.slice(0, 20)) first.add(typed(l), FILE.source, FILE.key);
    const second = new LakeLines(undefined, 2);
    for (const l of many.slice(20)) second.add(typed(l), ARCHIVE.source, ARCHIVE.key);
    const together = new LakeLines();
    together.append(first);
    together.append(second, [19, 0, 5]);
    const expected = [...first.rows(), ...[19, 0, 5].map((i) => second.rows()[i])];
    expect(together.rows()).toEqual(expected);
    expect(together.rows()[0]).toMatchObject({
      invoiceNo: '536365',
      lineNo: 1,
      customerId: null,
      description: null,
    });
    expect(together.rows().at(-1)).toMatchObject({ lineNo: 26, sourceKey: ARCHIVE.key, source: 'stream' });
    together.truncate(20);
    expect(together.rows()).toEqual(first.rows());
  });

  it("takes the typer's duplicate verdicts, checking again only invoices that were not one run", async () => {
    const x = inputLine({ invoiceNo: '536365', lineNo: 1 });
    const y = inputLine({ invoiceNo: '536366', lineNo: 1 });
    // The typer's verdicts: x2 repeats x1 within x's run; x3 repeats x1 after y came between (the
    // typer keeps only the current invoice's lines, so it says no and leaves x to whoever comes next).
    const verdicts: Array<[InvoiceLineInput, boolean]> = [
      [x, false],
      [{ ...x, lineNo: 2 }, true],
      [y, false],
      [{ ...x, lineNo: 3 }, false],
    ];
    const withVerdicts = (pairs: Array<[InvoiceLineInput, boolean | undefined]>) => {
      const out = new LakeLines();
      for (const [l, d] of pairs) out.add({ ...typed(l), isDuplicateRow: d }, FILE.source, FILE.key);
      return out;
    };
    const lines = withVerdicts(verdicts);
    expect(Array.from(lines.unsettled([0, 1, 2, 3]))).toEqual([0, 1, 3]);
    // One run of rising line numbers each: nothing to check again.
    expect(Array.from(withVerdicts(verdicts.slice(0, 3)).unsettled([0, 1, 2]))).toEqual([]);
    // A line number that does not rise (an archive line delivered twice) unsettles its invoice.
    expect(
      Array.from(
        withVerdicts([
          [x, false],
          [{ ...x, lineNo: 2 }, false],
          [x, false],
        ]).unsettled([0, 1, 2]),
      ),
    ).toEqual([0, 1, 2]);
    // A line without a verdict: every line is checked.
    expect(
      Array.from(
        withVerdicts([
          [x, false],
          [y, undefined],
        ]).unsettled([0, 1]),
      ),
    ).toEqual([0, 1]);

    const bucket = memoryBucket();
    try {
      await writeLakeLines(bucket.store, lines, { now: 1 });
      const files = [...bucket.objects].filter(([k]) => k.endsWith('.parquet'));
      const read = (await readLakeFile(bucket.store, files[0]?.[0] as string)).rows();
      expect(read.map((r) => [r.invoiceNo, r.lineNo, r.duplicate])).toEqual([
        ['536365', 1, false],
        ['536365', 2, true],
        ['536365', 3, true],
        ['536366', 1, false],
      ]);
      // The same file as lines without verdicts, whose duplicates the lake finds itself.
      const other = memoryBucket();
      try {
        await writeLakeLines(other.store, withVerdicts(verdicts.map(([l]) => [l, undefined])), { now: 1 });
        expect([...other.objects.keys()].filter((k) => k.endsWith('.parquet'))).toEqual(
          files.map(([k]) => k),
        );
      } finally {
        other.restore();
      }
    } finally {
      bucket.restore();
    }
  });

  it('orders a file by invoice time, invoice number (as text) and line', async () => {
    const bucket = memoryBucket();
    try {
      const at = (invoiceNo: string, lineNo: number, invoiceDate: string) =>
        inputLine({ invoiceNo, lineNo, invoiceDate });
      const shuffled = [
        at('536367', 2, '2010-12-01T08:34:00'),
        at('C536379', 1, '2010-12-01T08:26:00'),
        at('536365', 2, '2010-12-01T08:26:00'),
        at('536367', 1, '2010-12-01T08:34:00'),
        at('536365', 1, '2010-12-01T08:26:00'),
        at('536366', 1, '2010-12-01T08:28:00'),
      ];
      await writeLakeLines(bucket.store, linesOf(FILE, shuffled));
      const [file] = [...(await listLakeFiles(bucket.store)).values()].flat();
      const rows = (await readLakeFile(bucket.store, file as string)).rows();
      expect(rows.map((r) => `${r.invoiceNo}/${r.lineNo}`)).toEqual([
        '536365/1',
        '536365/2',
        'C536379/1',
        '536366/1',
        '536367/1',
        '536367/2',
      ]);
      // An invoice with lines at two times: ordered row by row (time first), not by invoice.
      const other = memoryBucket();
      try {
        await writeLakeLines(
          other.store,
          linesOf(FILE, [
            at('536365', 1, '2010-12-01T08:30:00'),
            at('536366', 1, '2010-12-01T08:28:00'),
            at('536365', 2, '2010-12-01T08:20:00'),
          ]),
        );
        const [again] = [...(await listLakeFiles(other.store)).values()].flat();
        const order = (await readLakeFile(other.store, again as string)).rows();
        expect(order.map((r) => `${r.invoiceNo}/${r.lineNo}`)).toEqual(['536365/2', '536366/1', '536365/1']);
      } finally {
        other.restore();
      }
    } finally {
      bucket.restore();
    }
  });

  it('orders many shuffled lines as a row-by-row comparison would, invoices with several times too', async () => {
    const bucket = memoryBucket();
    try {
      const rng = new Rng(12);
      const lines = [];
      for (let n = 0; n < 400; n++) {
        const invoiceNo = String(536_000 + rng.int(400));
        // Most invoices at one time; some lines at another minute of the same month.
        const minute = rng.next() < 0.2 ? rng.int(60) : 30;
        const day = 1 + (Number(invoiceNo) % 20);
        lines.push(
          inputLine({
            invoiceNo: rng.next() < 0.1 ? `C${invoiceNo}` : invoiceNo,
            lineNo: n + 1,
            invoiceDate: `2010-12-${String(day).padStart(2, '0')}T08:${String(minute).padStart(2, '0')}:00`,
          }),
        );
      }
      const expected = [...lines]
        .sort(
          (a, b) =>
            wallClockMs(a.invoiceDate) - wallClockMs(b.invoiceDate) ||
            (a.invoiceNo < b.invoiceNo ? -1 : a.invoiceNo > b.invoiceNo ? 1 : 0) ||
            a.lineNo - b.lineNo,
        )
        .map((l) => `${l.invoiceNo}/${l.lineNo}`);
      await writeLakeLines(bucket.store, linesOf(FILE, shuffle(rng, lines)));
      const [file] = [...(await listLakeFiles(bucket.store)).values()].flat();
      const rows = (await readLakeFile(bucket.store, file as string)).rows();
      expect(rows.map((r) => `${r.invoiceNo}/${r.lineNo}`)).toEqual(expected);
    } finally {
      bucket.restore();
    }
  });

  it("takes a typer's ids per collector: two objects' typers number different values alike", () => {
    const lines = new LakeLines();
    const one = new LakeLineCollector(lines, FILE);
    const two = new LakeLineCollector(lines, ARCHIVE);
    const line = (stockCode: string, description: string | null) =>
      typed(inputLine({ invoiceNo: '536365', stockCode, description }));
    // Each typer numbers its first stock code and description 0.
    one.write({ ...line('85123A', 'WHITE HANGING HEART'), stockId: 0, descriptionId: 0 });
    two.write({ ...line('71053', 'WHITE METAL LANTERN'), stockId: 0, descriptionId: 0 });
    one.write({ ...line('85123A', 'WHITE HANGING HEART'), stockId: 0, descriptionId: 0 });
    two.write({ ...line('71053', null), stockId: 0, descriptionId: 1 });
    expect(lines.rows().map((r) => [r.stockCode, r.description])).toEqual([
      ['85123A', 'WHITE HANGING HEART'],
      ['71053', 'WHITE METAL LANTERN'],
      ['85123A', 'WHITE HANGING HEART'],
      ['71053', null],
    ]);
  });

  it('encodes a file at a time while PUTs run, and throws the first PUT that fails', async () => {
    const bucket = memoryBucket();
    try {
      bucket.mock
        .on(PutObjectCommand)
        .rejects(Object.assign(new Error('Access Denied'), { name: 'AccessDenied' }));
      const encoded: number[] = [];
      const encoder: LakeEncoder = {
        async encode(parts) {
          encoded.push(parts.length);
          return leanLakeEncoder.encode(parts);
        },
      };
      await expect(writeLakeLines({ ...bucket.store, encoder }, linesOf(FILE, EDGES))).rejects.toThrow(
        'Access Denied',
      );
      expect(encoded.length).toBeGreaterThan(0);
      expect(encoded.every((n) => n === 1)).toBe(true);
      expect(bucket.objects.size).toBe(0);
    } finally {
      bucket.restore();
    }
  });
});

describe('lake invoice lines: idempotent writes', () => {
  let bucket: ReturnType<typeof memoryBucket>;
  beforeEach(() => {
    bucket?.restore();
    bucket = memoryBucket();
  });

  async function allRows() {
    const out = new LakeLines();
    for (const files of (await listLakeFiles(bucket.store)).values())
      for (const f of files) await readLakeFile(bucket.store, f, out);
    return out;
  }

  it('writes a reloaded object once: same files, no second copy of a line', async () => {
    const first = await writeLakeLines(bucket.store, linesOf(FILE, EDGES));
    const before = new Map(bucket.objects);
    const again = await writeLakeLines(bucket.store, linesOf(FILE, EDGES));
    expect(first.added).toBe(EDGES.length);
    expect(again).toMatchObject({ added: 0, already: EDGES.length });
    expect([...bucket.objects.keys()].sort()).toEqual([...before.keys()].sort());
    expect((await allRows()).length).toBe(EDGES.length);
  });

  it('keeps the first line of a key and takes the lineage an archive line lends, as the MERGE does', async () => {
    const line = inputLine({ invoiceNo: '536365', lineNo: 1 });
    await writeLakeLines(bucket.store, linesOf(FILE, [line]));
    const later = linesOf(ARCHIVE, [{ ...line, quantity: 99 }], {
      acceptedAt: Date.parse('2011-12-09T12:00:00Z'),
      streamVisibleAt: Date.parse('2011-12-09T12:00:01Z'),
    });
    const written = await writeLakeLines(bucket.store, later);
    expect(written).toMatchObject({ added: 0, already: 1 });
    const rows = (await allRows()).rows();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      quantity: line.quantity,
      sourceKey: FILE.key,
      acceptedAt: Date.parse('2011-12-09T12:00:00Z'),
      streamVisibleAt: Date.parse('2011-12-09T12:00:01Z'),
    });
  });

  it('marks duplicate rows over the invoice as the warehouse does, across writes', async () => {
    const a = inputLine({ invoiceNo: '536409', lineNo: 1 });
    await writeLakeLines(bucket.store, linesOf(ARCHIVE, [a]));
    await writeLakeLines(
      bucket.store,
      linesOf(ARCHIVE, [
        { ...a, lineNo: 2 },
        { ...a, lineNo: 3, quantity: 7 },
      ]),
    );
    const rows = (await allRows()).rows();
    const dup = new Map(rows.map((r) => [r.lineNo, r.duplicate]));
    expect(Object.fromEntries(dup)).toEqual({ 1: false, 2: true, 3: false });
  });

  it('compaction merges what a crashed write left in a partition into one file, once', async () => {
    const day = EDGES.filter((l) => l.invoiceDate === EDGES[0]?.invoiceDate);
    await writeLakeLines(bucket.store, linesOf(FILE, day));
    // A crash after the new file was written and before the old ones were deleted: both stay.
    const [partition, files] = [...(await listLakeFiles(bucket.store))][0] ?? ['', []];
    const leftover = `${INVOICE_LINES_PREFIX}${partition}part-leftover.parquet`;
    bucket.objects.set(leftover, bucket.objects.get(files[0] as string) as Uint8Array);
    await writeLakeLines(bucket.store, linesOf(ARCHIVE, [inputLine({ invoiceNo: '536366', lineNo: 1 })]));
    // The next write to the partition folded the leftover in.
    expect((await allRows()).length).toBe(day.length + 1);
    expect(await compactLake(bucket.store)).toEqual([]);
    const current = (await listLakeFiles(bucket.store)).get(partition)?.[0] as string;
    bucket.objects.set(leftover, bucket.objects.get(current) as Uint8Array);
    // The merged lines are the current file's, byte for byte (same name): only the leftover goes.
    expect((await compactLake(bucket.store)).map((p) => p.replaced)).toEqual([[leftover]]);
    expect((await listLakeFiles(bucket.store)).get(partition)).toEqual([current]);
    expect(await compactLake(bucket.store)).toEqual([]);
    expect((await allRows()).length).toBe(day.length + 1);
  });
  it('two writers of one month at once (two Lambda invocations) leave one file, every line once', async () => {
    const day = EDGES.filter((l) => l.invoiceDate === EDGES[0]?.invoiceDate);
    await writeLakeLines(bucket.store, linesOf(FILE, day));
    const [partition] = [...(await listLakeFiles(bucket.store)).keys()];
    const at = (invoiceNo: string) => ({ ...(day[0] as InvoiceLineInput), invoiceNo, lineNo: 1 });
    const filesPut = () =>
      bucket.mock.commandCalls(PutObjectCommand).filter((c) => c.args[0].input.Key?.endsWith('.parquet'))
        .length;
    const before = filesPut();
    // Two writes, no queue between them: each reads the month's one file before the other writes.
    await Promise.all([
      writeLakeLines(bucket.store, linesOf(ARCHIVE, [at('536901')])),
      writeLakeLines(bucket.store, linesOf(ARCHIVE, [at('536902')])),
    ]);
    // They overlapped (two files, each with the old lines), and a third write merged them.
    expect(filesPut() - before).toBeGreaterThan(2);
    expect((await listLakeFiles(bucket.store)).get(partition as string)).toHaveLength(1);
    const keys = (await allRows()).rows().map((r) => `${r.invoiceNo}/${r.lineNo}`);
    expect(keys).toHaveLength(day.length + 2);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('folds a day folder a lake written before months has into its month, no line twice', async () => {
    const day = EDGES.filter((l) => l.invoiceDate === EDGES[0]?.invoiceDate);
    await writeLakeLines(bucket.store, linesOf(FILE, day));
    const [partition, [file]] = [...(await listLakeFiles(bucket.store))][0] as [string, string[]];
    // The same file as the day partitioning wrote it: year=2010/month=12/day=01/.
    const old = `${INVOICE_LINES_PREFIX}${partition}day=01/part-old.parquet`;
    bucket.objects.set(old, bucket.objects.get(file as string) as Uint8Array);
    bucket.objects.delete(file as string);
    expect((await listLakeFiles(bucket.store)).get(partition)).toEqual([old]);
    const written = await compactLake(bucket.store);
    expect(written.map((p) => p.replaced)).toEqual([[old]]);
    expect(written[0]?.file).toBe(file);
    expect(await compactLake(bucket.store)).toEqual([]);
    // Another day folder of the month: the next write to the month reads it and removes it.
    bucket.objects.set(old, bucket.objects.get(file as string) as Uint8Array);
    await writeLakeLines(bucket.store, linesOf(ARCHIVE, [inputLine({ invoiceNo: '536366', lineNo: 1 })]));
    const [only] = (await listLakeFiles(bucket.store)).get(partition) ?? [];
    expect((await listLakeFiles(bucket.store)).get(partition)).toHaveLength(1);
    expect(only?.startsWith(`${INVOICE_LINES_PREFIX}${partition}part-`)).toBe(true);
    expect((await allRows()).length).toBe(day.length + 1);
  });
});

describe('lake invoice lines: the catch-up stage and reconcile', () => {
  it('writes each loaded object once, and reconcile finds a line removed or duplicated', async () => {
    const bucket = memoryBucket();
    try {
      const objects: LoadedObject[] = [
        { ...FILE, format: 'csv' },
        { ...ARCHIVE, format: 'ndjson' },
      ];
      const content = new Map([
        [FILE.key, EDGES.slice(0, 6)],
        [ARCHIVE.key, EDGES.slice(4)],
      ]);
      let reads = 0;
      const deps = {
        store: bucket.store,
        loaded: async () => objects,
        readLines: async (o: LoadedObject, c: { write(l: LakeLineInput): void }) => {
          reads++;
          for (const l of content.get(o.key) ?? []) c.write(typed(l));
        },
      };
      expect(await catchUpLake(deps)).toMatchObject({ objects: 2, added: EDGES.length, already: 2 });
      expect(await catchUpLake(deps)).toMatchObject({ objects: 0, lines: 0 });
      expect(reads).toBe(2);

      // The warehouse as the reference: the same lines, exact totals and quantities.
      const fact = EDGES.map((l) => ({
        invoice_no: l.invoiceNo,
        line_no: l.lineNo,
        quantity: l.quantity,
        line_total: formatTotal(BigInt(l.quantity) * BigInt(thousandths(String(l.unitPrice)) as number)),
      }));
      const warehouse = warehouseLineSource({
        query: async <R>() => ({ rows: fact as R[], rowCount: fact.length }),
      } as Parameters<typeof warehouseLineSource>[0]);
      const clean = await reconcileWith({ reference: warehouse, sources: [lakeLineSource(bucket.store)] });
      expect(clean.ok).toBe(true);
      expect(clean.stores[0]).toMatchObject({ lines: EDGES.length, quantity: clean.accepted.quantity });

      // A line removed from the lake, and a file copied in a partition (a key twice).
      const files = await listLakeFiles(bucket.store);
      const yearEnd = files.get('year=2011/month=12/')?.[0] as string;
      bucket.objects.delete(yearEnd);
      const first = files.get(partitionOf(dateKey(EDGES[0]?.invoiceDate as string)))?.[0] as string;
      bucket.objects.set(first.replace('part-', 'part-copy-'), bucket.objects.get(first) as Uint8Array);
      const broken = await reconcileWith({ reference: warehouse, sources: [lakeLineSource(bucket.store)] });
      expect(broken.ok).toBe(false);
      expect(broken.stores[0]).toMatchObject({ missing: 1, duplicated: 4 });
      expect(broken.stores[0]?.samples.missing.map((d) => d.key)).toEqual(['581587/1']);
    } finally {
      bucket.restore();
    }
  });
});

function formatTotal(v: bigint): string {
  const neg = v < 0n;
  const a = neg ? -v : v;
  return `${neg ? '-' : ''}${a / 1000n}.${String(a % 1000n).padStart(3, '0')}`;
}

describe('lake invoice lines: the background sink coalesces committed objects', () => {
  const archive = (n: number): LakeSource => ({
    key: `archive/2011/12/09/12/object-${n}.json.gz`,
    etag: `e${n}`,
    source: 'stream',
  });
  /** One archive object of `count` lines of one day, loaded and committed through the sink. */
  async function commit(sink: ReturnType<typeof createLakeSink>, n: number, count = 3) {
    const source = archive(n);
    const collector = sink.open(source, source);
    for (let i = 1; i <= count; i++)
      collector.write(
        typed(inputLine({ invoiceNo: `58${n}`, lineNo: i, invoiceDate: '2011-12-09T12:00:00' })),
      );
    await sink.committed([source]);
  }

  it('writes the day file once for objects committed close together, markers after the file', async () => {
    const bucket = memoryBucket();
    try {
      const writes: number[] = [];
      const sink = createLakeSink({
        store: bucket.store,
        background: true,
        coalesce: { maxWaitMs: 3_600_000, maxLines: 1_000 },
        onWritten: (w) => writes.push(w.added),
      });
      for (let n = 1; n <= 5; n++) await commit(sink, n);
      // Nothing written while the objects wait: no file, no marker.
      expect(puts(bucket, INVOICE_LINES_PREFIX)).toBe(0);
      expect(await markedVersions(bucket.store)).toEqual(new Set());
      await sink.idle();
      expect(writes).toEqual([15]);
      expect(puts(bucket, INVOICE_LINES_PREFIX)).toBe(1);
      expect((await markedVersions(bucket.store)).size).toBe(5);
      const order = bucket.mock.commandCalls(PutObjectCommand).map((c) => c.args[0].input.Key as string);
      expect(order.findIndex((k) => k.startsWith(OBJECTS_PREFIX))).toBeGreaterThan(
        order.findIndex((k) => k.startsWith(INVOICE_LINES_PREFIX)),
      );
    } finally {
      bucket.restore();
    }
  });

  it('writes at once when enough lines wait', async () => {
    const bucket = memoryBucket();
    try {
      let written: (added: number) => void = () => {};
      const done = new Promise<number>((resolve) => {
        written = resolve;
      });
      const sink = createLakeSink({
        store: bucket.store,
        background: true,
        coalesce: { maxWaitMs: 3_600_000, maxLines: 6 },
        onWritten: (w) => written(w.added),
      });
      await commit(sink, 1);
      expect(puts(bucket, INVOICE_LINES_PREFIX)).toBe(0);
      await commit(sink, 2);
      // The second object brought the waiting lines to maxLines: written without idle().
      expect(await done).toBe(6);
      expect((await markedVersions(bucket.store)).size).toBe(2);
    } finally {
      bucket.restore();
    }
  });

  it('leaves an object that waited when the process died to the catch-up, once', async () => {
    const bucket = memoryBucket();
    try {
      const dying = createLakeSink({
        store: bucket.store,
        background: true,
        coalesce: { maxWaitMs: 3_600_000, maxLines: 1_000 },
      });
      await commit(dying, 1);
      await commit(dying, 2);
      // The process dies here: nothing in the lake, no marker; the warehouse holds both objects.
      const loaded: LoadedObject[] = [1, 2].map((n) => ({ ...archive(n), format: 'ndjson' }));
      const stage = {
        store: bucket.store,
        loaded: async () => loaded,
        readLines: async (o: LoadedObject, c: LakeLineCollector) => {
          const n = Number(/object-(\d+)/.exec(o.key)?.[1]);
          for (let i = 1; i <= 3; i++)
            c.write(typed(inputLine({ invoiceNo: `58${n}`, lineNo: i, invoiceDate: '2011-12-09T12:00:00' })));
        },
      };
      expect(await catchUpLake(stage)).toMatchObject({ objects: 2, added: 6 });
      // Had the sink written after all (its stop raced the catch-up), nothing goes in twice.
      await dying.idle();
      expect(await catchUpLake(stage)).toMatchObject({ objects: 0 });
      const totals = await readLakeTotals(bucket.store);
      expect(totals).toHaveLength(6);
    } finally {
      bucket.restore();
    }
  });
});

describe('lake invoice lines: a waiting sink prepares its write before the load commits', () => {
  const source: LakeSource = { key: 'landing/early.csv', etag: 'e9', source: 'file' };
  /** A sink whose encoder reports each call, and an object's lines handed over and typed. */
  function typedObject(bucket: ReturnType<typeof memoryBucket>) {
    let encoded: () => void = () => {};
    const firstEncode = new Promise<void>((resolve) => {
      encoded = resolve;
    });
    const encoder: LakeEncoder = {
      async encode(parts) {
        encoded();
        return leanLakeEncoder.encode(parts);
      },
    };
    const sink = createLakeSink({ store: { ...bucket.store, encoder } });
    const collector = sink.open(source, source);
    for (const l of EDGES) collector.write(typed(l));
    sink.typed(source);
    return { sink, firstEncode };
  }

  it('encodes once the lines are typed, PUTs nothing until committed, then writes files and marker', async () => {
    const bucket = memoryBucket();
    try {
      const { sink, firstEncode } = typedObject(bucket);
      await firstEncode;
      expect(bucket.mock.commandCalls(PutObjectCommand)).toHaveLength(0);
      await sink.committed([source]);
      expect(puts(bucket, INVOICE_LINES_PREFIX)).toBe(
        new Set(EDGES.map((l) => partitionOf(dateKey(l.invoiceDate)))).size,
      );
      expect(await markedVersions(bucket.store)).toHaveProperty('size', 1);
    } finally {
      bucket.restore();
    }
  });

  it('writes nothing for a load that did not commit, and frees the queue for the next write', async () => {
    const bucket = memoryBucket();
    try {
      const { sink, firstEncode } = typedObject(bucket);
      await firstEncode;
      sink.abandoned([source]);
      // The same object's next attempt (a load started over) is written, once.
      const again = sink.open(source, source);
      for (const l of EDGES) again.write(typed(l));
      await sink.committed([source]);
      expect(puts(bucket, INVOICE_LINES_PREFIX)).toBe(
        new Set(EDGES.map((l) => partitionOf(dateKey(l.invoiceDate)))).size,
      );
      const lines = new LakeLines();
      for (const f of [...(await listLakeFiles(bucket.store)).values()].flat())
        await readLakeFile(bucket.store, f, lines);
      expect(lines.length).toBe(EDGES.length);
    } finally {
      bucket.restore();
    }
  });
});

function puts(bucket: ReturnType<typeof memoryBucket>, prefix: string): number {
  return bucket.mock.commandCalls(PutObjectCommand).filter((c) => c.args[0].input.Key?.startsWith(prefix))
    .length;
}
