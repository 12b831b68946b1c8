import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ByteWriter, type ColumnSource, parquetWrite, type SchemaElement } from 'hyparquet-writer';
import {
  element,
  type ParquetColumn,
  ParquetError,
  type ParquetRow,
  type ParquetSchema,
  type ParquetValue,
} from '#core/parquet';
import type { TimeSlicer } from '#core/time-slice';
import { workerCalls } from './worker-calls.ts';

/**
 * Parquet for the processed zone: a schema (named, typed columns) plus rows in, bytes out. The same
 * rows give the same bytes (no clock, no host in the footer), so a rerun writes an identical object.
 * The schema's vocabulary and the reader are core/parquet.ts (re-exported here for the writer's users:
 * the lake and the totesys transform, which both import it from here, as the layout lets them).
 */

export {
  boolean,
  date,
  decimal,
  decimalText,
  instant,
  int32,
  int64,
  localTimestamp,
  type ParquetColumn,
  ParquetError,
  type ParquetRow,
  type ParquetSchema,
  type ParquetType,
  type ParquetValue,
  readParquet,
  readParquetColumns,
  schemaMismatch,
  string,
  time,
  timestampText,
  timeText,
} from '#core/parquet';

/**
 * A column's element as hyparquet-writer types it: its own copy of hyparquet's types (a newer
 * LogicalType union), which the elements core/parquet.ts builds all belong to.
 */
const written = (c: ParquetColumn) => element(c) as SchemaElement;

/** Stable across versions and runs: the footer says who wrote it, never when. */
export const CREATED_BY = 'retail-pipeline lake/parquet';
const DAY_MS = 86_400_000;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const TIME = /^(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/;
const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;

const fail = (column: string, value: unknown, expected: string): never => {
  throw new ParquetError(`column ${column}: ${JSON.stringify(String(value))} is not ${expected}`);
};

/** A decimal's text as its unscaled integer at `scale`; more digits than the scale allows is an error, never a rounding. */
export function unscaledDecimal(text: string, precision: number, scale: number, column = 'value'): bigint {
  const m = DECIMAL.exec(text);
  if (!m) return fail(column, text, 'a decimal number');
  const [, sign, whole = '', fraction = ''] = m;
  const extra = fraction.slice(scale);
  if (/[^0]/.test(extra)) return fail(column, text, `a decimal with at most ${scale} fraction digits`);
  const digits = `${whole}${fraction.slice(0, scale).padEnd(scale, '0')}`.replace(/^0+(?=\d)/, '');
  if (digits.length > precision) return fail(column, text, `a decimal of at most ${precision} digits`);
  const value = BigInt(digits);
  return sign === '-' ? -value : value;
}

function daysOf(text: string, column: string): number {
  const m = DATE.exec(text);
  if (!m) return fail(column, text, 'a date YYYY-MM-DD');
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  if (new Date(ms).toISOString().slice(0, 10) !== text) return fail(column, text, 'a calendar date');
  return ms / DAY_MS;
}

function microsOf(text: string, column: string): bigint {
  const m = TIME.exec(text);
  if (!m || Number(m[1]) > 23 || Number(m[2]) > 59 || Number(m[3]) > 59)
    return fail(column, text, 'a time HH:MM:SS[.ffffff]');
  const seconds = Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]);
  return BigInt(seconds) * 1_000_000n + BigInt((m[4] ?? '').padEnd(6, '0'));
}

function toPhysical(c: ParquetColumn, value: ParquetValue | undefined): unknown {
  if (value === null || value === undefined) {
    if (!c.nullable) fail(c.name, value, 'present (the column is required)');
    return null;
  }
  const t = c.type;
  switch (t.kind) {
    case 'int32':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < -(2 ** 31) || value >= 2 ** 31)
        return fail(c.name, value, 'a 32-bit integer');
      return value;
    case 'int64':
      if (typeof value === 'bigint') return value;
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) return fail(c.name, value, 'an integer');
      return BigInt(value);
    case 'boolean':
      if (typeof value !== 'boolean') return fail(c.name, value, 'a boolean');
      return value;
    case 'string':
      if (typeof value !== 'string') return fail(c.name, value, 'a string');
      return value;
    case 'date':
      return daysOf(String(value), c.name);
    case 'time':
      return microsOf(String(value), c.name);
    case 'timestamp':
      return timestampMicros(value, t.utc, c.name);
    case 'decimal':
      return unscaledDecimal(String(value), t.precision, t.scale, c.name);
  }
}

const TIMESTAMP = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)(Z)?$/;

/**
 * A timestamp's microseconds: a bigint as is, a number as epoch (or wall-clock) milliseconds, or
 * text `YYYY-MM-DDTHH:MM:SS[.ffffff]`, with `Z` exactly when the column holds instants.
 */
function timestampMicros(value: ParquetValue, utc: boolean, column: string): bigint {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) return fail(column, value, 'whole milliseconds');
    return BigInt(value) * 1000n;
  }
  const m = TIMESTAMP.exec(String(value));
  if (!m || (m[3] === 'Z') !== utc)
    return fail(
      column,
      value,
      utc ? 'an instant YYYY-MM-DDTHH:MM:SS[.ffffff]Z' : 'a local YYYY-MM-DDTHH:MM:SS[.ffffff]',
    );
  return BigInt(daysOf(m[1] as string, column)) * 86_400_000_000n + microsOf(m[2] as string, column);
}

/** Rows to Parquet bytes (one row group, snappy); every value checked against its column. */
export function writeParquet(schema: ParquetSchema, rows: ReadonlyArray<ParquetRow>): Uint8Array {
  if (schema.length === 0) throw new ParquetError('a Parquet schema needs at least one column');
  return encode(
    schema,
    schema.map((c) => rows.map((r) => toPhysical(c, r[c.name]))),
    rows.length,
  );
}

/**
 * writeParquet's bytes for a table big enough to hold the event loop: values are checked and
 * converted a slice at a time, and a big table is encoded on a worker thread. hyparquet-writer
 * writes a row group in one call, and one row group per object is part of the bytes: 60-270 ms of
 * CPU for the 11k-16k row tables of a first totesys run, measured, too long for a process that also
 * serves the stream path.
 */
export async function writeParquetSliced(
  schema: ParquetSchema,
  rows: ReadonlyArray<ParquetRow>,
  slicer: TimeSlicer,
): Promise<Uint8Array> {
  if (schema.length === 0) throw new ParquetError('a Parquet schema needs at least one column');
  const columns: unknown[][] = [];
  for (const c of schema) columns.push(await slicer.map(rows, (r) => toPhysical(c, r[c.name])));
  if (slicer.due) await slicer.turn();
  if (rows.length * schema.length < OFF_THREAD_VALUES) return encode(schema, columns, rows.length);
  try {
    return await encodeOffThread(schema, columns, rows.length);
  } catch {
    // No worker where this runs (a bundle without node_modules) or it failed: the same bytes here.
    return encode(schema, columns, rows.length);
  }
}

/** Below this many values the encoding takes a few ms, less than a trip to the worker is worth. */
const OFF_THREAD_VALUES = 20_000;

function encodeOptions(schema: ParquetSchema, columns: unknown[][], rowCount: number) {
  const columnData: ColumnSource[] = schema.map((c, i) => ({
    name: c.name,
    data: columns[i] as ColumnSource['data'],
    nullable: c.nullable,
  }));
  return {
    columnData,
    schema: [{ name: 'root', num_children: schema.length }, ...schema.map(written)],
    createdBy: CREATED_BY,
    rowGroupSize: Math.max(rowCount, 1),
  };
}

/**
 * Parquet bytes of columns already in their physical values (a DECIMAL's unscaled bigint, a
 * TIMESTAMP's microseconds, a string as its UTF-8 bytes or as text), one array per schema column: for
 * a writer that builds its columns as it reads its rows instead of converting rows a value at a time.
 * Strings given as the same Uint8Array object for the same value encode many times faster than text
 * (hyparquet-writer hashes text values one character at a time when it builds a dictionary).
 */
export function writeParquetColumns(
  schema: ParquetSchema,
  columns: unknown[][],
  rowCount: number,
): Uint8Array {
  checkColumns(schema, columns, rowCount);
  return encode(schema, columns, rowCount);
}

/**
 * writeParquetColumns' bytes, encoded on the encoder thread when the table is big enough to be
 * worth the trip (the same bytes: the same hyparquet-writer with the same options), so the caller's
 * thread goes on with other work (reading and merging the next partition) meanwhile.
 */
export async function writeParquetColumnsOffThread(
  schema: ParquetSchema,
  columns: unknown[][],
  rowCount: number,
): Promise<Uint8Array> {
  if (rowCount * schema.length < OFF_THREAD_VALUES) return writeParquetColumns(schema, columns, rowCount);
  checkColumns(schema, columns, rowCount);
  try {
    return await encodeOffThread(schema, columns, rowCount);
  } catch {
    // No worker where this runs (a bundle without node_modules) or it failed: the same bytes here.
    return encode(schema, columns, rowCount);
  }
}

function checkColumns(schema: ParquetSchema, columns: unknown[][], rowCount: number): void {
  if (schema.length === 0) throw new ParquetError('a Parquet schema needs at least one column');
  if (columns.length !== schema.length)
    throw new ParquetError(`${columns.length} columns for a schema of ${schema.length}`);
  schema.forEach((c, i) => {
    if (columns[i]?.length !== rowCount)
      throw new ParquetError(`column ${c.name} has ${columns[i]?.length} values, expected ${rowCount}`);
  });
}

function encode(schema: ParquetSchema, columns: unknown[][], rowCount: number): Uint8Array {
  const writer = new ByteWriter();
  parquetWrite({ writer, ...encodeOptions(schema, columns, rowCount) });
  return new Uint8Array(writer.getBuffer());
}

// Plain JavaScript, so the worker needs no TypeScript loader: the same hyparquet-writer module as
// this thread's, called with the same options, answers the same bytes.
const ENCODER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const library = import(workerData.library);
parentPort.on('message', async ({ id, options }) => {
  try {
    const { ByteWriter, parquetWrite } = await library;
    const writer = new ByteWriter();
    parquetWrite({ writer, ...options });
    const value = new Uint8Array(writer.getBuffer());
    parentPort.postMessage({ id, value }, [value.buffer]);
  } catch (err) {
    parentPort.postMessage({ id, error: String((err && err.message) || err) });
  }
});
`;

const encoder = workerCalls<Uint8Array>(
  () => {
    const library = pathToFileURL(createRequire(import.meta.url).resolve('hyparquet-writer')).href;
    return new Worker(ENCODER_SOURCE, { eval: true, workerData: { library } });
  },
  (message) => new ParquetError(`the Parquet encoder: ${message}`),
);

/** encode()'s bytes, computed on the encoder thread (started on first use). */
export function encodeOffThread(
  schema: ParquetSchema,
  columns: unknown[][],
  rowCount: number,
): Promise<Uint8Array> {
  return encoder.call({ options: encodeOptions(schema, columns, rowCount) });
}
