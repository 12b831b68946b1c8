import fs from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InvoiceReader } from '#adapters/invoice-store';
import type { LineWriter } from '#adapters/kinesis-writer';
import { createLogger } from '#adapters/logger';
import { latencyReport } from '#analytics/latency';
import { writeLatencyReport } from '#analytics/latency-page';
import { refreshMarts } from '#analytics/marts';
import { createRateMeter, withRateMeter } from '#analytics/rate-meter';
import { createAnalyticsRouter, createDashboardRouter } from '#analytics/router';
import { createApp } from '#api/app';
import {
  type FixtureLine,
  insertFixture,
  insertManifest,
  SALES_FIXTURE,
  startTestWarehouse,
  type TestWarehouse,
} from '../integration/analytics-fixtures.ts';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.resolve(import.meta.dirname, '../artifacts');

let t: TestWarehouse;
let server: Server;
let base: string;
let browser: Browser;

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

const API_KEY = 'dashboard-test-key';

beforeAll(async () => {
  await fs.access(CHROMIUM);
  t = await startTestWarehouse();
  const meter = createRateMeter();
  const writer: LineWriter = { putLines: async (lines) => ({ records: lines.length, calls: 1 }) };
  const store = { ping: async () => undefined } as unknown as InvoiceReader;
  const app = createApp({
    store,
    writer: withRateMeter(writer, meter),
    logger: createLogger('warn', 'dashboard-test'),
    // With an API key set, as on AWS: the page is public, its JSON calls carry the key.
    apiKey: API_KEY,
    publicRoutes: (router) => router.use(createDashboardRouter()),
    extraRoutes: (router) => router.use(createAnalyticsRouter({ db: t.warehouse, rate: meter })),
  });
  server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
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
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  await t?.stop();
});

const chartSizes = (page: Page): Promise<Record<string, number>> =>
  page.evaluate(
    `Object.fromEntries(Object.entries(window.dashboard.charts).map(([k, c]) => [k, c.data.datasets[0].data.length]))`,
  );
const emptyCards = (page: Page) => page.$$eval('.card.is-empty', (cards) => cards.map((c) => c.id).sort());

describe('dashboard in headless Chromium', () => {
  it('loads with no data: empty states, no console errors', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1500 } });
    const problems = watch(page);
    await page.goto(`${base}/dashboard?apiKey=${API_KEY}&interval=500`);
    await page.waitForFunction('window.dashboard && window.dashboard.updates >= 1');
    expect(await emptyCards(page)).toEqual([
      'card-country',
      'card-day',
      'card-latency',
      'card-products',
      'card-rate',
    ]);
    expect(await page.textContent('#status')).toMatch(/updated .*no load yet/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-empty.png'), fullPage: true });
    await page.close();
    expect(problems).toEqual([]);
  });

  it('shows non-empty charts once lines are posted and loaded', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1500 } });
    const problems = watch(page);
    await page.goto(`${base}/dashboard?apiKey=${API_KEY}&interval=500&since=all`);

    // Lines posted to the API count in the live rate; the warehouse gets the fixture plus lineage.
    const now = Date.now();
    const posted = Array.from({ length: 40 }, (_, i) => ({
      invoiceNo: String(600000 + Math.floor(i / 4)),
      lineNo: (i % 4) + 1,
      stockCode: '85123A',
      description: 'WHITE HANGING HEART',
      quantity: 2,
      invoiceDate: '2011-12-09T12:00:00',
      unitPrice: '2.550',
      customerId: '17850',
      country: 'United Kingdom',
    }));
    const res = await fetch(`${base}/invoices`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': API_KEY },
      body: JSON.stringify(posted),
    });
    expect(res.status).toBe(202);
    const iso = (ms: number) => new Date(ms).toISOString();
    const lineage: FixtureLine[] = Array.from({ length: 30 }, (_, i) => ({
      invoiceNo: String(700000 + i),
      lineNo: 1,
      invoiceDate: '2011-02-10T10:00:00',
      stockCode: '22423',
      description: 'REGENCY CAKESTAND',
      customerId: null,
      country: 'Germany',
      quantity: 1,
      unitPrice: '12.750',
      lineTotal: '12.750',
      producedAt: iso(now - 30_000 + i),
      acceptedAt: iso(now - 29_990 + i * 2),
      streamVisibleAt: iso(now - 29_950 + i * 5),
      warehouseVisibleAt: iso(now - 15_000 + i * 100),
      sourceKey: 'archive/2024/01/01/00/dash-1.gz',
    }));
    await insertFixture(t.warehouse, [...SALES_FIXTURE, ...lineage]);
    await insertManifest(t.warehouse, 'archive/2024/01/01/00/dash-1.gz', iso(now - 24_000));
    await refreshMarts(t.warehouse);

    await page.waitForFunction("document.querySelectorAll('.card.is-empty').length === 0", undefined, {
      timeout: 15_000,
    });
    const sizes = await chartSizes(page);
    expect(sizes.day).toBeGreaterThan(0);
    expect(sizes.country).toBe(3);
    expect(sizes.products).toBe(3);
    expect(sizes.latency).toBeGreaterThan(0);
    expect(sizes.rate).toBeGreaterThan(0);
    expect(Number((await page.textContent('#kpi-rate'))?.replace(/,/g, ''))).toBeGreaterThan(0);
    expect(await page.textContent('#latency-table')).toContain('TOTAL produced → warehouse-visible');
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png'), fullPage: true });
    await page.close();
    expect(problems).toEqual([]);
  });

  it('the latency report page opens without errors and shows its chart', async () => {
    const files = await writeLatencyReport(await latencyReport(t.warehouse), path.join(ARTIFACTS, 'latency'));
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const problems = watch(page);
    await page.goto(pathToFileURL(files.html).href);
    expect(await page.locator('svg path.cdf-stream').count()).toBe(1);
    expect(await page.locator('svg path.cdf-batch').count()).toBe(1);
    expect(await page.locator('tbody tr').count()).toBe(6);
    await page.screenshot({ path: path.join(ARTIFACTS, 'latency-report.png'), fullPage: true });
    await page.close();
    expect(problems).toEqual([]);
  });
});
