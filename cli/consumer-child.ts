/**
 * Entry of the stream consumer's own process (`npm start` forks it: cli/consumer-process.ts). The
 * poller and the Lambda handler get an event loop of their own: in the pipeline's process they
 * shared one with the API, the local Firehose, the loader, the dashboard and the totesys capture,
 * whose delays (p99 0.75-1.4 s under load, docs/RELIABILITY.md) landed on every line's latency.
 *
 * Config comes from the parent (the same Config object it runs with), endpoints from the stack's
 * endpoints.json, log lines go back to the parent's logger over IPC. It stops when the parent asks,
 * and also when the parent dies (even by kill -9): no orphan keeps reading the stream.
 */
import { fileURLToPath } from 'node:url';
import { type Clients, createClients } from '#adapters/clients';
import { createLogger, type Logger } from '#adapters/logger';
import { errorMessage, sleep } from '#core/resilience';
import { readEndpoints } from '#local/endpoints';
import type { ChildMessage, ParentMessage, StartMessage } from './consumer-process.ts';
import { type StreamConsumer, startStreamConsumer } from './stream-consumer.ts';

/** What a wrapping entry (the fault suite's) may add; the production entry adds nothing. */
export interface ConsumerChildHooks {
  /** Called with the consumer's SDK clients before it starts (e.g. to add middleware). */
  clients?(clients: Clients, context: HookContext): void;
  /** A message the parent sent with ConsumerProcess.send(). */
  message?(message: unknown, context: HookContext): void;
}

export interface HookContext {
  /** 1 for the first process of this pipeline, 2 for the first restart, ... */
  start: number;
  /** Reaches the parent's ConsumerProcess.onEvent listeners as a `message` event. */
  send(message: object): void;
}

/** How long a child whose parent vanished may take to finish its batch before it just exits. */
const ORPHAN_STOP_MS = 5000;
/** How often changed poller stats and billing are pushed to the parent (its stats() reads them). */
const STATS_EVERY_MS = 100;

/**
 * A message to the parent. A parent killed with -9 may still look connected for a moment: the send
 * fails with EPIPE, which without a callback is an 'error' event nothing hears (the child would die
 * of it mid-batch instead of stopping on 'disconnect', which follows).
 */
const send = (message: ChildMessage) => {
  if (process.connected) process.send?.(message, () => {});
};

function firstMessage(): Promise<StartMessage> {
  return new Promise((resolve) => {
    const onMessage = (m: ParentMessage) => {
      if (m.type !== 'start') return;
      process.off('message', onMessage);
      resolve(m);
    };
    process.on('message', onMessage);
    send({ type: 'hello' });
  });
}

/** Log lines as JSON over IPC: the parent writes them through its own logger, at its own level. */
function ipcLogger(level: string): Logger {
  return createLogger(level, 'consumer', {
    format: 'json',
    destination: { write: (line: string) => send({ type: 'log', line }) },
  });
}

function pushStats(consumer: StreamConsumer): NodeJS.Timeout {
  let last = '';
  const timer = setInterval(() => {
    const snapshot = { stats: consumer.poller.stats(), billing: consumer.billing() };
    const text = JSON.stringify(snapshot);
    if (text === last) return;
    last = text;
    send({ type: 'stats', ...snapshot });
  }, STATS_EVERY_MS);
  timer.unref();
  return timer;
}

function serve(consumer: StreamConsumer, hooks: ConsumerChildHooks, context: HookContext, log: Logger) {
  const statsTimer = pushStats(consumer);
  let stopping: Promise<void> | undefined;
  const stop = (deadlineMs?: number) => {
    stopping ??= (async () => {
      clearInterval(statsTimer);
      const stopped = consumer.poller.stop();
      if (deadlineMs === undefined) await stopped;
      else await Promise.race([stopped, sleep(deadlineMs)]);
      send({ type: 'stopped' });
      process.exit(0);
    })().catch((err: unknown) => {
      log.error({ err }, 'consumer did not stop cleanly');
      process.exit(1);
    });
    return stopping;
  };
  process.on('message', (m: ParentMessage) => {
    if (m.type === 'stop') void stop();
    else if (m.type === 'wake') consumer.poller.wake();
    else if (m.type === 'hook') hooks.message?.(m.message, context);
    else if (m.type === 'idle') {
      consumer.poller.idle().then(
        () => send({ type: 'idle', id: m.id, stats: consumer.poller.stats(), billing: consumer.billing() }),
        (err: unknown) => send({ type: 'idle', id: m.id, error: errorMessage(err) }),
      );
    }
  });
  // The parent died (even by kill -9): the Firehose and the emulators went with it. Stop reading
  // now; a batch that cannot finish is redelivered to the next consumer (checkpoints, idempotency).
  process.on('disconnect', () => void stop(ORPHAN_STOP_MS));
  process.on('SIGTERM', () => void stop());
}

/** Runs the consumer until the parent stops it. A wrapping entry passes hooks; `npm start` none. */
export async function runConsumerChild(hooks: ConsumerChildHooks = {}): Promise<void> {
  // Ctrl-C reaches the whole process group; the parent stops us in its order (before the Firehose).
  process.on('SIGINT', () => {});
  const start = await firstMessage();
  const log = ipcLogger(start.logLevel);
  const context: HookContext = { start: start.start, send: (message) => send({ type: 'hook', message }) };
  try {
    const { config } = start;
    const endpoints = await readEndpoints(config.dataDir);
    if (endpoints.pid !== process.ppid) {
      throw new Error(`endpoints.json in ${config.dataDir} belongs to pid ${endpoints.pid}, not our parent`);
    }
    const { kinesis, dynamodb, s3, firehose } = endpoints;
    const clients = createClients({
      region: endpoints.region,
      endpoints: { kinesis, dynamodb, s3, firehose },
      local: true,
    });
    hooks.clients?.(clients, context);
    const consumer = await startStreamConsumer(config, clients, log);
    serve(consumer, hooks, context, log);
    send({ type: 'ready', pid: process.pid });
  } catch (err) {
    send({ type: 'failed', error: errorMessage(err) });
    process.exit(1);
  }
}

const invokedDirectly = process.argv[1] === fileURLToPath(import.meta.url);
if (invokedDirectly) await runConsumerChild();
