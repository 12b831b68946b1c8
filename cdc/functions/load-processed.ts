import type { EventBridgeEvent, ScheduledEvent } from 'aws-lambda';
import { clientsFromConfig } from '#adapters/clients';
import { ConfigError, config } from '#adapters/config';
import { createLogger } from '#adapters/logger';
import { createRedshiftWarehouse } from '#adapters/warehouse-redshift';
import { createManifest } from '#batch/loader/manifest';
import { migrate } from '#batch/migrate';
import type { CdcLoadDeps, CdcLoadResult } from '../load.ts';
import { warehouseLagSeconds } from '../totesys/status.ts';
import { loadCycle } from '../transform-load.ts';
import { s3Zone } from '../zone.ts';

/**
 * Lambda entry: loads every processed totesys object not loaded yet into the three stars on Redshift
 * (a processed marker's "Object Created" event, or the schedule's sweep), then publishes the
 * warehouse's lag (an embedded-metric-format line) for the freshness alarm. A failed object is
 * recorded (load_manifest, processed/totesys/_state/load.json) and fails the invocation.
 */
export const LAG_METRIC = { namespace: 'RetailPipeline/Totesys', name: 'WarehouseLagSeconds' } as const;

export class LoadProcessedError extends Error {
  override name = 'LoadProcessedError';
}

let ready: Promise<CdcLoadDeps> | undefined;

function deps(): Promise<CdcLoadDeps> {
  ready ??= (async () => {
    const cfg = config();
    const { workgroup, database, secretArn, copyRoleArn } = cfg.redshift;
    if (!workgroup || !database || !copyRoleArn)
      throw new ConfigError(
        'RP_REDSHIFT_WORKGROUP, RP_REDSHIFT_DATABASE and RP_REDSHIFT_COPY_ROLE_ARN are required',
      );
    const clients = clientsFromConfig(cfg);
    const warehouse = createRedshiftWarehouse({
      client: clients.redshiftData,
      workgroupName: workgroup,
      database,
      copyRoleArn,
      ...(secretArn ? { secretArn } : {}),
    });
    const logger = createLogger(cfg.logLevel, 'load-processed');
    await migrate(warehouse, logger);
    return { s3: clients.s3, bucket: cfg.names.bucket, warehouse, logger, copyRoleArn };
  })();
  ready.catch(() => {
    ready = undefined;
  });
  return ready;
}

/** One CloudWatch embedded-metric-format line: the Lambda log turns it into the metric. */
export function lagMetricLine(seconds: number, at: Date): string {
  const metrics = [{ Name: LAG_METRIC.name, Unit: 'Seconds' }];
  const _aws = {
    Timestamp: at.getTime(),
    CloudWatchMetrics: [{ Namespace: LAG_METRIC.namespace, Dimensions: [['Source']], Metrics: metrics }],
  };
  return `${JSON.stringify({ _aws, Source: 'totesys', [LAG_METRIC.name]: seconds })}\n`;
}

export async function handler(
  _event: EventBridgeEvent<'Object Created', unknown> | ScheduledEvent,
): Promise<{ results: CdcLoadResult[]; lagSeconds: number | null }> {
  const d = await deps();
  const results = await loadCycle(d);
  const now = new Date();
  const lagSeconds = await warehouseLagSeconds(
    s3Zone(d.s3, d.bucket),
    await createManifest(d.warehouse).cdcObjects(),
    now,
  );
  if (lagSeconds !== null) process.stdout.write(lagMetricLine(lagSeconds, now));
  const failed = results.filter((r) => r.status === 'failed');
  if (failed.length > 0)
    throw new LoadProcessedError(`${failed.length} object(s) failed: ${failed.map((f) => f.key).join(', ')}`);
  return { results, lagSeconds };
}
