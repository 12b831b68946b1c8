import { createGunzip } from 'node:zlib';
import { type FileMetaData, parquetMetadataAsync, parquetSchema, type SchemaElement } from 'hyparquet';
import type { GlueColumn } from './catalog.ts';
import { widenType } from './catalog-merge.ts';
import type { LakeObject, LakeObjects } from './catalog-objects.ts';

/**
 * What the crawler reads to learn a table's columns: a Parquet object's footer (two ranged GETs,
 * never the data) or the first lines of a gzipped JSON-lines object, as Glue's classifiers do.
 * Types come out in Hive spelling, the names Athena and the Glue catalog use.
 */

export class CrawlSchemaError extends Error {
  override name = 'CrawlSchemaError';
}

/** A JSON object's schema is taken from at most this much of it (Glue's JSON classifier samples too). */
export const JSON_SAMPLE_BYTES = 1 << 20;
export const JSON_SAMPLE_LINES = 2000;

interface SchemaNode {
  element: SchemaElement;
  children: SchemaNode[];
}

/** Hive type of one leaf column, from its Parquet physical and logical types. */
function leafType(e: SchemaElement): string {
  const logical = e.logical_type;
  if (logical?.type === 'DECIMAL') return `decimal(${logical.precision},${logical.scale})`;
  if (e.converted_type === 'DECIMAL') return `decimal(${e.precision ?? 38},${e.scale ?? 0})`;
  if (logical?.type === 'TIMESTAMP' || e.converted_type === 'TIMESTAMP_MILLIS') return 'timestamp';
  if (e.converted_type === 'TIMESTAMP_MICROS') return 'timestamp';
  if (logical?.type === 'DATE' || e.converted_type === 'DATE') return 'date';
  // Hive has no time of day: a TIME column reads as its count since midnight (as infra's Glue tables say).
  if (logical?.type === 'TIME' || e.converted_type === 'TIME_MICROS' || e.converted_type === 'TIME_MILLIS')
    return e.type === 'INT32' ? 'int' : 'bigint';
  if (logical?.type === 'STRING' || e.converted_type === 'UTF8' || logical?.type === 'JSON') return 'string';
  if (logical?.type === 'ENUM' || e.converted_type === 'ENUM') return 'string';
  if (logical?.type === 'INTEGER') {
    const bits = logical.bitWidth;
    return bits <= 8 ? 'tinyint' : bits <= 16 ? 'smallint' : bits <= 32 ? 'int' : 'bigint';
  }
  switch (e.type) {
    case 'BOOLEAN':
      return 'boolean';
    case 'INT32':
      return 'int';
    case 'INT64':
      return 'bigint';
    case 'INT96':
      return 'timestamp';
    case 'FLOAT':
      return 'float';
    case 'DOUBLE':
      return 'double';
    default:
      return 'binary';
  }
}

function nodeType(node: SchemaNode): string {
  const e = node.element;
  if (node.children.length === 0) return leafType(e);
  if (e.converted_type === 'LIST' || e.logical_type?.type === 'LIST') {
    const repeated = node.children[0];
    const item = repeated && repeated.children.length === 1 ? repeated.children[0] : repeated;
    return `array<${item ? nodeType(item) : 'string'}>`;
  }
  if (e.converted_type === 'MAP' || e.logical_type?.type === 'MAP') {
    const kv = node.children[0];
    const [k, v] = kv?.children ?? [];
    return `map<${k ? nodeType(k) : 'string'},${v ? nodeType(v) : 'string'}>`;
  }
  return `struct<${node.children.map((c) => `${c.element.name}:${nodeType(c)}`).join(',')}>`;
}

/** The top-level columns of a Parquet file, in file order. */
export function parquetColumns(metadata: FileMetaData): GlueColumn[] {
  const root = parquetSchema(metadata) as SchemaNode;
  return root.children.map((c) => ({ Name: c.element.name.toLowerCase(), Type: nodeType(c) }));
}

/** The columns of one Parquet object, read from its footer only. */
export async function parquetObjectColumns(objects: LakeObjects, object: LakeObject): Promise<GlueColumn[]> {
  const buffer = {
    byteLength: object.size,
    async slice(start: number, end?: number): Promise<ArrayBuffer> {
      const last = (end ?? object.size) - 1;
      const bytes = await objects.get(object.key, { start, end: last });
      if (!bytes) throw new CrawlSchemaError(`${object.key} disappeared while it was being read`);
      return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    },
  };
  try {
    return parquetColumns(await parquetMetadataAsync(buffer, { initialFetchSize: 64 * 1024 }));
  } catch (err) {
    if (err instanceof CrawlSchemaError) throw err;
    throw new CrawlSchemaError(`${object.key} is not a Parquet file: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** Hive type of one JSON value; undefined for null (it says nothing about the type). */
export function jsonType(value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'boolean';
  if (typeof value === 'number')
    return Number.isInteger(value) ? (Math.abs(value) < 2 ** 31 ? 'int' : 'bigint') : 'double';
  if (Array.isArray(value)) {
    let item: string | undefined;
    for (const v of value) item = mergeJsonType(item, jsonType(v));
    return `array<${item ?? 'string'}>`;
  }
  const fields = new JsonFields();
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) fields.add(k, v);
  return `struct<${fields
    .columns()
    .map((c) => `${c.Name}:${c.Type}`)
    .join(',')}>`;
}

function mergeJsonType(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return widenType(a, b, 'json') ?? 'string';
}

/**
 * Fields in first-seen order with their types merged across records. Names are lower case, as in
 * Glue (Hive names are case-insensitive); `keys` keeps each one's spelling in the data, which a
 * case-sensitive reader needs (the OpenX SerDe's `mapping.<column>` parameter says the same).
 */
class JsonFields {
  private readonly types = new Map<string, string | undefined>();
  readonly keys: Record<string, string> = {};
  add(name: string, value: unknown): void {
    const column = name.toLowerCase();
    this.keys[column] ??= name;
    this.types.set(column, mergeJsonType(this.types.get(column), jsonType(value)));
  }
  columns(): GlueColumn[] {
    return [...this.types].map(([Name, Type]) => ({ Name, Type: Type ?? 'string' }));
  }
}

/** The first lines of a gzipped object as text, at most JSON_SAMPLE_BYTES of it. */
async function gunzipHead(bytes: Uint8Array, key: string): Promise<string> {
  const gunzip = createGunzip();
  const chunks: Buffer[] = [];
  let size = 0;
  return await new Promise<string>((resolve, reject) => {
    const finish = () => resolve(Buffer.concat(chunks).toString('utf8'));
    gunzip.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= JSON_SAMPLE_BYTES) {
        gunzip.removeAllListeners('end');
        gunzip.destroy();
        finish();
      }
    });
    gunzip.on('end', finish);
    gunzip.on('error', (err) =>
      reject(new CrawlSchemaError(`${key} is not gzip: ${err.message}`, { cause: err })),
    );
    gunzip.end(bytes);
  });
}

/** The columns of one gzipped JSON-lines object (and each one's key in the data), from its first lines. */
export async function jsonObjectColumns(
  objects: LakeObjects,
  object: LakeObject,
): Promise<{ columns: GlueColumn[]; keys: Record<string, string> }> {
  const bytes = await objects.get(object.key);
  if (!bytes) throw new CrawlSchemaError(`${object.key} disappeared while it was being read`);
  const text = await gunzipHead(bytes, object.key);
  const lines = text.split('\n');
  // A sample cut inside a line leaves half a line at the end: drop it.
  if (text.length >= JSON_SAMPLE_BYTES) lines.pop();
  const fields = new JsonFields();
  let records = 0;
  for (const [i, line] of lines.entries()) {
    if (records >= JSON_SAMPLE_LINES) break;
    if (line.trim() === '') continue;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      throw new CrawlSchemaError(`${object.key} line ${i + 1} is not JSON`);
    }
    if (typeof record !== 'object' || record === null || Array.isArray(record))
      throw new CrawlSchemaError(`${object.key} line ${i + 1} is not a JSON object`);
    for (const [k, v] of Object.entries(record)) fields.add(k, v);
    records++;
  }
  return { columns: fields.columns(), keys: fields.keys };
}
