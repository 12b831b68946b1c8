import { type ChildProcess, fork } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Config } from '#adapters/config';
import type { Logger } from '#adapters/logger';
import { backoffMs, sleep } from '#core/resilience';
import type { WriteBilling } from '#core/serving';
import { type PollerStats, PollerStoppedError, type StreamPoller } from '#local/poller';

/**
 * The stream consumer in a process of its own (cli/consumer-child.ts), supervised from the
 * pipeline's process. A consumer that dies is restarted: its checkpoints survive, so the new one
 * resumes at the first record not checkpointed and the redelivery is idempotent (the same
 * guarantee as a kill -9 of `npm start`). One that keeps dying (more than `restart.max` exits
 * within `restart.windowMs`) is left down, loudly: an error in the log, `failed` in the API's
 * /health and a DOWN `consumer` row in `retail-pipeline stack status`. Lines keep being accepted
 * onto the stream meanwhile; the next `npm start` resumes them.
 */

export interface StartMessage {
  type: 'start';
  config: Config;
  logLevel: string;
  start: number;
}
export type ParentMessage =
  | StartMessage
  | { type: 'stop' }
  | { type: 'wake' }
  | { type: 'idle'; id: number }
  | { type: 'hook'; message: unknown };
type Snapshot = { stats: PollerStats; billing: WriteBilling | undefined };
export type ChildMessage =
  | { type: 'hello' }
  | { type: 'ready'; pid: number }
  | { type: 'failed'; error: string }
  | { type: 'log'; line: string }
  | ({ type: 'stats' } & Snapshot)
  | ({ type: 'idle'; id: number; error?: undefined } & Snapshot)
  | { type: 'idle'; id: number; error: string }
  | { type: 'hook'; message: unknown }
  | { type: 'stopped' };

export type ConsumerState = 'starting' | 'running' | 'restarting' | 'failed' | 'stopped';

export interface ConsumerExit {
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  at: string;
}

export interface ConsumerStatus {
  state: ConsumerState;
  pid: number | null;
  /** Processes started after the first one. */
  restarts: number;
  lastExit: ConsumerExit | null;
}

export type ConsumerEvent =
  | { type: 'started'; pid: number; start: number }
  | ({ type: 'exited'; next: 'restart' | 'give-up' } & ConsumerExit)
  /** A message a wrapping child entry sent (consumer-child.ts hooks). */
  | { type: 'message'; message: unknown };

export interface ConsumerProcess {
  /** idle() and stop() act on the child; stats() is its last snapshot (pushed every 100 ms). */
  poller: StreamPoller;
  billing(): WriteBilling | undefined;
  status(): ConsumerStatus;
  onEvent(listener: (event: ConsumerEvent) => void): () => void;
  /** Hands a message to the child entry's hooks (the fault suite's; the production entry has none). */
  send(message: object): void;
}

export interface ConsumerProcessOptions {
  config: Config;
  logger: Logger;
  /** The child's entry module (default cli/consumer-child.ts); a wrapper may add hooks. */
  entry?: string;
  /** Give up after more than `max` exits within `windowMs` (default 5 within 60 s). */
  restart?: { max: number; windowMs: number };
  /** How long a clean stop may take before the child is killed (default 30 s). */
  stopTimeoutMs?: number;
}

export class ConsumerProcessError extends Error {
  override name = 'ConsumerProcessError';
}

const here = path.dirname(fileURLToPath(import.meta.url));
const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
/** Between restarts: 0.25 s, doubling to 5 s, so a consumer that dies at once does not spin. */
const RESTART_BACKOFF = { baseMs: 250, maxMs: 5000, jitter: 'none' } as const;

/** A log line of the child (pino JSON) written through the parent's logger. */
function relayLog(logger: Logger, line: string): void {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    logger.warn({ line }, 'unreadable consumer log line');
    return;
  }
  const { level, msg, time: _t, pid: _p, hostname: _h, name: _n, ...fields } = entry;
  const label = logger.levels.labels[Number(level)] ?? 'info';
  const write = logger[label as 'info'] ?? logger.info;
  write.call(logger, fields, typeof msg === 'string' ? msg : 'consumer log');
}

interface Child {
  process: ChildProcess;
  pid: number;
  exited: Promise<ConsumerExit>;
}

/** The supervisor's own state, shared by its start, restart and stop paths. */
class Supervisor {
  state: ConsumerState = 'starting';
  /** The child serving (ready). */
  child: Child | undefined;
  /** The last child forked, ready or still starting: what stop() must not leave behind. */
  forked: { process: ChildProcess; exited: Promise<ConsumerExit> } | undefined;
  starts = 0;
  lastExit: ConsumerExit | null = null;
  snapshot: Snapshot | undefined;
  readonly exits: number[] = [];
  readonly listeners = new Set<(event: ConsumerEvent) => void>();
  readonly idles = new Map<number, { resolve(): void; reject(err: Error): void }>();
  readonly stopped = new AbortController();
  nextIdle = 0;
  /** A wake sent in this turn of the event loop: the others of the turn add nothing to it. */
  wakeSent = false;

  constructor(readonly o: ConsumerProcessOptions & { restart: { max: number; windowMs: number } }) {}

  emit(event: ConsumerEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  /** Forks one child and resolves once it reads the stream; rejects if it fails before that. */
  spawn(): Promise<Child> {
    const { config, logger } = this.o;
    const start = ++this.starts;
    const child = fork(this.o.entry ?? path.join(here, 'consumer-child.ts'), [], {
      execArgv: ['--import', tsxLoader],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const exited = new Promise<ConsumerExit>((resolve) =>
      child.once('exit', (code, signal) =>
        resolve({ pid: child.pid ?? 0, code, signal, at: new Date().toISOString() }),
      ),
    );
    this.forked = { process: child, exited };
    child.on('message', (m: ChildMessage) => {
      // The child says hello once it listens: a message sent before that could be lost.
      if (m.type === 'hello') {
        // A start that does not arrive: the child dies or never says ready, and its exit says so.
        post(child, { type: 'start', config, logLevel: logger.level, start }, (err) =>
          logger.warn({ err }, 'consumer start message not delivered'),
        );
      } else this.onMessage(m);
    });
    return new Promise((resolve, reject) => {
      const early = (exit: ConsumerExit) =>
        reject(new ConsumerProcessError(`consumer process exited (${describe(exit)}) before it was ready`));
      void exited.then(early);
      child.on('message', (m: ChildMessage) => {
        if (m.type === 'failed') reject(new ConsumerProcessError(`consumer failed to start: ${m.error}`));
        if (m.type !== 'ready') return;
        const started: Child = { process: child, pid: m.pid, exited };
        this.child = started;
        this.state = 'running';
        void exited.then((exit) => {
          if (this.child === started) this.child = undefined;
          this.onExit(exit);
        });
        this.emit({ type: 'started', pid: m.pid, start });
        resolve(started);
      });
    }).then(
      (c) => c as Child,
      async (err: unknown) => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        await exited;
        throw err;
      },
    );
  }

  onMessage(m: ChildMessage): void {
    if (m.type === 'log') relayLog(this.o.logger, m.line);
    else if (m.type === 'stats') this.snapshot = { stats: m.stats, billing: m.billing };
    else if (m.type === 'hook') this.emit({ type: 'message', message: m.message });
    else if (m.type === 'idle') {
      const waiter = this.idles.get(m.id);
      this.idles.delete(m.id);
      if (m.error !== undefined) waiter?.reject(new PollerStoppedError(`consumer: ${m.error}`));
      else {
        this.snapshot = { stats: m.stats, billing: m.billing };
        waiter?.resolve();
      }
    }
  }

  onExit(exit: ConsumerExit): void {
    for (const waiter of this.idles.values())
      waiter.reject(new PollerStoppedError(`consumer process exited (${describe(exit)})`));
    this.idles.clear();
    if (this.stopped.signal.aborted) return;
    this.lastExit = exit;
    const now = Date.now();
    this.exits.push(now);
    while ((this.exits[0] as number) < now - this.o.restart.windowMs) this.exits.shift();
    const giveUp = this.exits.length > this.o.restart.max;
    this.state = giveUp ? 'failed' : 'restarting';
    const where = {
      consumerPid: exit.pid,
      code: exit.code,
      signal: exit.signal,
      exitsInWindow: this.exits.length,
    };
    if (giveUp) {
      this.o.logger.error(where, 'stream consumer keeps dying: not restarted; lines wait on the stream');
    } else this.o.logger.error(where, 'stream consumer process died: restarting it');
    this.emit({ type: 'exited', next: giveUp ? 'give-up' : 'restart', ...exit });
    if (!giveUp) void this.restart();
  }

  async restart(): Promise<void> {
    await sleep(backoffMs(this.exits.length, RESTART_BACKOFF), this.stopped.signal);
    if (this.stopped.signal.aborted) return;
    try {
      await this.spawn();
    } catch (err) {
      // A start that fails counts as one more exit: the same bound applies.
      if (this.stopped.signal.aborted) return;
      this.o.logger.error({ err }, 'stream consumer did not restart');
      this.onExit({ pid: 0, code: null, signal: null, at: new Date().toISOString() });
    }
  }

  async stop(): Promise<void> {
    this.stopped.abort();
    this.state = 'stopped';
    const forked = this.forked;
    if (!forked || forked.process.exitCode !== null || forked.process.signalCode !== null) return;
    const serving = this.child?.process === forked.process;
    // One still starting has read nothing to finish: SIGTERM ends it (a serving one stops cleanly on it too).
    if (serving && forked.process.connected)
      post(forked.process, { type: 'stop' }, () => forked.process.kill('SIGTERM'));
    else forked.process.kill('SIGTERM');
    const timer = setTimeout(() => forked.process.kill('SIGKILL'), this.o.stopTimeoutMs ?? 30_000);
    const exit = await forked.exited;
    clearTimeout(timer);
    if (serving && exit.code !== 0) {
      throw new ConsumerProcessError(`consumer process stopped with ${describe(exit)}`);
    }
  }

  /** Passes the poller's wake hint on (at most one message per turn of the event loop). */
  wake(): void {
    const child = this.child;
    if (this.wakeSent || !child?.process.connected || this.state !== 'running') return;
    this.wakeSent = true;
    setImmediate(() => {
      this.wakeSent = false;
    });
    // Only a hint is lost if the child just died; its exit is handled where it is heard.
    post(child.process, { type: 'wake' }, (err) =>
      this.o.logger.debug({ err }, 'consumer wake not delivered'),
    );
  }

  idle(): Promise<void> {
    const child = this.child;
    if (!child || this.state !== 'running') {
      return Promise.reject(new PollerStoppedError(`consumer is ${this.state}`));
    }
    const id = ++this.nextIdle;
    return new Promise<void>((resolve, reject) => {
      this.idles.set(id, { resolve, reject });
      post(child.process, { type: 'idle', id }, (err) => {
        this.idles.delete(id);
        reject(err);
      });
    });
  }
}

/**
 * Sends to the child; `failed` hears a send that did not reach it. A child that just died (kill -9)
 * may still look connected, and the send fails with EPIPE: without the callback that failure is an
 * 'error' event nothing listens to, and it would take the pipeline down.
 */
function post(child: ChildProcess, message: ParentMessage, failed: (err: Error) => void): void {
  child.send(message, (err) => {
    if (err) failed(err);
  });
}

function describe(exit: Pick<ConsumerExit, 'code' | 'signal'>): string {
  return exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
}

const EMPTY_STATS: PollerStats = {
  recordsProcessed: 0,
  batches: 0,
  failedInvocations: 0,
  retries: 0,
  discarded: 0,
  shards: [],
};

/**
 * Starts the consumer child and waits until it reads the stream (endpoints.json must be written:
 * call after startStack). Rejects if the first start fails: a consumer that cannot start at all is
 * a configuration problem to report, not a crash to ride out.
 */
export async function startConsumerProcess(opts: ConsumerProcessOptions): Promise<ConsumerProcess> {
  const s = new Supervisor({ ...opts, restart: opts.restart ?? { max: 5, windowMs: 60_000 } });
  await s.spawn();
  let stopping: Promise<void> | undefined;
  return {
    poller: {
      stop: () => {
        stopping ??= s.stop();
        return stopping;
      },
      stats: () => s.snapshot?.stats ?? EMPTY_STATS,
      idle: () => s.idle(),
      wake: () => s.wake(),
    },
    billing: () => s.snapshot?.billing,
    status: () => ({
      state: s.state,
      pid: s.child?.pid ?? null,
      restarts: Math.max(0, s.starts - 1),
      lastExit: s.lastExit,
    }),
    onEvent(listener) {
      s.listeners.add(listener);
      return () => s.listeners.delete(listener);
    },
    send(message) {
      if (s.child?.process.connected)
        post(s.child.process, { type: 'hook', message }, (err) =>
          opts.logger.warn({ err }, 'consumer hook message not delivered'),
        );
    },
  };
}
