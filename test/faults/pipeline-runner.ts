/**
 * The pipeline as `npm start --no-simulate` runs it (cli/pipeline.ts), in a child process the fault
 * tests can SIGKILL, plus fault injection driven over IPC. The stream consumer is its own process, as
 * in `npm start`: its faults are injected there (consumer-runner.ts, its entry here).
 *
 *   env RP_*                       the config (data dir, ports)
 *   env FAULT_KILL                 `consumer-mid-batch:N`, `consumer-after-aggregate:N`: the consumer
 *                                  process SIGKILLs itself (consumer-runner.ts); the pipeline restarts it;
 *                                  `loader-mid-copy:N`: SIGKILL after N bytes of a COPY went to PostgreSQL
 *   message {type:'throttle', rate, calls}      the next `calls` DynamoDB writes: `rate` of them throttled, as many
 *                                               BatchWriteItems answered with half of them unprocessed
 *   message {type:'s3-down', ms}               every S3 call (this process's and the consumer's) fails for ms
 *   message {type:'restart-emulators', downMs} SIGKILL the emulator process, start it again on the same ports
 *   message {type:'restart-postgres-mid-copy', bytes, downMs}
 *                                               at the next COPY, after `bytes`: immediate shutdown
 *                                               (crash), restart on the same port and cluster
 *   message {type:'stop'}                      clean stop, exit 0
 * It answers {type:'ready', apiUrl} and {type:'done', what} when an injected fault has run its course,
 * and {type:'done', what:'consumer-exited' | 'consumer-restarted'} when the consumer process dies or
 * is back.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '#adapters/config';
import { createLogger } from '#adapters/logger';
import { type CopyStep, isCopyStep, isDeferredStep, type Step } from '#adapters/warehouse';
import { startPipeline } from '#cli/pipeline';
import { sleep } from '#core/resilience';
import { type EmulatorProcesses, startEmulatorProcesses } from '#local/emulator-process';
import { type RunningPostgres, startPostgres } from '#local/postgres';
import { waitGone } from './harness.ts';

type Message =
  | { type: 'throttle'; rate: number; calls: number }
  | { type: 's3-down'; ms: number }
  | { type: 'restart-emulators'; downMs: number }
  | { type: 'restart-postgres-mid-copy'; bytes: number; downMs: number }
  | { type: 'stop' };

const send = (m: object) => process.send?.(m);

const die = () => process.kill(process.pid, 'SIGKILL');

const config = loadConfig(process.env);
const logger = createLogger(config.logLevel, 'fault-runner');
const [killWhat, killAfterText] = (process.env.FAULT_KILL ?? '').split(':');
const killAfter = Number(killAfterText ?? '1');

const pipeline = await startPipeline({
  config,
  logger,
  consumerProcess: { entry: path.join(path.dirname(fileURLToPath(import.meta.url)), 'consumer-runner.ts') },
});
const { clients } = pipeline.stack;

// ----- the consumer: its own process, with its faults (consumer-runner.ts) --------------------------
// Its DynamoDB kills and throttling and its share of an S3 outage happen there, where its calls are
// made; what it reports comes back here and goes on to the test, with its exits and restarts.
pipeline.consumer.onEvent((event) => {
  if (event.type === 'message') send(event.message as object);
  else if (event.type === 'exited') send({ ...event, type: 'done', what: 'consumer-exited' });
  else if (event.start > 1) send({ type: 'done', what: 'consumer-restarted', pid: event.pid });
});

// ----- S3 outage --------------------------------------------------------------------------------------
let s3DownUntil = 0;
let s3Refused = 0;
class S3UnavailableError extends Error {
  override name = 'ServiceUnavailable';
  readonly $fault = 'server';
  readonly $metadata = { httpStatusCode: 503 };
}
clients.s3.middlewareStack.add(
  (next) => async (args) => {
    if (Date.now() < s3DownUntil) {
      s3Refused++;
      throw new S3UnavailableError('S3 is unavailable (injected)');
    }
    return next(args);
  },
  { step: 'initialize', name: 'faultS3' },
);

// ----- warehouse: kill or crash PostgreSQL in the middle of a COPY ------------------------------------
let pgCrash: { bytes: number; downMs: number } | undefined;
let restartedPg: RunningPostgres | undefined;
const pgDataDir = path.join(config.dataDir, 'postgres');
const pgPort = Number(new URL(pipeline.stack.endpoints.postgres).port);

async function crashPostgres(downMs: number): Promise<void> {
  const { clusterDir } = JSON.parse(await fs.readFile(path.join(pgDataDir, 'cluster.json'), 'utf8')) as {
    clusterDir: string;
  };
  const pid = Number.parseInt(
    (await fs.readFile(path.join(clusterDir, 'postmaster.pid'), 'utf8')).split('\n')[0] ?? '',
    10,
  );
  // SIGQUIT = immediate shutdown: no checkpoint, crash recovery at the next start.
  process.kill(pid, 'SIGQUIT');
  await waitGone([pid]);
  // The outage itself: how long the service stays down.
  await sleep(downMs);
  restartedPg = await startPostgres({
    dataDir: pgDataDir,
    host: config.host,
    port: pgPort,
    user: config.db.user,
    password: config.db.password,
    database: config.names.database,
    logger,
  });
  send({ type: 'done', what: 'restart-postgres' });
}

function tap(stream: Readable, limit: number, onLimit: () => void): Readable {
  let seen = 0;
  let fired = false;
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      if (!fired && seen >= limit) {
        fired = true;
        // Let this chunk reach the server first, so the COPY is really half-way.
        cb(null, chunk);
        setTimeout(onLimit, 20);
        return;
      }
      cb(null, chunk);
    },
  });
  stream.on('error', (err) => t.destroy(err));
  return stream.pipe(t);
}

const warehouse = pipeline.warehouse;
const transaction = warehouse.transaction.bind(warehouse);

/** The crash, armed: the first COPY whose stream passes its byte count fires it (a small COPY does not). */
function crashTap(copy: CopyStep, original: () => Readable): Step {
  return {
    ...copy,
    stream: () =>
      tap(original(), pgCrash?.bytes ?? Number.POSITIVE_INFINITY, () => {
        const crash = pgCrash;
        if (!crash) return; // another COPY fired it first
        pgCrash = undefined;
        crashPostgres(crash.downMs).catch((err: unknown) => {
          logger.error({ err }, 'postgres restart failed');
          send({ type: 'done', what: 'restart-postgres', error: String(err) });
        });
      }),
  };
}

/** Every COPY of a load, including those a deferred step decides inside the transaction. */
function patch(step: Step): Step {
  if (isDeferredStep(step)) return { ...step, build: async (tx) => (await step.build(tx)).map(patch) };
  if (!isCopyStep(step) || !step.stream) return step;
  const original = step.stream;
  if (killWhat === 'loader-mid-copy') return { ...step, stream: () => tap(original(), killAfter, die) };
  return pgCrash ? crashTap(step, original) : step;
}
warehouse.transaction = (steps: ReadonlyArray<Step>) => transaction(steps.map(patch));

// ----- emulator process restart -----------------------------------------------------------------------
let restartedEmulators: EmulatorProcesses | undefined;

async function childPids(): Promise<number[]> {
  const out: number[] = [];
  for (const name of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await fs.readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid !== process.pid) continue;
    const cmd = await fs.readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes('emulator-child')) out.push(Number(name));
  }
  return out;
}

async function restartEmulators(downMs: number): Promise<void> {
  const pids = await childPids();
  if (pids.length === 0) throw new Error('no emulator process found');
  for (const pid of pids) process.kill(pid, 'SIGKILL');
  await waitGone(pids);
  await sleep(downMs);
  const e = pipeline.stack.endpoints;
  const port = (url: string) => Number(new URL(url).port);
  restartedEmulators = await startEmulatorProcesses({
    host: config.host,
    ports: { kinesis: port(e.kinesis), dynamodb: port(e.dynamodb), s3: port(e.s3) },
    directories: {
      kinesis: path.join(config.dataDir, 'kinesis'),
      dynamodb: path.join(config.dataDir, 'dynamodb'),
      s3: path.join(config.dataDir, 's3'),
    },
    buckets: [config.names.bucket],
  });
  restartedEmulators.onObjectCreated((bucket, key) => {
    if (bucket === config.names.bucket) pipeline.loader.notify(key);
  });
  send({ type: 'done', what: 'restart-emulators' });
}

process.on('message', (m: Message) => {
  switch (m.type) {
    case 'throttle':
      pipeline.consumer.send(m);
      break;
    case 's3-down':
      pipeline.consumer.send(m);
      s3DownUntil = Date.now() + m.ms;
      setTimeout(() => send({ type: 'done', what: 's3-down', refused: s3Refused }), m.ms);
      break;
    case 'restart-emulators':
      restartEmulators(m.downMs).catch((err: unknown) =>
        send({ type: 'done', what: 'restart-emulators', error: String(err) }),
      );
      break;
    case 'restart-postgres-mid-copy':
      pgCrash = { bytes: m.bytes, downMs: m.downMs };
      break;
    case 'stop':
      void (async () => {
        await pipeline.stop();
        await restartedEmulators?.stop().catch(() => undefined);
        await restartedPg?.stop();
        process.exit(0);
      })();
      break;
  }
});
// The test runner died: do not outlive it.
process.on('disconnect', () => die());

send({ type: 'ready', apiUrl: pipeline.apiUrl, endpoints: pipeline.stack.endpoints });
