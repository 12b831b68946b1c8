import fs from 'node:fs/promises';
import path from 'node:path';
import {
  CreateTableCommand,
  DescribeTableCommand,
  ResourceNotFoundException,
} from '@aws-sdk/client-dynamodb';
import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  ResourceNotFoundException as KinesisNotFound,
} from '@aws-sdk/client-kinesis';
import { type Clients, createClients } from '#adapters/clients';
import type { Config } from '#adapters/config';
import { tableDefinition } from '#adapters/dynamo-table';
import type { Logger } from '#adapters/logger';
import { ARCHIVE_PREFIX } from '#core/bucket-layout';
import { type EmulatorUrls, startEmulatorProcesses } from './emulator-process.ts';
import { startDynamo, startKinesis, startS3 } from './emulators.ts';
import { type Endpoints, endpointsPath, writeEndpoints } from './endpoints.ts';
import { type LocalFirehose, startLocalFirehose } from './firehose.ts';
import { checkHealth, type ServiceHealth } from './health.ts';
import { acquirePidLock } from './pid-lock.ts';
import { startPostgres, wipePostgres } from './postgres.ts';
import { LOCAL_WORKGROUP, startLocalRedshiftData } from './redshift-data.ts';

export interface StackOptions {
  config: Config;
  logger: Logger;
  /** Wipe the data directory first. */
  fresh?: boolean;
  /**
   * Where kinesalite, dynalite and s3rver run: in child processes, one each (default: they and the
   * API, consumers and loader spread over the cores), or all in this process.
   */
  emulators?: 'child' | 'in-process';
}

interface Emulators {
  urls: EmulatorUrls;
  onObjectCreated(listener: (bucket: string, key: string) => void): void;
  stop(): Promise<void>;
}

async function startEmulators(config: Config, where: 'child' | 'in-process'): Promise<Emulators> {
  const { host, dataDir } = config;
  const directories = {
    kinesis: path.join(dataDir, 'kinesis'),
    dynamodb: path.join(dataDir, 'dynamodb'),
    s3: path.join(dataDir, 's3'),
  };
  const ports = { kinesis: config.ports.kinesis, dynamodb: config.ports.dynamodb, s3: config.ports.s3 };
  if (where === 'child') {
    const children = await startEmulatorProcesses({
      host,
      ports,
      directories,
      buckets: [config.names.bucket],
    });
    return { urls: children.urls, onObjectCreated: children.onObjectCreated, stop: () => children.stop() };
  }
  const [kinesis, dynamodb, s3] = await Promise.all([
    startKinesis({ host, port: ports.kinesis, directory: directories.kinesis }),
    startDynamo({ host, port: ports.dynamodb, directory: directories.dynamodb }),
    startS3({ host, port: ports.s3, directory: directories.s3, buckets: [config.names.bucket] }),
  ]);
  return {
    urls: { kinesis: kinesis.url, dynamodb: dynamodb.url, s3: s3.url },
    onObjectCreated: s3.onObjectCreated,
    async stop() {
      await Promise.all([kinesis.stop(), dynamodb.stop(), s3.stop()]);
    },
  };
}

export interface LocalStack {
  endpoints: Endpoints;
  clients: Clients;
  config: Config;
  /** In-process S3 event notifications for objects created in the pipeline's bucket. */
  onObjectCreated(listener: (key: string) => void): void;
  /** Adds keys (e.g. `api`) to endpoints.json. */
  publish(extra: Partial<Pick<Endpoints, 'api' | 'dashboard'>>): Promise<void>;
  health(): Promise<ServiceHealth[]>;
  /** Flushes Firehose, closes every emulator's database and stops PostgreSQL. Idempotent. */
  stop(): Promise<void>;
}

export class StackAlreadyRunningError extends Error {
  override name = 'StackAlreadyRunningError';
}

/** One stack per data directory: a pid lock, taken over when its owner died. */
function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  return acquirePidLock(path.join(dataDir, 'stack.pid'), (holder) =>
    holder === 'this process'
      ? new StackAlreadyRunningError(
          `a stack is already running on ${dataDir} in this process; stop it first`,
        )
      : new StackAlreadyRunningError(
          `a stack is already running on ${dataDir} (pid ${holder}); stop it first`,
        ),
  );
}

async function ensureStream(clients: Clients, name: string, shards: number): Promise<void> {
  try {
    await clients.kinesis.send(new DescribeStreamSummaryCommand({ StreamName: name }));
  } catch (err) {
    if (!(err instanceof KinesisNotFound)) throw err;
    await clients.kinesis.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
  }
  for (let i = 0; i < 100; i++) {
    const out = await clients.kinesis.send(new DescribeStreamSummaryCommand({ StreamName: name }));
    if (out.StreamDescriptionSummary?.StreamStatus === 'ACTIVE') return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`stream ${name} did not become ACTIVE`);
}

async function ensureTable(clients: Clients, name: string): Promise<void> {
  try {
    await clients.dynamodb.send(new DescribeTableCommand({ TableName: name }));
    return;
  } catch (err) {
    if (!(err instanceof ResourceNotFoundException)) throw err;
  }
  await clients.dynamodb.send(new CreateTableCommand(tableDefinition(name)));
  for (let i = 0; i < 100; i++) {
    const out = await clients.dynamodb.send(new DescribeTableCommand({ TableName: name }));
    if (out.Table?.TableStatus === 'ACTIVE') return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`table ${name} did not become ACTIVE`);
}

/**
 * Starts every emulator under one data directory, creates the stream, table, bucket and database,
 * waits until each answers, and writes endpoints.json. A second start on the same directory resumes.
 */
export async function startStack(opts: StackOptions): Promise<LocalStack> {
  const { config, logger } = opts;
  const dataDir = config.dataDir;
  const started = performance.now();
  if (opts.fresh) {
    await wipePostgres(path.join(dataDir, 'postgres'));
    await fs.rm(dataDir, { recursive: true, force: true });
  }
  await fs.mkdir(dataDir, { recursive: true });
  const unlock = await lockDataDir(dataDir);

  const running = startedServices(logger);
  const stopAll = running.stopAll;

  let clients: Clients | undefined;
  try {
    const host = config.host;
    const pgPromise = startPostgres({
      dataDir: path.join(dataDir, 'postgres'),
      host,
      port: config.ports.postgres,
      ...config.db,
      database: config.names.database,
      extraDatabases: [config.totesys.database],
      logger,
    });
    pgPromise.catch(() => {}); // awaited below; this only keeps an early failure from being "unhandled"
    // PostgreSQL starts in parallel with the others and stops last (stopAll runs in reverse order).
    running.add('postgres', async () => (await pgPromise).stop());
    const emulators = await startEmulators(config, opts.emulators ?? 'child');
    running.add('emulators', emulators.stop);
    const { kinesis, dynamodb, s3 } = emulators.urls;

    clients = createClients({
      region: config.region,
      endpoints: { kinesis, dynamodb, s3 },
      local: true,
    });
    await Promise.all([
      ensureStream(clients, config.names.stream, config.streamShards),
      ensureTable(clients, config.names.table),
    ]);

    const firehose = await startArchiveFirehose(config, clients, logger);
    running.add('firehose', firehose.stop);
    const postgres = await pgPromise;

    clients.destroy();
    clients = createClients({
      region: config.region,
      endpoints: { kinesis, dynamodb, s3, firehose: firehose.url },
      local: true,
    });
    const redshiftData = await startLocalRedshiftData({
      host,
      port: 0,
      connectionString: (database) => postgres.connectionStringFor(database),
      database: config.names.database,
      s3: clients.s3,
      logger,
    });
    running.add('redshift-data', redshiftData.stop);
    const endpoints: Endpoints = {
      kinesis,
      dynamodb,
      s3,
      firehose: firehose.url,
      postgres: postgres.connectionString,
      totesys: postgres.connectionStringFor(config.totesys.database),
      redshiftData: redshiftData.url,
      region: config.region,
      names: { ...config.names, workgroup: LOCAL_WORKGROUP },
      pid: process.pid,
      startedAt: new Date().toISOString(),
    };
    const health = await waitHealthy(endpoints);
    await writeEndpoints(dataDir, endpoints);
    logger.info(
      { ms: Math.round(performance.now() - started), services: health.map((h) => h.service) },
      'local stack up',
    );

    return stackHandle({ config, endpoints, clients, emulators, stopAll, unlock, logger });
  } catch (err) {
    clients?.destroy();
    await stopAll();
    await unlock();
    throw err;
  }
}

/** What has started so far, stopped in reverse order (Firehose flushes into S3 before S3 closes). */
function startedServices(logger: Logger) {
  const running: Array<{ name: string; stop: () => Promise<void> }> = [];
  return {
    add: (name: string, stop: () => Promise<void>) => running.push({ name, stop }),
    async stopAll(): Promise<void> {
      for (const r of running.reverse()) {
        try {
          await r.stop();
        } catch (err) {
          logger.error({ err, service: r.name }, 'service did not stop cleanly');
        }
      }
      running.length = 0;
    },
  };
}

function startArchiveFirehose(config: Config, clients: Clients, logger: Logger): Promise<LocalFirehose> {
  return startLocalFirehose({
    host: config.host,
    port: config.ports.firehose,
    s3: clients.s3,
    bucket: config.names.bucket,
    dataDir: config.dataDir,
    deliveryStreams: [
      {
        name: config.names.deliveryStream,
        prefix: ARCHIVE_PREFIX,
        bufferMiB: config.firehose.bufferMiB,
        bufferSeconds: config.firehose.bufferSeconds,
      },
    ],
    logger,
  });
}

/** The running stack as its users see it; stop() undoes everything startStack did, once. */
function stackHandle(s: {
  config: Config;
  endpoints: Endpoints;
  clients: Clients;
  emulators: Emulators;
  stopAll: () => Promise<void>;
  unlock: () => Promise<void>;
  logger: Logger;
}): LocalStack {
  const { config, endpoints, clients, emulators, stopAll, unlock, logger } = s;
  const dataDir = config.dataDir;
  const objectListeners: Array<(key: string) => void> = [];
  emulators.onObjectCreated((bucket, key) => {
    if (bucket !== config.names.bucket) return;
    for (const listener of objectListeners) listener(key);
  });
  let stopping: Promise<void> | undefined;
  return {
    endpoints,
    clients,
    config,
    onObjectCreated: (listener) => objectListeners.push(listener),
    async publish(extra) {
      Object.assign(endpoints, extra);
      await writeEndpoints(dataDir, endpoints);
    },
    health: () => checkHealth(endpoints),
    stop() {
      stopping ??= (async () => {
        await stopAll();
        clients.destroy();
        await fs.rm(endpointsPath(dataDir), { force: true });
        await unlock();
        logger.info('local stack stopped');
      })();
      return stopping;
    },
  };
}

async function waitHealthy(endpoints: Endpoints, timeoutMs = 15_000): Promise<ServiceHealth[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const health = await checkHealth(endpoints, 2000);
    const bad = health.filter((h) => !h.ok);
    if (bad.length === 0) return health;
    if (Date.now() > deadline) {
      throw new Error(`services not healthy: ${bad.map((b) => `${b.service} (${b.detail})`).join(', ')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
