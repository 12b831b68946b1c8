import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  boolean,
  date,
  decimal,
  decimalText,
  encodeOffThread,
  int32,
  int64,
  type ParquetRow,
  type ParquetSchema,
  readParquet,
  string,
  time,
  unscaledDecimal,
  writeParquet,
  writeParquetSliced,
} from '#adapters/parquet-writer';
import { TimeSlicer } from '#core/time-slice';

const SCHEMA: ParquetSchema = [
  { name: 'id', type: int32, nullable: false },
  { name: 'big', type: int64, nullable: true },
  { name: 'price', type: decimal(10, 2), nullable: false },
  { name: 'amount', type: decimal(18, 2), nullable: true },
  { name: 'huge', type: decimal(30, 4), nullable: true },
  { name: 'day', type: date, nullable: true },
  { name: 'at', type: time, nullable: false },
  { name: 'paid', type: boolean, nullable: true },
  { name: 'name', type: string, nullable: true },
];

const ROWS: ParquetRow[] = [
  {
    id: 1,
    big: 9_007_199_254_740_993n,
    price: '3.10',
    amount: '999999.99',
    huge: '12345678901234567890123456.7891',
    day: '2024-02-29',
    at: '00:00:00.000001',
    paid: true,
    name: "Robert'); DROP TABLE students;--",
  },
  {
    id: -2,
    big: null,
    price: '-0.01',
    amount: null,
    huge: '-1.5',
    day: '1970-01-01',
    at: '23:59:59.999999',
    paid: false,
    name: '',
  },
  {
    id: 3,
    big: 0n,
    price: '2',
    amount: '0.10',
    huge: null,
    day: null,
    at: '12:30:05',
    paid: null,
    name: null,
  },
  {
    id: 4,
    big: -1n,
    price: '99999999.99',
    amount: '-0.00',
    huge: '0',
    day: '1969-12-31',
    at: '08:00:00.5',
    paid: true,
    name: 'Zoë 東京 🙂',
  },
];

/** What the rows read back as: decimals at their scale, times with six fraction digits. */
const EXPECTED: ParquetRow[] = [
  { ...ROWS[0], at: '00:00:00.000001' },
  { ...ROWS[1], huge: '-1.5000', price: '-0.01' },
  { ...ROWS[2], price: '2.00', at: '12:30:05.000000' },
  { ...ROWS[3], amount: '0.00', huge: '0.0000', at: '08:00:00.500000' },
];

describe('the Parquet writer: decimals as exact text', () => {
  it('scales and formats without floating point', () => {
    expect(unscaledDecimal('1234.5', 10, 2)).toBe(123450n);
    expect(unscaledDecimal('-0.07', 10, 2)).toBe(-7n);
    expect(unscaledDecimal('3.100', 10, 2)).toBe(310n);
    expect(decimalText(123450n, 2)).toBe('1234.50');
    expect(decimalText(-7n, 2)).toBe('-0.07');
    expect(decimalText(5n, 0)).toBe('5');
  });

  it('refuses to round or overflow', () => {
    expect(() => unscaledDecimal('1.005', 10, 2, 'price')).toThrow(/price.*at most 2 fraction digits/);
    expect(() => unscaledDecimal('123456789.00', 10, 2)).toThrow(/at most 10 digits/);
    expect(() => unscaledDecimal('1e3', 10, 2)).toThrow(/not a decimal/);
  });
});

describe('the Parquet writer: write and read back', () => {
  it('reads back every type exactly (hyparquet)', async () => {
    const bytes = writeParquet(SCHEMA, ROWS);
    expect(await readParquet(bytes, SCHEMA)).toEqual(EXPECTED);
  });

  it('gives the same bytes for the same rows', () => {
    const a = writeParquet(SCHEMA, ROWS);
    const b = writeParquet(SCHEMA, structuredClone(ROWS));
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    expect(Buffer.from(a).includes(Buffer.from(String(new Date().getUTCFullYear())))).toBe(false);
  });

  it('writes the same bytes converted in slices as at once', async () => {
    // Due before every row: the most turns a table can take.
    let clock = 0;
    const everyRow = new TimeSlicer(1, () => clock++);
    const sliced = await writeParquetSliced(SCHEMA, ROWS, everyRow);
    expect(Buffer.from(sliced).equals(Buffer.from(writeParquet(SCHEMA, ROWS)))).toBe(true);
    await expect(writeParquetSliced(SCHEMA, [{ ...ROWS[0], id: 2 ** 31 }], everyRow)).rejects.toThrow(
      /column id/,
    );
  });

  it('encodes the same bytes on the encoder thread, each request answered with its own table', async () => {
    // int32 and string values are their own physical values: the columns go to the encoder as they are.
    const schema: ParquetSchema = [
      { name: 'id', type: int32, nullable: false },
      { name: 'name', type: string, nullable: true },
    ];
    const rows = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ id: i, name: i % 7 ? `n${i}` : null }));
    const columns = (n: number) => schema.map((c) => rows(n).map((r) => r[c.name as 'id' | 'name']));
    const [a, b] = await Promise.all([
      encodeOffThread(schema, columns(3), 3),
      encodeOffThread(schema, columns(50_000), 50_000),
    ]);
    expect(Buffer.from(a).equals(Buffer.from(writeParquet(schema, rows(3))))).toBe(true);
    expect(Buffer.from(b).equals(Buffer.from(writeParquet(schema, rows(50_000))))).toBe(true);
    // A table big enough for writeParquetSliced to send it to the encoder: the same bytes again.
    const sliced = await writeParquetSliced(schema, rows(50_000), new TimeSlicer());
    expect(Buffer.from(sliced).equals(Buffer.from(b))).toBe(true);
  });

  it('writes an empty file that reads back as no rows', async () => {
    expect(await readParquet(writeParquet(SCHEMA, []), SCHEMA)).toEqual([]);
  });

  it('rejects a value its column cannot hold, naming the column', () => {
    expect(() => writeParquet(SCHEMA, [{ ...ROWS[0], id: 2 ** 31 }])).toThrow(/column id/);
    expect(() => writeParquet(SCHEMA, [{ ...ROWS[0], price: null }])).toThrow(/column price.*required/);
    expect(() => writeParquet(SCHEMA, [{ ...ROWS[0], day: '2023-02-29' }])).toThrow(
      /column day.*calendar date/,
    );
    expect(() => writeParquet(SCHEMA, [{ ...ROWS[0], at: '24:00:00' }])).toThrow(/column at/);
  });

  it('refuses a file whose columns are not the schema, and bytes that are not Parquet', async () => {
    const bytes = writeParquet(SCHEMA, ROWS);
    const renamed = SCHEMA.map((c) => (c.name === 'name' ? { ...c, name: 'title' } : c));
    await expect(readParquet(bytes, renamed)).rejects.toThrow(/columns are \[.*name\], expected \[.*title\]/);
    const retyped = SCHEMA.map((c) => (c.name === 'price' ? { ...c, type: decimal(10, 3) } : c));
    await expect(readParquet(bytes, retyped)).rejects.toThrow(/column price/);
    await expect(readParquet(new TextEncoder().encode('a,b\n1,2\n'), SCHEMA)).rejects.toThrow(
      /not a Parquet file/,
    );
  });
});

describe('the Parquet writer: read by an independent reader (DuckDB)', () => {
  let dir: string;
  let instance: DuckDBInstance;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lake-parquet-'));
    instance = await DuckDBInstance.create(':memory:');
  });
  afterAll(async () => {
    instance?.closeSync();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('sees the logical types and the exact values', async () => {
    const file = path.join(dir, 'rows.parquet');
    await fs.writeFile(file, writeParquet(SCHEMA, ROWS));
    const db = await instance.connect();
    try {
      const described = (
        await db.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet('${file}')`)
      ).getRowObjectsJS();
      expect(Object.fromEntries(described.map((r) => [r.column_name, r.column_type]))).toEqual({
        id: 'INTEGER',
        big: 'BIGINT',
        price: 'DECIMAL(10,2)',
        amount: 'DECIMAL(18,2)',
        huge: 'DECIMAL(30,4)',
        day: 'DATE',
        at: 'TIME',
        paid: 'BOOLEAN',
        name: 'VARCHAR',
      });
      const read = await db.runAndReadAll(
        `SELECT id, CAST(big AS VARCHAR) AS big, CAST(price AS VARCHAR) AS price, CAST(amount AS VARCHAR) AS amount,
           CAST(huge AS VARCHAR) AS huge, CAST("day" AS VARCHAR) AS "day", strftime(DATE '2000-01-01' + "at", '%H:%M:%S.%f') AS "at",
           paid, name FROM read_parquet('${file}') ORDER BY id`,
      );
      const byId = new Map(EXPECTED.map((r) => [r.id, r]));
      for (const row of read.getRowObjectsJS()) {
        const want = byId.get(row.id as number);
        expect(row).toEqual({
          ...want,
          big: want?.big === null ? null : String(want?.big),
        });
      }
      expect(read.getRowObjectsJS()).toHaveLength(ROWS.length);
    } finally {
      db.closeSync();
    }
  });
});
