import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '#adapters/logger';
import { latencyReport } from '#analytics/latency';
import { type Pipeline, startPipeline } from '#cli/pipeline';
import { eventually, testConfig } from '#test/helpers/stack';

/**
 * The dashboard's totesys panel on the real local pipeline: the seeded source, its capture every
 * second, transform and load. A source update reaches its star; the panel then shows the cdc hops
 * with the counts the warehouse reports, and the KPI its p50 / p99.
 */
const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.resolve(import.meta.dirname, '../artifacts');

let browser: Browser;
let pipeline: Pipeline;

beforeAll(async () => {
  await fs.access(CHROMIUM);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  await fs.mkdir(ARTIFACTS, { recursive: true });
  // The simulator off: the only changes are the test's, so the counts are known.
  const config = await testConfig({
    RP_TOTESYS_EXTRACT_SECONDS: '1',
    RP_LOAD_INTERVAL_SECONDS: '1',
    RP_TOTESYS_SIMULATE_RATE: '0',
  });
  pipeline = await startPipeline({ config, logger: createLogger('silent') });
});

afterAll(async () => {
  await browser?.close();
  await pipeline?.stop();
});

describe('the dashboard cdc panel', () => {
  it('shows the totesys hops once a source change is in its star', async () => {
    // The first extraction (the seed) is a backlog: wait for it in the stars before changing anything.
    await eventually(
      async () => {
        const r = await pipeline.warehouse.query<{ n: string }>(
          'SELECT COUNT(*) AS n FROM totesys.fact_payment',
        );
        return Number(r.rows[0]?.n) > 0 ? true : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500, what: 'the seeded source in the stars' },
    );
    const source = new pg.Client({ connectionString: pipeline.stack.endpoints.totesys });
    await source.connect();
    try {
      await source.query('UPDATE sales_order SET units_sold = units_sold + 1 WHERE sales_order_id IN (1, 2)');
      await source.query('UPDATE payment SET paid = true WHERE payment_id = 3');
    } finally {
      await source.end();
    }
    const report = await eventually(
      async () => {
        const r = await latencyReport(pipeline.warehouse);
        return r.hops.find((h) => h.path === 'cdc' && h.hop === 'total')?.count === 3 ? r : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500, what: 'three changed versions in the stars' },
    );

    const page = await browser.newPage({ viewport: { width: 1280, height: 1600 } });
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console.${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    await page.goto(`${pipeline.dashboardUrl}?interval=500&since=all`);
    await page.waitForFunction('window.dashboard && window.dashboard.updates >= 1');
    const rows = await page.$$eval('#cdc-table tbody tr', (trs) =>
      trs.map((r) => [...r.querySelectorAll('td')].slice(0, 2).map((td) => td.textContent)),
    );
    expect(rows).toEqual([
      ['source-updated → ingested', '3'],
      ['ingested → processed', '3'],
      ['processed → warehouse-visible', '3'],
      ['TOTAL source-updated → warehouse-visible', '3'],
    ]);
    expect(await page.$eval('#card-cdc', (c) => c.classList.contains('is-empty'))).toBe(false);
    // The chart draws p50 and p99 per hop, in seconds, as the report gives them.
    const drawn = await page.evaluate(
      '({ labels: window.dashboard.charts.cdc.data.labels, p50: window.dashboard.charts.cdc.data.datasets[0].data })',
    );
    const cdcHops = report.hops.filter((h) => h.path === 'cdc');
    expect(drawn).toEqual({
      labels: rows.map((r) => r[0]),
      p50: cdcHops.map((h) => (h.p50 ?? 0) / 1000),
    });
    expect(await page.textContent('#kpi-cdc')).toMatch(/^\d.* \/ \d/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-cdc.png'), fullPage: true });
    await page.close();
    expect(problems).toEqual([]);
  });
});
