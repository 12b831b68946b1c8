import fs from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Decimal } from 'decimal.js';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '#adapters/logger';
import { latencyReport } from '#analytics/latency';
import { writeLatencyReport } from '#analytics/latency-page';
import { salesKpis } from '#analytics/sales';
import { type Pipeline, startPipeline } from '#cli/pipeline';
import type { InvoiceLineInput } from '#core/invoice-line';
import { invoiceLines } from '#test/helpers/lines';
import { eventually, testConfig } from '#test/helpers/stack';

/**
 * The dashboard as a user sees it on `npm start`: the real local pipeline (API -> Kinesis -> consumer
 * -> DynamoDB, Firehose -> archive -> loader -> warehouse -> marts), lines POSTed to its API, the
 * page opened in headless Chromium.
 */
const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.resolve(import.meta.dirname, '../artifacts');
// With an API key set, as on AWS: the page is public, its JSON calls carry the key.
const API_KEY = 'dashboard-test-key';

let browser: Browser;

beforeAll(async () => {
  await fs.access(CHROMIUM);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
    ],
  });
  await fs.mkdir(ARTIFACTS, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
});

/** Console errors and uncaught exceptions of a page: the test fails on any. */
function watch(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console.${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`requestfailed: ${r.url()}`));
  return problems;
}

async function openDashboard(pipeline: Pipeline): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1500 } });
  const problems = watch(page);
  await page.goto(`${pipeline.dashboardUrl}?apiKey=${API_KEY}&interval=500`);
  return { page, problems };
}

interface ChartData {
  labels: string[];
  values: number[];
}
const charts = (page: Page): Promise<Record<string, ChartData>> =>
  page.evaluate(
    `Object.fromEntries(Object.entries(window.dashboard.charts).map(([k, c]) => [k, {
      labels: (c.data.labels || []).map(String),
      values: c.data.datasets[0].data.map((d) => typeof d === 'number' ? d : d.y),
    }]))`,
  );
const emptyCards = (page: Page) => page.$$eval('.card.is-empty', (cards) => cards.map((c) => c.id).sort());
const text = async (page: Page, selector: string) => (await page.textContent(selector))?.trim();

describe('the dashboard of a fresh pipeline, before and after lines go through it', () => {
  // Three invoices, three countries, two days, three products (T0001..T0003), as a producer sends them.
  const POSTED: InvoiceLineInput[] = [
    ...invoiceLines(3, { invoiceNo: '600001', quantity: 2 }),
    ...invoiceLines(2, { invoiceNo: '600002', quantity: 5, customerId: '12680', country: 'France' }),
    ...invoiceLines(1, {
      invoiceNo: '600003',
      quantity: 1,
      customerId: '12662',
      country: 'Germany',
      invoiceDate: '2010-12-02T10:00:00',
    }),
  ];
  // What the page must show, computed here from the posted lines (decimal, independent of the SQL).
  const revenueBy = (key: (l: InvoiceLineInput) => string) => {
    const sums = new Map<string, Decimal>();
    for (const l of POSTED) {
      sums.set(key(l), (sums.get(key(l)) ?? new Decimal(0)).plus(new Decimal(l.unitPrice).times(l.quantity)));
    }
    return [...sums].map(([k, v]) => ({ k, revenue: v.toNumber() }));
  };
  const byRevenue = (a: { k: string; revenue: number }, b: { k: string; revenue: number }) =>
    b.revenue - a.revenue || a.k.localeCompare(b.k);

  let pipeline: Pipeline;
  /** The page as a user first sees it, taken before any line is posted (one pipeline start, not two). */
  let before: { empty: string[]; status: string; lines: string | undefined; problems: string[] };
  beforeAll(async () => {
    const config = await testConfig({ RP_API_KEY: API_KEY });
    pipeline = await startPipeline({ config, logger: createLogger('silent') });
    const first = await openDashboard(pipeline);
    await first.page.waitForFunction('window.dashboard && window.dashboard.updates >= 1');
    before = {
      empty: await emptyCards(first.page),
      status: (await first.page.textContent('#status')) ?? '',
      lines: await text(first.page, '#kpi-lines'),
      problems: first.problems,
    };
    await first.page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-empty.png'), fullPage: true });
    await first.page.close();

    const producedAt = new Date().toISOString();
    const res = await fetch(`${pipeline.apiUrl}/invoices`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': API_KEY },
      body: JSON.stringify(POSTED.map((l) => ({ ...l, producedAt }))),
    });
    expect(res.status).toBe(202);
    // The event the page depends on: the marts rebuilt after the loader merged every posted line
    // (the archive is flushed after 1 s, the loader reacts to its S3 notification).
    await eventually(
      async () => ((await salesKpis(pipeline.warehouse)).factRows === POSTED.length ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 250, what: 'the posted lines in the warehouse marts' },
    );
  });
  afterAll(async () => {
    await pipeline?.stop();
  });

  it('before any line: every card empty, no load yet, no console error', () => {
    // card-cdc (the totesys capture running beside) is checked in dashboard-cdc-browser.test.ts.
    expect(before.empty.filter((id) => id !== 'card-cdc')).toEqual([
      'card-country',
      'card-day',
      'card-latency',
      'card-products',
      'card-rate',
    ]);
    expect(before.status).toMatch(/updated .*no load yet/);
    expect(before.lines).toBe('0');
    expect(before.problems).toEqual([]);
  });

  it('shows the posted lines in every chart, KPI and the latency table', async () => {
    const { page, problems } = await openDashboard(pipeline);
    await page.waitForFunction("document.querySelectorAll('.card.is-empty').length === 0", undefined, {
      timeout: 30_000,
    });

    const shown = await charts(page);
    const countries = revenueBy((l) => l.country).sort(byRevenue);
    expect(shown.country).toEqual({
      labels: countries.map((c) => c.k),
      values: countries.map((c) => c.revenue),
    });
    const products = revenueBy((l) => l.stockCode).sort(byRevenue);
    expect(shown.products?.labels).toEqual(products.map((p) => `${p.k} ${POSTED[0]?.description}`));
    expect(shown.products?.values).toEqual(products.map((p) => p.revenue));
    const days = revenueBy((l) => l.invoiceDate.slice(0, 10)).sort((a, b) => a.k.localeCompare(b.k));
    expect(shown.day).toEqual({ labels: days.map((d) => d.k), values: days.map((d) => d.revenue) });
    // The live rate counts what the API accepted (the page shows its last 120 s): all the posted lines.
    expect(shown.rate?.values.reduce((a, b) => a + b, 0)).toBe(POSTED.length);

    expect(await text(page, '#kpi-lines')).toBe(String(POSTED.length));
    expect(await text(page, '#kpi-purchases')).toBe('3');
    expect(await text(page, '#kpi-customers')).toBe('3');
    expect(await page.textContent('#status')).toMatch(/marts refreshed/);

    // Every line crossed both paths: the consumer stamped streamVisibleAt, the loader the warehouse time.
    const hops = await page.$$eval('#latency-table tbody tr', (rows) =>
      rows.map((r) => [...r.querySelectorAll('td')].slice(0, 3).map((td) => td.textContent)),
    );
    expect(hops).toEqual([
      ['stream', 'produced → accepted', String(POSTED.length)],
      ['stream', 'accepted → stream-visible', String(POSTED.length)],
      ['stream', 'TOTAL produced → stream-visible', String(POSTED.length)],
      ['batch', 'produced → archived', String(POSTED.length)],
      ['batch', 'archived → warehouse-visible', String(POSTED.length)],
      ['batch', 'TOTAL produced → warehouse-visible', String(POSTED.length)],
    ]);
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png'), fullPage: true });
    await page.close();
    expect(problems).toEqual([]);
  });

  it('the latency report page of those lines opens without errors and shows both paths', async () => {
    const report = await latencyReport(pipeline.warehouse);
    const lineHops = report.hops.filter((h) => h.path !== 'cdc');
    expect(lineHops.map((h) => h.count)).toEqual(lineHops.map(() => POSTED.length));
    const files = await writeLatencyReport(report, path.join(ARTIFACTS, 'latency'));
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const problems = watch(page);
    await page.goto(pathToFileURL(files.html).href);
    expect(await page.locator('svg path.cdf-stream').count()).toBe(1);
    expect(await page.locator('svg path.cdf-batch').count()).toBe(1);
    expect(await page.locator('tbody tr').count()).toBe(report.hops.length);
    await page.screenshot({ path: path.join(ARTIFACTS, 'latency-report.png'), fullPage: true });
    await page.close();
    expect(problems).toEqual([]);
  });
});
