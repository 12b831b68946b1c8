import { configure } from '@codegenie/serverless-express';
import type { Context } from 'aws-lambda';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { LineWriter } from '#adapters/kinesis-writer';
import { namedQuery, type QueryPort } from '#analytics/db';
import {
  buildLatencyReport,
  formatLatencyTable,
  type HistogramRow,
  type LatencyReport,
} from '#analytics/latency';
import { renderLatencySvg } from '#analytics/latency-chart';
import { renderLatencyHtml } from '#analytics/latency-page';
import { buildPbids, TOTESYS_POWERBI_VIEWS } from '#analytics/powerbi';
import { createAnalyticsRouter } from '#analytics/router';
import { createApp } from '#api/app';
import type { InvoiceReader } from '#core/serving';

/**
 * The cdc path of the latency report: per fact version, source last_updated -> ingested -> processed
 * -> warehouse-visible. The warehouse sends millisecond histograms (latency-cdc-histogram.sql); these
 * tests start from known stamps, build the histogram the query would, and check the percentiles.
 */

interface Version {
  updated: string;
  ingested: string;
  processed: string;
  visible: string;
}
const ms = (a: string, b: string) => Date.parse(b) - Date.parse(a);

/** What the query answers for these versions: one row per (hop, distinct delay). */
function histogram(versions: Version[]): HistogramRow[] {
  const hops: Array<[string, (v: Version) => number]> = [
    ['updated_ingested', (v) => ms(v.updated, v.ingested)],
    ['ingested_processed', (v) => ms(v.ingested, v.processed)],
    ['processed_warehouse_visible', (v) => ms(v.processed, v.visible)],
    ['total', (v) => ms(v.updated, v.visible)],
  ];
  const counts = new Map<string, number>();
  for (const v of versions)
    for (const [hop, delay] of hops) {
      const key = `${hop}|${delay(v)}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  return [...counts].map(([key, n]) => {
    const [hop = '', delay = '0'] = key.split('|');
    return { path: 'cdc', hop, ms: Number(delay), n };
  });
}

// 100 versions: version i was updated at 10:00:00 + i s, ingested 2 s + (i mod 10) s later,
// processed 500 ms after that, visible 100 ms + i ms after processing.
const at = (base: string, plusMs: number) => new Date(Date.parse(base) + plusMs).toISOString();
const VERSIONS: Version[] = Array.from({ length: 100 }, (_, i) => {
  const updated = at('2026-12-01T10:00:00.000Z', i * 1000);
  const ingested = at(updated, 2000 + (i % 10) * 1000);
  const processed = at(ingested, 500);
  return { updated, ingested, processed, visible: at(processed, 100 + i) };
});

const cdcHops = (r: LatencyReport) =>
  Object.fromEntries(
    r.hops.filter((h) => h.path === 'cdc').map((h) => [h.hop, { count: h.count, p50: h.p50, p99: h.p99 }]),
  );

describe('latency report: the cdc path', () => {
  const report = buildLatencyReport(histogram(VERSIONS), {
    windowStart: null,
    now: new Date('2026-12-01T11:00:00Z'),
  });

  it('known stamps give known nearest-rank percentiles per hop', () => {
    // updated -> ingested: 2..11 s, ten versions each; p50 = the 50th of 100 = 6 s, p99 = 11 s.
    // processed -> visible: 100..199 ms; p50 = 149 ms, p99 = 198 ms.
    // total: 2600 + (i mod 10) * 1000 + i ms, sorted here; its 50th is 6694 (i = 94).
    const totals = VERSIONS.map((v) => ms(v.updated, v.visible)).sort((a, b) => a - b);
    expect(cdcHops(report)).toEqual({
      updated_ingested: { count: 100, p50: 6000, p99: 11_000 },
      ingested_processed: { count: 100, p50: 500, p99: 500 },
      processed_warehouse_visible: { count: 100, p50: 149, p99: 198 },
      total: { count: 100, p50: totals[49], p99: totals[98] },
    });
    expect(totals[49]).toBe(2000 + 4000 + 500 + 100 + 94);
  });

  it('hops run source-updated -> ingested -> processed -> warehouse-visible, after stream and batch', () => {
    expect(report.hops.map((h) => `${h.path}:${h.from}->${h.to}`)).toEqual([
      'stream:produced->accepted',
      'stream:accepted->stream-visible',
      'stream:produced->stream-visible',
      'batch:produced->archived',
      'batch:archived->warehouse-visible',
      'batch:produced->warehouse-visible',
      'cdc:source-updated->ingested',
      'cdc:ingested->processed',
      'cdc:processed->warehouse-visible',
      'cdc:source-updated->warehouse-visible',
    ]);
    expect(report.cdf.cdc.at(-1)).toEqual([Math.max(...VERSIONS.map((v) => ms(v.updated, v.visible))), 1]);
    expect(report.cdf.stream).toEqual([]);
  });

  it('the table, the SVG and the HTML page show the cdc path', () => {
    expect(formatLatencyTable(report)).toMatch(/cdc\s+│?\s*TOTAL source-updated -> warehouse-visible/);
    const svg = renderLatencySvg(report);
    expect(svg).toContain('class="cdf-cdc"');
    expect(svg).toContain('cdc (100 versions)');
    // Ten hop rows fit: the drawing grows instead of cutting the last bars off.
    const height = Number(/height="(\d+)"/.exec(svg)?.[1]);
    expect(height).toBeGreaterThanOrEqual(50 + 10 * 52);
    const html = renderLatencyHtml(report, svg);
    expect(html).toContain('<td>cdc</td><td>TOTAL source-updated -&gt; warehouse-visible</td><td>100</td>');
  });
});

describe('GET /stats/latency through the API, in process', () => {
  // The warehouse answers the two named queries with histogram rows, as PostgreSQL returns them
  // (bigint counts as text); any other statement is a defect in the route.
  const asked: Array<{ query: string; params: ReadonlyArray<unknown> | undefined }> = [];
  const db: QueryPort = {
    async query(sql, params) {
      const name = ['latency-histogram', 'latency-cdc-histogram'].find((n) => namedQuery(n) === sql);
      if (!name) throw new Error(`unexpected statement: ${sql.slice(0, 60)}`);
      asked.push({ query: name, params });
      if (name === 'latency-histogram') return { rows: [{ path: 'stream', hop: 'total', ms: '40', n: '3' }] };
      return {
        rows: histogram(VERSIONS.slice(0, 4)).map((r) => ({ ...r, ms: String(r.ms), n: String(r.n) })),
      };
    },
  };
  const unused = () => Promise.reject(new Error('not used by /stats routes'));
  const store: InvoiceReader = {
    getInvoice: unused,
    listCustomerInvoices: unused,
    getProductLines: unused,
    getCountryStats: unused,
    ping: async () => undefined,
  };
  const writer: LineWriter = { putLines: unused };
  const app = createApp({
    store,
    writer,
    logger: pino({ level: 'silent' }),
    extraRoutes: (router) => router.use(createAnalyticsRouter({ db })),
  });
  const handler = configure({ app, logSettings: { level: 'error' } });
  const get = async (rawPath: string, rawQueryString: string) => {
    const out = (await handler(
      {
        version: '2.0',
        routeKey: '$default',
        rawPath,
        rawQueryString,
        headers: { host: 'test' },
        requestContext: {
          accountId: '000000000000',
          apiId: 'test',
          domainName: 'test',
          http: {
            method: 'GET',
            path: rawPath,
            protocol: 'HTTP/1.1',
            sourceIp: '127.0.0.1',
            userAgent: 'vitest',
          },
          requestId: 'r',
          routeKey: '$default',
          stage: '$default',
          time: '',
          timeEpoch: 0,
        },
        isBase64Encoded: false,
      },
      {} as Context,
      () => {},
    )) as { statusCode: number; body: string };
    return { status: out.statusCode, body: JSON.parse(out.body) as LatencyReport & { error?: string } };
  };

  it('answers every path with its hops and a CDF, the cdc path from its own query', async () => {
    const res = await get('/stats/latency', 'since=10m');
    expect(res.status).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(['cdf', 'generatedAt', 'hops', 'windowStart']);
    expect(Object.keys(res.body.cdf).sort()).toEqual(['batch', 'cdc', 'stream']);
    const cdc = res.body.hops.filter((h) => h.path === 'cdc');
    expect(cdc.map((h) => h.hop)).toEqual([
      'updated_ingested',
      'ingested_processed',
      'processed_warehouse_visible',
      'total',
    ]);
    for (const h of cdc)
      expect(Object.keys(h).sort()).toEqual([
        'count',
        'from',
        'hop',
        'max',
        'p50',
        'p90',
        'p99',
        'path',
        'to',
      ]);
    expect(cdc.find((h) => h.hop === 'updated_ingested')).toMatchObject({ count: 4, p50: 3000, max: 5000 });
    expect(res.body.hops.find((h) => h.path === 'stream' && h.hop === 'total')).toMatchObject({
      count: 3,
      p50: 40,
    });
    // Both queries get the same window start, 10 minutes before the report.
    expect(asked.map((a) => a.query).sort()).toEqual(['latency-cdc-histogram', 'latency-histogram']);
    const windowStart = Date.parse(res.body.windowStart ?? '');
    expect(Date.parse(res.body.generatedAt) - windowStart).toBe(600_000);
    for (const a of asked) expect(a.params).toEqual([res.body.windowStart]);
  });

  it('a window that is not a duration is a 400 that says why', async () => {
    const res = await get('/stats/latency', 'since=soon');
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/not a duration/);
  });
});

describe('Power BI: the totesys stars', () => {
  it('each star lists its fact view first and the dimensions of SCHEMA.md', () => {
    expect(TOTESYS_POWERBI_VIEWS.sales[0]).toBe('Totesys Sales Orders');
    expect(TOTESYS_POWERBI_VIEWS.purchases[0]).toBe('Totesys Purchase Orders');
    expect(TOTESYS_POWERBI_VIEWS.payments[0]).toBe('Totesys Payments');
    expect(TOTESYS_POWERBI_VIEWS.payments).toContain('Totesys Payment Type');
    expect(TOTESYS_POWERBI_VIEWS.purchases).not.toContain('Totesys Design');
  });

  it('a star file is an ordinary single-connection .pbids', () => {
    expect(
      buildPbids({ protocol: 'postgresql', server: '127.0.0.1:5433', database: 'retail', mode: 'Import' }),
    ).toEqual({
      version: '0.1',
      connections: [
        {
          details: { protocol: 'postgresql', address: { server: '127.0.0.1:5433', database: 'retail' } },
          options: {},
          mode: 'Import',
        },
      ],
    });
  });
});
