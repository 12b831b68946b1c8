import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '#adapters/logger';
import { latencyReport } from '#analytics/latency';
import { TOTESYS_POWERBI_VIEWS } from '#analytics/powerbi';
import { loadPending } from '#cdc/load';
import { ingestionKey, ingestionMarkerKey } from '#cdc/totesys/layout';
import { columnNames, totesysTable } from '#cdc/totesys/tables';
import { processedObjectKey, transformPending } from '#cdc/transform';
import { type LoaderEnv, startLoaderEnv } from '#test/helpers/loader-env';

/**
 * Analytics over the totesys stars against the migrated test warehouse: the cdc path of the latency
 * report from known lineage stamps, the lineage the real load writes, and the Power BI views.
 */
const BUCKET = 'pipeline';
let env: LoaderEnv;
const q = async (sql: string, params: unknown[] = []) =>
  (await env.warehouse.query<Record<string, unknown>>(sql, params)).rows;

beforeAll(async () => {
  env = await startLoaderEnv(BUCKET, 'analytics-cdc-');
});
afterAll(() => env?.stop());

const processed = (table: string, runId: string) => processedObjectKey(table, runId);
const RUN0 = '20261101T090000000Z-000000';
const RUN_A = '20261101T100002000Z-aaaaaa';
const RUN_B = '20261101T100012500Z-bbbbbb';

async function manifestRow(key: string, discoveredAt: string): Promise<void> {
  await q(
    `INSERT INTO load_manifest (object_key, etag, load_id, source, format, status, attempts, discovered_at)
     VALUES ($1, 'e', 'test', 'cdc', 'parquet', 'loaded', 1, CAST($2 AS timestamptz))`,
    [key, discoveredAt],
  );
}

/** A fact version with its lineage stamps, as the load leaves it (the source stamp has no zone). */
async function salesVersion(
  id: number,
  updated: string,
  key: string | null,
  ingested: string,
  visible: string,
) {
  await q(
    `INSERT INTO totesys.fact_sales_order (sales_order_id, created_date, created_time, last_updated_date,
       last_updated_time, sales_staff_id, counterparty_id, units_sold, unit_price, currency_id, design_id,
       agreed_payment_date, agreed_delivery_date, agreed_delivery_location_id, source_key, ingested_at,
       warehouse_visible_at)
     VALUES ($1, DATE '2026-10-01', TIME '09:00:00', CAST($2 AS date), CAST($3 AS time), 1, 1, 10, 2.50, 1, 1,
       DATE '2026-11-10', DATE '2026-11-11', 1, $4, CAST($5 AS timestamptz), CAST($6 AS timestamptz))`,
    [id, updated.slice(0, 10), updated.slice(11), key, ingested, visible],
  );
}

/** Removes every totesys fact version and cdc manifest row, whoever left them. */
async function clearCdcFacts(): Promise<void> {
  for (const t of ['fact_sales_order', 'fact_purchase_orders', 'fact_payment'])
    await q(`DELETE FROM totesys.${t}`);
  await q("DELETE FROM load_manifest WHERE source = 'cdc'");
}

describe('the cdc path of the latency report, from known stamps', () => {
  beforeAll(async () => {
    // The report reads every cdc version and load: only this describe's known stamps may be there.
    await clearCdcFacts();
    // The first extraction (the backlog) reached the loader at 09:00; run A's objects from 10:00:04.8
    // (its dimension object first), run B's at 10:00:14.
    await manifestRow(processed('fact_sales_order', RUN0), '2026-11-01T09:00:01.000Z');
    await manifestRow(processed('dim_date', RUN_A), '2026-11-01T10:00:04.800Z');
    await manifestRow(processed('fact_sales_order', RUN_A), '2026-11-01T10:00:05.100Z');
    await manifestRow(processed('fact_payment', RUN_B), '2026-11-01T10:00:14.000Z');
    // Backlog: updated long before the warehouse first saw totesys data. Not freshness.
    await salesVersion(
      9,
      '2024-11-03T08:00:00.000',
      processed('fact_sales_order', RUN0),
      '2026-11-01T09:00:00.500Z',
      '2026-11-01T09:00:01.500Z',
    );
    // Loaded before migration 0210: no lineage, left out.
    await salesVersion(8, '2026-11-01T10:00:00.500', null, '2026-11-01T10:00:03Z', '2026-11-01T10:00:05.5Z');
    // Hops: 3000 / 1800 / 700 ms and 2000 / 1800 / 700 ms (processed = run A's first object).
    const a = processed('fact_sales_order', RUN_A);
    await salesVersion(
      1,
      '2026-11-01T10:00:00.000',
      a,
      '2026-11-01T10:00:03.000Z',
      '2026-11-01T10:00:05.500Z',
    );
    await salesVersion(
      2,
      '2026-11-01T10:00:01.000',
      a,
      '2026-11-01T10:00:03.000Z',
      '2026-11-01T10:00:05.500Z',
    );
    // A payment in run B: 1000 / 1000 / 250 ms.
    await q(
      `INSERT INTO totesys.fact_payment (payment_id, created_date, created_time, last_updated_date,
         last_updated_time, transaction_id, counterparty_id, payment_amount, currency_id, payment_type_id, paid,
         payment_date, source_key, ingested_at, warehouse_visible_at)
       VALUES (1, DATE '2026-11-01', TIME '10:00:12', DATE '2026-11-01', TIME '10:00:12', 1, 1, 25.00, 1, 1, true,
         DATE '2026-11-02', $1, CAST($2 AS timestamptz), CAST($3 AS timestamptz))`,
      [processed('fact_payment', RUN_B), '2026-11-01T10:00:13.000Z', '2026-11-01T10:00:14.250Z'],
    );
  });

  const cdc = (r: Awaited<ReturnType<typeof latencyReport>>) =>
    Object.fromEntries(
      r.hops.filter((h) => h.path === 'cdc').map((h) => [h.hop, [h.count, h.p50, h.p99, h.max]] as const),
    );

  it('per hop over every version since the first load: nearest-rank percentiles of the known delays', async () => {
    const report = await latencyReport(env.warehouse);
    expect(cdc(report)).toEqual({
      updated_ingested: [3, 2000, 3000, 3000],
      ingested_processed: [3, 1800, 1800, 1800],
      processed_warehouse_visible: [3, 700, 700, 700],
      total: [3, 4500, 5500, 5500],
    });
    expect(report.cdf.cdc).toEqual([
      [2250, 1 / 3],
      [4500, 2 / 3],
      [5500, 1],
    ]);
  });

  it('a window keeps the versions updated within it', async () => {
    const report = await latencyReport(env.warehouse, { since: '5s', now: new Date('2026-11-01T10:00:10Z') });
    expect(cdc(report).total).toEqual([1, 2250, 2250, 2250]);
  });

  afterAll(clearCdcFacts);
});

describe('the load stamps each fact version with its lineage', () => {
  const RUN1 = '20261201T100100000Z-111111';
  const RUN2 = '20261201T100600000Z-222222';
  const FINISHED: Record<string, string> = {
    [RUN1]: '2026-12-01T10:01:00.750Z',
    [RUN2]: '2026-12-01T10:06:01.250Z',
  };

  /** One extraction run with one sales order version, in the contract's layout, marker last. */
  async function extractRun(runId: string, unitsSold: string, lastUpdated: string): Promise<void> {
    const table = totesysTable('sales_order');
    const row: Record<string, string> = {
      sales_order_id: '7',
      created_at: '2026-12-01T09:00:00.000000',
      last_updated: lastUpdated,
      design_id: '1',
      staff_id: '1',
      counterparty_id: '1',
      units_sold: unitsSold,
      unit_price: '3.25',
      currency_id: '1',
      agreed_delivery_date: '2026-12-10',
      agreed_payment_date: '2026-12-11',
      agreed_delivery_location_id: '1',
    };
    const cols = columnNames(table);
    const key = ingestionKey('sales_order', runId);
    const body = `${cols.join(',')}\n${cols.map((c) => row[c] ?? '').join(',')}\n`;
    await env.clients.s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
    const marker = {
      runId,
      source: 'totesys',
      startedAt: `${runId.slice(0, 4)}-${runId.slice(4, 6)}-${runId.slice(6, 8)}T10:00:00.000Z`,
      finishedAt: FINISHED[runId],
      tables: { sales_order: { key, rows: 1, from: null, to: lastUpdated } },
    };
    await env.clients.s3.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: ingestionMarkerKey(runId), Body: JSON.stringify(marker) }),
    );
  }

  it('source_key = the processed object, ingested_at = its run marker finishedAt, visible when loaded', async () => {
    const deps = {
      s3: env.clients.s3,
      bucket: BUCKET,
      warehouse: env.warehouse,
      logger: createLogger('silent'),
    };
    await extractRun(RUN1, '100', '2026-12-01T10:00:30.000000');
    await extractRun(RUN2, '200', '2026-12-01T10:05:30.000000');
    expect((await transformPending(deps)).transformed.map((m) => m.runId)).toEqual([RUN1, RUN2]);
    const now = async () =>
      Number((await q('SELECT EXTRACT(EPOCH FROM CURRENT_TIMESTAMP) * 1000 AS t'))[0]?.t);
    const before = await now();
    const results = await loadPending(deps);
    expect(results.filter((r) => r.status !== 'loaded')).toEqual([]);
    const after = await now();

    const rows = await q(
      `SELECT units_sold, source_key, ingested_at, warehouse_visible_at FROM totesys.fact_sales_order
       WHERE sales_order_id = 7 ORDER BY sales_record_id`,
    );
    expect(rows.map((r) => [r.units_sold, r.source_key, (r.ingested_at as Date).toISOString()])).toEqual([
      [100, processed('fact_sales_order', RUN1), FINISHED[RUN1]],
      [200, processed('fact_sales_order', RUN2), FINISHED[RUN2]],
    ]);
    for (const r of rows) {
      const visible = (r.warehouse_visible_at as Date).getTime();
      expect(visible).toBeGreaterThanOrEqual(before);
      expect(visible).toBeLessThanOrEqual(after);
    }

    // The Power BI fact view shows both versions, the latest flagged, money as fixed decimals.
    const view = await q(
      `SELECT "Units Sold" AS units, CAST("Order Value" AS varchar) AS value, "Is Latest Version" AS latest
       FROM powerbi."Totesys Sales Orders" WHERE "Sales Order ID" = 7 ORDER BY "Sales Record ID"`,
    );
    expect(view).toEqual([
      { units: 100, value: '325.0000', latest: 'No' },
      { units: 200, value: '650.0000', latest: 'Yes' },
    ]);
  });
});

describe('Power BI views of the totesys stars', () => {
  // Which warehouse table each view reads: the star's fact or its dimension, nothing else.
  const READS: Record<string, string> = {
    'Totesys Sales Orders': 'fact_sales_order',
    'Totesys Purchase Orders': 'fact_purchase_orders',
    'Totesys Payments': 'fact_payment',
    'Totesys Date': 'dim_date',
    'Totesys Staff': 'dim_staff',
    'Totesys Counterparty': 'dim_counterparty',
    'Totesys Location': 'dim_location',
    'Totesys Currency': 'dim_currency',
    'Totesys Design': 'dim_design',
    'Totesys Payment Type': 'dim_payment_type',
    'Totesys Transaction': 'dim_transaction',
  };

  it('every view of every star exists in schema powerbi and selects from its totesys table only', async () => {
    const views = [...new Set(Object.values(TOTESYS_POWERBI_VIEWS).flat())].sort();
    expect(views).toEqual(Object.keys(READS).sort());
    const usage = await q(
      `SELECT view_name, table_schema, table_name FROM information_schema.view_table_usage
       WHERE view_schema = 'powerbi' AND view_name LIKE 'Totesys %' ORDER BY view_name`,
    );
    expect(usage).toEqual(
      Object.keys(READS)
        .sort()
        .map((v) => ({ view_name: v, table_schema: 'totesys', table_name: READS[v] })),
    );
    for (const v of views) await q(`SELECT * FROM powerbi."${v}" LIMIT 1`);
  });

  it('the payments star reads paid as Yes/No and money as numeric(19, 4)', async () => {
    const cols = await q(
      `SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns
       WHERE table_schema = 'powerbi' AND table_name = 'Totesys Payments'
         AND column_name IN ('Payment Amount', 'Is Paid') ORDER BY column_name`,
    );
    expect(cols).toEqual([
      {
        column_name: 'Is Paid',
        data_type: 'character varying',
        numeric_precision: null,
        numeric_scale: null,
      },
      { column_name: 'Payment Amount', data_type: 'numeric', numeric_precision: 19, numeric_scale: 4 },
    ]);
  });
});
