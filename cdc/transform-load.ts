import type { S3Client } from '@aws-sdk/client-s3';
import type { Logger } from '#adapters/logger';
import type { Warehouse } from '#adapters/warehouse';
import { DEFAULT_RETRY_RULE, type RetryRule } from '#batch/loader/scheduler';
import { errorMessage, sleep } from '#core/resilience';
import { type CdcLoadDeps, type CdcLoadResult, loadPending, tableOfKey } from './load.ts';
import { readStageRecord, recordOutcome, type StageOutcome, stageResting } from './stage-record.ts';
import { INGESTION_RUNS_PREFIX } from './totesys/layout.ts';
import { type TransformDeps, type TransformSweep, transformPending } from './transform.ts';
import { s3Zone } from './zone.ts';

/** A run by hand (`totesys transform`, `totesys load`): everything failed is tried now, no cool-down. */
export const BY_HAND: RetryRule = { ...DEFAULT_RETRY_RULE, maxAttempts: Number.POSITIVE_INFINITY };

/**
 * One transform sweep with its failure record: a run that fails is retried by each sweep until it
 * has failed `rule.maxAttempts` times, then after the invoice loader's cool-down (later runs wait
 * for it: the join snapshot advances in run order). `resting` says why this sweep did nothing.
 */
export async function transformCycle(
  deps: TransformDeps,
  rule: RetryRule = DEFAULT_RETRY_RULE,
  now: () => Date = () => new Date(),
): Promise<TransformSweep & { resting?: string }> {
  const zone = s3Zone(deps.s3, deps.bucket);
  const resting = stageResting(await readStageRecord(zone, 'transform'), rule, now());
  if (resting) return { transformed: [], resting };
  let sweep: TransformSweep;
  try {
    sweep = await transformPending(deps);
  } catch (err) {
    // Not even the listing worked (the bucket unreachable): recorded like a failed run, with no run.
    sweep = { transformed: [], failed: { runId: '', error: errorMessage(err) } };
  }
  const sourceRows: Record<string, number> = {};
  const warehouseRows: Record<string, number> = {};
  for (const m of sweep.transformed) {
    for (const [t, n] of Object.entries(m.sourceRows)) sourceRows[t] = (sourceRows[t] ?? 0) + n;
    for (const [t, o] of Object.entries(m.objects)) warehouseRows[t] = (warehouseRows[t] ?? 0) + o.rows;
  }
  await recordOutcome(
    zone,
    'transform',
    {
      runs: sweep.transformed.length,
      sourceRows,
      warehouseRows,
      ...(sweep.failed
        ? { failed: { subject: sweep.failed.runId || null, message: sweep.failed.error } }
        : {}),
    },
    deps.logger,
    now(),
  );
  return sweep;
}

/**
 * One load sweep with its failure record: failed objects rest by the invoice loader's rule (their
 * manifest rows count the attempts); the episode lasts while any object is failed or resting.
 */
export async function loadCycle(
  deps: CdcLoadDeps,
  rule: RetryRule = DEFAULT_RETRY_RULE,
  now: () => Date = () => new Date(),
): Promise<CdcLoadResult[]> {
  const zone = s3Zone(deps.s3, deps.bucket);
  let results: CdcLoadResult[] = [];
  let failed: StageOutcome['failed'];
  try {
    results = await loadPending({ ...deps, rule });
    const stuck = results.find((r) => r.status === 'failed') ?? results.find((r) => r.status === 'resting');
    if (stuck)
      failed = {
        subject: stuck.key,
        message: stuck.error ?? stuck.status,
        resting: stuck.status === 'resting',
      };
  } catch (err) {
    failed = { subject: null, message: errorMessage(err) };
  }
  await recordOutcome(zone, 'load', failed ? { failed } : {}, deps.logger, now());
  return results;
}

/**
 * `npm start`'s totesys processing: transform then load, on the events of the bucket (an extraction
 * marker, a processed object) and on an interval, so a missed event only waits for the next sweep.
 * One cycle at a time; events during a cycle ask for one more.
 */

export interface TotesysProcessingOptions {
  s3: S3Client;
  bucket: string;
  warehouse: Warehouse;
  logger: Logger;
  /** The stack's object-created events (keys in the pipeline's bucket). */
  onObjectCreated?: (listener: (key: string) => void) => void;
  /** The sweep interval (default 10 s). */
  intervalMs?: number;
  /** When a failed run or object is tried again (default: the invoice loader's rule). */
  rule?: RetryRule;
}

export interface TotesysProcessing {
  /** Runs a cycle now (or joins the one running and the one after it). */
  runNow(): Promise<{ transform: TransformSweep; load: CdcLoadResult[] }>;
  stop(): Promise<void>;
}

export function startTotesysProcessing(options: TotesysProcessingOptions): TotesysProcessing {
  const { s3, bucket, warehouse, logger } = options;
  const deps = { s3, bucket, warehouse, logger };
  const rule = options.rule ?? DEFAULT_RETRY_RULE;
  const abort = new AbortController();
  let running: Promise<{ transform: TransformSweep; load: CdcLoadResult[] }> | undefined;
  let again = false;

  const cycle = async () => {
    const transform = await transformCycle(deps, rule);
    const load = await loadCycle(deps, rule);
    const loaded = load.filter((r) => r.status === 'loaded').length;
    if (transform.transformed.length > 0 || loaded > 0)
      logger.info({ runs: transform.transformed.length, objectsLoaded: loaded }, 'totesys processed');
    return { transform, load };
  };
  const runNow = (): Promise<{ transform: TransformSweep; load: CdcLoadResult[] }> => {
    if (running) {
      again = true;
      return running;
    }
    running = cycle().finally(() => {
      running = undefined;
      if (again && !abort.signal.aborted) {
        again = false;
        void runNow().catch((err) => logger.error({ err: errorMessage(err) }, 'totesys processing failed'));
      }
    });
    return running;
  };
  const trigger = () => {
    runNow().catch((err) => logger.error({ err: errorMessage(err) }, 'totesys processing failed'));
  };

  options.onObjectCreated?.((key) => {
    if ((key.startsWith(INGESTION_RUNS_PREFIX) && key.endsWith('.json')) || tableOfKey(key)) trigger();
  });
  const timer = (async () => {
    while (!abort.signal.aborted) {
      trigger();
      await sleep(options.intervalMs ?? 10_000, abort.signal);
    }
  })();

  return {
    runNow,
    async stop() {
      abort.abort();
      await timer;
      await running?.catch(() => undefined);
    },
  };
}
