import type { EventBridgeEvent, ScheduledEvent } from 'aws-lambda';
import { clientsFromConfig } from '#adapters/clients';
import { config } from '#adapters/config';
import { createLogger } from '#adapters/logger';
import type { TransformDeps, TransformSweep } from '../transform.ts';
import { transformCycle } from '../transform-load.ts';

/**
 * Lambda entry: transforms every extraction run not transformed yet (an extraction marker's
 * "Object Created" event, or the schedule's sweep) into Parquet in processed/totesys/. A failed run
 * is recorded (processed/totesys/_state/transform.json) and fails the invocation (the Errors alarm).
 */
export class TransformRunsError extends Error {
  override name = 'TransformRunsError';
}

let deps: TransformDeps | undefined;

export async function handler(
  _event: EventBridgeEvent<'Object Created', unknown> | ScheduledEvent,
): Promise<TransformSweep & { resting?: string }> {
  const cfg = config();
  deps ??= {
    s3: clientsFromConfig(cfg).s3,
    bucket: cfg.names.bucket,
    logger: createLogger(cfg.logLevel, 'transform-runs'),
  };
  const sweep = await transformCycle(deps);
  if (sweep.failed) throw new TransformRunsError(`run ${sweep.failed.runId} failed: ${sweep.failed.error}`);
  return sweep;
}
