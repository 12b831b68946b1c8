import type { ObjectZone } from '../zone.ts';
import { INGESTION_RUNS_PREFIX, PROCESSED_RUNS_PREFIX, runIdOfMarker } from './layout.ts';
import { type CaptureState, readState, tableStateOf } from './state.ts';
import { TOTESYS_TABLE_NAMES, type TotesysTableName } from './tables.ts';

/** What `totesys status` shows: per table and for the runs, read from the zones (no source access). */
export interface TableStatus {
  table: TotesysTableName;
  watermark: string | null;
  lastRunId: string | null;
  lastRows: number;
  rowsExtracted: number;
}

export interface CaptureStatus {
  tables: TableStatus[];
  lastRun: CaptureState['lastRun'];
  /** Seconds since the last good run started: anything committed before it is in the zone. */
  lagSeconds: number | null;
  failure: CaptureState['failure'];
  lastOutage: CaptureState['lastOutage'];
  runs: { extracted: number; transformed: number; oldestPending: string | null };
}

export async function captureStatus(zone: ObjectZone, now: Date = new Date()): Promise<CaptureStatus> {
  const [state, extracted, processed] = await Promise.all([
    readState(zone),
    zone.list(INGESTION_RUNS_PREFIX),
    zone.list(PROCESSED_RUNS_PREFIX),
  ]);
  const done = new Set(processed.map(runIdOfMarker).filter((id) => id !== undefined));
  const runIds = extracted.map(runIdOfMarker).filter((id) => id !== undefined);
  const pending = runIds.filter((id) => !done.has(id)).sort();
  return {
    tables: TOTESYS_TABLE_NAMES.map((table) => {
      const t = tableStateOf(state, table);
      return {
        table,
        watermark: t.watermark,
        lastRunId: t.lastRunId,
        lastRows: t.lastRows,
        rowsExtracted: t.rowsExtracted,
      };
    }),
    lastRun: state.lastRun,
    lagSeconds: state.lastRun
      ? Math.max(0, Math.round((now.getTime() - Date.parse(state.lastRun.startedAt)) / 1000))
      : null,
    failure: state.failure,
    lastOutage: state.lastOutage,
    runs: {
      extracted: runIds.length,
      transformed: runIds.length - pending.length,
      oldestPending: pending[0] ?? null,
    },
  };
}
