import path from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { loadConfig } from '#adapters/config';
import type { InvoiceLineInput } from '#core/invoice-line';
import { readEndpoints, StackNotRunningError } from '#local/endpoints';
import type { RunSummary } from '#producer/report';
import { renderSummary } from '#producer/report';
import { runSimulate } from '#producer/run';
import { newRunId } from '#producer/run-log';
import { onShutdown } from '../lifecycle.ts';

/** `60s`, `5m`, `1h`, `500ms` or plain seconds, to milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new InvalidArgumentError('a duration like 60s, 5m, 1h or 500ms');
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Number(m[1]) * unit;
}

export function positiveNumber(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('a number > 0');
  return n;
}

export function positiveInteger(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('a whole number > 0');
  return n;
}

export interface TargetOptions {
  target?: string;
  apiKey?: string;
  dataDir?: string;
}

/** The API URL (--target, else the running local stack's `api`), the key and where run logs go. */
export async function resolveTarget(opts: TargetOptions) {
  const config = loadConfig({ ...process.env, ...(opts.dataDir ? { RP_DATA_DIR: opts.dataDir } : {}) });
  let target = opts.target;
  if (!target) {
    const endpoints = await readEndpoints(config.dataDir);
    if (!endpoints.api) {
      throw new StackNotRunningError(
        `the local stack in ${config.dataDir} has no API endpoint; pass --target URL`,
      );
    }
    target = endpoints.api;
  }
  const apiKey = opts.apiKey ?? config.api.apiKey;
  return { target, ...(apiKey ? { apiKey } : {}), runLogDir: path.join(config.dataDir, 'runs') };
}

/** Reports problems as they happen (first `max` of each kind) so none goes unseen, then a count. */
export function problemPrinter(max = 20) {
  let rejected = 0;
  return {
    onRejected: (e: { line: InvoiceLineInput; reason: string }) => {
      if (++rejected <= max)
        process.stderr.write(`rejected ${e.line.invoiceNo}/${e.line.lineNo}: ${e.reason}\n`);
      else if (rejected === max + 1) process.stderr.write('more rejected lines: see the summary count\n');
    },
    onFailed: (e: { lines: InvoiceLineInput[]; reason: string }) => {
      process.stderr.write(`failed to deliver ${e.lines.length} line(s): ${e.reason}\n`);
    },
  };
}

/** Ctrl-C stops the run cleanly: queued lines are still delivered and the summary printed. */
export function abortOnShutdown(): { signal: AbortSignal; done: (p: Promise<unknown>) => void } {
  const controller = new AbortController();
  let running: Promise<unknown> = Promise.resolve();
  onShutdown(async () => {
    controller.abort();
    await running.catch(() => undefined);
  });
  return {
    signal: controller.signal,
    done: (p) => {
      running = p;
    },
  };
}

export function finish(summary: RunSummary): void {
  process.stdout.write(`${renderSummary(summary)}\n`);
  if (summary.failed > 0 || summary.fatal) process.exitCode = 1;
}

interface SimulateCliOptions extends TargetOptions {
  rate: number;
  duration?: number;
  lines?: number;
  seed: number;
  firstInvoice?: number;
  startDate?: Date;
  progress: boolean;
  batchSize: number;
  maxInFlight: number;
}

export function registerSimulateCommand(program: Command): void {
  program
    .command('simulate')
    .description('post synthetic invoice lines shaped like the Online Retail set to the API')
    .option('--rate <lines/s>', 'lines per second', positiveNumber, 500)
    .option('--duration <time>', 'stop after this long (60s, 5m, 1h)', parseDuration)
    .option('--lines <n>', 'stop after this many lines', positiveInteger)
    .option('--seed <n>', 'PRNG seed: the same seed gives the same lines', (v) => Number.parseInt(v, 10), 1)
    .option(
      '--start-date <YYYY-MM-DD>',
      'first trading day of the synthetic timeline (default 2010-12-01)',
      (v) => {
        const d = new Date(`${v}T00:00:00Z`);
        if (Number.isNaN(d.getTime())) throw new InvalidArgumentError('a date YYYY-MM-DD');
        return d;
      },
    )
    .option(
      '--first-invoice <n>',
      'first invoice number (default: past the highest any earlier run in the data dir sent)',
      positiveInteger,
    )
    .option('--target <url>', 'API base URL (default: the local stack from endpoints.json)')
    .option('--api-key <key>', 'sent as x-api-key (default: $RP_API_KEY)')
    .option('--data-dir <dir>', 'data directory of the local stack (default: $RP_DATA_DIR or .data)')
    .option('--batch-size <n>', 'lines per request', positiveInteger, 500)
    .option('--max-in-flight <n>', 'requests in flight', positiveInteger, 4)
    .option('--no-progress', 'no progress bar')
    .action(async (opts: SimulateCliOptions) => {
      if (opts.duration !== undefined && opts.lines !== undefined) {
        throw new InvalidArgumentError('give --duration or --lines, not both');
      }
      const { target, apiKey, runLogDir } = await resolveTarget(opts);
      const { signal, done } = abortOnShutdown();
      const runId = newRunId('simulate');
      const run = runSimulate({
        target,
        ...(apiKey ? { apiKey } : {}),
        runLogDir,
        runId,
        rate: opts.rate,
        seed: opts.seed,
        ...(opts.firstInvoice !== undefined ? { firstInvoiceNo: opts.firstInvoice } : {}),
        ...(opts.duration !== undefined ? { durationMs: opts.duration } : {}),
        ...(opts.lines !== undefined ? { lines: opts.lines } : {}),
        ...(opts.startDate ? { startDate: opts.startDate } : {}),
        progress: opts.progress && process.stderr.isTTY === true,
        signal,
        poster: { batchSize: opts.batchSize, maxInFlight: opts.maxInFlight, ...problemPrinter() },
      });
      process.stderr.write(
        `run ${runId}: simulating ${opts.rate} lines/s -> ${target} (seed ${opts.seed}), log ${path.join(runLogDir, runId)}.ndjson\n`,
      );
      done(run);
      finish(await run);
    });
}
