import http, { type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from '#adapters/config';
import { KinesisLineWriter, type KinesisLineWriterStats } from '#adapters/kinesis-writer';
import type { Logger } from '#adapters/logger';
import type { Warehouse } from '#adapters/warehouse';
import { createPostgresWarehouse } from '#adapters/warehouse-postgres';
import { createMartRefresher } from '#analytics/marts';
import { createRateMeter, type RateMeter, withRateMeter } from '#analytics/rate-meter';
import { createAnalyticsRouter, createDashboardRouter } from '#analytics/router';
import { createApp } from '#api/app';
import { createApiDeps, withWrittenHook } from '#api/deps';
import { createLoader, type Loader, type LoadResult } from '#batch/loader/index';
import { migrate } from '#batch/migrate';
import { startTotesysCapture } from '#cdc/totesys/capture';
import { PROCESSED_PREFIX } from '#cdc/transform';
import { startTotesysProcessing } from '#cdc/transform-load';
import type { WriteBilling } from '#core/serving';
import { crawlAfterWrite } from '#lake/crawler';
import type { StreamPoller } from '#local/poller';
import { type LocalStack, type StackOptions, startStack } from '#local/stack';
import {
  type ConsumerProcess,
  ConsumerProcessError,
  type ConsumerProcessOptions,
  type ConsumerStatus,
  startConsumerProcess,
} from './consumer-process.ts';
import { startLake } from './lake-stage.ts';
import { startStreamConsumer } from './stream-consumer.ts';

/** Everything `npm start` runs in local mode, wired the way Lambda would run it on AWS. */
export interface Pipeline {
  stack: LocalStack;
  apiUrl: string;
  dashboardUrl: string;
  warehouse: Warehouse;
  loader: Loader;
  /** The consumer's poller: idle() and stop() reach it wherever it runs. */
  poller: StreamPoller;
  /** Where the consumer runs and how it is doing (restarts, last exit). */
  consumer: PipelineConsumer;
  rate: RateMeter;
  /**
   * What AWS would bill so far: the API's Kinesis PUT payload units and the consumer's DynamoDB
   * write request units (undefined where the wired writer or sink does not count them).
   */
  billing(): { kinesis?: KinesisLineWriterStats; dynamodb?: WriteBilling };
  stop(): Promise<void>;
}

export interface PipelineOptions {
  config: Config;
  logger: Logger;
  fresh?: boolean;
  emulators?: StackOptions['emulators'];
  /** Whether the loader sweeps on its interval (tests drive it by hand). Default true. */
  scheduleLoads?: boolean;
  /** Whether the totesys source, its simulator and its change capture run. Default true. */
  totesys?: boolean;
  /**
   * Where the stream consumer (poller + handler) runs: `child` (default, what `npm start` runs) is
   * a process of its own, supervised and restarted (cli/consumer-process.ts), so its event loop is
   * not shared; `in-process` runs it here.
   */
  consumer?: 'child' | 'in-process';
  /** The child's entry module and restart bound; the fault suite wraps the entry to inject faults. */
  consumerProcess?: Pick<ConsumerProcessOptions, 'entry' | 'restart'>;
}

/**
 * Loads as a person wants to follow them: one info line for what was loaded in the last interval, not
 * one per archive object (Firehose writes one every few seconds; the loader logs each at debug).
 */
export function loadSummary(
  logger: Logger,
  intervalMs = 60_000,
  now: () => number = () => performance.now(),
) {
  let since = now();
  let totals = { objects: 0, rowsLoaded: 0, rowsNew: 0, rowsRejected: 0 };
  const flush = () => {
    if (totals.objects > 0) {
      logger.info({ ...totals, seconds: Math.round((now() - since) / 1000) }, 'objects loaded');
    }
    since = now();
    totals = { objects: 0, rowsLoaded: 0, rowsNew: 0, rowsRejected: 0 };
  };
  return {
    record(result: LoadResult): void {
      totals.objects++;
      totals.rowsLoaded += result.rowsLoaded ?? 0;
      totals.rowsNew += result.rowsNew ?? 0;
      totals.rowsRejected += result.rowsRejected ?? 0;
      if (now() - since >= intervalMs) flush();
    },
    flush,
  };
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** API: the same express app API Gateway + Lambda runs, plus the dashboard and analytics routes. */
async function startApi(
  config: Config,
  stack: LocalStack,
  warehouse: Warehouse,
  logger: Logger,
  consumerStatus: () => ConsumerStatus | undefined,
  wakeConsumer: () => void,
) {
  const rate = createRateMeter();
  const apiDeps = createApiDeps(config, stack.clients, logger);
  const { store } = apiDeps;
  // /health answers 200 while the API works; the consumer's state rides along for `stack status`.
  apiDeps.health = async () => {
    await store.ping();
    return { consumer: consumerStatus() ?? { state: 'starting' } };
  };
  const kinesisWriter = apiDeps.writer instanceof KinesisLineWriter ? apiDeps.writer : undefined;
  apiDeps.writer = withWrittenHook(withRateMeter(apiDeps.writer, rate), wakeConsumer);
  apiDeps.publicRoutes = (router) => router.use(createDashboardRouter());
  apiDeps.extraRoutes = (router) => router.use(createAnalyticsRouter({ db: warehouse, rate, logger }));
  const app = createApp(apiDeps);
  const apiServer = http.createServer(app);
  // Producers keep connections open between batches; Node's 5 s default would drop them mid-run.
  apiServer.keepAliveTimeout = 65_000;
  apiServer.headersTimeout = 66_000;
  const apiPort = await listen(apiServer, config.host, config.api.port);
  const stop = () =>
    new Promise<void>((resolve) => {
      apiServer.close(() => resolve());
      apiServer.closeAllConnections();
    });
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const apiUrl = `http://${host}:${apiPort}`;
  const dashboardUrl = `${apiUrl}/dashboard`;
  return { rate, kinesisWriter, apiUrl, dashboardUrl, stop };
}

/** Where the stream consumer runs, as the rest of the pipeline sees it. */
export type PipelineConsumer = Pick<ConsumerProcess, 'poller' | 'billing' | 'status' | 'onEvent' | 'send'>;

/**
 * The consumer in this process: one event loop shared with the API, Firehose, loader, dashboard and
 * totesys capture (the child's is its own). Nothing supervises it: it lives and dies with us.
 */
async function startConsumerHere(
  config: Config,
  stack: LocalStack,
  logger: Logger,
): Promise<PipelineConsumer> {
  const { poller, billing } = await startStreamConsumer(config, stack.clients, logger);
  return {
    poller,
    billing,
    status: () => ({ state: 'running', pid: process.pid, restarts: 0, lastExit: null }),
    onEvent: () => () => {},
    send() {
      throw new ConsumerProcessError('the consumer runs in this process: nothing to send a message to');
    },
  };
}

function startConsumer(opts: PipelineOptions, stack: LocalStack): Promise<PipelineConsumer> {
  const { config, logger } = opts;
  if (opts.consumer === 'in-process') return startConsumerHere(config, stack, logger);
  return startConsumerProcess({ config, logger, ...opts.consumerProcess });
}

/** Least time between two mart rebuilds under npm start (analytics/marts.ts says why). */
export const MART_REFRESH_GAP_MS = 10_000;

/** Batch path: S3 notifications plus a periodic sweep; marts rebuilt after loads (coalesced). */
function startBatchPath(
  opts: PipelineOptions,
  stack: LocalStack,
  warehouse: Warehouse,
  stops: Array<() => Promise<void>>,
): Loader {
  const { config, logger } = opts;
  // The rebuilds are background work: a session of their own, at background priority (its
  // PostgreSQL process niced, no parallel workers), so they give way to the loads and the stream.
  const martSessions = createPostgresWarehouse({
    connectionString: stack.endpoints.postgres,
    logger,
    max: 1,
    background: true,
  });
  stops.push(() => martSessions.close());
  const marts = createMartRefresher(martSessions, {
    onError: (err) => logger.error({ err }, 'mart refresh failed'),
    // The dashboard's marts may trail by seconds; the loader keeping up with the stream may not.
    minGapMs: MART_REFRESH_GAP_MS,
  });
  const loads = loadSummary(logger);
  const lake = startLake({ s3: stack.clients.s3, bucket: config.names.bucket, warehouse, logger });
  const loader = createLoader({
    s3: stack.clients.s3,
    bucket: config.names.bucket,
    warehouse,
    logger,
    lines: lake.lines,
    // Not awaited: a full rebuild takes seconds, and the next object must not wait for it.
    hooks: {
      afterLoad: (result) => {
        loads.record(result);
        void marts.request();
      },
    },
  });
  stack.onObjectCreated((key) => loader.notify(key));
  if (opts.scheduleLoads !== false) loader.start(config.loadIntervalSeconds);
  // Stopped in reverse: the loader first, then the rebuild in flight, before the warehouse closes.
  stops.push(() => marts.idle());
  stops.push(async () => loads.flush());
  stops.push(() => lake.idle());
  stops.push(() => loader.stop());
  const totesys = startTotesysProcessing({
    s3: stack.clients.s3,
    bucket: config.names.bucket,
    warehouse,
    logger,
    onObjectCreated: (listener) => stack.onObjectCreated(listener),
    intervalMs: config.loadIntervalSeconds * 1000,
  });
  stops.push(() => totesys.stop());
  // The catalog follows the totesys transform's Parquet as it does the lake's lines (cli/lake-stage.ts).
  stack.onObjectCreated((key) => {
    if (key.startsWith(PROCESSED_PREFIX))
      void crawlAfterWrite(stack.clients.s3, config.names.bucket, [PROCESSED_PREFIX], logger).catch(
        () => undefined,
      );
  });
  return loader;
}

export async function startPipeline(opts: PipelineOptions): Promise<Pipeline> {
  const { config, logger } = opts;
  const stack = await startStack({
    config,
    logger,
    ...(opts.fresh ? { fresh: true } : {}),
    ...(opts.emulators ? { emulators: opts.emulators } : {}),
  });
  const stops: Array<() => Promise<void>> = [() => stack.stop()];
  const stopAll = async () => {
    for (const stop of stops.reverse()) {
      try {
        await stop();
      } catch (err) {
        logger.error({ err }, 'pipeline part did not stop cleanly');
      }
    }
    stops.length = 0;
  };
  try {
    // The consumer needs only the stack (endpoints.json): its process starts while the warehouse
    // migrates and the API starts. Stopped after them, before the stack (the Firehose) stops.
    let consumer: PipelineConsumer | undefined;
    const consumerStarting = startConsumer(opts, stack).then((c) => {
      consumer = c;
      return c;
    });
    consumerStarting.catch(() => {}); // awaited below; this only keeps an early failure from being "unhandled"
    stops.push(async () => (await consumerStarting.catch(() => undefined))?.poller.stop());
    const warehouse = createPostgresWarehouse({ connectionString: stack.endpoints.postgres, logger });
    stops.push(() => warehouse.close());
    await migrate(warehouse, logger);

    const api = await startApi(
      config,
      stack,
      warehouse,
      logger,
      () => consumer?.status(),
      () => consumer?.poller.wake(),
    );
    stops.push(api.stop);
    const { rate, kinesisWriter, apiUrl, dashboardUrl } = api;
    const started = await consumerStarting;
    const { poller } = started;

    const loader = startBatchPath(opts, stack, warehouse, stops);

    // totesys: the seeded operational source, its simulator and the change capture (docs/totesys.md).
    if (opts.totesys !== false) {
      const capture = await startTotesysCapture({
        config,
        s3: stack.clients.s3,
        logger,
        localUrl: stack.endpoints.totesys,
      });
      stops.push(() => capture.stop());
    }

    await stack.publish({ api: apiUrl, dashboard: dashboardUrl });
    const billing = () => {
      const kinesis = kinesisWriter?.stats();
      const dynamodb = consumer?.billing();
      return { ...(kinesis ? { kinesis } : {}), ...(dynamodb ? { dynamodb } : {}) };
    };
    return {
      stack,
      apiUrl,
      dashboardUrl,
      warehouse,
      loader,
      poller,
      consumer: started,
      rate,
      billing,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
