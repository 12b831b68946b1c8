import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Decimal } from 'decimal.js';
import { createLogger } from '#adapters/logger';
import type { Warehouse } from '#adapters/warehouse';
import { createPostgresWarehouse } from '#adapters/warehouse-postgres';
import { createManifest } from '#batch/loader/manifest';
import { migrate } from '#batch/migrate';
import { type RunningPostgres, startPostgres, wipePostgres } from '#local/postgres';
import { FIRST_LINE } from '#test/helpers/lines';

/** A migrated, empty warehouse on an embedded PostgreSQL in a temp dir (ephemeral port). */
export interface TestWarehouse {
  warehouse: Warehouse;
  postgres: RunningPostgres;
  dir: string;
  stop(): Promise<void>;
}

export async function startTestWarehouse(): Promise<TestWarehouse> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rp-analytics-'));
  const logger = createLogger('warn', 'analytics-test');
  const postgres = await startPostgres({
    dataDir: path.join(dir, 'postgres'),
    host: '127.0.0.1',
    port: 0,
    user: 'retail',
    password: 'retail',
    database: 'retail',
    logger,
  });
  const warehouse = createPostgresWarehouse({ connectionString: postgres.connectionString, max: 3 });
  await migrate(warehouse, logger);
  return {
    warehouse,
    postgres,
    dir,
    async stop() {
      await warehouse.close();
      await postgres.stop();
      // The cluster may live outside `dir` (see local/postgres.ts): wipe it where it is.
      await wipePostgres(path.join(dir, 'postgres'));
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Empties everything loads and mart refreshes write (the seeded calendar, countries and lookups
 * stay), so a test starts from a just-migrated warehouse whatever ran before it.
 */
export async function resetWarehouse(warehouse: Warehouse): Promise<void> {
  await createManifest(warehouse).forgetAllLoads();
  await warehouse.query(
    'TRUNCATE mart_customer_month, mart_product_month, mart_country_day, mart_cancellation_month, mart_refresh, mart_month_state',
  );
}

/** One fact row as the test states it; flags default to false. */
export interface FixtureLine {
  invoiceNo: string;
  lineNo: number;
  /** Europe/London wall clock `YYYY-MM-DDTHH:MM:SS`. */
  invoiceDate: string;
  stockCode: string;
  description?: string;
  customerId: string | null;
  country: string;
  quantity: number;
  unitPrice: string;
  lineTotal: string;
  cancellation?: boolean;
  adjustment?: boolean;
  nonProduct?: boolean;
  duplicate?: boolean;
  producedAt?: string;
  acceptedAt?: string;
  streamVisibleAt?: string;
  warehouseVisibleAt?: string;
  sourceKey?: string;
}

/** A fact row built on the shared test line; the line total follows quantity and price unless given. */
export function fixtureLine(overrides: Partial<FixtureLine> = {}): FixtureLine {
  const l = { ...FIRST_LINE, ...overrides };
  const unitPrice = new Decimal(l.unitPrice).toFixed(3);
  return {
    ...l,
    unitPrice,
    lineTotal: overrides.lineTotal ?? new Decimal(unitPrice).times(l.quantity).toFixed(3),
  };
}

export const sale = (l: FixtureLine) => !l.cancellation && !l.adjustment;

/** Inserts the lines plus the dimension rows they need (what the loader would have merged). */
export async function insertFixture(warehouse: Warehouse, lines: ReadonlyArray<FixtureLine>): Promise<void> {
  const params: unknown[] = [];
  const values = lines.map((l) => {
    const row = [
      l.invoiceNo,
      l.lineNo,
      Number(l.invoiceDate.slice(0, 10).replaceAll('-', '')),
      l.invoiceDate.replace('T', ' '),
      l.stockCode,
      l.description ?? null,
      l.customerId,
      l.country,
      l.quantity,
      l.unitPrice,
      l.lineTotal,
      l.cancellation ?? false,
      l.adjustment ?? false,
      l.nonProduct ?? false,
      l.duplicate ?? false,
      l.producedAt ?? null,
      l.acceptedAt ?? null,
      l.streamVisibleAt ?? null,
      l.warehouseVisibleAt ?? '2024-01-01T00:00:00Z',
      l.sourceKey?.startsWith('archive/') ? 'stream' : 'file',
      l.sourceKey ?? 'landing/fixture.csv',
    ];
    const start = params.length;
    params.push(...row);
    return `(${row.map((_, i) => `$${start + i + 1}`).join(', ')})`;
  });
  const products = new Map(lines.map((l) => [l.stockCode, l]));
  const customers = new Map(
    lines.filter((l) => l.customerId).map((l) => [l.customerId as string, l.country]),
  );
  const pParams: unknown[] = [];
  const pValues = [...products.values()].map((l, i) => {
    pParams.push(l.stockCode, l.description ?? null, l.nonProduct ?? false);
    return `($${i * 3 + 1}, $${i * 3 + 2}, $${i * 3 + 3})`;
  });
  const cParams: unknown[] = [];
  const cValues = [...customers.entries()].map(([id, country], i) => {
    cParams.push(id, country);
    return `($${i * 2 + 1}, $${i * 2 + 2})`;
  });
  await warehouse.transaction([
    {
      sql: `INSERT INTO fact_sales_line (invoice_no, line_no, date_key, invoice_date, stock_code, description,
        customer_id, country_name, quantity, unit_price, line_total, is_cancellation, is_adjustment,
        is_non_product, is_duplicate_row, produced_at, accepted_at, stream_visible_at, warehouse_visible_at,
        source, source_key) VALUES ${values.join(', ')}`,
      params,
    },
    {
      sql: `INSERT INTO dim_product (stock_code, description, is_non_product) VALUES ${pValues.join(', ')}`,
      params: pParams,
    },
    ...(cValues.length
      ? [
          {
            sql: `INSERT INTO dim_customer (customer_id, country_name) VALUES ${cValues.join(', ')}`,
            params: cParams,
          },
        ]
      : []),
  ]);
}

/** A manifest row saying when the loader discovered an archive object. */
export async function insertManifest(warehouse: Warehouse, key: string, discoveredAt: string): Promise<void> {
  await warehouse.query(
    `INSERT INTO load_manifest (object_key, etag, load_id, source, format, status, attempts, discovered_at)
     VALUES ($1, 'e1', $2, 'stream', 'ndjson', 'loaded', 1, $3)`,
    [
      key,
      key
        .slice(-16)
        .replace(/[^a-z0-9]/gi, '')
        .padEnd(8, 'x'),
      discoveredAt,
    ],
  );
}

/** The sales fixture: every kind of line the marts treat differently. */
export const SALES_FIXTURE: FixtureLine[] = [
  {
    invoiceNo: '500001',
    lineNo: 1,
    invoiceDate: '2011-01-10T10:00:00',
    stockCode: '85123A',
    description: 'WHITE HANGING HEART',
    customerId: '100',
    country: 'United Kingdom',
    quantity: 6,
    unitPrice: '2.550',
    lineTotal: '15.300',
  },
  {
    invoiceNo: '500001',
    lineNo: 2,
    invoiceDate: '2011-01-10T10:00:00',
    stockCode: '22423',
    description: 'REGENCY CAKESTAND',
    customerId: '100',
    country: 'United Kingdom',
    quantity: 2,
    unitPrice: '12.750',
    lineTotal: '25.500',
  },
  {
    invoiceNo: '500001',
    lineNo: 3,
    invoiceDate: '2011-01-10T10:00:00',
    stockCode: '22423',
    description: 'REGENCY CAKESTAND',
    customerId: '100',
    country: 'United Kingdom',
    quantity: 2,
    unitPrice: '12.750',
    lineTotal: '25.500',
    duplicate: true,
  },
  {
    invoiceNo: '500002',
    lineNo: 1,
    invoiceDate: '2011-01-20T15:30:00',
    stockCode: '22423',
    description: 'REGENCY CAKESTAND',
    customerId: '100',
    country: 'United Kingdom',
    quantity: 1,
    unitPrice: '12.750',
    lineTotal: '12.750',
  },
  {
    invoiceNo: '500003',
    lineNo: 1,
    invoiceDate: '2011-02-05T09:15:00',
    stockCode: '85123A',
    description: 'WHITE HANGING HEART',
    customerId: '200',
    country: 'France',
    quantity: 12,
    unitPrice: '2.550',
    lineTotal: '30.600',
  },
  {
    invoiceNo: '500003',
    lineNo: 2,
    invoiceDate: '2011-02-05T09:15:00',
    stockCode: 'POST',
    description: 'POSTAGE',
    customerId: '200',
    country: 'France',
    quantity: 1,
    unitPrice: '18.000',
    lineTotal: '18.000',
    nonProduct: true,
  },
  {
    invoiceNo: 'C500004',
    lineNo: 1,
    invoiceDate: '2011-02-06T11:00:00',
    stockCode: '85123A',
    description: 'WHITE HANGING HEART',
    customerId: '200',
    country: 'France',
    quantity: -4,
    unitPrice: '2.550',
    lineTotal: '-10.200',
    cancellation: true,
  },
  {
    invoiceNo: 'A500005',
    lineNo: 1,
    invoiceDate: '2011-02-07T12:00:00',
    stockCode: 'B',
    description: 'Adjust bad debt',
    customerId: null,
    country: 'United Kingdom',
    quantity: 1,
    unitPrice: '-100.000',
    lineTotal: '-100.000',
    adjustment: true,
    nonProduct: true,
  },
  {
    invoiceNo: '500006',
    lineNo: 1,
    invoiceDate: '2011-02-08T13:00:00',
    stockCode: '22423',
    description: 'REGENCY CAKESTAND',
    customerId: null,
    country: 'United Kingdom',
    quantity: 3,
    unitPrice: '12.750',
    lineTotal: '38.250',
  },
  {
    invoiceNo: '500007',
    lineNo: 1,
    invoiceDate: '2011-02-09T08:00:00',
    stockCode: '85123A',
    description: 'WHITE HANGING HEART',
    customerId: '300',
    country: 'United Kingdom',
    quantity: 1,
    unitPrice: '2.550',
    lineTotal: '2.550',
  },
  {
    invoiceNo: '500008',
    lineNo: 1,
    invoiceDate: '2011-02-09T16:45:00',
    stockCode: '21730',
    description: 'GLASS STAR LANTERN',
    customerId: '300',
    country: 'United Kingdom',
    quantity: 4,
    unitPrice: '4.250',
    lineTotal: '17.000',
  },
];
