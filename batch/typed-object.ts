import type { S3Client } from '@aws-sdk/client-s3';
import { loadIdOf, openObject } from './loader/objects.ts';
import { typedRows } from './loader/rows.ts';
import type { SourceFormat } from './sql.ts';
import type { RowEncoder } from './typer.ts';

/**
 * Types one loaded object version again with the loader's typer (the same rules, line numbers and
 * rejections as its load) into `encoder`, to its end: the lake's catch-up reads its lines this way
 * (lake/invoice-lines-stage.ts; cli wires the two).
 */
export async function typeObjectInto(
  s3: S3Client,
  bucket: string,
  ref: { key: string; etag: string; format: SourceFormat },
  encoder: RowEncoder,
): Promise<void> {
  const source = await openObject(s3, bucket, ref);
  const rows = await typedRows(source, {
    loadId: loadIdOf(ref.key, ref.etag),
    objectKey: ref.key,
    format: ref.format,
    encoder,
  });
  try {
    for await (const _ of rows.rows) {
      // The encoder keeps what it needs; the bytes it answers are none.
    }
  } finally {
    await rows.close();
  }
}
