import { createHash } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Logger } from '#adapters/logger';
import { ARCHIVE_PREFIX, INVOICE_LINES_PREFIX, TOTESYS_PROCESSED_PREFIX } from '#core/bucket-layout';
import {
  type Classification,
  type GlueColumn,
  type LakeCatalog,
  readCatalog,
  writeCatalog,
} from './catalog.ts';
import {
  type CatalogChange,
  type FoundPartition,
  type FoundTable,
  mergeCrawl,
  widenType,
} from './catalog-merge.ts';
import { type LakeObject, type LakeObjects, s3LakeObjects } from './catalog-objects.ts';
import { jsonObjectColumns, parquetObjectColumns } from './crawler-schema.ts';

/**
 * The local stand-in for the Glue crawler: lists the lake's prefixes, groups objects into tables
 * and partitions by their paths, reads schemas from a sample of each partition's objects, and
 * merges what it found into the catalog (lake/catalog-merge.ts says how). Run by
 * `retail-pipeline lake crawl`, and by writers after they write (`scheduleCrawl`).
 */

export interface CrawlTarget {
  /** Key prefix, ending in '/'. */
  prefix: string;
  classification: Classification;
  /** The one table at `prefix` ... */
  table?: string;
  /** ... or one table per folder under `prefix`, named this plus the folder's name. */
  tablePerFolder?: string;
}

/**
 * The prefixes the crawler covers; the Glue crawlers in infra/constructs/catalog.ts cover the same
 * ones and name the tables the same way.
 */
export const LAKE_TARGETS: readonly CrawlTarget[] = [
  { prefix: INVOICE_LINES_PREFIX, classification: 'parquet', table: 'invoice_lines' },
  { prefix: TOTESYS_PROCESSED_PREFIX, classification: 'parquet', tablePerFolder: 'totesys_' },
  { prefix: ARCHIVE_PREFIX, classification: 'json', table: 'archive' },
];

const EXTENSION: Record<Classification, RegExp> = { parquet: /\.parquet$/, json: /\.gz$/ };
/** Objects the crawler reads per partition for its schema: the first and the newest few (keys sort by time). */
const SAMPLE_NEWEST = 3;
const READ_CONCURRENCY = 8;

export interface SkippedObject {
  key: string;
  reason: string;
}

export interface CrawlReport {
  tables: Array<{ name: string; location: string; partitions: number; objects: number; columns: number }>;
  changes: CatalogChange[];
  skipped: SkippedObject[];
  /**
   * Objects whose schema was read this time (partitions unchanged since the last crawl are not read,
   * nor objects this store's crawls read before).
   */
  objectsRead: number;
  catalog: LakeCatalog;
}

/** A table's objects with their partition values, before any is read. */
export interface Grouped {
  name: string;
  target: CrawlTarget;
  root: string;
  partitionKeys: GlueColumn[];
  partitions: Map<string, { values: string[]; location: string; objects: LakeObject[] }>;
}

/** Hidden by Hive's and Athena's rule: a path segment starting with `_` or `.` (markers, state). */
const isHidden = (segments: string[]) => segments.some((s) => s.startsWith('_') || s.startsWith('.'));
const HIVE_SEGMENT = /^([^=]+)=(.*)$/;

/** A path's partition folders as (key, value) pairs: Hive-style `k=v`, or Glue's partition_<i>. */
function partitionPairs(folders: string[]): Array<[string, string]> {
  const hive = folders.map((f) => HIVE_SEGMENT.exec(f));
  if (folders.length > 0 && hive.every((m) => m !== null))
    return hive.map((m) => [(m?.[1] ?? '').toLowerCase(), decodeURIComponent(m?.[2] ?? '')]);
  return folders.map((f, i) => [`partition_${i}`, f]);
}

function tableOf(
  target: CrawlTarget,
  rest: string[],
): { name: string; root: string; inside: string[] } | undefined {
  if (target.table) return { name: target.table, root: target.prefix, inside: rest };
  const [folder, ...inside] = rest;
  if (!folder || inside.length === 0) return undefined;
  return {
    name: `${target.tablePerFolder ?? ''}${folder.toLowerCase()}`,
    root: `${target.prefix}${folder}/`,
    inside,
  };
}

/** The objects under one target grouped into tables and partitions; what does not fit is skipped. */
export function groupObjects(
  target: CrawlTarget,
  objects: LakeObject[],
  bucket: string,
  skipped: SkippedObject[],
): Grouped[] {
  const placed: Array<{
    o: LakeObject;
    name: string;
    root: string;
    folder: string;
    pairs: Array<[string, string]>;
  }> = [];
  for (const o of objects) {
    const rest = o.key.slice(target.prefix.length).split('/');
    if (o.size === 0 || isHidden(rest)) continue;
    const extension = EXTENSION[target.classification];
    if (!extension.test(o.key)) {
      skipped.push({ key: o.key, reason: `not a ${target.classification} object (${extension.source})` });
      continue;
    }
    const t = tableOf(target, rest);
    if (!t) skipped.push({ key: o.key, reason: `not inside a table folder of ${target.prefix}` });
    else {
      const folders = t.inside.slice(0, -1);
      placed.push({
        o,
        name: t.name,
        root: t.root,
        folder: folders.join('/'),
        pairs: partitionPairs(folders),
      });
    }
  }
  const layouts = tableLayouts(placed);
  const tables = new Map<string, Grouped>();
  for (const { o, name, root, folder, pairs } of placed) {
    const keys = pairs.map(([k]) => k).join('/');
    const layout = layouts.get(name) as string;
    if (keys !== layout) {
      skipped.push({
        key: o.key,
        reason: `its folders (${keys || 'none'}) are not the table's partitions (${layout || 'none'})`,
      });
      continue;
    }
    let g = tables.get(name);
    if (!g) {
      const partitionKeys = pairs.map(([Name]) => ({ Name, Type: 'string' }));
      g = { name, target, root, partitionKeys, partitions: new Map() };
      tables.set(name, g);
    }
    const values = pairs.map(([, v]) => v);
    const id = values.join('\u0000');
    const p = g.partitions.get(id) ?? {
      values,
      location: `s3://${bucket}/${root}${folder ? `${folder}/` : ''}`,
      objects: [],
    };
    p.objects.push(o);
    g.partitions.set(id, p);
  }
  return [...tables.values()];
}

/** Per table, the partition layout (key names) most of its objects have: the others do not fit. */
function tableLayouts(placed: Array<{ name: string; pairs: Array<[string, string]> }>): Map<string, string> {
  const counts = new Map<string, Map<string, number>>();
  for (const { name, pairs } of placed) {
    const keys = pairs.map(([k]) => k).join('/');
    const byLayout = counts.get(name) ?? new Map<string, number>();
    byLayout.set(keys, (byLayout.get(keys) ?? 0) + 1);
    counts.set(name, byLayout);
  }
  const out = new Map<string, string>();
  for (const [name, byLayout] of counts) {
    const [best] = [...byLayout].sort((a, b) => b[1] - a[1]);
    out.set(name, best?.[0] ?? '');
  }
  return out;
}

/** Runs `fn` over `items` with at most `limit` at a time, results in order. */
async function mapPool<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Identifies a partition's objects (keys and ETags): the crawler reads a partition again when it changes. */
export function partitionFingerprint(objects: LakeObject[]): string {
  const hash = createHash('sha256');
  for (const o of objects) hash.update(`${o.key}\u0000${o.etag}\n`);
  return hash.digest('hex').slice(0, 32);
}

/** Union of column lists in first-seen order, types widened (a conflict keeps the first; the merge reports it). */
function unionColumns(lists: GlueColumn[][], classification: Classification): GlueColumn[] {
  const out = new Map<string, GlueColumn>();
  for (const list of lists)
    for (const c of list) {
      const seen = out.get(c.Name);
      out.set(
        c.Name,
        seen ? { Name: c.Name, Type: widenType(seen.Type, c.Type, classification) ?? seen.Type } : c,
      );
    }
  return [...out.values()];
}

/** The first object and the newest few: a new column arrives in new objects. */
function sampleOf(objects: LakeObject[]): LakeObject[] {
  const picked = new Set([objects[0], ...objects.slice(-SAMPLE_NEWEST)]);
  return [...picked].filter((o): o is LakeObject => o !== undefined);
}

interface ReadCounter {
  objectsRead: number;
}

/**
 * What was read of each object by this store's crawls, by key and ETag (the same bytes): a partition
 * that gained an object (a totesys run's file in today's folder, every 10 s under `npm start`) has
 * only that one read again, not its whole sample. Bounded: the oldest reads are forgotten first.
 */
const readBefore = new WeakMap<LakeObjects, Map<string, unknown>>();
const READS_REMEMBERED = 4096;

async function readOnce<T>(
  objects: LakeObjects,
  o: LakeObject,
  counter: ReadCounter,
  read: () => Promise<T>,
): Promise<T> {
  let seen = readBefore.get(objects);
  if (!seen) {
    seen = new Map();
    readBefore.set(objects, seen);
  }
  const id = `${o.key}\n${o.etag}`;
  if (seen.has(id)) return seen.get(id) as T;
  counter.objectsRead++;
  const value = await read();
  seen.set(id, value);
  if (seen.size > READS_REMEMBERED) seen.delete(seen.keys().next().value as string);
  return value;
}

/** A partition's columns: the catalog's when its objects are unchanged, else read from a sample. */
async function foundPartition(
  objects: LakeObjects,
  g: Grouped,
  p: { values: string[]; location: string; objects: LakeObject[] },
  catalog: LakeCatalog,
  counter: ReadCounter,
): Promise<FoundPartition> {
  const fingerprint = partitionFingerprint(p.objects);
  const base = {
    values: p.values,
    location: p.location,
    objectCount: p.objects.length,
    size: p.objects.reduce((a, o) => a + o.size, 0),
    fingerprint,
  };
  const known = (catalog.Partitions[g.name] ?? []).find(
    (x) => x.Values.join('\u0000') === p.values.join('\u0000'),
  );
  if (known?.Parameters.fingerprint === fingerprint) {
    const keys = Object.fromEntries(
      Object.entries(
        catalog.Tables.find((t) => t.Name === g.name)?.StorageDescriptor.SerdeInfo.Parameters ?? {},
      )
        .filter(([k]) => k.startsWith('mapping.'))
        .map(([k, v]) => [k.slice('mapping.'.length), v]),
    );
    return { ...base, columns: known.StorageDescriptor.Columns, keys };
  }
  const sample = sampleOf(p.objects);
  if (g.target.classification === 'parquet') {
    const lists = await mapPool(sample, READ_CONCURRENCY, (o) =>
      readOnce(objects, o, counter, () => parquetObjectColumns(objects, o)),
    );
    return { ...base, columns: unionColumns(lists, 'parquet') };
  }
  const read = await mapPool(sample, READ_CONCURRENCY, (o) =>
    readOnce(objects, o, counter, () => jsonObjectColumns(objects, o)),
  );
  return {
    ...base,
    columns: unionColumns(
      read.map((r) => r.columns),
      'json',
    ),
    keys: Object.assign({}, ...read.map((r) => r.keys)),
  };
}

export interface CrawlDeps {
  objects: LakeObjects;
  bucket: string;
  logger?: Logger;
  now?: () => Date;
}

/** Targets a crawl limited to `prefixes` looks at: those holding or held by one of them. */
function targetsFor(prefixes: readonly string[] | undefined): CrawlTarget[] {
  if (!prefixes) return [...LAKE_TARGETS];
  return LAKE_TARGETS.filter((t) => prefixes.some((p) => p.startsWith(t.prefix) || t.prefix.startsWith(p)));
}

/**
 * One crawl: every target (or those under `prefixes`), merged into the stored catalog, which is
 * written back when anything in it changed. Schema changes come back in the report, and are logged.
 */
export async function crawlLake(
  deps: CrawlDeps,
  opts: { prefixes?: readonly string[] } = {},
): Promise<CrawlReport> {
  const { objects, bucket } = deps;
  const catalog = await readCatalog(objects);
  const skipped: SkippedObject[] = [];
  const counter: ReadCounter = { objectsRead: 0 };
  const targets = targetsFor(opts.prefixes);
  const found: FoundTable[] = [];
  for (const target of targets) {
    const groups = groupObjects(target, await objects.list(target.prefix), bucket, skipped);
    for (const g of groups) {
      const partitions = await mapPool([...g.partitions.values()], 2, (p) =>
        foundPartition(objects, g, p, catalog, counter),
      );
      found.push({
        name: g.name,
        location: `s3://${bucket}/${g.root}`,
        classification: target.classification,
        partitionKeys: g.partitionKeys,
        partitions,
      });
    }
  }
  const now = (deps.now?.() ?? new Date()).toISOString();
  const merged = mergeCrawl(
    catalog,
    found,
    targets.map((t) => t.prefix),
    now,
  );
  if (JSON.stringify(merged.catalog) !== JSON.stringify(catalog)) await writeCatalog(objects, merged.catalog);
  for (const c of merged.changes)
    deps.logger?.info({ table: c.table, change: c.kind, detail: c.detail }, 'lake catalog change');
  return {
    tables: found.map((t) => ({
      name: t.name,
      location: t.location,
      partitions: t.partitions.length,
      objects: t.partitions.reduce((a, p) => a + p.objectCount, 0),
      columns: merged.catalog.Tables.find((x) => x.Name === t.name)?.StorageDescriptor.Columns.length ?? 0,
    })),
    changes: merged.changes,
    skipped: skipped.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)),
    objectsRead: counter.objectsRead,
    catalog: merged.catalog,
  };
}

/**
 * What a writer calls after it wrote to the lake (the invoice-lines writer, the totesys transform):
 * crawls the given prefixes soon, one crawl at a time per process. Calls while a crawl runs are
 * coalesced into one more crawl after it, so a burst of writes costs two crawls, not one per write.
 * The returned promise settles when a crawl that saw the writes has finished; a failed crawl is
 * logged and rejects it (the data is written either way; the next crawl catalogs it).
 */
export function createCrawlScheduler(deps: CrawlDeps): {
  crawlAfterWrite(prefixes: readonly string[]): Promise<CrawlReport>;
} {
  let running: Promise<unknown> = Promise.resolve();
  let queued: { prefixes: Set<string>; done: Promise<CrawlReport> } | undefined;
  return {
    crawlAfterWrite(prefixes) {
      if (queued) {
        for (const p of prefixes) queued.prefixes.add(p);
        return queued.done;
      }
      const next = { prefixes: new Set(prefixes), done: undefined as unknown as Promise<CrawlReport> };
      next.done = running
        .then(
          () => undefined,
          () => undefined,
        )
        .then(() => {
          if (queued === next) queued = undefined;
          return crawlLake(deps, { prefixes: [...next.prefixes] });
        });
      next.done.catch((err: unknown) =>
        deps.logger?.warn({ err: (err as Error).message }, 'lake crawl failed'),
      );
      queued = next;
      running = next.done;
      return next.done;
    },
  };
}

/**
 * crawlAfterWrite for a writer holding an S3 client: the scheduler of that client and bucket in
 * this process. By client too, not by bucket name alone: a process that starts a second stack
 * (a bench's next pipeline, a restarted stack in a test) has a new client for the same bucket name,
 * and the first stack's client points at a server that is gone.
 */
const schedulers = new WeakMap<S3Client, Map<string, ReturnType<typeof createCrawlScheduler>>>();
export function crawlAfterWrite(
  s3: S3Client,
  bucket: string,
  prefixes: readonly string[],
  logger?: Logger,
): Promise<CrawlReport> {
  let byBucket = schedulers.get(s3);
  if (!byBucket) {
    byBucket = new Map();
    schedulers.set(s3, byBucket);
  }
  let scheduler = byBucket.get(bucket);
  if (!scheduler) {
    scheduler = createCrawlScheduler({
      objects: s3LakeObjects(s3, bucket),
      bucket,
      ...(logger ? { logger } : {}),
    });
    byBucket.set(bucket, scheduler);
  }
  return scheduler.crawlAfterWrite(prefixes);
}
