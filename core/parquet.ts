import { type FileMetaData, parquetMetadata, parquetRead, type SchemaElement } from 'hyparquet';

/**
 * Parquet's vocabulary and its reader: a schema (named, typed columns), the element each column is
 * in a file, and bytes back to rows. Values travel as their exact text where JS numbers are not
 * exact: a decimal is its decimal text ('1234.50'), a date 'YYYY-MM-DD', a time 'HH:MM:SS.ffffff'.
 * Pure (bytes in, rows out), so every room reads Parquet with this one reader: the lake and the
 * totesys load, and the local Redshift Data API's COPY ... FORMAT AS PARQUET. The writer, which
 * encodes on a worker thread, is adapters/parquet-writer.ts.
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

const DAY_MS = 86_400_000;

function decimalPhysical(precision: number): 'INT32' | 'INT64' | 'FIXED_LEN_BYTE_ARRAY' {
  return precision <= 9 ? 'INT32' : precision <= 18 ? 'INT64' : 'FIXED_LEN_BYTE_ARRAY';
}

/** Bytes a two's-complement unscaled value of `precision` digits needs. */
function decimalBytes(precision: number): number {
  return Math.ceil((Math.log2(10 ** precision) + 1) / 8);
}

/** The schema element a column is written as, and read back against. */
export function element(c: ParquetColumn): SchemaElement {
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

/** An unscaled integer back to decimal text with exactly `scale` fraction digits. */
export function decimalText(unscaled: bigint, scale: number): string {
  const negative = unscaled < 0n;
  const digits = (negative ? -unscaled : unscaled).toString().padStart(scale + 1, '0');
  const text = scale === 0 ? digits : `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
  return negative ? `-${text}` : text;
}

/** Formats microseconds since midnight as HH:MM:SS.ffffff (always six fraction digits). */
export function timeText(micros: bigint): string {
  const seconds = Number(micros / 1_000_000n);
  const pad = (n: number) => String(n).padStart(2, '0');
  const fraction = String(micros % 1_000_000n).padStart(6, '0');
  return `${pad(Math.floor(seconds / 3600))}:${pad(Math.floor(seconds / 60) % 60)}:${pad(seconds % 60)}.${fraction}`;
}

/** Microseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.ffffff`, with `Z` for an instant. */
export function timestampText(micros: bigint, utc: boolean): string {
  const day = micros >= 0n ? micros / 86_400_000_000n : -((-micros + 86_399_999_999n) / 86_400_000_000n);
  const date = new Date(Number(day) * DAY_MS).toISOString().slice(0, 10);
  return `${date}T${timeText(micros - day * 86_400_000_000n)}${utc ? 'Z' : ''}`;
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
 * schema's columns (names, order, types), else a ParquetError saying how it differs. With
 * `between`, the columns are decoded one at a time and `between` is awaited after each (a caller
 * that shares its thread turns the event loop there); the footer is read once either way.
 */
export async function readParquetColumns(
  bytes: Uint8Array,
  schema: ParquetSchema,
  only?: ReadonlyArray<string>,
  between?: () => Promise<void>,
): Promise<{ rowCount: number; columns: Record<string, ArrayLike<unknown>> }> {
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
  const columns: Record<string, ArrayLike<unknown>> = Object.fromEntries(names.map((n) => [n, []]));
  const onChunk = (chunk: { columnName: string; columnData: ArrayLike<unknown>; rowStart: number }) => {
    const had = columns[chunk.columnName];
    if (!had) return;
    const data = chunk.columnData as ArrayLike<unknown>;
    // A column in one chunk (a file of one page per column) is kept as read: no copy (a copy
    // per value into a growing array was a third of reading the real file's lake back).
    if (had.length === 0 && chunk.rowStart === 0) {
      columns[chunk.columnName] = data;
      return;
    }
    const out = Array.isArray(had) ? had : Array.from(had);
    for (let i = 0; i < data.length; i++) out[chunk.rowStart + i] = data[i];
    columns[chunk.columnName] = out;
  };
  try {
    if (!between) await parquetRead({ file, metadata: raw, columns: [...names], onChunk });
    else
      for (const name of names) {
        await parquetRead({ file, metadata: raw, columns: [name], onChunk });
        await between();
      }
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
