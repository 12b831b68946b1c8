import { CopyObjectCommand, DeleteObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Warehouse } from '#adapters/warehouse';
import { QUARANTINE_PREFIX } from '#core/bucket-layout';
import { TextEncodingError } from '#core/text-encoding';
import { BatchError } from '../errors.ts';
import { CSV_FIELDS, rejectedRowsOfLoad } from '../sql.ts';
import { csvCell } from '../typer.ts';
import { loadIdOf, type ObjectRef } from './objects.ts';

/**
 * quarantine/: where an object that can never load is moved (with a `.reason.json` beside it), and
 * where a loaded file's rejected rows are listed for people (`.rejected.csv`).
 */

export { QUARANTINE_PREFIX };
export const quarantineKey = (key: string): string => `${QUARANTINE_PREFIX}${key}`;
export const reasonKey = (key: string): string => `${quarantineKey(key)}.reason.json`;
export const rejectedReportKey = (key: string): string => `${quarantineKey(key)}.rejected.csv`;

/**
 * The object fails the same way every time it is read (empty, its header lacks a column, not gzip,
 * text that is not in one encoding):
 * it is quarantined, never retried. `details` go into its `.reason.json`.
 */
export class QuarantineError extends BatchError {
  override name = 'QuarantineError';
  constructor(
    message: string,
    readonly details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The error or the first of its causes that passes `test`. */
export function findCause(err: unknown, test: (e: unknown) => boolean): unknown {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++)
    if (test(e)) return e;
  return undefined;
}

/** `err` as a QuarantineError when the object can never load, else undefined (worth another attempt). */
export function asQuarantine(err: unknown): QuarantineError | undefined {
  if (err instanceof QuarantineError) return err;
  // A compressed object that does not inflate (truncated, corrupt) fails the same way every time.
  const zlib = findCause(err, (e) => {
    const code = (e as { code?: unknown }).code;
    return typeof code === 'string' && code.startsWith('Z_');
  }) as Error | undefined;
  if (zlib) return new QuarantineError(`not a valid gzip stream: ${zlib.message}`, {}, { cause: err });
  // Bytes that are not text in one encoding (core/text-encoding.ts): its message names the line.
  const text = findCause(err, (e) => e instanceof TextEncodingError) as TextEncodingError | undefined;
  if (text) return new QuarantineError(text.message, { line: text.line }, { cause: err });
  return undefined;
}

/** Moves the object to quarantine/ and writes why next to it. */
export async function moveToQuarantine(
  s3: S3Client,
  bucket: string,
  ref: ObjectRef,
  err: QuarantineError,
): Promise<void> {
  const { key, etag } = ref;
  await s3.send(
    new CopyObjectCommand({
      Bucket: bucket,
      Key: quarantineKey(key),
      CopySource: `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`,
    }),
  );
  const reason = { key, etag, quarantinedAt: new Date().toISOString(), reason: err.message, ...err.details };
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: reasonKey(key),
      Body: `${JSON.stringify(reason, null, 2)}\n`,
      ContentType: 'application/json',
    }),
  );
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
}

/** A loaded object's rejected rows, read back from load_rejected_row, as a CSV for people. */
export async function writeRejectedReport(
  s3: S3Client,
  bucket: string,
  warehouse: Pick<Warehouse, 'query'>,
  ref: ObjectRef,
): Promise<void> {
  const select = rejectedRowsOfLoad(loadIdOf(ref.key, ref.etag));
  const { rows } = await warehouse.query<Record<string, string | number | null>>(select.sql, select.params);
  if (rows.length === 0) return;
  const lines = [['line', 'reason', ...CSV_FIELDS].join(',')];
  for (const r of rows) lines.push(Object.values(r).map(csvCell).join(','));
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: rejectedReportKey(ref.key),
      Body: `${lines.join('\n')}\n`,
      ContentType: 'text/csv',
    }),
  );
}
