import { RedshiftDataClient } from '@aws-sdk/client-redshift-data';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_CREDENTIALS } from '#adapters/clients';
import { createLogger } from '#adapters/logger';
import type { Warehouse } from '#adapters/warehouse';
import { createRedshiftWarehouse } from '#adapters/warehouse-redshift';
import { createLoader, type LoaderHooks, loadIdOf } from '#batch/loader/index';
import { createManifest } from '#batch/loader/manifest';
import { migrate } from '#batch/migrate';
import { LOCAL_WORKGROUP } from '#local/redshift-data';
import type { LocalStack } from '#local/stack';
import { CSV_HEADER, csvRow } from '#test/helpers/lines';
import { eventually, startTestStack } from '#test/helpers/stack';

/**
 * Two aws-mode loaders (the Redshift adapter, the redshift-s3 way) race for one object through the
 * local Redshift Data API. A Redshift batch runs whole: the loader that loses the claim still runs
 * every statement after it, so those statements must change nothing (batch/loader/manifest.ts).
 */

let stack: LocalStack;
let client: RedshiftDataClient;
let warehouse: Warehouse;
const logger = createLogger('silent');
const bucket = () => stack.config.names.bucket;

beforeAll(async () => {
  stack = await startTestStack();
  client = new RedshiftDataClient({
    region: 'us-east-1',
    endpoint: stack.endpoints.redshiftData as string,
    credentials: LOCAL_CREDENTIALS,
  });
  warehouse = createRedshiftWarehouse({
    client,
    database: stack.config.names.database,
    workgroupName: LOCAL_WORKGROUP,
    copyRoleArn: 'arn:aws:iam::000000000000:role/copy',
    pollIntervalMs: 10,
  });
  await migrate(warehouse, logger);
});

afterAll(async () => {
  client?.destroy();
  await stack?.stop();
});

const loader = (hooks?: LoaderHooks) =>
  createLoader({ s3: stack.clients.s3, bucket: bucket(), warehouse, logger, ...(hooks ? { hooks } : {}) });

/** A drop of two good lines of one invoice, and a third rejected (its quantity is not a number). */
async function drop(key: string, invoiceNo: string, rejected = true): Promise<string> {
  const body = [
    CSV_HEADER,
    csvRow({ InvoiceNo: invoiceNo, StockCode: '85123A', CustomerID: '17850' }),
    csvRow({ InvoiceNo: invoiceNo, StockCode: '71053', Quantity: 2 }),
    ...(rejected ? [csvRow({ InvoiceNo: invoiceNo, StockCode: '84406B', Quantity: 'many' })] : []),
    '',
  ].join('\n');
  const out = await stack.clients.s3.send(new PutObjectCommand({ Bucket: bucket(), Key: key, Body: body }));
  return out.ETag?.replaceAll('"', '') ?? '';
}

/** Every table a load writes, whole, in a fixed order: what a second load must leave as it was. */
async function everythingLoadsWrite(): Promise<Record<string, unknown[]>> {
  const tables: Record<string, string> = {
    load_manifest: 'object_key, etag',
    load_rejected_row: 'object_key, line_number, rejected_at',
    fact_sales_line: 'invoice_no, line_no',
    dim_product: 'stock_code',
    dim_customer: 'customer_id',
    dim_country: 'country_name',
    load_product_description: 'stock_code, description',
    load_customer_country: 'customer_id, country_name',
  };
  const out: Record<string, unknown[]> = {};
  for (const [table, order] of Object.entries(tables))
    out[table] = (await warehouse.query(`SELECT * FROM ${table} ORDER BY ${order}`)).rows;
  return out;
}

async function loadOf(key: string, etag: string) {
  const manifest = await warehouse.query<Record<string, unknown>>(
    'SELECT status, attempts, rows_read, rows_loaded, rows_new, rows_rejected FROM load_manifest WHERE object_key = $1 AND etag = $2',
    [key, etag],
  );
  const rejected = await warehouse.query<{ line_number: number }>(
    'SELECT line_number FROM load_rejected_row WHERE load_id = $1 ORDER BY line_number',
    [loadIdOf(key, etag)],
  );
  return { manifest: manifest.rows, rejected: rejected.rows.map((r) => Number(r.line_number)) };
}

const LOADED_ONCE = {
  manifest: [{ status: 'loaded', attempts: 1, rows_read: 3, rows_loaded: 2, rows_new: 2, rows_rejected: 1 }],
  rejected: [4],
};
const LOADED_ONCE_CLEAN = {
  manifest: [{ status: 'loaded', attempts: 1, rows_read: 2, rows_loaded: 2, rows_new: 2, rows_rejected: 0 }],
  rejected: [],
};

describe('two Redshift-way loaders race for one object', () => {
  it.each([
    { rejects: 'a rejected row', invoiceNo: '980001', once: LOADED_ONCE },
    { rejects: 'no rejected row', invoiceNo: '980003', once: LOADED_ONCE_CLEAN },
  ])(
    "the second loader's batch runs after the first committed the object ($rejects): it changes nothing and says so",
    async ({ invoiceNo, once }) => {
      const key = `landing/race/after-commit-${invoiceNo}.csv`;
      const etag = await drop(key, invoiceNo, once.rejected.length > 0);
      const first = loader();
      let before: Record<string, unknown>[] = [];
      let firstResult: unknown;
      let snapshot: Record<string, unknown[]> = {};
      // The second loader read the object as pending and staged its rows; before its batch goes, the
      // first loader loads the same object to the end.
      const second = loader({
        afterStage: async (staged) => {
          if (staged !== key) return;
          firstResult = await first.loadKey(key);
          snapshot = await everythingLoadsWrite();
          before = (await loadOf(key, etag)).manifest;
        },
      });

      const secondResult = await second.loadKey(key);

      expect(firstResult).toMatchObject({ status: 'loaded', rowsNew: 2 });
      expect(before).toEqual(once.manifest);
      expect(secondResult).toMatchObject({ status: 'skipped', detail: 'another loader has it' });
      expect(await loadOf(key, etag)).toEqual(once);
      expect(await everythingLoadsWrite()).toEqual(snapshot);
    },
  );

  it('an object another loader quarantined while this one staged it: none of its rows reaches the star', async () => {
    const key = 'landing/race/quarantined.csv';
    const etag = await drop(key, '980004');
    let snapshot: Record<string, unknown[]> = {};
    const second = loader({
      afterStage: async (staged) => {
        if (staged !== key) return;
        await createManifest(warehouse).quarantined(key, etag, 'quarantined by another loader');
        snapshot = await everythingLoadsWrite();
      },
    });

    const result = await second.loadKey(key);

    expect(result).toMatchObject({ status: 'skipped', detail: 'another loader has it' });
    expect(await everythingLoadsWrite()).toEqual(snapshot);
    const facts = await warehouse.query("SELECT 1 FROM fact_sales_line WHERE invoice_no = '980004'");
    expect(facts.rows).toEqual([]);
  });

  it("the second loader's batch starts while the first's holds the claim uncommitted: it waits, then changes nothing", async () => {
    const key = 'landing/race/claimed.csv';
    const etag = await drop(key, '980002');
    // One session holds a lock, another watches (a session in a transaction sees pg_stat_activity
    // as it was when the transaction first read it).
    const holder = new pg.Client({ connectionString: stack.endpoints.postgres });
    const watcher = new pg.Client({ connectionString: stack.endpoints.postgres });
    await Promise.all([holder.connect(), watcher.connect()]);
    /** The Data API's backend running a statement that starts so, once it waits for a lock. */
    const waiting = (start: string) =>
      eventually(
        async () =>
          (
            await watcher.query(
              "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND starts_with(query, $1)",
              [start],
            )
          ).rows[0],
        { timeoutMs: 60_000, what: `a statement starting ${start} waiting for a lock` },
      );
    try {
      // The first batch stops, claim taken, at its first write of a dimension; the second batch's
      // claim then waits for the first's lock on the manifest row.
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE dim_country IN EXCLUSIVE MODE');
      const firstLoad = loader().loadKey(key);
      await waiting('INSERT INTO dim_country');
      const secondLoad = loader().loadKey(key);
      await waiting('UPDATE load_manifest SET attempts');
      await holder.query('COMMIT');

      const [first, second] = await Promise.all([firstLoad, secondLoad]);

      expect(first).toMatchObject({ status: 'loaded', rowsNew: 2, rowsRejected: 1 });
      expect(second).toMatchObject({ status: 'skipped', detail: 'another loader has it' });
      expect(await loadOf(key, etag)).toEqual(LOADED_ONCE);
      const facts = await warehouse.query(
        "SELECT line_no FROM fact_sales_line WHERE invoice_no = '980002' ORDER BY line_no",
      );
      expect(facts.rows.map((r) => Number(r.line_no))).toEqual([1, 2]);
    } finally {
      await holder.query('ROLLBACK').catch(() => {});
      await Promise.all([holder.end(), watcher.end()]);
    }
  });
});
