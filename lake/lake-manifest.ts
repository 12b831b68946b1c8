import { createHash } from 'node:crypto';
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import type { Warehouse } from '#adapters/warehouse';
import { LAKE_STATE_PREFIX, type LakeSource, type LakeStore } from './invoice-lines.ts';

/**
 * Which source object versions the lake holds: one small marker per version (key + ETag), written
 * after every partition its lines went to. A marker is what the catch-up skips; it is not what
 * keeps lines single (the partition merge does that by line key), so a marker lost before it was
 * written only costs a second, harmless write of the same lines.
 */

export const OBJECTS_PREFIX = `${LAKE_STATE_PREFIX}objects/`;

export interface LakeMarker extends LakeSource {
  lines: number;
  added: number;
  partitions: string[];
  writtenAt: string;
}

/** A marker's key: a hash of the version (an object key may hold any character). */
export function markerKey(ref: Pick<LakeSource, 'key' | 'etag'>): string {
  const id = createHash('sha256').update(`${ref.key}\n${ref.etag}`).digest('hex').slice(0, 32);
  return `${OBJECTS_PREFIX}${id}.json`;
}

export async function writeMarker(store: LakeStore, marker: LakeMarker): Promise<void> {
  await store.s3.send(
    new PutObjectCommand({
      Bucket: store.bucket,
      Key: markerKey(marker),
      Body: JSON.stringify(marker),
      ContentType: 'application/json',
    }),
  );
}

/** The marker keys present (one listing). */
export async function markedVersions(store: LakeStore): Promise<Set<string>> {
  const out = new Set<string>();
  let token: string | undefined;
  do {
    const page = await store.s3.send(
      new ListObjectsV2Command({
        Bucket: store.bucket,
        Prefix: OBJECTS_PREFIX,
        ...(token ? { ContinuationToken: token } : {}),
      }),
    );
    for (const o of page.Contents ?? []) if (o.Key) out.add(o.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return out;
}

/** A source object version the warehouse loaded, as the lake's catch-up reads it. */
export interface LoadedObject extends LakeSource {
  format: 'csv' | 'ndjson';
}

/**
 * The invoice loader's loaded object versions (load_manifest; not the cdc objects), in the order
 * their loads committed: the lake keeps a key's first line as the warehouse does, so it takes the
 * objects in the warehouse's order.
 */
export async function loadedSourceObjects(warehouse: Pick<Warehouse, 'query'>): Promise<LoadedObject[]> {
  const { rows } = await warehouse.query<{
    object_key: string;
    etag: string;
    source: string;
    format: string;
  }>(
    `SELECT object_key, etag, source, format FROM load_manifest
     WHERE status = 'loaded' AND source IN ('stream', 'file') ORDER BY finished_at, object_key`,
  );
  return rows.map((r) => ({
    key: r.object_key,
    etag: r.etag,
    source: r.source === 'stream' ? 'stream' : 'file',
    format: r.format === 'ndjson' ? 'ndjson' : 'csv',
  }));
}
