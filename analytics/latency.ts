import { formatTime, stdoutTable } from '#adapters/terminal';
import { nearestRank } from '#core/percentile';
import { num, type QueryPort, runQuery } from './db.ts';

/**
 * Freshness of the three paths from the lineage timestamps the warehouse keeps: per invoice line for
 * the stream and batch paths, per totesys fact version for the cdc path (change data capture of the
 * operational database). The warehouse returns histograms at millisecond resolution (one row per
 * distinct delay), so the percentiles are exact while the result stays small however many rows the
 * window holds.
 */
export type PathName = 'stream' | 'batch' | 'cdc';
export const PATHS: ReadonlyArray<PathName> = ['stream', 'batch', 'cdc'];

export interface HopDefinition {
  path: PathName;
  hop: string;
  from: string;
  to: string;
}

/** Hops in display order; `total` is measured end to end on the lines that have both ends. */
export const HOPS: ReadonlyArray<HopDefinition> = [
  { path: 'stream', hop: 'produced_accepted', from: 'produced', to: 'accepted' },
  { path: 'stream', hop: 'accepted_stream_visible', from: 'accepted', to: 'stream-visible' },
  { path: 'stream', hop: 'total', from: 'produced', to: 'stream-visible' },
  { path: 'batch', hop: 'produced_archived', from: 'produced', to: 'archived' },
  { path: 'batch', hop: 'archived_warehouse_visible', from: 'archived', to: 'warehouse-visible' },
  { path: 'batch', hop: 'total', from: 'produced', to: 'warehouse-visible' },
  { path: 'cdc', hop: 'updated_ingested', from: 'source-updated', to: 'ingested' },
  { path: 'cdc', hop: 'ingested_processed', from: 'ingested', to: 'processed' },
  { path: 'cdc', hop: 'processed_warehouse_visible', from: 'processed', to: 'warehouse-visible' },
  { path: 'cdc', hop: 'total', from: 'source-updated', to: 'warehouse-visible' },
];

export interface Distribution {
  count: number;
  /** Milliseconds; null when count is 0. Nearest-rank percentiles. */
  p50: number | null;
  p90: number | null;
  p99: number | null;
  max: number | null;
}

export interface HopStats extends HopDefinition, Distribution {}

export interface LatencyReport {
  generatedAt: string;
  /** Lines produced (cdc: source rows updated) at or after this instant; null = all of them. */
  windowStart: string | null;
  hops: HopStats[];
  /** Cumulative distribution of each path's end-to-end delay: [ms, fraction of lines <= ms]. */
  cdf: Record<PathName, Array<[number, number]>>;
}

export interface HistogramRow {
  path: string;
  hop: string;
  ms: number;
  n: number;
}

export class InvalidDurationError extends Error {
  override name = 'InvalidDurationError';
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** '10m', '90s', '2h', '1d', '500ms' to milliseconds. */
export function parseDuration(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(text);
  if (!m) throw new InvalidDurationError(`not a duration: '${text}' (use e.g. 30s, 10m, 2h, 1d)`);
  return Number(m[1]) * (UNITS[m[2] as string] as number);
}

/** Nearest-rank percentiles (`#core/percentile`) over a histogram of (value, count) in any order. */
export function distribution(buckets: ReadonlyArray<{ ms: number; n: number }>): Distribution {
  const sorted = buckets.filter((b) => b.n > 0).sort((a, b) => a.ms - b.ms);
  const count = sorted.reduce((s, b) => s + b.n, 0);
  if (count === 0) return { count: 0, p50: null, p90: null, p99: null, max: null };
  const rank = (p: number) => {
    const target = nearestRank(count, p);
    let seen = 0;
    for (const b of sorted) {
      seen += b.n;
      if (seen >= target) return b.ms;
    }
    return (sorted.at(-1) as { ms: number }).ms;
  };
  return {
    count,
    p50: rank(50),
    p90: rank(90),
    p99: rank(99),
    max: (sorted.at(-1) as { ms: number }).ms,
  };
}

/** The CDF as at most `maxPoints` steps (enough for a chart, small enough for a poll). */
export function cdfPoints(
  buckets: ReadonlyArray<{ ms: number; n: number }>,
  maxPoints = 150,
): Array<[number, number]> {
  const sorted = buckets.filter((b) => b.n > 0).sort((a, b) => a.ms - b.ms);
  const count = sorted.reduce((s, b) => s + b.n, 0);
  if (count === 0) return [];
  const points: Array<[number, number]> = [];
  let seen = 0;
  for (const b of sorted) {
    seen += b.n;
    points.push([b.ms, seen / count]);
  }
  if (points.length <= maxPoints) return points;
  // Keep evenly spaced fractions plus the last point, so the tail (p99, max) stays visible.
  const kept: Array<[number, number]> = [];
  let next = 0;
  for (const p of points) {
    if (p[1] >= next) {
      kept.push(p);
      next = p[1] + 1 / maxPoints;
    }
  }
  const last = points.at(-1) as [number, number];
  if (kept.at(-1) !== last) kept.push(last);
  return kept;
}

/** Assembles the report from the warehouse's histogram rows. */
export function buildLatencyReport(
  rows: ReadonlyArray<HistogramRow>,
  opts: { windowStart: Date | null; now?: Date },
): LatencyReport {
  const byHop = new Map<string, Array<{ ms: number; n: number }>>();
  for (const r of rows) {
    const key = `${r.path}/${r.hop}`;
    const list = byHop.get(key) ?? [];
    list.push({ ms: r.ms, n: r.n });
    byHop.set(key, list);
  }
  const hops = HOPS.map((h) => ({ ...h, ...distribution(byHop.get(`${h.path}/${h.hop}`) ?? []) }));
  return {
    generatedAt: (opts.now ?? new Date()).toISOString(),
    windowStart: opts.windowStart?.toISOString() ?? null,
    hops,
    cdf: {
      stream: cdfPoints(byHop.get('stream/total') ?? []),
      batch: cdfPoints(byHop.get('batch/total') ?? []),
      cdc: cdfPoints(byHop.get('cdc/total') ?? []),
    },
  };
}

/** The epoch used when no window is asked for (Redshift has no '-infinity'). */
const ALL_TIME = new Date('1970-01-01T00:00:00Z');

/**
 * Latency per path and hop over lines produced (cdc: source rows updated) in the last `since` (a
 * duration such as '10m', or milliseconds), or over all of them. The cdc path counts only versions
 * updated after the warehouse first saw a totesys object: what the first extraction takes (the seed,
 * the source's history) is a backlog, not a measure of freshness.
 */
export async function latencyReport(
  db: QueryPort,
  opts: { since?: string | number | undefined; now?: Date } = {},
): Promise<LatencyReport> {
  const now = opts.now ?? new Date();
  const windowMs = typeof opts.since === 'string' ? parseDuration(opts.since) : opts.since;
  const windowStart = windowMs === undefined ? null : new Date(now.getTime() - windowMs);
  const params = [(windowStart ?? ALL_TIME).toISOString()];
  const [lines, cdc] = await Promise.all([
    runQuery<Record<string, unknown>>(db, 'latency-histogram', params),
    runQuery<Record<string, unknown>>(db, 'latency-cdc-histogram', params),
  ]);
  return buildLatencyReport(
    [...lines, ...cdc].map((r) => ({ path: String(r.path), hop: String(r.hop), ms: num(r.ms), n: num(r.n) })),
    { windowStart, now },
  );
}

/** 1234 -> '1.23 s'; 87 -> '87 ms'; 125000 -> '2.1 min'. */
export function formatMs(ms: number | null): string {
  if (ms === null) return '-';
  const abs = Math.abs(ms);
  if (abs < 1000) return `${Math.round(ms)} ms`;
  if (abs < 60_000) return `${(ms / 1000).toFixed(abs < 10_000 ? 2 : 1)} s`;
  return `${(ms / 60_000).toFixed(1)} min`;
}

export function hopLabel(h: HopDefinition): string {
  return `${h.from} -> ${h.to}`;
}

/** The comparison as a terminal table. */
export function formatLatencyTable(report: LatencyReport): string {
  const table = stdoutTable({
    head: ['path', 'hop', 'count', 'p50', 'p90', 'p99', 'max'],
    align: ['left', 'left', 'right', 'right', 'right', 'right', 'right'],
    rows: report.hops.map((h) => [
      h.path,
      h.hop === 'total' ? `TOTAL ${hopLabel(h)}` : hopLabel(h),
      h.count,
      formatMs(h.p50),
      formatMs(h.p90),
      formatMs(h.p99),
      formatMs(h.max),
    ]),
  });
  const window = report.windowStart
    ? `lines produced since ${formatTime(new Date(report.windowStart))} UTC (cdc: source rows updated since then)`
    : 'all lines and source row versions';
  return `Latency, stream, batch and cdc paths (${window})\n${table}`;
}
