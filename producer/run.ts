import type { InvoiceLineInput } from '#core/invoice-line';
import { createPoster, PosterFatalError, type PosterOptions } from './client.ts';
import { createGenerator } from './generator.ts';
import { createPacer } from './pace.ts';
import { type MalformedRow, replayBatches, type SourceEncoding } from './replay.ts';
import { type RunSummary, startProgress } from './report.ts';
import { highestInvoiceNumber, newRunId, openRunLog, type RunLog } from './run-log.ts';

export type { RunSummary as Summary } from './report.ts';

/** Options both runs share. */
export interface RunOptions {
  /** API base URL; `/invoices` is appended. */
  target: string;
  apiKey?: string;
  /** Show a progress bar on stderr. */
  progress: boolean;
  /** Stops the run early (Ctrl-C); what was queued is still delivered and the summary returned. */
  signal?: AbortSignal;
  /** Directory of run logs (`<dataDir>/runs`); no run log when absent. */
  runLogDir?: string;
  runId?: string;
  /** Client tuning: batch size, requests in flight, retries, callbacks. */
  poster?: Omit<PosterOptions, 'target' | 'apiKey'>;
}

export interface SimulateOptions extends RunOptions {
  /** Lines per second (default 500). */
  rate?: number;
  /** Stop after this long (ms). */
  durationMs?: number;
  /** Stop after this many lines. Without lines or duration the run goes on until the signal fires. */
  lines?: number;
  seed?: number;
  startDate?: Date;
  /** First invoice number; default: one past the highest in `runLogDir`'s earlier runs (else 536365). */
  firstInvoiceNo?: number;
}

export interface ReplayRunOptions extends RunOptions {
  paths: string[] | string;
  /** Multiple of the source timeline; without speed or rate the file goes as fast as the API takes it. */
  speed?: number;
  rate?: number;
  limit?: number;
  strict?: boolean;
  encoding?: SourceEncoding;
  onMalformed?: (e: MalformedRow) => void;
}

const isAbort = (e: unknown) => e instanceof Error && (e.name === 'AbortError' || e.name === 'TimeoutError');

async function drive(
  kind: RunSummary['kind'],
  opts: RunOptions,
  header: object,
  total: number | undefined,
  produce: (send: (line: InvoiceLineInput) => Promise<void>) => Promise<void>,
  counters: { produced: number; malformed: number },
): Promise<RunSummary> {
  const runId = opts.runId ?? newRunId(kind);
  let log: RunLog | undefined;
  if (opts.runLogDir) log = await openRunLog(opts.runLogDir, runId, { kind, target: opts.target, ...header });
  const userAccepted = opts.poster?.onAccepted;
  const poster = createPoster({
    ...opts.poster,
    target: opts.target,
    ...(opts.apiKey ? { apiKey: opts.apiKey } : {}),
    onAccepted: async (lines) => {
      await log?.appendBatch(lines);
      await userAccepted?.(lines);
    },
  });
  const started = Date.now();
  const progress = opts.progress ? startProgress(() => poster.stats(), total) : undefined;
  let aborted = false;
  let failure: unknown;
  try {
    await produce((line) => poster.send(line));
  } catch (error) {
    if (isAbort(error)) aborted = true;
    else if (!(error instanceof PosterFatalError)) failure = error;
  }
  aborted ||= opts.signal?.aborted ?? false;
  const result = await poster.flush();
  progress?.stop();
  const elapsedMs = Date.now() - started;
  const summary: RunSummary = {
    runId,
    kind,
    target: opts.target,
    produced: counters.produced,
    sent: result.sent,
    accepted: result.accepted,
    rejected: result.rejected,
    failed: result.failed,
    retried: result.retried,
    requests: result.requests,
    malformed: counters.malformed,
    elapsedMs,
    linesPerSecond: elapsedMs > 0 ? (result.accepted * 1000) / elapsedMs : 0,
    ...(log ? { runLog: log.path } : {}),
    aborted,
    ...(result.fatal ? { fatal: result.fatal } : {}),
  };
  await log?.close(summary);
  if (failure) throw failure;
  return summary;
}

/** Posts synthetic lines at a steady rate until `lines`, `durationMs` or the signal ends the run. */
export async function runSimulate(opts: SimulateOptions): Promise<RunSummary> {
  const rate = opts.rate ?? 500;
  const seed = opts.seed ?? 1;
  const previous = opts.runLogDir ? await highestInvoiceNumber(opts.runLogDir) : undefined;
  const firstInvoiceNo = opts.firstInvoiceNo ?? (previous === undefined ? undefined : previous + 1);
  const generator = createGenerator({
    seed,
    ...(opts.startDate ? { startDate: opts.startDate } : {}),
    ...(firstInvoiceNo !== undefined ? { firstInvoiceNo } : {}),
  });
  const counters = { produced: 0, malformed: 0 };
  const total =
    opts.lines ?? (opts.durationMs !== undefined ? Math.round((opts.durationMs / 1000) * rate) : undefined);
  const pacer = createPacer({ rate, ...(opts.signal ? { signal: opts.signal } : {}) });
  return drive(
    'simulate',
    opts,
    { rate, seed, lines: opts.lines, durationMs: opts.durationMs },
    total,
    async (send) => {
      const deadline =
        opts.durationMs !== undefined ? performance.now() + opts.durationMs : Number.POSITIVE_INFINITY;
      while (opts.lines === undefined || counters.produced < opts.lines) {
        await pacer.wait();
        if (performance.now() >= deadline) break;
        const line = generator.next();
        counters.produced++;
        await send(line);
      }
    },
    counters,
  );
}

/** Replays Online Retail CSV files (file, directory or glob) in time order, paced by speed or rate. */
export async function runReplay(opts: ReplayRunOptions): Promise<RunSummary> {
  const counters = { produced: 0, malformed: 0 };
  const paced = opts.rate !== undefined || opts.speed !== undefined;
  const pacer = paced
    ? createPacer({
        ...(opts.rate !== undefined ? { rate: opts.rate } : { speed: opts.speed as number }),
        ...(opts.signal ? { signal: opts.signal } : {}),
      })
    : undefined;
  const header = { paths: opts.paths, speed: opts.speed, rate: opts.rate, limit: opts.limit };
  return drive(
    'replay',
    opts,
    header,
    opts.limit,
    async (send) => {
      const batches = replayBatches(opts.paths, {
        ...(opts.encoding ? { encoding: opts.encoding } : {}),
        ...(opts.strict ? { strict: true } : {}),
        onMalformed: (e) => {
          counters.malformed++;
          opts.onMalformed?.(e);
        },
      });
      outer: for await (const batch of batches) {
        for (const { line, sourceTime } of batch) {
          if (opts.limit !== undefined && counters.produced >= opts.limit) break outer;
          if (pacer) await pacer.wait(sourceTime);
          else opts.signal?.throwIfAborted();
          counters.produced++;
          await send({ ...line, producedAt: new Date().toISOString() });
        }
      }
    },
    counters,
  );
}
