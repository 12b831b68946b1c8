import {
  GetObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';

/** One object as a listing shows it. */
export interface LakeObject {
  key: string;
  /** Without the quotes S3 puts around it. */
  etag: string;
  size: number;
}

/**
 * The narrow object store the crawler, the catalog and the query cache need: the pipeline's
 * bucket, or a fake in a test (answering the same shapes).
 */
export interface LakeObjects {
  /** Every object under a prefix, sorted by key. */
  list(prefix: string): Promise<LakeObject[]>;
  /** The object's bytes (or the inclusive byte range `start`..`end`), undefined when there is no such key. */
  get(key: string, range?: { start: number; end: number }): Promise<Uint8Array | undefined>;
  put(key: string, body: string, contentType: string): Promise<void>;
}

const unquote = (etag: string | undefined) => (etag ?? '').replaceAll('"', '');

export function s3LakeObjects(s3: S3Client, bucket: string): LakeObjects {
  return {
    async list(prefix) {
      const objects: LakeObject[] = [];
      let token: string | undefined;
      do {
        const out = await s3.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
        );
        for (const o of out.Contents ?? [])
          if (o.Key) objects.push({ key: o.Key, etag: unquote(o.ETag), size: o.Size ?? 0 });
        token = out.IsTruncated ? out.NextContinuationToken : undefined;
      } while (token);
      return objects.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    },
    async get(key, range) {
      try {
        const out = await s3.send(
          new GetObjectCommand({
            Bucket: bucket,
            Key: key,
            ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
          }),
        );
        return await out.Body?.transformToByteArray();
      } catch (err) {
        if (err instanceof NoSuchKey || (err as { name?: string }).name === 'NoSuchKey') return undefined;
        throw err;
      }
    },
    async put(key, body, contentType) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType }));
    },
  };
}
