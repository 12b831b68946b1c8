import { Logger } from '@aws-lambda-powertools/logger';
import type { EventBridgeEvent, S3Event, ScheduledEvent } from 'aws-lambda';
import { clientsFromConfig } from '#adapters/clients';
import { ConfigError, config } from '#adapters/config';
import { createLogger } from '#adapters/logger';
import { createRedshiftWarehouse } from '#adapters/warehouse-redshift';
import { createLakeSink } from '#lake/invoice-lines-sink';
import { BatchError } from '../errors.ts';
import { createLoader, type Loader, type LoadResult } from '../loader/index.ts';
import { migrate } from '../migrate.ts';

/**
 * Lambda entry: loads the objects an S3 notification or EventBridge "Object Created" event names,
 * or sweeps archive/ and landing/ on a schedule, into Redshift through the Data API.
 * Needs the analytics/sql/migrations files bundled next to the handler (see docs/warehouse.md).
 */
const logger = new Logger({ serviceName: 'load-objects' });

type ObjectCreated = EventBridgeEvent<
  'Object Created',
  { bucket: { name: string }; object: { key: string } }
>;
export type LoadObjectsEvent = S3Event | ObjectCreated | ScheduledEvent;

let ready: Promise<Loader> | undefined;

function loader(): Promise<Loader> {
  ready ??= (async () => {
    const cfg = config();
    const { workgroup, database, secretArn, copyRoleArn } = cfg.redshift;
    if (!workgroup || !database)
      throw new ConfigError('RP_REDSHIFT_WORKGROUP and RP_REDSHIFT_DATABASE are required');
    const clients = clientsFromConfig(cfg);
    const warehouse = createRedshiftWarehouse({
      client: clients.redshiftData,
      workgroupName: workgroup,
      database,
      ...(secretArn ? { secretArn } : {}),
      ...(copyRoleArn ? { copyRoleArn } : {}),
    });
    // The loader logs through the pino port (object first, message second); Powertools' Logger takes
    // them the other way round, so it stays for this handler's own lines.
    const log = createLogger(cfg.logLevel, 'load-objects');
    await migrate(warehouse, log);
    // The lake's invoice lines (docs/lake.md): written after each commit; a failure keeps the load.
    const lake = createLakeSink({ store: { s3: clients.s3, bucket: cfg.names.bucket }, logger: log });
    return createLoader({ s3: clients.s3, bucket: cfg.names.bucket, warehouse, logger: log, lines: lake });
  })();
  ready.catch(() => {
    ready = undefined;
  });
  return ready;
}

/** The object keys an event names; none means "sweep". S3 event keys arrive URL-encoded. */
export function keysOf(event: LoadObjectsEvent): string[] {
  if ('Records' in event) {
    return event.Records.map((r) => decodeURIComponent(r.s3.object.key.replace(/\+/g, ' ')));
  }
  if (event['detail-type'] === 'Object Created') return [(event as ObjectCreated).detail.object.key];
  return [];
}

/** Objects that failed to load in this invocation (each stays 'failed' in the manifest with its error). */
export class LoadObjectsError extends BatchError {
  override name = 'LoadObjectsError';
  constructor(readonly failed: LoadResult[]) {
    super(`${failed.length} object(s) failed to load: ${failed.map((f) => f.key).join(', ')}`);
  }
}

export async function handler(event: LoadObjectsEvent): Promise<{ results: LoadResult[] }> {
  const l = await loader();
  const keys = keysOf(event);
  // An event's keys load together where the warehouse has a batch way (PostgreSQL); on Redshift,
  // one object per transaction (docs/warehouse.md).
  const results = keys.length === 0 ? await l.sweep() : await l.loadKeys(keys);
  for (const r of results) logger.info('load result', { ...r });
  const failed = results.filter((r) => r.status === 'failed');
  // A failed load stays 'failed' in the manifest and the next sweep retries it; failing the
  // invocation as well lets the event source's retry policy and DLQ see it.
  if (failed.length > 0) throw new LoadObjectsError(failed);
  return { results };
}
