import { z } from 'zod';
import type { ObjectZone } from '../zone.ts';
import { WATERMARKS_KEY } from './layout.ts';
import { TOTESYS_TABLE_NAMES, type TotesysTableName } from './tables.ts';

/**
 * The capture's state object (`ingestion/totesys/_state/watermarks.json`): per table its watermark,
 * the (pk, last_updated) pairs inside the overlap and its counts; the last good run; the current
 * outage, if any, and the last one that ended. Validated when read: a damaged object is an error, not
 * a silent restart from nothing (which would re-take the whole source).
 */
const timestamp = z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$/);
const instant = z.iso.datetime();

const tableState = z.object({
  watermark: timestamp.nullable(),
  seen: z.array(z.tuple([z.string(), timestamp])),
  rowsExtracted: z.number().int().min(0),
  lastRows: z.number().int().min(0),
  lastRunId: z.string().nullable(),
});

const failure = z.object({
  stage: z.enum(['source', 'zone']),
  message: z.string(),
  since: instant,
  lastAttemptAt: instant,
  attempts: z.number().int().min(1),
});

const stateSchema = z.object({
  version: z.literal(1),
  tables: z.partialRecord(z.enum(TOTESYS_TABLE_NAMES), tableState),
  lastRun: z
    .object({ runId: z.string(), startedAt: instant, finishedAt: instant, rows: z.number().int().min(0) })
    .optional(),
  failure: failure.optional(),
  lastOutage: failure.extend({ until: instant }).optional(),
});

export type CaptureState = z.infer<typeof stateSchema>;
export type TableState = z.infer<typeof tableState>;
export type CaptureFailure = z.infer<typeof failure>;

export const emptyState = (): CaptureState => ({ version: 1, tables: {} });

export function emptyTableState(): TableState {
  return { watermark: null, seen: [], rowsExtracted: 0, lastRows: 0, lastRunId: null };
}

export class CaptureStateError extends Error {
  override name = 'CaptureStateError';
}

export async function readState(zone: ObjectZone): Promise<CaptureState> {
  const text = await zone.get(WATERMARKS_KEY);
  if (text === undefined) return emptyState();
  const parsed = stateSchema.safeParse(JSON.parse(text));
  if (!parsed.success) {
    throw new CaptureStateError(`${WATERMARKS_KEY} is damaged: ${parsed.error.issues[0]?.message ?? '?'}`);
  }
  return parsed.data;
}

export async function writeState(zone: ObjectZone, state: CaptureState): Promise<void> {
  await zone.put(WATERMARKS_KEY, `${JSON.stringify(state)}\n`, 'application/json');
}

/** The state with a failed attempt recorded: a new outage, or one more attempt of the current one. */
export function withFailure(
  state: CaptureState,
  stage: CaptureFailure['stage'],
  message: string,
  at: Date,
): CaptureState {
  const when = at.toISOString();
  const current = state.failure;
  return {
    ...state,
    failure: current
      ? { ...current, stage, message, lastAttemptAt: when, attempts: current.attempts + 1 }
      : { stage, message, since: when, lastAttemptAt: when, attempts: 1 },
  };
}

/** The state after a good run: the outage, if any, becomes the last outage. */
export function withRecovery(state: CaptureState, at: Date): CaptureState {
  const { failure: current, ...rest } = state;
  return current ? { ...rest, lastOutage: { ...current, until: at.toISOString() } } : rest;
}

export function tableStateOf(state: CaptureState, table: TotesysTableName): TableState {
  return state.tables[table] ?? emptyTableState();
}
