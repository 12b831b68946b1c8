import { describe, expect, it } from 'vitest';
import { PgBinaryEncoder } from '#batch/encoders';
import { BINARY_HEADER, BINARY_TRAILER, BinaryTupleWriter } from '#batch/pg-binary';
import { STAMP_COLUMNS, TYPED_COLUMNS, type TypedLine } from '#batch/typer';
import { wallClockMs } from '#core/dates';

/*
 * A decoder of PostgreSQL's binary COPY format written from the protocol documentation, independent
 * of the writer: https://www.postgresql.org/docs/current/sql-copy.html#SQL-COPY-BINARY-FORMAT and
 * the numeric/timestamp send functions (numeric_send, timestamp_send).
 */

const PG_EPOCH_MS = Date.UTC(2000, 0, 1);

/** Length-prefixed fields (int32 length, -1 = NULL) until the buffer ends. */
function fieldsOf(buf: Buffer): Array<Buffer | null> {
  const out: Array<Buffer | null> = [];
  let o = 0;
  while (o < buf.length) {
    const len = buf.readInt32BE(o);
    o += 4;
    if (len === -1) out.push(null);
    else {
      expect(o + len).toBeLessThanOrEqual(buf.length);
      out.push(buf.subarray(o, o + len));
      o += len;
    }
  }
  return out;
}

/** A whole COPY stream: header, tuples (int16 field count, fields), trailer. */
function tuplesOf(buf: Buffer): Array<Array<Buffer | null>> {
  expect(buf.subarray(0, 11).toString('latin1')).toBe('PGCOPY\n\xff\r\n\0');
  expect(buf.readInt32BE(11)).toBe(0); // flags: no OIDs
  expect(buf.readInt32BE(15)).toBe(0); // header extension length
  let o = 19;
  const tuples: Array<Array<Buffer | null>> = [];
  for (;;) {
    const count = buf.readInt16BE(o);
    o += 2;
    if (count === -1) break;
    const fields: Array<Buffer | null> = [];
    for (let i = 0; i < count; i++) {
      const len = buf.readInt32BE(o);
      o += 4;
      if (len === -1) fields.push(null);
      else {
        fields.push(buf.subarray(o, o + len));
        o += len;
      }
    }
    tuples.push(fields);
  }
  expect(o).toBe(buf.length);
  return tuples;
}

/** numeric: ndigits, weight, sign, dscale, base-10000 digits -> exact text with dscale decimals. */
function numericText(b: Buffer): string {
  const ndigits = b.readInt16BE(0);
  const weight = b.readInt16BE(2);
  const sign = b.readUInt16BE(4);
  const dscale = b.readInt16BE(6);
  expect(b.length).toBe(8 + ndigits * 2);
  expect([0, 0x4000]).toContain(sign);
  const digits: number[] = [];
  for (let i = 0; i < ndigits; i++) digits.push(b.readInt16BE(8 + i * 2));
  for (const d of digits) expect(d >= 0 && d < 10000).toBe(true);
  // PostgreSQL stores no leading or trailing zero digits (and zero as no digits at all).
  if (ndigits > 0) {
    expect(digits[0]).not.toBe(0);
    expect(digits[ndigits - 1]).not.toBe(0);
  }
  let n = 0n;
  for (const d of digits) n = n * 10000n + BigInt(d);
  // The value is n x 10000^(weight - ndigits + 1); scaled by 10^dscale it must be whole.
  const exp10 = 4 * (weight - ndigits + 1) + dscale;
  let scaled: bigint;
  if (exp10 >= 0) scaled = n * 10n ** BigInt(exp10);
  else {
    const div = 10n ** BigInt(-exp10);
    expect(n % div).toBe(0n);
    scaled = n / div;
  }
  const abs = scaled.toString().padStart(dscale + 1, '0');
  const text = dscale > 0 ? `${abs.slice(0, -dscale)}.${abs.slice(-dscale)}` : abs;
  return sign === 0x4000 ? `-${text}` : text;
}

/** int8 microseconds since 2000-01-01 -> epoch ms. */
function timeMs(b: Buffer): number {
  expect(b.length).toBe(8);
  const us = b.readBigInt64BE(0);
  expect(us % 1000n).toBe(0n);
  return Number(us / 1000n) + PG_EPOCH_MS;
}

const one = (write: (w: BinaryTupleWriter) => void): Buffer | null => {
  const w = new BinaryTupleWriter();
  write(w);
  const fields = fieldsOf(w.take());
  expect(fields).toHaveLength(1);
  return fields[0] as Buffer | null;
};

describe('BinaryTupleWriter', () => {
  it('writes thousandths as numeric(.., 3)', () => {
    const cases: Array<[number, string]> = [
      [0, '0.000'],
      [1, '0.001'],
      [10, '0.010'],
      [999, '0.999'],
      [1000, '1.000'],
      [2550, '2.550'],
      [10000, '10.000'],
      [10_000_000, '10000.000'],
      [12_345_678, '12345.678'],
      [123456789012345, '123456789012.345'],
      [Number.MAX_SAFE_INTEGER, '9007199254740.991'],
      [-1, '-0.001'],
      [-500, '-0.500'],
      [-2550, '-2.550'],
      [-123456789012345, '-123456789012.345'],
    ];
    const got = cases.map(([n]) => numericText(one((w) => w.thousandths(n)) as Buffer));
    expect(got).toEqual(cases.map(([, text]) => text));
  });

  it('writes zero as no digits, weight 0, positive, scale 3', () => {
    const b = one((w) => w.thousandths(0)) as Buffer;
    expect([...b]).toEqual([0, 0, 0, 0, 0, 0, 0, 3]);
  });

  it('writes 0.125 as the digit 1250 at weight -1 and 2.55 as 2, 5500 at weight 0', () => {
    const small = one((w) => w.thousandths(125)) as Buffer;
    expect([small.readInt16BE(0), small.readInt16BE(2), small.readInt16BE(8)]).toEqual([1, -1, 1250]);
    const price = one((w) => w.thousandths(2550)) as Buffer;
    expect([price.readInt16BE(0), price.readInt16BE(2), price.readInt16BE(8), price.readInt16BE(10)]).toEqual(
      [2, 0, 2, 5500],
    );
  });

  it('writes decimal text of any size exactly, and small values as thousandths() does', () => {
    const cases: Array<[string, string]> = [
      ['12345678901234567.891', '12345678901234567.891'],
      ['-12345678901234567.891', '-12345678901234567.891'],
      ['9999999999999990000.000', '9999999999999990000.000'],
      ['10000000000000000', '10000000000000000.000'],
      ['9007199254740993.5', '9007199254740993.500'],
      ['0', '0.000'],
      ['2.55', '2.550'],
      ['-0.5', '-0.500'],
      ['0.001', '0.001'],
      ['123.4', '123.400'],
    ];
    expect(cases.map(([t]) => numericText(one((w) => w.decimal(t)) as Buffer))).toEqual(
      cases.map(([, e]) => e),
    );
    for (const [text, n] of [
      ['2.55', 2550],
      ['-0.5', -500],
      ['123456789012.345', 123456789012345],
    ] as const) {
      expect(one((w) => w.decimal(text))).toEqual(one((w) => w.thousandths(n)));
    }
  });

  it('writes timestamps as microseconds since 2000-01-01, before and after it', () => {
    const times = [
      Date.UTC(2000, 0, 1),
      Date.UTC(2000, 0, 1, 0, 0, 0, 1),
      Date.UTC(1999, 11, 31, 23, 59, 59),
      Date.UTC(1970, 0, 1),
      Date.UTC(1900, 0, 1, 12, 30),
      Date.UTC(2010, 11, 1, 8, 26),
      Date.UTC(2040, 11, 31, 23, 59, 59, 999),
    ];
    expect(times.map((ms) => timeMs(one((w) => w.timestamp(ms)) as Buffer))).toEqual(times);
    expect(times.map((ms) => timeMs(one((w) => w.instant(ms)) as Buffer))).toEqual(times);
    expect((one((w) => w.timestamp(Date.UTC(1999, 11, 31, 23, 59, 59))) as Buffer).readBigInt64BE(0)).toBe(
      -1_000_000n,
    );
    expect(one((w) => w.instant(null))).toBeNull();
  });

  it('reads a wall-clock text as UTC for a timestamp', () => {
    expect(wallClockMs('2010-12-01T08:26:00')).toBe(Date.UTC(2010, 11, 1, 8, 26));
    expect(wallClockMs('1999-12-31T23:59:59')).toBe(Date.UTC(1999, 11, 31, 23, 59, 59));
  });

  it('writes int4, bool, text, NULL and pre-encoded bytes', () => {
    const multiByte = 'CAFÉ ☕ 😀 naïve';
    const w = new BinaryTupleWriter();
    w.int4(-5);
    w.int4(2_147_483_647);
    w.int4(-10_000_000);
    w.bool(true);
    w.bool(false);
    w.text(multiByte);
    w.text('');
    w.text(null);
    w.null();
    const pre = new BinaryTupleWriter();
    pre.text('x');
    w.bytes(pre.take());
    const f = fieldsOf(w.take());
    expect(f.map((b) => b?.length ?? null)).toEqual([
      4,
      4,
      4,
      1,
      1,
      Buffer.byteLength(multiByte),
      0,
      null,
      null,
      1,
    ]);
    expect([f[0]?.readInt32BE(0), f[1]?.readInt32BE(0), f[2]?.readInt32BE(0)]).toEqual([
      -5, 2_147_483_647, -10_000_000,
    ]);
    expect([f[3]?.[0], f[4]?.[0]]).toEqual([1, 0]);
    expect(f[5]?.toString('utf8')).toBe(multiByte);
    expect(f[9]?.toString('utf8')).toBe('x');
  });

  it('grows past its first buffer and take() starts afresh', () => {
    const w = new BinaryTupleWriter();
    const long = 'é'.repeat(50_000);
    w.text(long);
    w.int4(7);
    const f = fieldsOf(w.take());
    expect(f[0]?.toString('utf8')).toBe(long);
    expect(f[1]?.readInt32BE(0)).toBe(7);
    expect(w.take()).toHaveLength(0);
    w.int4(8);
    expect(fieldsOf(w.take())[0]?.readInt32BE(0)).toBe(8);
  });
});

const LINE: TypedLine = {
  invoiceNo: 'C536379',
  lineNo: 3,
  dateKey: 20101201,
  invoiceDate: '2010-12-01T09:41:00',
  invoiceMs: Date.UTC(2010, 11, 1, 9, 41),
  stockCode: 'D',
  stockId: 0,
  description: 'Discount ☕',
  descriptionId: 0,
  productId: 0,
  customerId: '14527',
  country: 'United Kingdom',
  customerNo: 0,
  countryNo: 0,
  quantity: -2,
  price: 27500,
  isNonProduct: true,
  isDuplicateRow: false,
  producedAt: null,
  acceptedAt: null,
  streamVisibleAt: null,
};

function encode(encoder: PgBinaryEncoder, lines: TypedLine[]): Array<Record<string, Buffer | null>> {
  for (const l of lines) encoder.write(l);
  return tuplesOf(Buffer.concat([encoder.header, encoder.take(), encoder.trailer])).map((fields) => {
    // Every tuple has exactly the layout's columns; the fields are named by them.
    expect(fields).toHaveLength(encoder.columns.length);
    return Object.fromEntries(encoder.columns.map((c, i) => [c, fields[i] ?? null]));
  });
}

/** The TYPED_COLUMNS fields of a tuple, decoded. */
function typedValues(f: Record<string, Buffer | null>) {
  const text = (b: Buffer | null | undefined) => (b ? b.toString('utf8') : null);
  const bool = (b: Buffer | null | undefined) => (b as Buffer)[0] === 1;
  const instant = (b: Buffer | null | undefined) => (b ? new Date(timeMs(b)).toISOString() : null);
  return {
    invoice_no: text(f.invoice_no),
    line_no: f.line_no?.readInt32BE(0),
    date_key: f.date_key?.readInt32BE(0),
    invoice_date: instant(f.invoice_date),
    stock_code: text(f.stock_code),
    description: text(f.description),
    customer_id: text(f.customer_id),
    country_name: text(f.country_name),
    quantity: f.quantity?.readInt32BE(0),
    unit_price: numericText(f.unit_price as Buffer),
    line_total: numericText(f.line_total as Buffer),
    is_cancellation: bool(f.is_cancellation),
    is_adjustment: bool(f.is_adjustment),
    is_non_product: bool(f.is_non_product),
    is_duplicate_row: bool(f.is_duplicate_row),
    produced_at: instant(f.produced_at),
    accepted_at: instant(f.accepted_at),
    stream_visible_at: instant(f.stream_visible_at),
  };
}

describe('PgBinaryEncoder', () => {
  it('frames the stream with the PGCOPY header and the -1 trailer', () => {
    expect(BINARY_HEADER.subarray(0, 11).toString('latin1')).toBe('PGCOPY\n\xff\r\n\0');
    expect(BINARY_HEADER).toHaveLength(19);
    expect([...BINARY_TRAILER]).toEqual([0xff, 0xff]);
    const encoder = new PgBinaryEncoder('typed');
    expect(encoder.header).toEqual(BINARY_HEADER);
    expect(encoder.trailer).toEqual(BINARY_TRAILER);
  });

  it("writes the 18 typed columns in the 'typed' layout, lineage included", () => {
    const lineage: TypedLine = {
      ...LINE,
      invoiceNo: 'A563185',
      lineNo: 1,
      stockCode: 'B',
      stockId: 1,
      description: null,
      descriptionId: 1,
      productId: 1,
      customerId: null,
      quantity: 1,
      price: 11062060,
      isDuplicateRow: true,
      producedAt: Date.parse('2024-01-01T00:00:00.000Z'),
      acceptedAt: null,
      streamVisibleAt: Date.parse('1999-12-31T23:59:59.999Z'),
    };
    const encoder = new PgBinaryEncoder('typed');
    expect([...encoder.columns].sort()).toEqual([...TYPED_COLUMNS].sort());
    expect(TYPED_COLUMNS).toHaveLength(18);
    const tuples = encode(encoder, [LINE, lineage]);
    expect(typedValues(tuples[0] as Record<string, Buffer | null>)).toEqual({
      invoice_no: 'C536379',
      line_no: 3,
      date_key: 20101201,
      invoice_date: '2010-12-01T09:41:00.000Z',
      stock_code: 'D',
      description: 'Discount ☕',
      customer_id: '14527',
      country_name: 'United Kingdom',
      quantity: -2,
      unit_price: '27.500',
      line_total: '-55.000',
      is_cancellation: true,
      is_adjustment: false,
      is_non_product: true,
      is_duplicate_row: false,
      produced_at: null,
      accepted_at: null,
      stream_visible_at: null,
    });
    expect(typedValues(tuples[1] as Record<string, Buffer | null>)).toMatchObject({
      invoice_no: 'A563185',
      stock_code: 'B',
      description: null,
      customer_id: null,
      unit_price: '11062.060',
      is_cancellation: false,
      is_adjustment: true,
      is_duplicate_row: true,
      produced_at: '2024-01-01T00:00:00.000Z',
      accepted_at: null,
      stream_visible_at: '1999-12-31T23:59:59.999Z',
    });
  });

  it("writes 21 fields in the 'fact' layout: the typed ones and the stamp", () => {
    const stamp = {
      visibleAtMs: Date.parse('2024-05-01T12:00:00.123Z'),
      source: 'file' as const,
      sourceKey: 'k/é.csv',
    };
    const encoder = new PgBinaryEncoder('fact', stamp);
    expect([...encoder.columns].sort()).toEqual([...TYPED_COLUMNS, ...STAMP_COLUMNS].sort());
    expect(encoder.columns).toHaveLength(21);
    const tuples = encode(encoder, [
      LINE,
      { ...LINE, lineNo: 4, acceptedAt: Date.parse('2024-01-01T00:00:00.000Z') },
    ]);
    for (const t of tuples) {
      expect(new Date(timeMs(t.warehouse_visible_at as Buffer)).toISOString()).toBe(
        '2024-05-01T12:00:00.123Z',
      );
      expect([t.source?.toString('utf8'), t.source_key?.toString('utf8')]).toEqual(['file', 'k/é.csv']);
    }
    expect(typedValues(tuples[0] as Record<string, Buffer | null>)).toMatchObject({
      invoice_no: 'C536379',
      line_no: 3,
      stock_code: 'D',
      description: 'Discount ☕',
      unit_price: '27.500',
      line_total: '-55.000',
      is_cancellation: true,
      is_non_product: true,
    });
    expect(typedValues(tuples[1] as Record<string, Buffer | null>)).toMatchObject({
      line_no: 4,
      produced_at: null,
      accepted_at: '2024-01-01T00:00:00.000Z',
    });
    expect(() => new PgBinaryEncoder('fact')).toThrow();
  });

  it("writes 15 fields in the 'bulk' layout and refuses lineage there", () => {
    const encoder = new PgBinaryEncoder('bulk');
    const lineage = ['produced_at', 'accepted_at', 'stream_visible_at'];
    const bulkColumns = TYPED_COLUMNS.filter((c) => !lineage.includes(c));
    expect([...encoder.columns].sort()).toEqual([...bulkColumns].sort());
    expect(bulkColumns).toHaveLength(15);
    const tuples = encode(encoder, [LINE, { ...LINE, lineNo: 4, isDuplicateRow: true }]);
    expect(typedValues(tuples[0] as Record<string, Buffer | null>)).toMatchObject({
      invoice_no: 'C536379',
      line_no: 3,
      stock_code: 'D',
      is_duplicate_row: false,
    });
    expect(tuples[1]?.line_no?.readInt32BE(0)).toBe(4);
    expect(tuples[1]?.is_duplicate_row?.[0]).toBe(1);
    expect(() => encoder.write({ ...LINE, producedAt: 0 })).toThrow();
  });

  it('re-encodes the shared blocks whenever a value they hold changes', () => {
    // Rows of one invoice whose customer, country or time change part-way, a stock code seen
    // with two descriptions, a price seen again: each row reads back with its own values.
    const lines: TypedLine[] = [
      { ...LINE, lineNo: 1 },
      { ...LINE, lineNo: 2, customerId: null },
      { ...LINE, lineNo: 3, customerId: null, country: 'France' },
      { ...LINE, lineNo: 4, country: 'France', invoiceMs: LINE.invoiceMs + 60_000 },
      { ...LINE, lineNo: 5, descriptionId: 1, productId: 1, description: null, price: 1 },
      { ...LINE, lineNo: 6, stockId: 1, productId: 2, stockCode: 'POST', isNonProduct: false, price: 1 },
      { ...LINE, invoiceNo: 'A536380', lineNo: 1, dateKey: 20101202, quantity: 7 },
      { ...LINE, lineNo: 7 },
    ];
    const values = encode(new PgBinaryEncoder('bulk'), lines).map(typedValues);
    expect(values.map((v) => [v.invoice_no, v.line_no, v.customer_id, v.country_name])).toEqual([
      ['C536379', 1, '14527', 'United Kingdom'],
      ['C536379', 2, null, 'United Kingdom'],
      ['C536379', 3, null, 'France'],
      ['C536379', 4, '14527', 'France'],
      ['C536379', 5, '14527', 'United Kingdom'],
      ['C536379', 6, '14527', 'United Kingdom'],
      ['A536380', 1, '14527', 'United Kingdom'],
      ['C536379', 7, '14527', 'United Kingdom'],
    ]);
    expect(values[3]?.invoice_date).toBe('2010-12-01T09:42:00.000Z');
    expect(values.map((v) => [v.stock_code, v.description, v.is_non_product])).toEqual([
      ['D', 'Discount ☕', true],
      ['D', 'Discount ☕', true],
      ['D', 'Discount ☕', true],
      ['D', 'Discount ☕', true],
      ['D', null, true],
      ['POST', 'Discount ☕', false],
      ['D', 'Discount ☕', true],
      ['D', 'Discount ☕', true],
    ]);
    expect(values.map((v) => [v.unit_price, v.line_total])).toEqual([
      ['27.500', '-55.000'],
      ['27.500', '-55.000'],
      ['27.500', '-55.000'],
      ['27.500', '-55.000'],
      ['0.001', '-0.002'],
      ['0.001', '-0.002'],
      ['27.500', '192.500'],
      ['27.500', '-55.000'],
    ]);
    expect(values.map((v) => [v.is_cancellation, v.is_adjustment, v.date_key])).toEqual([
      ...Array(6).fill([true, false, 20101201]),
      [false, true, 20101202],
      [true, false, 20101201],
    ]);
  });

  it('writes a line total past 2^53 thousandths exactly', () => {
    const big = { ...LINE, invoiceNo: '536400', quantity: 10_000_000, price: 999_999_999_999_999 };
    // The last line's total fits again: the writer goes back to thousandths.
    const all = encode(new PgBinaryEncoder('typed'), [big, { ...big, quantity: -10_000_000 }, LINE]).map(
      typedValues,
    );
    expect(all[0]?.unit_price).toBe('999999999999.999');
    expect(all.map((v) => v.line_total)).toEqual([
      '9999999999999990000.000',
      '-9999999999999990000.000',
      '-55.000',
    ]);
  });
});
