import fs from 'node:fs/promises';
import path from 'node:path';
import { type GluePartition, type GlueTable, keyPrefixOf } from './catalog.ts';
import type { LakeObject, LakeObjects } from './catalog-objects.ts';
import { groupObjects, LAKE_TARGETS, partitionFingerprint } from './crawler.ts';

/**
 * The local copy of the objects a query reads. DuckDB's S3 extension is not bundled with its npm
 * bindings and cannot be fetched offline, so the objects come down through the pipeline's own S3
 * client into `<cacheDir>/<bucket>/<table>/<k=v>/.../<etag>-<name>`: keyed by ETag, so an object is
 * downloaded once per version, and laid out Hive-style for every table, so DuckDB's
 * hive_partitioning yields the catalog's partition columns (partition_0.. for the archive's
 * YYYY/MM/DD/HH folders too).
 */

export interface CachedTable {
  table: GlueTable;
  files: string[];
  /** Every file's columns are the table's (the catalog says so for each partition): no union by name needed. */
  uniform: boolean;
  downloaded: { objects: number; bytes: number };
}

const DOWNLOAD_CONCURRENCY = 6;

/** The cache file name of one object version (an ETag is hex, maybe with a `-<parts>` suffix). */
function cacheName(o: LakeObject): string {
  return `${o.etag.replace(/[^0-9A-Za-z-]/g, '')}-${path.posix.basename(o.key)}`;
}

async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(
    () => true,
    () => false,
  );
}

/** Brings `table`'s current objects into the cache (only versions not there yet) and drops stale ones. */
export async function syncTable(
  objects: LakeObjects,
  table: GlueTable,
  catalogPartitions: GluePartition[] | undefined,
  bucket: string,
  cacheDir: string,
): Promise<CachedTable> {
  const prefix = keyPrefixOf(table.StorageDescriptor.Location);
  const target = LAKE_TARGETS.find((t) => prefix.startsWith(t.prefix));
  const listed = await objects.list(prefix);
  // The crawler's own grouping: the same objects it catalogued, with the same partition values.
  const groups = target ? groupObjects(target, listed, bucket, []).filter((g) => g.name === table.Name) : [];
  const keys = table.PartitionKeys.map((k) => k.Name);
  const dir = path.join(cacheDir, bucket, table.Name);
  const wanted: Array<{ object: LakeObject; file: string }> = [];
  const catalogued = new Map(
    (catalogPartitions ?? []).map((p) => [p.Values.join('/'), p.Parameters.fingerprint]),
  );
  let uniform = true;
  for (const g of groups) {
    const sameKeys = g.partitionKeys.map((k) => k.Name).join('/') === keys.join('/');
    if (!sameKeys) continue; // the data moved on from the catalog: `lake crawl` first
    for (const p of g.partitions.values()) {
      // A partition changed since the crawl may hold other columns; so may one of other columns.
      const known = catalogued.get(p.values.join('/'));
      if (known === undefined || known !== partitionFingerprint(p.objects)) uniform = false;
      const folder = keys.map((k, i) => `${k}=${p.values[i] ?? ''}`);
      for (const o of p.objects) wanted.push({ object: o, file: path.join(dir, ...folder, cacheName(o)) });
    }
  }
  const downloaded = { objects: 0, bytes: 0 };
  let next = 0;
  const worker = async () => {
    while (next < wanted.length) {
      const w = wanted[next++];
      if (!w || (await exists(w.file))) continue;
      const bytes = await objects.get(w.object.key);
      if (!bytes) continue; // deleted since the listing: not part of the table any more
      await fs.mkdir(path.dirname(w.file), { recursive: true });
      const tmp = `${w.file}.${process.pid}.tmp`;
      await fs.writeFile(tmp, bytes);
      await fs.rename(tmp, w.file);
      downloaded.objects++;
      downloaded.bytes += bytes.length;
    }
  };
  await Promise.all(Array.from({ length: DOWNLOAD_CONCURRENCY }, worker));
  const files = [];
  for (const w of wanted) if (await exists(w.file)) files.push(w.file);
  await pruneStale(dir, new Set(files));
  const columns = JSON.stringify(table.StorageDescriptor.Columns);
  for (const p of catalogPartitions ?? [])
    if (JSON.stringify(p.StorageDescriptor.Columns) !== columns) uniform = false;
  return { table, files, uniform, downloaded };
}

/** Removes cached versions no longer in the bucket (older ETags, deleted objects). */
async function pruneStale(dir: string, keep: Set<string>): Promise<void> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    if (!e.isFile()) continue;
    const file = path.join(e.parentPath, e.name);
    if (!keep.has(file) && !file.endsWith('.tmp')) await fs.rm(file, { force: true });
  }
}
