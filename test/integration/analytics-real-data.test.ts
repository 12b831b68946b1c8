import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { Decimal } from 'decimal.js';
import S3rver from 's3rver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClients } from '#adapters/clients';
import { createLogger } from '#adapters/logger';
import { refreshMarts } from '#analytics/marts';
import { revenueByCountry, salesKpis, topProducts } from '#analytics/sales';
import { createLoader } from '#batch/loader/index';
import { startTestWarehouse, type TestWarehouse } from './analytics-fixtures.ts';

const REAL_FILE = path.resolve(
  import.meta.dirname,
  '../../../shared/data/online-retail/online-retail.csv.gz',
);
const present = fs.existsSync(REAL_FILE);
if (!present) console.warn(`analytics real-data test skipped: ${REAL_FILE} is absent`);

describe.skipIf(!present)('analytics on the real Online Retail file', () => {
  let t: TestWarehouse;
  let s3dir: string;
  let s3server: S3rver;
  let refreshMs = 0;

  beforeAll(async () => {
    t = await startTestWarehouse();
    s3dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rp-analytics-s3-'));
    s3server = new S3rver({
      port: 0,
      address: '127.0.0.1',
      silent: true,
      directory: s3dir,
      configureBuckets: [{ name: 'rp', configs: [] }],
    });
    const { port } = (await s3server.run()) as { port: number };
    const clients = createClients({
      region: 'us-east-1',
      endpoints: { s3: `http://127.0.0.1:${port}` },
      local: true,
    });
    await clients.s3.send(
      new PutObjectCommand({
        Bucket: 'rp',
        Key: 'landing/online-retail.csv.gz',
        Body: await fsp.readFile(REAL_FILE),
      }),
    );
    const loader = createLoader({
      s3: clients.s3,
      bucket: 'rp',
      warehouse: t.warehouse,
      logger: createLogger('warn', 'real-data'),
    });
    const result = await loader.loadKey('landing/online-retail.csv.gz');
    expect(result.status).toBe('loaded');
    await loader.stop();
    clients.destroy();
    refreshMs = (await refreshMarts(t.warehouse)).ms;
  }, 600_000);

  afterAll(async () => {
    await s3server?.close();
    await t?.stop();
    if (s3dir) await fsp.rm(s3dir, { recursive: true, force: true });
  });

  it('revenue by country equals a direct sum over the fact table', async () => {
    const direct = await t.warehouse.query<{ country_name: string; revenue: string }>(
      `SELECT country_name, SUM(line_total) AS revenue FROM fact_sales_line
       WHERE NOT is_duplicate_row AND NOT is_adjustment GROUP BY country_name`,
    );
    const report = await revenueByCountry(t.warehouse, 100);
    expect(report).toHaveLength(38);
    const expected = new Map(direct.rows.map((r) => [r.country_name, new Decimal(r.revenue).toFixed(3)]));
    expect(new Map(report.map((c) => [c.country, c.revenue]))).toEqual(expected);
    console.info(
      `real data: marts refreshed in ${refreshMs} ms; top country ${report[0]?.country} ${report[0]?.revenue}`,
    );
  });

  it('headline figures agree with the fact table', async () => {
    const kpis = await salesKpis(t.warehouse);
    const { rows } = await t.warehouse.query<Record<string, string>>(
      `SELECT COUNT(*) AS n,
         COUNT(DISTINCT CASE WHEN NOT is_cancellation AND NOT is_adjustment AND NOT is_duplicate_row THEN invoice_no END) AS purchases,
         COUNT(DISTINCT CASE WHEN is_cancellation THEN invoice_no END) AS cancellations
       FROM fact_sales_line`,
    );
    expect(kpis.factRows).toBe(541_909);
    expect(kpis.purchases).toBe(Number(rows[0]?.purchases));
    expect(kpis.cancellations).toBe(Number(rows[0]?.cancellations));
    expect(kpis.customersBuying).toBeGreaterThan(4_000);
    expect(kpis.repeatCustomerRate).toBeGreaterThan(0.5);
    const top = await topProducts(t.warehouse, 5);
    expect(top).toHaveLength(5);
    expect(top.every((p) => !['POST', 'DOT', 'M', 'AMAZONFEE'].includes(p.stockCode))).toBe(true);
    console.info(
      `real data: ${JSON.stringify({ ...kpis, top: top.map((p) => `${p.stockCode} ${p.revenue}`) })}`,
    );
  });
});
