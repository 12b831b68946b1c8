import type { ScheduledEvent } from 'aws-lambda';
import { clientsFromConfig } from '#adapters/clients';
import { config } from '#adapters/config';
import { createLogger } from '#adapters/logger';
import { errorMessage } from '#core/resilience';
import { sourcePool } from '../totesys/capture.ts';
import { resolveSourceConnection } from '../totesys/connection.ts';
import { type ExtractDeps, type ExtractRun, extractOnce } from '../totesys/extract.ts';
import { readChanges } from '../totesys/source.ts';
import { s3Zone } from '../zone.ts';

/**
 * Lambda entry: one change-capture run of the totesys source into ingestion/totesys/ (EventBridge
 * schedule). The source is RP_TOTESYS_SECRET_ARN's database; a failed run is recorded in the state
 * object (`totesys status`) and fails the invocation, which the Errors alarm watches.
 */
let ready: Promise<ExtractDeps> | undefined;

function deps(): Promise<ExtractDeps> {
  ready ??= (async () => {
    const cfg = config();
    const log = createLogger(cfg.logLevel, 'extract-changes');
    const pool = sourcePool(await resolveSourceConnection(cfg, undefined));
    // A dropped idle connection (the source restarting) must not end the execution environment.
    pool.on('error', (err) => log.debug({ err: errorMessage(err) }, 'totesys source connection lost'));
    const zone = s3Zone(clientsFromConfig(cfg).s3, cfg.names.bucket);
    const overlapMicros = BigInt(Math.round(cfg.totesys.overlapSeconds * 1e6));
    return { read: (bounds) => readChanges(pool, bounds), zone, overlapMicros };
  })();
  ready.catch(() => {
    ready = undefined;
  });
  return ready;
}

export async function handler(_event: ScheduledEvent): Promise<ExtractRun> {
  return extractOnce(await deps());
}
