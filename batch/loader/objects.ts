import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { ARCHIVE_PREFIX, LANDING_PREFIX, STAGING_PREFIX } from '#core/bucket-layout';
import { decompressed } from '../source-stream.ts';
import type { SourceFormat } from '../sql.ts';

/**
 * The objects the loader reads: where they are (the prefixes), what they hold (format and source by
 * prefix), their identity (key + ETag) and the S3 calls that list, open and stage them.
 */

export { ARCHIVE_PREFIX, LANDING_PREFIX, STAGING_PREFIX };

/** One version of one object: the manifest's key. */
export interface ObjectRef {
  key: string;
  etag: string;
  size?: number;
}

export interface ObjectKind {
  format: SourceFormat;
  source: 'stream' | 'file';
}

export function formatOf(key: string): ObjectKind | undefined {
  if (key.endsWith('/')) return undefined;
  if (key.startsWith(ARCHIVE_PREFIX)) return { format: 'ndjson', source: 'stream' };
  if (key.startsWith(LANDING_PREFIX)) return { format: 'csv', source: 'file' };
  return undefined;
}

/** The load's id: the same object version always gets the same one (rejected rows, staging keys). */
export function loadIdOf(key: string, etag: string): string {
  return createHash('sha256').update(`${key}\n${etag}`).digest('hex').slice(0, 16);
}

const unquote = (etag: string) => etag.replace(/^"|"$/g, '');

/** Every loadable object under the prefixes, page by page. */
export async function listObjects(
  s3: S3Client,
  bucket: string,
  prefixes: readonly string[],
): Promise<ObjectRef[]> {
  const out: ObjectRef[] = [];
  for (const prefix of prefixes) {
    let token: string | undefined;
    do {
      const page = await s3.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          Prefix: prefix,
          ...(token ? { ContinuationToken: token } : {}),
        }),
      );
      for (const o of page.Contents ?? []) {
        if (o.Key && o.ETag && formatOf(o.Key))
          out.push({ key: o.Key, etag: unquote(o.ETag), ...(o.Size !== undefined ? { size: o.Size } : {}) });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }
  return out;
}

/** The object's current version. */
export async function headObject(s3: S3Client, bucket: string, key: string): Promise<ObjectRef> {
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  return {
    key,
    etag: unquote(head.ETag ?? ''),
    ...(head.ContentLength !== undefined ? { size: head.ContentLength } : {}),
  };
}

/** The object's bytes, inflated when gzipped; `IfMatch` so a version replaced meanwhile is not read as this one. */
export async function openObject(s3: S3Client, bucket: string, ref: ObjectRef): Promise<Readable> {
  const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: ref.key, IfMatch: `"${ref.etag}"` }));
  return decompressed(out.Body as Readable);
}

/** Writes `body` gzipped (level 1: the COPY that reads it back is what waits) and answers its s3:// URI. */
export async function stageObject(
  s3: S3Client,
  bucket: string,
  key: string,
  body: Readable,
): Promise<string> {
  await new Upload({
    client: s3,
    params: { Bucket: bucket, Key: key, Body: body.pipe(createGzip({ level: 1 })) },
  }).done();
  return `s3://${bucket}/${key}`;
}
