import { errorMessage } from '#core/resilience';
import { toCsv } from '../csv.ts';
import { advance, readFrom, type SourceTimestamp, unseen } from '../watermark.ts';
import type { ObjectZone } from '../zone.ts';
import {
  type ExtractMarker,
  ingestionKey,
  ingestionMarkerKey,
  type MarkerTable,
  newRunId,
} from './layout.ts';
import type { ZoneRow } from './source.ts';
import {
  type CaptureState,
  readState,
  type TableState,
  tableStateOf,
  withFailure,
  withRecovery,
  writeState,
} from './state.ts';
import { columnNames, type SourceTable, TOTESYS_TABLES, type TotesysTableName } from './tables.ts';

/**
 * One extract run: read what changed since each table's watermark, write one CSV per changed table,
 * then the run's completion marker, and only then the advanced watermarks. A crash anywhere before
 * the last write leaves the watermarks where they were: the next run takes the same rows again
 * (the load is keyed by (primary key, last_updated), so a row taken twice is stored once); a crash
 * can never move a watermark past a row no marker announced.
 */

export type ReadChanges = (
  bounds: ReadonlyArray<{ table: SourceTable; from: SourceTimestamp | null }>,
) => Promise<Map<string, ZoneRow[]>>;

export interface ExtractDeps {
  /** Reads the source (readChanges over a pool, or a fake). */
  read: ReadChanges;
  zone: ObjectZone;
  /** How far below the watermark each read starts (catches late commits). */
  overlapMicros: bigint;
  now?: () => Date;
  /** Test seams between the steps: a kill or a failure injected here must lose nothing. */
  hooks?: { afterMarker?: (runId: string) => Promise<void> | void };
}

export interface ExtractRun {
  runId: string;
  startedAt: string;
  finishedAt: string;
  markerKey: string;
  tables: Partial<Record<TotesysTableName, MarkerTable>>;
  rows: number;
}

/** Why a run failed: the source could not be read, or the zone could not be written. */
export class ExtractError extends Error {
  override name = 'ExtractError';
  constructor(
    readonly stage: 'source' | 'zone',
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export async function extractOnce(deps: ExtractDeps): Promise<ExtractRun> {
  const now = deps.now ?? (() => new Date());
  const started = now();
  const runId = newRunId(started);
  const state = await readState(deps.zone).catch((cause: unknown) => {
    throw new ExtractError('zone', `cannot read the capture state: ${errorMessage(cause)}`, { cause });
  });

  let changes: Map<string, ZoneRow[]>;
  try {
    changes = await deps.read(
      TOTESYS_TABLES.map((table) => ({
        table,
        from: readFrom(state.tables[table.name], deps.overlapMicros),
      })),
    );
  } catch (cause) {
    const message = `totesys source unreachable: ${errorMessage(cause)}`;
    // Best effort: the record is for `totesys status`; the zone may be down too.
    await writeState(deps.zone, withFailure(state, 'source', message, now())).catch(() => undefined);
    throw new ExtractError('source', message, { cause });
  }

  try {
    return await writeRun(deps, state, runId, started, changes, now);
  } catch (cause) {
    const message = `cannot write the ingestion zone: ${errorMessage(cause)}`;
    await writeState(deps.zone, withFailure(state, 'zone', message, now())).catch(() => undefined);
    throw new ExtractError('zone', message, { cause });
  }
}

async function writeRun(
  deps: ExtractDeps,
  state: CaptureState,
  runId: string,
  started: Date,
  changes: Map<string, ZoneRow[]>,
  now: () => Date,
): Promise<ExtractRun> {
  const tables: Partial<Record<TotesysTableName, MarkerTable>> = {};
  const next: CaptureState['tables'] = { ...state.tables };
  let rows = 0;
  for (const table of TOTESYS_TABLES) {
    const before = tableStateOf(state, table.name);
    const fresh = unseen(before, changes.get(table.name) ?? []);
    const position = advance(before, fresh, deps.overlapMicros);
    if (fresh.length === 0) {
      next[table.name] = { ...before, ...position, lastRows: 0, lastRunId: runId };
      continue;
    }
    const key = ingestionKey(table.name, runId);
    const csv = toCsv(
      columnNames(table),
      fresh.map((r) => r.fields),
    );
    await deps.zone.put(key, csv, 'text/csv; charset=utf-8');
    tables[table.name] = {
      key,
      rows: fresh.length,
      from: before.watermark,
      to: position.watermark as string,
    };
    next[table.name] = advanced(before, position, fresh.length, runId);
    rows += fresh.length;
  }

  const finishedAt = now().toISOString();
  const marker: ExtractMarker = {
    runId,
    source: 'totesys',
    startedAt: started.toISOString(),
    finishedAt,
    tables,
  };
  const markerKey = ingestionMarkerKey(runId);
  await deps.zone.put(markerKey, `${JSON.stringify(marker, null, 2)}\n`, 'application/json');
  await deps.hooks?.afterMarker?.(runId);

  const after: CaptureState = withRecovery(
    {
      ...state,
      tables: next,
      lastRun: { runId, startedAt: marker.startedAt, finishedAt, rows },
    },
    now(),
  );
  await writeState(deps.zone, after);
  return { runId, startedAt: marker.startedAt, finishedAt, markerKey, tables, rows };
}

function advanced(
  before: TableState,
  position: Pick<TableState, 'watermark' | 'seen'>,
  rows: number,
  runId: string,
): TableState {
  return { ...position, rowsExtracted: before.rowsExtracted + rows, lastRows: rows, lastRunId: runId };
}
