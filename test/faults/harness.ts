import { type ChildProcess, fork } from 'node:child_process';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createClients } from '#adapters/clients';
import { createPostgresWarehouse } from '#adapters/warehouse-postgres';
import { dynamoLineSource, type ReconcileReport, reconcile, warehouseLineSource } from '#batch/reconcile';
import type { Endpoints } from '#local/endpoints';
import { freePort } from '#local/ports';
import { EPHEMERAL_PORTS, scratchDataDir } from '#local/scratch';
import { createPoster } from '#producer/client';
import { createGenerator } from '#producer/generator';
import { createPacer } from '#producer/pace';
import { newRunId, openRunLog } from '#producer/run-log';
import { eventually } from '#test/helpers/stack';

const here = path.dirname(fileURLToPath(import.meta.url));
const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

/** The env of one pipeline under test: its own data dir, a fixed API port (the producer keeps its URL). */
export async function faultEnv(extra: Record<string, string> = {}): Promise<Record<string, string>> {
  return {
    ...EPHEMERAL_PORTS,
    RP_DATA_DIR: await scratchDataDir('rp-fault-'),
    RP_LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'fatal',
    RP_API_PORT: String(await freePort()),
    RP_FIREHOSE_BUFFER_SECONDS: '1',
    RP_LOAD_INTERVAL_SECONDS: '1',
    RP_POLL_BATCH_SIZE: '200',
    ...extra,
  };
}

export interface Runner {
  child: ChildProcess;
  apiUrl: string;
  endpoints: Endpoints;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  send(message: object): void;
  /** The next `done` message about `what`. */
  done(what: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** kill -9, then wait until it and the emulator process it had are gone. */
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

function pidsWithParent(ppid: number): Promise<number[]> {
  return fs.readdir('/proc').then(async (names) => {
    const out: number[] = [];
    for (const name of names) {
      if (!/^\d+$/.test(name)) continue;
      const stat = await fs.readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === ppid) out.push(Number(name));
    }
    return out;
  });
}

const alive = (pid: number) =>
  fs.access(`/proc/${pid}`).then(
    () => true,
    () => false,
  );

/** Waits until each process is gone from /proc; throws if one outlives the timeout. */
export async function waitGone(pids: number[], timeoutMs = 20_000): Promise<void> {
  for (const pid of pids) {
    await eventually(async () => ((await alive(pid)) ? undefined : true), {
      timeoutMs,
      what: `process ${pid} to exit`,
    });
  }
}

/** Starts test/faults/pipeline-runner.ts and waits until the pipeline is up. */
export async function startRunner(env: Record<string, string>, faultKill?: string): Promise<Runner> {
  const child = fork(path.join(here, 'pipeline-runner.ts'), [], {
    execArgv: ['--import', tsx],
    env: { ...process.env, ...env, FAULT_KILL: faultKill ?? '' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const messages: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  child.on('message', (m: Record<string, unknown>) => {
    messages.push(m);
    for (const w of waiters.splice(0)) w();
  });
  const next = async (pred: (m: Record<string, unknown>) => boolean, timeoutMs: number, what: string) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = messages.findIndex(pred);
      if (i >= 0) return messages.splice(i, 1)[0] as Record<string, unknown>;
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`runner exited waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 500));
        waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  };
  const ready = await next((m) => m.type === 'ready', 120_000, 'the pipeline to start');
  return {
    child,
    apiUrl: ready.apiUrl as string,
    endpoints: ready.endpoints as Endpoints,
    exited,
    send: (m) => child.send(m),
    done: (what, timeoutMs = 60_000) => next((m) => m.type === 'done' && m.what === what, timeoutMs, what),
    async kill9() {
      const pid = child.pid as number;
      const kids = await pidsWithParent(pid);
      child.kill('SIGKILL');
      await exited;
      // The emulator process closes its databases when its parent vanishes; wait for it.
      await waitGone(kids);
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.send({ type: 'stop' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export interface ProduceOptions {
  lines: number;
  rate: number;
  seed: number;
  /**
   * Added to the generator's first invoice number, so runs in one data dir never reuse a key (the
   * same key with other content would be a conflict, not a fault to survive).
   */
  invoiceOffset?: number;
  signal?: AbortSignal;
  /** Called with each batch the API accepted, after the run log has it. */
  onAccepted?: (lines: number) => void;
}

export interface Produced {
  runId: string;
  accepted: number;
  failed: number;
  rejected: number;
  retried: number;
}

/** The generator's first invoice number (producer/generator.ts), the base of `invoiceOffset`. */
const FIRST_INVOICE = 536_365;

/**
 * Simulated lines posted to the API, recorded in a run log under <dataDir>/runs as `npm start` does.
 * The header holds what rebuilds the lines (seed, count, first invoice): aggregates.ts needs them.
 */
export async function produce(apiUrl: string, dataDir: string, opts: ProduceOptions): Promise<Produced> {
  const runId = newRunId('fault');
  const firstInvoiceNo = FIRST_INVOICE + (opts.invoiceOffset ?? 0);
  const log = await openRunLog(path.join(dataDir, 'runs'), runId, {
    kind: 'simulate',
    target: apiUrl,
    seed: opts.seed,
    lines: opts.lines,
    firstInvoiceNo,
  });
  const poster = createPoster({
    target: apiUrl,
    batchSize: 100,
    maxInFlight: 4,
    // A producer that rides out a pipeline restart (>= ~100 s of retries, not the default ~11-23 s):
    // how long a restart takes on a busy machine is not what these tests measure.
    maxRetries: 60,
    retryMaxMs: 4000,
    onAccepted: async (lines) => {
      await log.appendBatch(lines);
      opts.onAccepted?.(lines.length);
    },
  });
  const generator = createGenerator({ seed: opts.seed, firstInvoiceNo });
  const pacer = createPacer({ rate: opts.rate, ...(opts.signal ? { signal: opts.signal } : {}) });
  try {
    for (let i = 0; i < opts.lines; i++) {
      await pacer.wait();
      await poster.send(generator.next());
    }
  } catch (err) {
    if (!(err instanceof Error && err.name === 'AbortError')) throw err;
  }
  const out = await poster.flush();
  await log.close(out);
  return { runId, accepted: out.accepted, failed: out.failed, rejected: out.rejected, retried: out.retried };
}

export async function reconcileOnce(dataDir: string, endpoints: Endpoints): Promise<ReconcileReport> {
  const clients = createClients({
    region: endpoints.region,
    endpoints: { dynamodb: endpoints.dynamodb },
    local: true,
  });
  const warehouse = createPostgresWarehouse({ connectionString: endpoints.postgres, max: 1 });
  try {
    return await reconcile({
      runLogDir: path.join(dataDir, 'runs'),
      sources: [
        dynamoLineSource({ client: clients.dynamodb, table: endpoints.names.table }),
        warehouseLineSource(warehouse),
      ],
      sampleLimit: 5,
    });
  } finally {
    clients.destroy();
    await warehouse.close();
  }
}

/**
 * Reconciles until nothing is missing (the batch path lags by the Firehose buffer and a sweep), or
 * the time is up; returns the last report either way so the test asserts on real figures.
 */
export async function reconcileWhenSettled(
  dataDir: string,
  endpoints: Endpoints,
  timeoutMs = 90_000,
): Promise<ReconcileReport> {
  let last: ReconcileReport | undefined;
  try {
    return await eventually(
      async () => {
        last = await reconcileOnce(dataDir, endpoints);
        // A wrong total does not heal by waiting: stop there and let the test show it.
        return last.ok || last.stores.some((s) => s.mismatched > 0) ? last : undefined;
      },
      { timeoutMs, intervalMs: 1000, what: 'every accepted line in both stores' },
    );
  } catch (err) {
    if (last) return last;
    throw err;
  }
}

/**
 * The figures a fault test asserts on, in one line for the failure message. No duplicate count:
 * both stores hold a line under its key (DynamoDB item key, the fact's primary key), where a second
 * copy cannot exist; the counters that can count a line twice are the aggregates (aggregates.ts).
 */
export function brief(r: ReconcileReport): string {
  return JSON.stringify({
    accepted: r.accepted.lines,
    stores: r.stores.map((s) => ({
      store: s.store,
      lines: s.lines,
      missing: s.missing,
      mis: s.mismatched,
      extra: s.extra,
    })),
    samples: r.stores.map((s) => ({ missing: s.samples.missing, mismatched: s.samples.mismatched })),
  });
}
