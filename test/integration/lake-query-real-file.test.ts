import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Clients, createClients } from '#adapters/clients';
import { createLogger } from '#adapters/logger';
import { createLoader } from '#batch/loader/index';
import { typeObjectInto } from '#batch/typed-object';
import { s3LakeObjects } from '#lake/catalog-objects';
import { crawlLake } from '#lake/crawler';
import { INVOICE_LINE_SCHEMA } from '#lake/invoice-lines';
import { catchUpLake } from '#lake/invoice-lines-stage';
import { loadedSourceObjects } from '#lake/lake-manifest';
import { queryLake } from '#lake/query';
import { revenueByCountryMonthSql, revenueRow } from '#lake/query-revenue';
import { type RunningS3, startS3 } from '#local/emulators';
import { scratchDataDir } from '#local/scratch';
import { startTestWarehouse, type TestWarehouse } from './analytics-fixtures.ts';

const REAL_FILE = path.resolve(
  import.meta.dirname,
  '../../../shared/data/online-retail/online-retail.csv.gz',
);
const present = fs.existsSync(REAL_FILE);
if (!present) console.warn(`lake real-file test skipped: ${REAL_FILE} is absent`);
const BUCKET = 'rp-lake-real';

describe.skipIf(!present)('the lake against the warehouse on the real Online Retail file', () => {
  let t: TestWarehouse;
  let s3: RunningS3;
  let clients: Clients;
  let dir: string;

  beforeAll(async () => {
    dir = await scratchDataDir('rp-lake-real-');
    t = await startTestWarehouse();
    s3 = await startS3({ host: '127.0.0.1', port: 0, buckets: [BUCKET], directory: path.join(dir, 's3') });
    clients = createClients({ region: 'eu-west-2', endpoints: { s3: s3.url }, local: true });
    const key = 'landing/online-retail.csv.gz';
    await clients.s3.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: await fsp.readFile(REAL_FILE) }),
    );
    const logger = createLogger('warn', 'lake-real-file');
    const loader = createLoader({ s3: clients.s3, bucket: BUCKET, warehouse: t.warehouse, logger });
    expect((await loader.loadKey(key)).status).toBe('loaded');
    await loader.stop();
    // The lake's stage as the CLI wires it (cli/lake-stage.ts): what the warehouse loaded, typed again.
    const lake = await catchUpLake({
      store: { s3: clients.s3, bucket: BUCKET },
      loaded: () => loadedSourceObjects(t.warehouse),
      readLines: (object, collector) => typeObjectInto(clients.s3, BUCKET, object, collector),
      logger,
    });
    expect(lake.failed).toEqual([]);
    expect(lake.lines).toBe(541_909);
  }, 900_000);

  afterAll(async () => {
    clients?.destroy();
    await s3?.stop();
    await t?.stop();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  it('the crawler catalogs the invoice lines as written: the schema, the types, one partition per invoice month', async () => {
    const report = await crawlLake({ objects: s3LakeObjects(clients.s3, BUCKET), bucket: BUCKET });
    const table = report.catalog.Tables.find((x) => x.Name === 'invoice_lines');
    expect(table?.StorageDescriptor.Columns.map((c) => c.Name)).toEqual(
      INVOICE_LINE_SCHEMA.map((c) => c.name),
    );
    const types = Object.fromEntries(table?.StorageDescriptor.Columns.map((c) => [c.Name, c.Type]) ?? []);
    expect(types).toMatchObject({
      invoice_no: 'string',
      line_no: 'int',
      invoice_date: 'timestamp',
      quantity: 'int',
      unit_price: 'decimal(12,3)',
      line_total: 'decimal(18,3)',
      is_cancellation: 'boolean',
      accepted_at: 'timestamp',
    });
    expect(table?.PartitionKeys.map((k) => k.Name)).toEqual(['year', 'month']);
    const months = await t.warehouse.query<{ n: string }>(
      'SELECT count(DISTINCT date_key / 100) AS n FROM fact_sales_line',
    );
    expect(report.catalog.Partitions.invoice_lines).toHaveLength(Number(months.rows[0]?.n));
    expect(report.skipped).toEqual([]);
  }, 300_000);

  it('revenue by country and month over the lake equals the same query over the warehouse, to the penny', async () => {
    const lake = await queryLake(
      { objects: s3LakeObjects(clients.s3, BUCKET), bucket: BUCKET, cacheDir: path.join(dir, 'lake-cache') },
      revenueByCountryMonthSql('invoice_lines'),
    );
    const warehouse = await t.warehouse.query<Record<string, unknown>>(
      revenueByCountryMonthSql('fact_sales_line'),
    );
    const fromWarehouse = warehouse.rows.map((r) => revenueRow(Object.values(r)));
    const fromLake = lake.rows.map(revenueRow);
    expect(fromLake.length).toBeGreaterThan(38);
    expect(fromLake).toEqual(fromWarehouse);
    const total = (rows: string[][]) => rows.reduce((a, r) => a + BigInt((r[5] ?? '0').replace('.', '')), 0n);
    expect(total(fromLake)).toBe(total(fromWarehouse));
    expect(fromLake.reduce((a, r) => a + Number(r[3]), 0)).toBe(541_909);
  }, 300_000);

  it('flags the same lines as the warehouse: duplicate rows, cancellations, adjustments, non-products', async () => {
    const flags = (table: string) =>
      `SELECT count(*) FILTER (WHERE is_duplicate_row) AS duplicates, count(*) FILTER (WHERE is_cancellation) AS cancellations,
        count(*) FILTER (WHERE is_adjustment) AS adjustments, count(*) FILTER (WHERE is_non_product) AS non_products,
        count(DISTINCT invoice_no || '#' || line_no) FILTER (WHERE is_duplicate_row) AS duplicate_keys FROM ${table}`;
    const lake = await queryLake(
      { objects: s3LakeObjects(clients.s3, BUCKET), bucket: BUCKET, cacheDir: path.join(dir, 'lake-cache') },
      flags('invoice_lines'),
    );
    const warehouse = await t.warehouse.query<Record<string, unknown>>(flags('fact_sales_line'));
    const counts = (row: readonly unknown[]) => row.map(Number);
    expect(counts(lake.rows[0] ?? [])).toEqual(counts(Object.values(warehouse.rows[0] ?? {})));
    // The real file repeats thousands of rows within their invoice.
    expect(Number(lake.rows[0]?.[0])).toBeGreaterThan(1_000);
  }, 300_000);
});
