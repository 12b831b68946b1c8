import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Clients } from '#adapters/clients';
import { createLogger } from '#adapters/logger';
import type { Warehouse } from '#adapters/warehouse';
import { createLoader } from '#batch/loader/index';
import { type LoaderEnv, startLoaderEnv } from '#test/helpers/loader-env';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const REAL_FILE = path.resolve(REPO, '../shared/data/online-retail/online-retail.csv.gz');
const present = existsSync(REAL_FILE);
if (!present) console.warn(`skipping the real-file acceptance: ${REAL_FILE} is absent`);

const BUCKET = 'pipeline';
const logger = createLogger('silent');
let env: LoaderEnv;
let warehouse: Warehouse;
let clients: Clients;

describe.skipIf(!present)('loading the real Online Retail file into an empty warehouse', () => {
  beforeAll(async () => {
    env = await startLoaderEnv(BUCKET, 'loader-real-');
    ({ warehouse, clients } = env);
  });

  afterAll(() => env?.stop());

  const totals = async () =>
    (
      await warehouse.query(
        `SELECT count(*)::int AS lines, sum(line_total)::text AS total, count(DISTINCT invoice_no)::int AS invoices,
           count(DISTINCT customer_id)::int AS customers, count(DISTINCT country_name)::int AS countries,
           sum(CASE WHEN is_duplicate_row THEN 1 ELSE 0 END)::int AS duplicates,
           sum(CASE WHEN is_cancellation THEN 1 ELSE 0 END)::int AS cancellations,
           (SELECT count(*)::int FROM dim_customer) AS dim_customers,
           (SELECT count(*)::int FROM dim_product) AS products
         FROM fact_sales_line`,
      )
    ).rows[0];

  it('gives the published counts in one run, and a second run changes nothing', async () => {
    await clients.s3.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: 'landing/online-retail.csv.gz',
        Body: await fs.readFile(REAL_FILE),
      }),
    );
    const loader = createLoader({ s3: clients.s3, bucket: BUCKET, warehouse, logger });

    const [result] = await loader.sweep();

    expect(result).toMatchObject({
      status: 'loaded',
      rowsRead: 541_909,
      rowsLoaded: 541_909,
      rowsRejected: 0,
    });
    const first = await totals();
    expect(first).toEqual({
      lines: 541_909,
      total: '9747747.934',
      invoices: 25_900,
      customers: 4_372,
      countries: 38,
      duplicates: 5_268,
      cancellations: 9_288,
      dim_customers: 4_372,
      products: 4_070,
    });

    expect(await loader.sweep()).toEqual([]);
    expect(await loader.loadKey('landing/online-retail.csv.gz')).toMatchObject({ status: 'skipped' });
    expect(await totals()).toEqual(first);
  }, 300_000);
});
