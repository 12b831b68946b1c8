import type { S3Client } from '@aws-sdk/client-s3';
import type { Logger } from '#adapters/logger';
import type { Warehouse } from '#adapters/warehouse';
import { errorMessage, sleep } from '#core/resilience';
import { type CdcLoadResult, loadPending, tableOfKey } from './load.ts';
import { INGESTION_RUNS_PREFIX, type TransformSweep, transformPending } from './transform.ts';

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
}

export interface TotesysProcessing {
  /** Runs a cycle now (or joins the one running and the one after it). */
  runNow(): Promise<{ transform: TransformSweep; load: CdcLoadResult[] }>;
  stop(): Promise<void>;
}

export function startTotesysProcessing(options: TotesysProcessingOptions): TotesysProcessing {
  const { s3, bucket, warehouse, logger } = options;
  const deps = { s3, bucket, warehouse, logger };
  const abort = new AbortController();
  let running: Promise<{ transform: TransformSweep; load: CdcLoadResult[] }> | undefined;
  let again = false;

  const cycle = async () => {
    const transform = await transformPending(deps);
    const load = await loadPending(deps);
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
