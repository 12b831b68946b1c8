import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, ListObjectsV2Command, NoSuchKey, type S3Client } from '@aws-sdk/client-s3';
import { type FileMetaData, parquetMetadata } from 'hyparquet';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import {
  boolean,
  date,
  decimal,
  int32,
  int64,
  type ParquetSchema,
  type ParquetType,
  type ParquetValue,
  readParquet,
  string,
  time,
} from '#core/parquet';
import type { S3Copy } from './redshift-dialect-copy.ts';

/**
 * Runs a parsed Redshift COPY (local/redshift-dialect-copy.ts) on a statement's own connection:
 * the objects come from the local S3, and PostgreSQL reads them with COPY FROM STDIN, in the
 * statement's transaction. Objects are read whole (the loader's staged files, a processed Parquet).
 */

/** A COPY that cannot run: Redshift would fail the statement too (the message is PostgreSQL-like). */
export class CopyLoadError extends Error {
  override name = 'CopyLoadError';
}

interface Source {
  bucket: string;
  key: string;
  mandatory: boolean;
}

async function readObject(s3: S3Client, bucket: string, key: string): Promise<Buffer | undefined> {
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return Buffer.from(
      await (out.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
    );
  } catch (err) {
    if (err instanceof NoSuchKey) return undefined;
    throw err;
  }
}

/** Every object under the prefix (as Redshift reads a FROM path), or the manifest's entries. */
async function sources(s3: S3Client, copy: S3Copy): Promise<Source[]> {
  if (copy.manifest) {
    const body = await readObject(s3, copy.bucket, copy.key);
    if (!body) throw new CopyLoadError(`Manifest file s3://${copy.bucket}/${copy.key} does not exist`);
    const entries = (JSON.parse(body.toString('utf8')) as { entries?: unknown }).entries;
    if (!Array.isArray(entries)) throw new CopyLoadError('Manifest file has no entries array');
    return entries.map((e: { url?: unknown; mandatory?: unknown }) => {
      const m = typeof e.url === 'string' ? /^s3:\/\/([^/]+)\/(.+)$/.exec(e.url) : null;
      if (!m) throw new CopyLoadError(`Manifest entry url ${JSON.stringify(e.url)} is not s3://bucket/key`);
      return { bucket: m[1] as string, key: m[2] as string, mandatory: e.mandatory === true };
    });
  }
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({
        Bucket: copy.bucket,
        Prefix: copy.key,
        ...(token ? { ContinuationToken: token } : {}),
      }),
    );
    for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  if (keys.length === 0) throw new CopyLoadError(`The specified S3 prefix '${copy.key}' does not exist`);
  return keys.sort().map((key) => ({ bucket: copy.bucket, key, mandatory: true }));
}

/** The table's columns in order; PostgreSQL's own message when it does not exist. */
async function tableColumns(client: pg.PoolClient, table: string): Promise<string[]> {
  const { rows } = await client.query<{ exists: boolean; name: string | null }>(
    `SELECT to_regclass($1) IS NOT NULL AS exists, a.attname AS name
     FROM (SELECT 1) one LEFT JOIN pg_attribute a
       ON a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
     ORDER BY a.attnum`,
    [table],
  );
  if (!rows[0]?.exists) throw new CopyLoadError(`relation "${table}" does not exist`);
  return rows.flatMap((r) => (r.name ? [r.name] : []));
}

const quoteIdent = (name: string) => (name.startsWith('"') ? name : `"${name.replaceAll('"', '""')}"`);
const literal = (text: string) => `'${text.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`;

/** The first `n` lines of an object (IGNOREHEADER counts lines, not records). */
export function skipLines(data: Buffer, n: number): Buffer {
  let at = 0;
  for (let i = 0; i < n && at < data.length; i++) {
    const nl = data.indexOf(0x0a, at);
    at = nl < 0 ? data.length : nl + 1;
  }
  return data.subarray(at);
}

/** Length of the valid UTF-8 sequence at `i`, or 0 when the byte there starts none. */
function utf8Length(data: Buffer, i: number): number {
  const b = data[i] as number;
  const need =
    b < 0x80 ? 1 : b >= 0xc2 && b < 0xe0 ? 2 : b >= 0xe0 && b < 0xf0 ? 3 : b >= 0xf0 && b < 0xf5 ? 4 : 0;
  if (need === 0 || i + need > data.length) return 0;
  for (let k = 1; k < need; k++) if (((data[i + k] as number) & 0xc0) !== 0x80) return 0;
  return need;
}

/** ACCEPTINVCHARS: every byte that is not part of valid UTF-8 replaced by `replacement`. */
export function replaceInvalidUtf8(data: Buffer, replacement: string): Buffer {
  const sub = Buffer.from(replacement, 'utf8');
  const parts: Buffer[] = [];
  let start = 0;
  let i = 0;
  while (i < data.length) {
    const n = utf8Length(data, i);
    if (n > 0) {
      i += n;
      continue;
    }
    parts.push(data.subarray(start, i), sub);
    i++;
    start = i;
  }
  if (parts.length === 0) return data;
  parts.push(data.subarray(start));
  return Buffer.concat(parts);
}

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'boolean' ? (v ? 't' : 'f') : typeof v === 'object' ? JSON.stringify(v) : String(v);
  return s === '' || /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

const csvRows = (rows: Iterable<ReadonlyArray<unknown>>): string => {
  let out = '';
  for (const r of rows) out += `${r.map(csvCell).join(',')}\n`;
  return out;
};

/** The JSON values of a Redshift JSON source: objects one after another, whitespace between. */
export function jsonObjects(text: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
    } else if (ch === '"') inString = true;
    else if (ch === '{' || ch === '[') {
      if (depth++ === 0) start = i;
    } else if (ch === '}' || ch === ']') {
      if (--depth === 0) {
        const value = JSON.parse(text.slice(start, i + 1)) as unknown;
        if (value === null || typeof value !== 'object' || Array.isArray(value))
          throw new CopyLoadError('Invalid JSON object: COPY JSON reads objects, found an array');
        out.push(value as Record<string, unknown>);
      }
    } else if (depth === 0 && !/\s/.test(ch as string)) {
      throw new CopyLoadError(`Invalid JSONPath format: unexpected ${JSON.stringify(ch)} outside an object`);
    }
  }
  if (depth !== 0 || inString) throw new CopyLoadError('Invalid JSON: the last object is not closed');
  return out;
}

/** JSON 'auto': each object's keys are column names (exactly, or ignoring case); missing ones NULL. */
export function jsonAsCsv(text: string, columns: readonly string[], ignoreCase: boolean): string {
  const rows = jsonObjects(text).map((o) => {
    const keys = ignoreCase ? new Map(Object.keys(o).map((k) => [k.toLowerCase(), k])) : undefined;
    return columns.map((c) => {
      const key = keys ? keys.get(c.toLowerCase()) : c;
      return key === undefined ? null : o[key];
    });
  });
  return csvRows(rows);
}

function parquetType(e: FileMetaData['schema'][number]): ParquetType {
  if (e.converted_type === 'DECIMAL') return decimal(e.precision ?? 0, e.scale ?? 0);
  if (e.converted_type === 'DATE') return date;
  if (e.converted_type === 'TIME_MICROS') return time;
  if (e.converted_type === 'UTF8') return string;
  if (e.type === 'BOOLEAN') return boolean;
  if (e.type === 'INT32' && !e.converted_type) return int32;
  if (e.type === 'INT64' && !e.converted_type) return int64;
  throw new CopyLoadError(
    `Parquet column ${e.name}: type ${e.converted_type ?? e.type} is not translated locally`,
  );
}

/** PARQUET: columns by position into the table's (Redshift's rule), values as their exact text. */
export async function parquetAsCsv(data: Buffer, columns: readonly string[], table: string): Promise<string> {
  const file = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
  let schema: ParquetSchema;
  try {
    schema = parquetMetadata(file)
      .schema.slice(1)
      .map((e) => ({ name: e.name, type: parquetType(e), nullable: e.repetition_type === 'OPTIONAL' }));
  } catch (err) {
    if (err instanceof CopyLoadError) throw err;
    throw new CopyLoadError(`File is not a valid Parquet file: ${(err as Error).message}`, { cause: err });
  }
  if (schema.length !== columns.length)
    throw new CopyLoadError(
      `Parquet file has ${schema.length} columns, table ${table} has ${columns.length} (COPY maps them by position)`,
    );
  const rows = await readParquet(new Uint8Array(file), schema);
  return csvRows(rows.map((r) => schema.map((c): ParquetValue => r[c.name] ?? null)));
}

function pgCopySql(copy: S3Copy, columns: readonly string[], native: boolean): string {
  const options = ['FORMAT csv'];
  if (native && copy.delimiter !== undefined) options.push(`DELIMITER ${literal(copy.delimiter)}`);
  if (native && copy.quote !== undefined) options.push(`QUOTE ${literal(copy.quote)}`);
  if (native && copy.nullAs !== undefined) options.push(`NULL ${literal(copy.nullAs)}`);
  const table = copy.table.split('.').map(quoteIdent).join('.');
  return `COPY ${table} (${columns.map(quoteIdent).join(', ')}) FROM STDIN WITH (${options.join(', ')})`;
}

/** One object's bytes as the CSV PostgreSQL reads. */
async function csvOf(copy: S3Copy, raw: Buffer, columns: readonly string[]): Promise<Buffer | string> {
  let data = copy.gzip ? gunzipSync(raw) : raw;
  if (copy.format === 'parquet') return parquetAsCsv(data, columns, copy.table);
  if (copy.ignoreHeader > 0) data = skipLines(data, copy.ignoreHeader);
  if (copy.acceptInvChars !== undefined) data = replaceInvalidUtf8(data, copy.acceptInvChars);
  if (copy.format === 'json')
    return jsonAsCsv(data.toString('utf8'), columns, copy.jsonMode === 'auto ignorecase');
  return data;
}

/** Runs the COPY on `client` (inside the caller's transaction, if any); answers the rows loaded. */
export async function runS3Copy(client: pg.PoolClient, s3: S3Client, copy: S3Copy): Promise<number> {
  const all = await tableColumns(client, copy.table);
  const columns = copy.columns ?? all;
  const sql = pgCopySql(copy, columns, copy.format === 'csv');
  let rows = 0;
  for (const source of await sources(s3, copy)) {
    const raw = await readObject(s3, source.bucket, source.key);
    if (!raw) {
      if (source.mandatory)
        throw new CopyLoadError(
          `Manifest entry s3://${source.bucket}/${source.key} is mandatory and does not exist`,
        );
      continue;
    }
    let data: Buffer | string;
    try {
      data = await csvOf(copy, raw, columns);
    } catch (err) {
      if (err instanceof CopyLoadError) throw err;
      throw new CopyLoadError(`s3://${source.bucket}/${source.key}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const sink = client.query(copyFrom(sql));
    await pipeline(Readable.from(data.length > 0 ? [data] : []), sink);
    rows += sink.rowCount;
  }
  return rows;
}
