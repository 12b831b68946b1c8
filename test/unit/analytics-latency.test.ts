import { describe, expect, it } from 'vitest';
import {
  buildLatencyReport,
  cdfPoints,
  distribution,
  formatLatencyTable,
  InvalidDurationError,
  parseDuration,
} from '#analytics/latency';
import { renderLatencySvg } from '#analytics/latency-chart';
import { renderLatencyHtml } from '#analytics/latency-page';
import { createMartRefresher } from '#analytics/marts';
import { buildPbids, postgresTarget, redshiftServer } from '#analytics/powerbi';
import { createRateMeter } from '#analytics/rate-meter';

// Nearest rank, computed the plain way: sort every value.
const rank = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.ceil(p * xs.length) - 1];

describe('latency statistics', () => {
  it('distribution equals nearest-rank percentiles over the expanded values', () => {
    let seed = 7;
    const rnd = () => {
      seed = (seed * 48271) % 2147483647;
      return seed / 2147483647;
    };
    const values = Array.from({ length: 997 }, () => Math.round(rnd() ** 3 * 20_000));
    const hist = new Map<number, number>();
    for (const v of values) hist.set(v, (hist.get(v) ?? 0) + 1);
    const d = distribution([...hist].map(([ms, n]) => ({ ms, n })).reverse());
    expect(d).toEqual({
      count: 997,
      p50: rank(values, 0.5),
      p90: rank(values, 0.9),
      p99: rank(values, 0.99),
      max: Math.max(...values),
    });
  });

  it('an empty histogram has no percentiles', () => {
    expect(distribution([])).toEqual({ count: 0, p50: null, p90: null, p99: null, max: null });
  });

  it('parses durations and rejects nonsense', () => {
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('2h')).toBe(7_200_000);
    expect(parseDuration('1d')).toBe(86_400_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(() => parseDuration('ten minutes')).toThrow(InvalidDurationError);
  });

  it('downsamples the CDF but keeps its last point', () => {
    const buckets = Array.from({ length: 1000 }, (_, i) => ({ ms: i + 1, n: 1 }));
    const points = cdfPoints(buckets, 50);
    expect(points.length).toBeLessThanOrEqual(52);
    expect(points.at(-1)).toEqual([1000, 1]);
    for (let i = 1; i < points.length; i++) {
      expect((points[i] as [number, number])[1]).toBeGreaterThan((points[i - 1] as [number, number])[1]);
    }
  });
});

describe('latency report rendering', () => {
  const report = buildLatencyReport(
    [
      { path: 'stream', hop: 'produced_accepted', ms: 4, n: 10 },
      { path: 'stream', hop: 'accepted_stream_visible', ms: 30, n: 10 },
      { path: 'stream', hop: 'total', ms: 34, n: 9 },
      { path: 'stream', hop: 'total', ms: 120, n: 1 },
      { path: 'batch', hop: 'produced_archived', ms: 5_000, n: 10 },
      { path: 'batch', hop: 'archived_warehouse_visible', ms: 8_000, n: 10 },
      { path: 'batch', hop: 'total', ms: 13_000, n: 10 },
    ],
    { windowStart: null, now: new Date('2024-05-01T12:00:00Z') },
  );

  it('prints every hop with its figures', () => {
    const table = formatLatencyTable(report);
    expect(table).toContain('produced -> accepted');
    expect(table).toContain('TOTAL produced -> warehouse-visible');
    expect(table).toMatch(/stream.*TOTAL.*10.*34 ms.*34 ms.*120 ms.*120 ms/);
    expect(table).toContain('13.0 s');
  });

  it('renders an SVG with both CDF curves and a bar per percentile per hop', () => {
    const svg = renderLatencySvg(report);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg).toContain('class="cdf-stream"');
    expect(svg).toContain('class="cdf-batch"');
    expect(svg.match(/class="bar"/g)?.length).toBe(18);
    expect(svg).not.toMatch(/https?:\/\/(?!www\.w3\.org)/);
  });

  it('renders an empty-state SVG and a self-contained page without data', () => {
    const empty = buildLatencyReport([], { windowStart: new Date('2024-05-01T11:50:00Z') });
    expect(renderLatencySvg(empty)).toContain('No lines with lineage timestamps');
    const html = renderLatencyHtml(empty);
    expect(html).toContain('lines produced since 2024-05-01 11:50:00 UTC');
    expect(html).not.toMatch(/<script|<link rel="stylesheet"|src="http/);
  });
});

describe('rate meter', () => {
  it('reports lines per second per bucket and over the recent seconds', () => {
    const meter = createRateMeter({ bucketMs: 1000, windowMs: 10_000 });
    const t0 = 1_700_000_000_000;
    meter.record(50, t0);
    meter.record(30, t0 + 400);
    meter.record(20, t0 + 1_500);
    const series = meter.series(t0 + 2_000);
    expect(series).toHaveLength(10);
    expect(series.slice(-3)).toEqual([
      [t0, 80],
      [t0 + 1000, 20],
      [t0 + 2000, 0],
    ]);
    expect(meter.current(5, t0 + 2_000)).toBe(20);
    // Buckets older than the window are forgotten, not added to a reused slot.
    meter.record(5, t0 + 10_000);
    expect(meter.series(t0 + 10_000).at(-1)).toEqual([t0 + 10_000, 5]);
  });
});

describe('Power BI data source files', () => {
  it('point at the local PostgreSQL without credentials', () => {
    const target = postgresTarget('postgresql://retail:s%40cret@127.0.0.1:5433/retail');
    expect(target).toEqual({ server: '127.0.0.1:5433', database: 'retail', user: 'retail' });
    const pbids = JSON.stringify(buildPbids({ protocol: 'postgresql', ...target, mode: 'DirectQuery' }));
    expect(pbids).not.toContain('s@cret');
    expect(JSON.parse(pbids)).toEqual({
      version: '0.1',
      connections: [
        {
          details: { protocol: 'postgresql', address: { server: '127.0.0.1:5433', database: 'retail' } },
          options: {},
          mode: 'DirectQuery',
        },
      ],
    });
  });

  it('build the Redshift Serverless endpoint or mark placeholders', () => {
    expect(redshiftServer({ workgroup: 'retail', region: 'eu-west-1', database: 'retail' })).toEqual({
      server: 'retail.<ACCOUNT_ID>.eu-west-1.redshift-serverless.amazonaws.com:5439',
      database: 'retail',
      placeholders: true,
    });
    expect(
      redshiftServer({ host: 'wg.123.eu-west-1.redshift-serverless.amazonaws.com', region: 'eu-west-1' }),
    ).toEqual({
      server: 'wg.123.eu-west-1.redshift-serverless.amazonaws.com:5439',
      database: 'dev',
      placeholders: false,
    });
  });
});

describe('mart refresher', () => {
  it('coalesces requests made during a refresh into one more refresh', async () => {
    let calls = 0;
    let release: (() => void) | undefined;
    let called: (() => void) | undefined;
    // Resolves when the refresher starts its next transaction: the event the test waits for.
    const nextCall = () =>
      new Promise<void>((r) => {
        called = r;
      });
    const db = {
      transaction: async () => {
        calls += 1;
        called?.();
        await new Promise<void>((r) => {
          release = r;
        });
        return { committed: true, rowCounts: [] };
      },
    };
    const refresher = createMartRefresher(db);
    const first = refresher.request();
    const during = [refresher.request(), refresher.request(), refresher.request()];
    expect(calls).toBe(1);
    const followUp = nextCall();
    release?.();
    await first;
    await followUp;
    expect(calls).toBe(2);
    release?.();
    await Promise.all(during);
    expect(calls).toBe(2);
  });

  it('starts a rebuild no sooner than the gap after the last one started, and skips the gap when stopping', async () => {
    let clock = 1_000;
    let calls = 0;
    const waits: Array<{ ms: number; resolve: () => void }> = [];
    const db = {
      transaction: async () => {
        calls += 1;
        return { committed: true, rowCounts: [] };
      },
    };
    const refresher = createMartRefresher(db, {
      minGapMs: 10_000,
      now: () => clock,
      sleep: (ms, signal) =>
        new Promise<void>((resolve) => {
          waits.push({ ms, resolve });
          // As core/resilience's sleep: an aborted signal ends the wait at once.
          if (signal?.aborted) resolve();
          signal?.addEventListener('abort', () => resolve(), { once: true });
        }),
    });
    await refresher.request();
    expect(calls).toBe(1);
    clock += 4_000;
    const second = refresher.request();
    const third = refresher.request();
    await Promise.resolve();
    await Promise.resolve();
    expect(waits.map((w) => w.ms)).toEqual([6_000]);
    expect(calls).toBe(1);
    clock += 6_000;
    waits[0]?.resolve();
    await Promise.all([second, third]);
    expect(calls).toBe(2);
    // A request inside the gap waits for it, unless the refresher is stopped: idle() does not wait.
    clock += 1_000;
    const fourth = refresher.request();
    await refresher.idle();
    await fourth;
    expect(calls).toBe(3);
    expect(waits.map((w) => w.ms)).toEqual([6_000, 9_000]);
  });
});
