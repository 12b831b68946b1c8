import cliProgress from 'cli-progress';
import Table from 'cli-table3';
import type { PosterStats } from './client.ts';

export interface RunSummary {
  runId: string;
  kind: 'simulate' | 'replay';
  target: string;
  /** Lines generated or read from the files (malformed rows excluded). */
  produced: number;
  sent: number;
  accepted: number;
  rejected: number;
  failed: number;
  retried: number;
  requests: number;
  /** Replay: source rows that could not be parsed (reported with file and line). */
  malformed: number;
  elapsedMs: number;
  /** Accepted lines per second over the whole run. */
  linesPerSecond: number;
  runLog?: string;
  /** The run was stopped by its signal (Ctrl-C) before its end. */
  aborted: boolean;
  fatal?: string;
}

export interface Progress {
  stop(): void;
}

/** A progress line on stderr: lines sent, lines/s over the last second, accepted, rejected, retried. */
export function startProgress(
  stats: () => PosterStats,
  total: number | undefined,
  stream = process.stderr,
): Progress {
  const format =
    total !== undefined
      ? '{bar} {percentage}% | {value}/{total} lines | {rate} lines/s | accepted {accepted} | rejected {rejected} | retried {retried}'
      : '{value} lines | {rate} lines/s | accepted {accepted} | rejected {rejected} | retried {retried}';
  const bar = new cliProgress.SingleBar(
    { format, stream, hideCursor: true, fps: 5, etaBuffer: 50 },
    cliProgress.Presets.shades_classic,
  );
  let last = { at: performance.now(), sent: 0 };
  let rate = 0;
  const payload = () => {
    const s = stats();
    return { rate, accepted: s.accepted, rejected: s.rejected, retried: s.retried };
  };
  bar.start(total ?? 0, 0, payload());
  const timer = setInterval(() => {
    const s = stats();
    const at = performance.now();
    if (at - last.at >= 1000) {
      rate = Math.round(((s.sent - last.sent) * 1000) / (at - last.at));
      last = { at, sent: s.sent };
    }
    bar.update(s.sent, payload());
  }, 200);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      const s = stats();
      bar.update(s.sent, payload());
      bar.stop();
    },
  };
}

/** The end-of-run table. */
export function renderSummary(summary: RunSummary): string {
  const table = new Table({ head: ['run', summary.runId], style: { head: [], border: [] } });
  const rows: [string, string][] = [
    ['kind', summary.kind],
    ['target', summary.target],
    ['produced', String(summary.produced)],
    ['sent', String(summary.sent)],
    ['accepted', String(summary.accepted)],
    ['rejected', String(summary.rejected)],
    ['failed', String(summary.failed)],
    ['retried requests', String(summary.retried)],
    ['requests', String(summary.requests)],
  ];
  if (summary.kind === 'replay') rows.push(['malformed rows', String(summary.malformed)]);
  rows.push(
    ['elapsed', `${(summary.elapsedMs / 1000).toFixed(1)} s`],
    ['accepted lines/s', summary.linesPerSecond.toFixed(1)],
  );
  if (summary.runLog) rows.push(['run log', summary.runLog]);
  if (summary.aborted) rows.push(['stopped', 'interrupted before the end']);
  if (summary.fatal) rows.push(['fatal', summary.fatal]);
  table.push(...rows);
  return table.toString();
}
