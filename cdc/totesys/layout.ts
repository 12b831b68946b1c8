import { randomBytes } from 'node:crypto';
import { TOTESYS_INGESTION_PREFIX, TOTESYS_PROCESSED_PREFIX } from '#core/bucket-layout';
import type { TotesysTableName } from './tables.ts';

/**
 * Where the totesys capture writes in the pipeline's bucket (the CDC contract,
 * /work/notes/TOTESYS-CONTRACT.md and docs/totesys.md): one key format, written once, read by the
 * extract, the transform and `totesys status`.
 */
export const INGESTION_PREFIX = TOTESYS_INGESTION_PREFIX;
export const INGESTION_RUNS_PREFIX = `${INGESTION_PREFIX}_runs/`;
export const WATERMARKS_KEY = `${INGESTION_PREFIX}_state/watermarks.json`;
export const PROCESSED_RUNS_PREFIX = `${TOTESYS_PROCESSED_PREFIX}_runs/`;

const RUN_ID = /^(\d{4})(\d{2})(\d{2})T\d{6}\d{3}Z-[0-9a-f]{6}$/;

/** `<YYYYMMDDTHHMMSSmmmZ>-<6 hex>`: the run's UTC start, so run ids sort by time. */
export function newRunId(
  startedAt: Date,
  random: () => string = () => randomBytes(3).toString('hex'),
): string {
  const stamp = startedAt.toISOString().replace(/[-:.]/g, '');
  return `${stamp}-${random()}`;
}

export class RunIdError extends Error {
  override name = 'RunIdError';
}

/** `YYYY/MM/DD` of the run's start date, from the run id itself. */
function runDatePath(runId: string): string {
  const m = RUN_ID.exec(runId);
  if (!m) throw new RunIdError(`not a totesys run id: ${JSON.stringify(runId)}`);
  return `${m[1]}/${m[2]}/${m[3]}`;
}

export function ingestionKey(table: TotesysTableName, runId: string): string {
  return `${INGESTION_PREFIX}${table}/${runDatePath(runId)}/${runId}.csv`;
}

export function ingestionMarkerKey(runId: string): string {
  return `${INGESTION_RUNS_PREFIX}${runDatePath(runId)}/${runId}.json`;
}

export function processedMarkerKey(runId: string): string {
  return `${PROCESSED_RUNS_PREFIX}${runDatePath(runId)}/${runId}.json`;
}

/** The run id of a marker key of either zone, or undefined for any other key. */
export function runIdOfMarker(key: string): string | undefined {
  const name = key.split('/').pop() ?? '';
  const runId = name.endsWith('.json') ? name.slice(0, -'.json'.length) : '';
  return RUN_ID.test(runId) ? runId : undefined;
}

/** The completion marker of one extract run. */
export interface ExtractMarker {
  runId: string;
  source: 'totesys';
  startedAt: string;
  finishedAt: string;
  tables: Partial<Record<TotesysTableName, MarkerTable>>;
}

export interface MarkerTable {
  key: string;
  rows: number;
  /** The table's watermark before the run (null on the first run). */
  from: string | null;
  /** Its watermark after the run. */
  to: string;
}
