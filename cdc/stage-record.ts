import { z } from 'zod';
import type { Logger } from '#adapters/logger';
import type { RetryState } from '#batch/loader/manifest';
import { type RetryRule, whyNotNow } from '#batch/loader/scheduler';
import { TOTESYS_PROCESSED_PREFIX } from '#core/bucket-layout';
import type { ObjectZone } from './zone.ts';

/**
 * The record the transform and the load keep of themselves in the processed zone
 * (`processed/totesys/_state/<stage>.json`), read by `totesys status`: the current failure episode
 * (since, attempts, the run or object it is stuck on, the message), the last one that ended, and the
 * transform's row counts. It lives in the bucket, not in memory, so Lambda invocations share it and
 * a failure is logged once per episode whichever process sees it first. One writer per stage: the
 * local processing runs one cycle at a time, and on AWS each stage's function has a concurrency of 1.
 */
export const CDC_STAGES = ['transform', 'load'] as const;
export type CdcStage = (typeof CDC_STAGES)[number];

export const stageRecordKey = (stage: CdcStage): string => `${TOTESYS_PROCESSED_PREFIX}_state/${stage}.json`;

const instant = z.iso.datetime();
const episode = z.object({
  message: z.string(),
  /** The run (transform) or object key (load) it fails on; null when the stage could not start. */
  subject: z.string().nullable(),
  since: instant,
  lastAttemptAt: instant,
  /** Attempts on this subject: what the cool-down counts. */
  attempts: z.number().int().min(1),
  /** Failed attempts in the whole episode. */
  episodeAttempts: z.number().int().min(1),
});
const recordSchema = z.object({
  version: z.literal(1),
  stage: z.enum(CDC_STAGES),
  failure: episode.optional(),
  lastOutage: episode.extend({ until: instant }).optional(),
  /** Transform: runs transformed, and rows read per source table / written per warehouse table. */
  runs: z.number().int().min(0),
  sourceRows: z.record(z.string(), z.number().int().min(0)),
  warehouseRows: z.record(z.string(), z.number().int().min(0)),
});

export type StageRecord = z.infer<typeof recordSchema>;
export type StageFailure = z.infer<typeof episode>;

export class StageRecordError extends Error {
  override name = 'StageRecordError';
}

export const emptyStageRecord = (stage: CdcStage): StageRecord => ({
  version: 1,
  stage,
  runs: 0,
  sourceRows: {},
  warehouseRows: {},
});

export async function readStageRecord(zone: ObjectZone, stage: CdcStage): Promise<StageRecord> {
  const key = stageRecordKey(stage);
  const text = await zone.get(key);
  if (text === undefined) return emptyStageRecord(stage);
  const parsed = recordSchema.safeParse(JSON.parse(text));
  if (!parsed.success)
    throw new StageRecordError(`${key} is damaged: ${parsed.error.issues[0]?.message ?? '?'}`);
  return parsed.data;
}

async function writeStageRecord(zone: ObjectZone, record: StageRecord): Promise<void> {
  await zone.put(stageRecordKey(record.stage), `${JSON.stringify(record)}\n`, 'application/json');
}

/** The cool-down's view of a failing stage, in the invoice loader's manifest terms. */
export function retryStateOf(failure: StageFailure, now: Date): RetryState {
  return {
    status: 'failed',
    attempts: failure.attempts,
    rested_ms: Math.max(0, now.getTime() - Date.parse(failure.lastAttemptAt)),
  };
}

/** Why the stage should not try its stuck subject now (resting after its fast retries), or undefined. */
export function stageResting(record: StageRecord, rule: RetryRule, now: Date): string | undefined {
  return record.failure
    ? whyNotNow({ ...retryStateOf(record.failure, now), error: record.failure.message }, rule)
    : undefined;
}

/** A cycle's outcome: what it counted (transform) and, when it failed, on what. */
export interface StageOutcome {
  runs?: number;
  sourceRows?: Record<string, number>;
  warehouseRows?: Record<string, number>;
  /** resting: still failed, waiting out its cool-down, not tried by this cycle (not an attempt). */
  failed?: { subject: string | null; message: string; resting?: boolean };
}

const add = (into: Record<string, number>, from: Record<string, number> = {}) => {
  const out = { ...into };
  for (const [k, n] of Object.entries(from)) out[k] = (out[k] ?? 0) + n;
  return out;
};

/**
 * Records one cycle's outcome and logs the edges of a failure episode: one warning when it starts
 * (or moves on to another subject), one line when it ends, nothing for the attempts in between.
 * Writes only when something changed, so a healthy idle stage costs no PUT per sweep.
 */
export async function recordOutcome(
  zone: ObjectZone,
  stage: CdcStage,
  outcome: StageOutcome,
  logger: Logger,
  now: Date = new Date(),
): Promise<StageRecord> {
  const before = await readStageRecord(zone, stage);
  if (!before.failure && !outcome.failed && !outcome.runs) return before;
  if (outcome.failed?.resting && before.failure?.subject === outcome.failed.subject && !outcome.runs)
    return before;
  const at = now.toISOString();
  const { failure: current, ...rest } = before;
  const after: StageRecord = {
    ...rest,
    runs: before.runs + (outcome.runs ?? 0),
    sourceRows: add(before.sourceRows, outcome.sourceRows),
    warehouseRows: add(before.warehouseRows, outcome.warehouseRows),
  };
  const failed = outcome.failed;
  if (failed) {
    const same = current !== undefined && current.subject === failed.subject;
    after.failure = {
      message: failed.message,
      subject: failed.subject,
      since: current?.since ?? at,
      lastAttemptAt: at,
      attempts: same ? current.attempts + 1 : 1,
      episodeAttempts: (current?.episodeAttempts ?? 0) + 1,
    };
    if (!same)
      logger.warn(
        { stage, subject: failed.subject, err: failed.message, since: after.failure.since },
        `totesys ${stage} failing; retried with a cool-down (see: retail-pipeline totesys status)`,
      );
  } else if (current) {
    after.lastOutage = { ...current, until: at };
    logger.info(
      { stage, since: current.since, attempts: current.episodeAttempts, subject: current.subject },
      `totesys ${stage} recovered`,
    );
  }
  await writeStageRecord(zone, after);
  return after;
}
