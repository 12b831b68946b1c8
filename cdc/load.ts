import { Readable } from 'node:stream';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { Logger } from '#adapters/logger';
import { ParquetError, type ParquetRow, readParquet } from '#adapters/parquet-writer';
import type { CopyStep, Step, Warehouse } from '#adapters/warehouse';
import { claimStep, createManifest, isTerminal, loadedStep, unlessClaimedStep } from '#batch/loader/manifest';
import type { ObjectRef } from '#batch/loader/objects';
import { moveToQuarantine, QuarantineError } from '#batch/loader/quarantine';
import { type RetryRule, whyNotNow } from '#batch/loader/scheduler';
import { errorMessage } from '#core/resilience';
import {
  createStageSql,
  dropSql,
  markNewSql,
  redshiftParquetCopy,
  STAGE_TABLE,
  TYPED_CDC_TABLE,
  writeSql,
} from './load-sql.ts';
import { type ExtractMarker, ingestionMarkerKey } from './totesys/layout.ts';
import { PROCESSED_PREFIX, runIdOfKey } from './transform.ts';
import { type WarehouseTable, warehouseTable } from './transform-model.ts';

/**
 * Load: each processed Parquet object into its warehouse table in one transaction, tracked in
 * load_manifest (source `cdc`, format `parquet`) by key + ETag, so an object loads once; one that
 * can never load (not Parquet, not its table's columns) is quarantined with its reason; a failure
 * is retried by the next sweep. Objects go in run order, so a dimension ends at its latest values.
 */

export const CDC_KIND = { source: 'cdc', format: 'parquet' } as const;

export interface CdcLoadDeps {
  s3: S3Client;
  bucket: string;
  warehouse: Warehouse;
  logger: Logger;
  /** Redshift: the IAM role COPY assumes to read the processed zone. */
  copyRoleArn?: string;
  /** The invoice loader's cool-down for failed objects; without it (a load by hand) every failed one is tried. */
  rule?: RetryRule;
}

export interface CdcLoadResult {
  key: string;
  table: string;
  /** resting: failed before and waiting out its cool-down (`error` says until when). */
  status: 'loaded' | 'skipped' | 'quarantined' | 'failed' | 'resting';
  rowsRead?: number;
  error?: string;
}

/** The warehouse table an object key belongs to (`processed/totesys/<table>/...parquet`). */
export function tableOfKey(key: string): WarehouseTable | undefined {
  if (!key.startsWith(PROCESSED_PREFIX) || !key.endsWith('.parquet')) return undefined;
  return warehouseTable(key.slice(PROCESSED_PREFIX.length).split('/')[0] ?? '');
}

async function listProcessed(deps: CdcLoadDeps): Promise<ObjectRef[]> {
  const out: ObjectRef[] = [];
  let token: string | undefined;
  do {
    const page = await deps.s3.send(
      new ListObjectsV2Command({
        Bucket: deps.bucket,
        Prefix: PROCESSED_PREFIX,
        ...(token ? { ContinuationToken: token } : {}),
      }),
    );
    for (const o of page.Contents ?? [])
      if (o.Key && o.ETag && tableOfKey(o.Key))
        out.push({
          key: o.Key,
          etag: o.ETag.replace(/^"|"$/g, ''),
          ...(o.Size !== undefined ? { size: o.Size } : {}),
        });
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  // Run order, then table: a later run's dimension values land last.
  return out.sort((a, b) => {
    const ra = runIdOfKey(a.key);
    const rb = runIdOfKey(b.key);
    return ra === rb ? (a.key < b.key ? -1 : 1) : ra < rb ? -1 : 1;
  });
}

async function readObject(deps: CdcLoadDeps, ref: ObjectRef): Promise<Uint8Array> {
  const out = await deps.s3.send(
    new GetObjectCommand({ Bucket: deps.bucket, Key: ref.key, IfMatch: `"${ref.etag}"` }),
  );
  return (out.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray();
}

/** RFC 4180 for COPY: every text quoted (so "" is an empty string), NULL an empty unquoted field. */
function csvOf(table: WarehouseTable, rows: ParquetRow[]): string {
  const cell = (v: ParquetRow[string]) =>
    v === null ? '' : typeof v === 'string' ? `"${v.replaceAll('"', '""')}"` : String(v);
  return rows.map((r) => `${table.columns.map((c) => cell(r[c.name] ?? null)).join(',')}\n`).join('');
}

/**
 * When the object's extraction run became durable in the ingestion zone (its marker's finishedAt), for
 * the latency report's cdc path. Lineage only: without it the rows still load, with ingested_at NULL.
 */
async function ingestedAt(deps: CdcLoadDeps, key: string): Promise<string | null> {
  const markerKey = ingestionMarkerKey(runIdOfKey(key));
  try {
    const out = await deps.s3.send(new GetObjectCommand({ Bucket: deps.bucket, Key: markerKey }));
    const text = await (out.Body as { transformToString(): Promise<string> }).transformToString();
    const { finishedAt } = JSON.parse(text) as Partial<ExtractMarker>;
    if (typeof finishedAt === 'string' && !Number.isNaN(Date.parse(finishedAt))) return finishedAt;
    deps.logger.warn(
      { key: markerKey },
      'totesys ingestion marker has no finishedAt: ingested_at left empty',
    );
  } catch (err) {
    deps.logger.warn(
      { key: markerKey, err: errorMessage(err) },
      'totesys ingestion marker unreadable: ingested_at left empty',
    );
  }
  return null;
}

/** The steps of one object's load (exported for the unit test of both dialects' SQL). */
export function loadSteps(
  deps: Pick<CdcLoadDeps, 'warehouse' | 'bucket' | 'copyRoleArn'>,
  ref: ObjectRef,
  table: WarehouseTable,
  rows: ParquetRow[],
  ingested: string | null = null,
): Step[] {
  const { dialect } = deps.warehouse;
  let fill: Step;
  if (deps.warehouse.copySource === 's3') {
    if (!deps.copyRoleArn)
      throw new Error('loading Parquet on Redshift needs copyRoleArn (RP_REDSHIFT_COPY_ROLE_ARN)');
    fill = redshiftParquetCopy(`s3://${deps.bucket}/${ref.key}`, deps.copyRoleArn);
  } else {
    const copy: CopyStep = {
      kind: 'copy',
      table: STAGE_TABLE,
      columns: table.columns.map((c) => c.name),
      format: 'csv',
      encoding: 'UTF8',
      stream: () => Readable.from([csvOf(table, rows)]),
    };
    fill = copy;
  }
  return [
    claimStep(dialect, ref.key, ref.etag),
    { sql: createStageSql(table) },
    fill,
    // A Redshift batch runs on past a claim that matched nothing (another loader took the object
    // after loadProcessedObject looked): the staged rows go, so every write after reads none.
    unlessClaimedStep(STAGE_TABLE, ref.key, ref.etag),
    { sql: markNewSql(table) },
    table.kind === 'fact' ? { sql: writeSql(table), params: [ref.key, ingested] } : { sql: writeSql(table) },
    loadedStep(dialect, ref.key, ref.etag, {
      rowsRead: rows.length,
      rowsLoaded: rows.length,
      rowsRejected: 0,
      newRowsTable: TYPED_CDC_TABLE,
      encoding: 'UTF8',
      header: JSON.stringify(table.columns.map((c) => c.name)),
      extraColumns: null,
    }),
    ...dropSql(),
  ];
}

/** Loads one processed object (its current version); answers what happened. */
export async function loadProcessedObject(deps: CdcLoadDeps, ref: ObjectRef): Promise<CdcLoadResult> {
  const manifest = createManifest(deps.warehouse);
  const table = tableOfKey(ref.key);
  if (!table) throw new Error(`not a processed totesys object: ${ref.key}`);
  const result = (status: CdcLoadResult['status'], extra: Partial<CdcLoadResult> = {}): CdcLoadResult => ({
    key: ref.key,
    table: table.name,
    status,
    ...extra,
  });
  await manifest.register(ref, CDC_KIND);
  const row = await manifest.row(ref.key, ref.etag);
  if (row && isTerminal(row.status)) return result('skipped');
  let rows: ParquetRow[];
  try {
    rows = await readParquet(await readObject(deps, ref), table.columns);
  } catch (err) {
    if (!(err instanceof ParquetError)) throw err;
    const q = new QuarantineError(`${table.name}: ${err.message}`, { table: table.name }, { cause: err });
    await moveToQuarantine(deps.s3, deps.bucket, ref, q);
    await manifest.quarantined(ref.key, ref.etag, q.message);
    deps.logger.warn({ key: ref.key, reason: q.message }, 'totesys object quarantined');
    return result('quarantined', { error: q.message });
  }
  try {
    const ingested = table.kind === 'fact' ? await ingestedAt(deps, ref.key) : null;
    const { committed } = await deps.warehouse.transaction(loadSteps(deps, ref, table, rows, ingested));
    return result(committed ? 'loaded' : 'skipped', { rowsRead: rows.length });
  } catch (err) {
    await manifest.failed(ref.key, ref.etag, errorMessage(err));
    // The episode's one warning is cdc/transform-load.ts's; this is the detail of each attempt.
    deps.logger.debug({ key: ref.key, err: errorMessage(err) }, 'totesys load failed');
    return result('failed', { rowsRead: rows.length, error: errorMessage(err) });
  }
}

/** Every processed object not loaded or quarantined yet, in run order; one resting is reported, not tried. */
export async function loadPending(deps: CdcLoadDeps): Promise<CdcLoadResult[]> {
  const manifest = createManifest(deps.warehouse);
  const states = await manifest.states();
  const out: CdcLoadResult[] = [];
  for (const ref of await listProcessed(deps)) {
    const state = states.get(`${ref.key}\n${ref.etag}`);
    if (state && isTerminal(state.status)) continue;
    const resting = state && deps.rule ? whyNotNow(state, deps.rule) : undefined;
    if (resting) {
      const table = tableOfKey(ref.key)?.name ?? '';
      out.push({ key: ref.key, table, status: 'resting', error: resting });
      continue;
    }
    out.push(await loadProcessedObject(deps, ref));
  }
  return out;
}
