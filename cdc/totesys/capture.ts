import type { S3Client } from '@aws-sdk/client-s3';
import type pg from 'pg';
import type { Config } from '#adapters/config';
import type { Logger } from '#adapters/logger';
import { errorMessage, sleep } from '#core/resilience';
import { s3Zone } from '../zone.ts';
import { resolveSourceConnection, type SourceConnection } from './connection.ts';
import { ExtractError, type ExtractRun, extractOnce } from './extract.ts';
import { ensureSeededSource } from './seed.ts';
import { runSimulator } from './simulator.ts';
import { createSourcePool, readChanges } from './source.ts';

/**
 * What `npm start` runs for the totesys source: the local source seeded once, the business simulator,
 * and the extract on a timer. An outage gets one warning when it starts and one line when it ends,
 * not one per tick; the state object records it for `totesys status`; the next good run catches up.
 */
export interface TotesysCaptureOptions {
  config: Config;
  s3: S3Client;
  logger: Logger;
  /** endpoints.json `totesys`: the local source, used when no other source is configured. */
  localUrl: string | undefined;
  /** Whether the extract runs on its interval (tests drive it by hand). Default true. */
  schedule?: boolean;
  /** Whether the simulator runs (local source only). Default: when RP_TOTESYS_SIMULATE_RATE > 0. */
  simulate?: boolean;
}

export interface TotesysCapture {
  source: SourceConnection['kind'];
  /** One extract run now, after any in flight; rejects with an ExtractError when it fails. */
  extractNow(): Promise<ExtractRun>;
  stop(): Promise<void>;
}

export function sourcePool(connection: SourceConnection): pg.Pool {
  return createSourcePool(connection.kind === 'secret' ? connection.pool : connection.connectionString);
}

export async function startTotesysCapture(opts: TotesysCaptureOptions): Promise<TotesysCapture> {
  const { config, logger } = opts;
  const connection = await resolveSourceConnection(config, opts.localUrl);
  const pool = sourcePool(connection);
  // A dropped idle connection (the source restarting) must not crash the process.
  pool.on('error', (err) => logger.debug({ err: errorMessage(err) }, 'totesys source connection lost'));
  const controller = new AbortController();
  const running: Array<Promise<unknown>> = [];
  try {
    // Only the local source is ours to create and seed; any other source is read, never written.
    if (connection.kind === 'local') {
      const seeded = await ensureSeededSource(pool, config.totesys.seed);
      if (seeded.seeded)
        logger.info({ rows: seeded.rows, seed: config.totesys.seed }, 'totesys source seeded');
    }
  } catch (err) {
    await pool.end();
    throw err;
  }

  const extractor = serialExtractor(pool, opts, config);
  if (opts.schedule !== false) running.push(extractLoop(extractor, config, controller.signal));
  const rate = config.totesys.simulateRate;
  if (connection.kind === 'local' && (opts.simulate ?? rate > 0) && rate > 0) {
    running.push(runLocalSimulator(pool, rate, config.totesys.seed, logger, controller.signal));
  }
  let stopping: Promise<void> | undefined;
  return {
    source: connection.kind,
    extractNow: () => extractor.run(),
    stop() {
      stopping ??= (async () => {
        controller.abort();
        await Promise.allSettled(running);
        await extractor.idle();
        await pool.end();
      })();
      return stopping;
    },
  };
}

/** Runs extracts one at a time (the timer and a caller may ask together) and logs outages once. */
function serialExtractor(pool: pg.Pool, opts: TotesysCaptureOptions, config: Config) {
  const { logger } = opts;
  const zone = s3Zone(opts.s3, config.names.bucket);
  const overlapMicros = BigInt(Math.round(config.totesys.overlapSeconds * 1e6));
  let tail: Promise<unknown> = Promise.resolve();
  let outage: { since: number; stage: string } | undefined;
  const once = async (): Promise<ExtractRun> => {
    try {
      const run = await extractOnce({ read: (bounds) => readChanges(pool, bounds), zone, overlapMicros });
      if (outage) {
        const seconds = Math.round((performance.now() - outage.since) / 1000);
        logger.info({ seconds, rows: run.rows, runId: run.runId }, 'totesys extract recovered, caught up');
        outage = undefined;
      } else if (run.rows > 0) {
        logger.debug({ rows: run.rows, runId: run.runId }, 'totesys extract');
      }
      return run;
    } catch (err) {
      const stage = err instanceof ExtractError ? err.stage : 'zone';
      if (!outage) {
        logger.warn(
          { stage, err: errorMessage(err), retryEverySeconds: config.totesys.extractSeconds },
          'totesys extract failing; retrying on its interval (see: retail-pipeline totesys status)',
        );
        outage = { since: performance.now(), stage };
      }
      throw err;
    }
  };
  return {
    run(): Promise<ExtractRun> {
      const next = tail.then(once, once);
      tail = next.catch(() => undefined);
      return next;
    },
    idle: () => tail,
  };
}

async function extractLoop(
  extractor: { run(): Promise<ExtractRun> },
  config: Config,
  signal: AbortSignal,
): Promise<void> {
  while (!signal.aborted) {
    // Failures are logged (once per outage) and recorded by the extractor; the loop keeps going.
    await extractor.run().catch(() => undefined);
    await sleep(config.totesys.extractSeconds * 1000, signal);
  }
}

async function runLocalSimulator(
  pool: pg.Pool,
  rate: number,
  seed: number,
  logger: Logger,
  signal: AbortSignal,
): Promise<void> {
  let failing = false;
  // Another seed than the data's: the simulator's choices need not repeat the seed's.
  await runSimulator({
    pool,
    rate,
    seed: seed + Date.now(),
    signal,
    onChange: () => {
      failing = false;
    },
    onError: (err) => {
      if (!failing) logger.warn({ err: errorMessage(err) }, 'totesys simulator cannot write the source');
      failing = true;
    },
  });
}
