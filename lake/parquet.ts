import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { type FileMetaData, parquetMetadata, parquetRead } from 'hyparquet';
import { ByteWriter, type ColumnSource, parquetWrite, type SchemaElement } from 'hyparquet-writer';
import type { TimeSlicer } from '#core/time-slice';

/**
 * Parquet for the processed zone: a schema (named, typed columns) plus rows in, bytes out, and back.
 * Values travel as their exact text where JS numbers are not exact: a decimal is its decimal text
 * ('1234.50'), a date 'YYYY-MM-DD', a time 'HH:MM:SS.ffffff'. The same rows give the same bytes
 * (no clock, no host in the footer), so a rerun writes an identical object.
 */

export type ParquetType =
  | { kind: 'int32' }
  | { kind: 'int64' }
  | { kind: 'boolean' }
  | { kind: 'string' }
  | { kind: 'date' }
  /** Microseconds since midnight, no zone. */
  | { kind: 'time' }
  /**
   * Microseconds since the epoch. `utc: true` is an instant (TIMESTAMP, isAdjustedToUTC), `false` a
   * wall-clock time with no zone (the invoice date: Europe/London local, as the warehouse keeps it).
   */
  | { kind: 'timestamp'; utc: boolean }
  | { kind: 'decimal'; precision: number; scale: number };

export interface ParquetColumn {
  name: string;
  type: ParquetType;
  nullable: boolean;
}

export type ParquetSchema = ReadonlyArray<ParquetColumn>;
export type ParquetValue = string | number | bigint | boolean | null;
export type ParquetRow = Record<string, ParquetValue>;

export class ParquetError extends Error {
  override name = 'ParquetError';
}

export const int32: ParquetType = { kind: 'int32' };
export const int64: ParquetType = { kind: 'int64' };
export const boolean: ParquetType = { kind: 'boolean' };
export const string: ParquetType = { kind: 'string' };
export const date: ParquetType = { kind: 'date' };
export const time: ParquetType = { kind: 'time' };
export const instant: ParquetType = { kind: 'timestamp', utc: true };
export const localTimestamp: ParquetType = { kind: 'timestamp', utc: false };
export const decimal = (precision: number, scale: number): ParquetType => ({
  kind: 'decimal',
  precision,
  scale,
});

/** Stable across versions and runs: the footer says who wrote it, never when. */
const CREATED_BY = 'retail-pipeline lake/parquet';
const DAY_MS = 86_400_000;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const TIME = /^(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/;
const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;

function decimalPhysical(precision: number): 'INT32' | 'INT64' | 'FIXED_LEN_BYTE_ARRAY' {
  return precision <= 9 ? 'INT32' : precision <= 18 ? 'INT64' : 'FIXED_LEN_BYTE_ARRAY';
}

/** Bytes a two's-complement unscaled value of `precision` digits needs. */
function decimalBytes(precision: number): number {
  return Math.ceil((Math.log2(10 ** precision) + 1) / 8);
}

function element(c: ParquetColumn): SchemaElement {
  const repetition_type = c.nullable ? 'OPTIONAL' : 'REQUIRED';
  const t = c.type;
  switch (t.kind) {
    case 'int32':
      return { name: c.name, type: 'INT32', repetition_type };
    case 'int64':
      return { name: c.name, type: 'INT64', repetition_type };
    case 'boolean':
      return { name: c.name, type: 'BOOLEAN', repetition_type };
    case 'string':
      return { name: c.name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type };
    case 'date':
      return { name: c.name, type: 'INT32', converted_type: 'DATE', repetition_type };
    case 'time':
      return { name: c.name, type: 'INT64', converted_type: 'TIME_MICROS', repetition_type };
    case 'timestamp':
      // The logical type alone: TIMESTAMP_MICROS as a converted type would claim UTC for a local time.
      return {
        name: c.name,
        type: 'INT64',
        logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: t.utc, unit: 'MICROS' },
        repetition_type,
      };
    case 'decimal': {
      const type = decimalPhysical(t.precision);
      return {
        name: c.name,
        type,
        ...(type === 'FIXED_LEN_BYTE_ARRAY' ? { type_length: decimalBytes(t.precision) } : {}),
        converted_type: 'DECIMAL',
        precision: t.precision,
        scale: t.scale,
        repetition_type,
      };
    }
  }
}

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

/** An unscaled integer back to decimal text with exactly `scale` fraction digits. */
export function decimalText(unscaled: bigint, scale: number): string {
  const negative = unscaled < 0n;
  const digits = (negative ? -unscaled : unscaled).toString().padStart(scale + 1, '0');
  const text = scale === 0 ? digits : `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
  return negative ? `-${text}` : text;
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

/** Formats microseconds since midnight as HH:MM:SS.ffffff (always six fraction digits). */
export function timeText(micros: bigint): string {
  const seconds = Number(micros / 1_000_000n);
  const pad = (n: number) => String(n).padStart(2, '0');
  const fraction = String(micros % 1_000_000n).padStart(6, '0');
  return `${pad(Math.floor(seconds / 3600))}:${pad(Math.floor(seconds / 60) % 60)}:${pad(seconds % 60)}.${fraction}`;
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

/** Microseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.ffffff`, with `Z` for an instant. */
export function timestampText(micros: bigint, utc: boolean): string {
  const day = micros >= 0n ? micros / 86_400_000_000n : -((-micros + 86_399_999_999n) / 86_400_000_000n);
  const date = new Date(Number(day) * DAY_MS).toISOString().slice(0, 10);
  return `${date}T${timeText(micros - day * 86_400_000_000n)}${utc ? 'Z' : ''}`;
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
    schema: [{ name: 'root', num_children: schema.length }, ...schema.map(element)],
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
    const bytes = new Uint8Array(writer.getBuffer());
    parentPort.postMessage({ id, bytes }, [bytes.buffer]);
  } catch (err) {
    parentPort.postMessage({ id, error: String((err && err.message) || err) });
  }
});
`;

interface Encoder {
  worker: Worker;
  pending: Map<number, { resolve: (bytes: Uint8Array) => void; reject: (err: Error) => void }>;
  next: number;
}
let encoder: Encoder | undefined;

function startEncoder(): Encoder {
  const library = pathToFileURL(createRequire(import.meta.url).resolve('hyparquet-writer')).href;
  const worker = new Worker(ENCODER_SOURCE, { eval: true, workerData: { library } });
  const state: Encoder = { worker, pending: new Map(), next: 0 };
  // Referenced only while a table is being encoded: an idle encoder never keeps the process alive.
  worker.unref();
  worker.on('message', (m: { id: number; bytes?: Uint8Array; error?: string }) => {
    const p = state.pending.get(m.id);
    if (!p) return;
    state.pending.delete(m.id);
    if (state.pending.size === 0) worker.unref();
    if (m.bytes) p.resolve(m.bytes);
    else p.reject(new ParquetError(m.error ?? 'the Parquet encoder answered nothing'));
  });
  const fail = (err: Error) => {
    if (encoder === state) encoder = undefined;
    for (const p of state.pending.values()) p.reject(err);
    state.pending.clear();
  };
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new ParquetError(`the Parquet encoder thread exited with ${code}`)));
  return state;
}

/** encode()'s bytes, computed on the encoder thread (started on first use). */
export function encodeOffThread(
  schema: ParquetSchema,
  columns: unknown[][],
  rowCount: number,
): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    encoder ??= startEncoder();
    const id = encoder.next++;
    encoder.pending.set(id, { resolve, reject });
    encoder.worker.ref();
    try {
      encoder.worker.postMessage({ id, options: encodeOptions(schema, columns, rowCount) });
    } catch (err) {
      encoder.pending.delete(id);
      if (encoder.pending.size === 0) encoder.worker.unref();
      throw err;
    }
  });
}

function sameElement(found: FileMetaData['schema'][number] | undefined, want: SchemaElement): boolean {
  if (!found) return false;
  return (
    found.type === want.type &&
    (found.converted_type ?? undefined) === want.converted_type &&
    (found.repetition_type ?? 'REQUIRED') === want.repetition_type &&
    (want.converted_type !== 'DECIMAL' ||
      (found.precision === want.precision && found.scale === want.scale)) &&
    (want.logical_type?.type !== 'TIMESTAMP' ||
      (found.logical_type?.type === 'TIMESTAMP' &&
        found.logical_type.isAdjustedToUTC === want.logical_type.isAdjustedToUTC &&
        found.logical_type.unit === want.logical_type.unit))
  );
}

/** Why the file's columns are not the schema's, or undefined when they are exactly it. */
export function schemaMismatch(metadata: FileMetaData, schema: ParquetSchema): string | undefined {
  const found = metadata.schema.slice(1);
  const names = found.map((e) => e.name);
  const want = schema.map((c) => c.name);
  if (names.join(',') !== want.join(','))
    return `columns are [${names.join(', ')}], expected [${want.join(', ')}]`;
  for (const c of schema) {
    const e = found.find((x) => x.name === c.name);
    if (!sameElement(e, element(c)))
      return `column ${c.name} is not ${JSON.stringify(c.type)} (nullable ${c.nullable})`;
  }
  return undefined;
}

function fromPhysical(c: ParquetColumn, value: unknown): ParquetValue {
  if (value === null || value === undefined) return null;
  const t = c.type;
  switch (t.kind) {
    case 'date':
      return new Date(Number(value) * DAY_MS).toISOString().slice(0, 10);
    case 'time':
      return timeText(BigInt(value as bigint));
    case 'timestamp':
      return timestampText(BigInt(value as bigint), t.utc);
    case 'decimal': {
      if (value instanceof Uint8Array) {
        let n = 0n;
        for (const b of value) n = n * 256n + BigInt(b);
        if (value.length > 0 && (value[0] as number) >= 0x80) n -= 1n << BigInt(value.length * 8);
        return decimalText(n, t.scale);
      }
      return decimalText(BigInt(value as number | bigint), t.scale);
    }
    default:
      return value as ParquetValue;
  }
}

/**
 * Parquet bytes to their columns' physical values (a DECIMAL's unscaled integer, a DATE's days, a
 * TIMESTAMP's microseconds, strings as strings), by column name: the file must have exactly the
 * schema's columns (names, order, types), else a ParquetError saying how it differs.
 */
export async function readParquetColumns(
  bytes: Uint8Array,
  schema: ParquetSchema,
  only?: ReadonlyArray<string>,
): Promise<{ rowCount: number; columns: Record<string, unknown[]> }> {
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  let metadata: FileMetaData;
  try {
    metadata = parquetMetadata(file);
  } catch (err) {
    throw new ParquetError(`not a Parquet file: ${(err as Error).message}`, { cause: err });
  }
  const mismatch = schemaMismatch(metadata, schema);
  if (mismatch) throw new ParquetError(mismatch);
  // hyparquet turns DECIMAL into a float, DATE and TIMESTAMP into a Date: read the raw values instead.
  const raw: FileMetaData = {
    ...metadata,
    schema: metadata.schema.map((e) => {
      if (
        e.converted_type !== 'DECIMAL' &&
        e.converted_type !== 'DATE' &&
        e.logical_type?.type !== 'TIMESTAMP'
      )
        return e;
      const { converted_type: _c, logical_type: _l, ...plain } = e;
      return plain;
    }),
  };
  const names = only ?? schema.map((c) => c.name);
  const columns: Record<string, unknown[]> = Object.fromEntries(names.map((n) => [n, []]));
  try {
    await parquetRead({
      file,
      metadata: raw,
      columns: [...names],
      onChunk: (chunk) => {
        const out = columns[chunk.columnName];
        if (!out) return;
        for (let i = 0; i < chunk.columnData.length; i++) out[chunk.rowStart + i] = chunk.columnData[i];
      },
    });
  } catch (err) {
    throw new ParquetError(`unreadable Parquet: ${(err as Error).message}`, { cause: err });
  }
  return { rowCount: Number(metadata.num_rows), columns };
}

/**
 * Parquet bytes to rows of `schema`: the file must have exactly its columns (names, order, types),
 * else a ParquetError saying how it differs. Decimals, dates, times and timestamps come back as exact text.
 */
export async function readParquet(bytes: Uint8Array, schema: ParquetSchema): Promise<ParquetRow[]> {
  const { rowCount, columns } = await readParquetColumns(bytes, schema);
  const rows: ParquetRow[] = [];
  for (let i = 0; i < rowCount; i++)
    rows.push(Object.fromEntries(schema.map((c) => [c.name, fromPhysical(c, columns[c.name]?.[i])])));
  return rows;
}
