import type { CdcManifestRow } from '#batch/loader/manifest';
import { TOTESYS_PROCESSED_PREFIX } from '#core/bucket-layout';
import { type CdcStage, emptyStageRecord, readStageRecord, type StageRecord } from '../stage-record.ts';
import { WAREHOUSE_TABLES, type WarehouseTableName } from '../transform-model.ts';
import type { ObjectZone } from '../zone.ts';
import { INGESTION_RUNS_PREFIX, PROCESSED_RUNS_PREFIX, runIdOfMarker } from './layout.ts';
import { type CaptureState, readState, tableStateOf } from './state.ts';
import { TOTESYS_TABLE_NAMES, type TotesysTableName } from './tables.ts';

/**
 * What `totesys status` shows, per source table (extract, transform) and per warehouse table (load),
 * with each stage's failure record: read from the zones and, when given, the warehouse's manifest.
 */
export interface TableStatus {
  table: TotesysTableName;
  watermark: string | null;
  lastRunId: string | null;
  lastRows: number;
  rowsExtracted: number;
  /** Source rows the transform has read (its record's count). */
  rowsTransformed: number;
}

export interface WarehouseTableStatus {
  table: WarehouseTableName;
  /** Rows the transform wrote to Parquet for this table. */
  rowsTransformed: number;
  objects: number;
  /** Loaded objects' rows, and how many of them were new versions or members. */
  rowsLoaded: number;
  rowsNew: number;
  /** Objects failed (trying again, or resting), and quarantined. */
  failed: number;
  quarantined: number;
  /** Seconds since the start of the newest extract run whose rows of this table are all loaded (null: no run yet). */
  lagSeconds: number | null;
  lastError: string | null;
}

/** A stage's failure episode as status shows it (the transform's and the load's records). */
export type StageStatus = Pick<StageRecord, 'failure' | 'lastOutage'>;

export interface CaptureStatus {
  tables: TableStatus[];
  /** Undefined when the warehouse was not asked (no manifest read). */
  warehouseTables?: WarehouseTableStatus[];
  lastRun: CaptureState['lastRun'];
  /** Seconds since the last good run started: anything committed before it is in the zone. */
  lagSeconds: number | null;
  /** The worst table's warehouse lag: what the freshness alarm watches. */
  warehouseLagSeconds?: number | null;
  failure: CaptureState['failure'];
  lastOutage: CaptureState['lastOutage'];
  stages: Record<CdcStage, StageStatus>;
  runs: { extracted: number; transformed: number; oldestPending: string | null };
}

/** Whether any stage is in a failure episode: the capture, the transform or the load (`totesys status` exits 1). */
export function statusFails(s: Pick<CaptureStatus, 'failure' | 'stages'>): boolean {
  return Boolean(s.failure || s.stages.transform.failure || s.stages.load.failure);
}

const RUN_START = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z-/;

/** The UTC start of a run, from its id. */
export function runStartedAt(runId: string): Date | undefined {
  const m = RUN_START.exec(runId);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, ms] = m;
  return new Date(`${y}-${mo}-${d}T${h}:${mi}:${s}.${ms}Z`);
}

const secondsSince = (now: Date, at: Date | undefined): number | null =>
  at ? Math.max(0, Math.round((now.getTime() - at.getTime()) / 1000)) : null;

const PROCESSED_PREFIX = TOTESYS_PROCESSED_PREFIX;

export interface StatusOptions {
  now?: Date;
  /** The manifest's cdc rows (`Manifest.cdcObjects`); without it the load columns are left out. */
  manifest?: () => Promise<CdcManifestRow[]>;
}

export async function captureStatus(zone: ObjectZone, options: StatusOptions = {}): Promise<CaptureStatus> {
  const now = options.now ?? new Date();
  const [state, extracted, processed, transform, load, manifest] = await Promise.all([
    readState(zone),
    zone.list(INGESTION_RUNS_PREFIX),
    zone.list(PROCESSED_PREFIX),
    readStageRecord(zone, 'transform'),
    readStageRecord(zone, 'load'),
    options.manifest?.(),
  ]);
  const markers = processed.filter((k) => k.startsWith(PROCESSED_RUNS_PREFIX));
  const done = new Set(markers.map(runIdOfMarker).filter((id) => id !== undefined));
  const runIds = extracted
    .map(runIdOfMarker)
    .filter((id) => id !== undefined)
    .sort();
  const pending = runIds.filter((id) => !done.has(id));
  const warehouseTables = manifest
    ? warehouseStatus(processed, manifest, runIds, pending[0], transform, now)
    : undefined;
  return {
    tables: TOTESYS_TABLE_NAMES.map((table) => {
      const t = tableStateOf(state, table);
      return {
        table,
        watermark: t.watermark,
        lastRunId: t.lastRunId,
        lastRows: t.lastRows,
        rowsExtracted: t.rowsExtracted,
        rowsTransformed: transform.sourceRows[table] ?? 0,
      };
    }),
    ...(warehouseTables
      ? {
          warehouseTables,
          warehouseLagSeconds: worstLag(warehouseTables),
        }
      : {}),
    lastRun: state.lastRun,
    lagSeconds: state.lastRun ? secondsSince(now, new Date(state.lastRun.startedAt)) : null,
    failure: state.failure,
    lastOutage: state.lastOutage,
    stages: { transform: stageStatus(transform), load: stageStatus(load) },
    runs: {
      extracted: runIds.length,
      transformed: runIds.length - pending.length,
      oldestPending: pending[0] ?? null,
    },
  };
}

/** The worst table's lag; null when no run has been extracted yet. */
const worstLag = (tables: WarehouseTableStatus[]): number | null =>
  tables.reduce<number | null>(
    (worst, t) => (t.lagSeconds === null ? worst : Math.max(worst ?? 0, t.lagSeconds)),
    null,
  );

/**
 * The freshness the load publishes on AWS (the alarm's metric), from the processed zone and the
 * manifest only (the load may not read ingestion/): a stuck extract or transform shows as markers
 * that stop coming, so the lag grows all the same.
 */
export async function warehouseLagSeconds(
  zone: ObjectZone,
  manifest: CdcManifestRow[],
  now: Date = new Date(),
): Promise<number | null> {
  const processed = await zone.list(PROCESSED_PREFIX);
  const runIds = processed
    .filter((k) => k.startsWith(PROCESSED_RUNS_PREFIX))
    .map(runIdOfMarker)
    .filter((id) => id !== undefined)
    .sort();
  return worstLag(
    warehouseStatus(processed, manifest, runIds, undefined, emptyStageRecord('transform'), now),
  );
}

const stageStatus = (r: StageRecord): StageStatus => ({
  ...(r.failure ? { failure: r.failure } : {}),
  ...(r.lastOutage ? { lastOutage: r.lastOutage } : {}),
});

/**
 * Per warehouse table, from the processed objects and the manifest. A table's rows are visible up to
 * the newest extract run older than both the oldest run not transformed yet and the oldest of its
 * objects not loaded yet (pending, failed or never seen by the load); its lag counts from that run's start.
 */
function warehouseStatus(
  processedKeys: string[],
  manifest: CdcManifestRow[],
  runIds: string[],
  oldestUntransformed: string | undefined,
  transform: StageRecord,
  now: Date,
): WarehouseTableStatus[] {
  const byKey = new Map(manifest.map((r) => [r.object_key, r]));
  return WAREHOUSE_TABLES.map(({ name }) => {
    const prefix = `${PROCESSED_PREFIX}${name}/`;
    const keys = processedKeys.filter((k) => k.startsWith(prefix) && k.endsWith('.parquet'));
    const rows = keys.map((k) => byKey.get(k));
    const status: WarehouseTableStatus = {
      table: name,
      rowsTransformed: transform.warehouseRows[name] ?? 0,
      objects: keys.length,
      rowsLoaded: 0,
      rowsNew: 0,
      failed: 0,
      quarantined: 0,
      lagSeconds: null,
      lastError: null,
    };
    let blocking = oldestUntransformed;
    keys.forEach((key, i) => {
      const row = rows[i];
      if (row?.status === 'loaded') {
        status.rowsLoaded += Number(row.rows_read ?? 0);
        status.rowsNew += Number(row.rows_new ?? 0);
        return;
      }
      if (row?.status === 'quarantined') status.quarantined += 1;
      else {
        if (row?.status === 'failed') status.failed += 1;
        const run =
          key
            .split('/')
            .pop()
            ?.replace(/\.parquet$/, '') ?? '';
        if (blocking === undefined || run < blocking) blocking = run;
      }
      if (row?.error) status.lastError = row.error;
    });
    // Nothing visible yet: at least everything before the blocking run's start is missing.
    const visible = runIds.filter((id) => blocking === undefined || id < blocking).pop() ?? blocking;
    status.lagSeconds = visible ? secondsSince(now, runStartedAt(visible)) : null;
    return status;
  });
}
