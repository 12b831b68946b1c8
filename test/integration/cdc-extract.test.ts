import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '#adapters/config';
import { createLogger } from '#adapters/logger';
import { parseCsv } from '#cdc/csv';
import { startTotesysCapture } from '#cdc/totesys/capture';
import { ExtractError, type ExtractRun, extractOnce } from '#cdc/totesys/extract';
import { type ExtractMarker, INGESTION_RUNS_PREFIX, WATERMARKS_KEY } from '#cdc/totesys/layout';
import { ensureSeededSource, generateSeed, SEED_COUNTS } from '#cdc/totesys/seed';
import { runSimulator } from '#cdc/totesys/simulator';
import { createSourcePool, insertRows, readChanges } from '#cdc/totesys/source';
import { readState } from '#cdc/totesys/state';
import { columnNames, TOTESYS_TABLES, type TotesysTableName, totesysTable } from '#cdc/totesys/tables';
import { type ObjectZone, s3Zone } from '#cdc/zone';
import type { LocalStack } from '#local/stack';
import { startTestStack, testConfig } from '#test/helpers/stack';

const OVERLAP = 60_000_000n;
const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'cdc-extract-child.ts');

describe('totesys extract (change data capture by watermark)', () => {
  let config: Config;
  let stack: LocalStack;
  let pool: pg.Pool;
  let zone: ObjectZone;

  const extract = (hooks?: { afterMarker?: (runId: string) => void }) =>
    extractOnce({
      read: (bounds) => readChanges(pool, bounds),
      zone,
      overlapMicros: OVERLAP,
      ...(hooks ? { hooks } : {}),
    });

  /** Takes whatever earlier tests left, so each test starts from a capture that is up to date. */
  const settle = () => extract();

  /** The rows of one table's CSV in a run, as header-keyed records. */
  async function csvRows(run: ExtractRun, table: TotesysTableName) {
    const entry = run.tables[table];
    if (!entry) return [];
    const { header, rows } = parseCsv((await zone.get(entry.key)) as string);
    expect(header).toEqual(columnNames(totesysTable(table)));
    return rows.map((r) => Object.fromEntries(header.map((h, i) => [h, r[i]])));
  }

  /** The source's clock now, in the zone's timestamp form. */
  async function sourceNow(): Promise<string> {
    const { rows } = await pool.query(`SELECT to_char(clock_timestamp(), 'YYYY-MM-DD"T"HH24:MI:SS.US') AS t`);
    return rows[0].t;
  }

  beforeAll(async () => {
    config = await testConfig();
    stack = await startTestStack(config);
    pool = createSourcePool(stack.endpoints.totesys as string);
    await ensureSeededSource(pool, 3);
    zone = s3Zone(stack.clients.s3, config.names.bucket);
  }, 120_000);
  afterAll(async () => {
    await pool?.end();
    await stack?.stop();
    fs.rmSync(config.dataDir, { recursive: true, force: true });
  });

  it('takes every row on the first run, writes the marker last and the watermarks after it', async () => {
    // A first run is a capture without watermarks, whatever earlier tests took: forget them.
    await stack.clients.s3.send(
      new DeleteObjectCommand({ Bucket: config.names.bucket, Key: WATERMARKS_KEY }),
    );
    const run = await extract();
    const counts = await pool.query(
      TOTESYS_TABLES.map((t) => `SELECT '${t.name}' AS t, count(*)::int AS n FROM "${t.name}"`).join(
        ' UNION ALL ',
      ),
    );
    // The source pool reads every value as text (the zone's exact text).
    for (const { t, n } of counts.rows) expect(run.tables[t as TotesysTableName]?.rows, t).toBe(Number(n));
    // The whole seed, and whatever orders tests before this one added.
    expect(run.tables.sales_order?.rows).toBeGreaterThanOrEqual(SEED_COUNTS.sales_order);
    expect(run.rows).toBe(counts.rows.reduce((s, r) => s + Number(r.n), 0));

    const marker = JSON.parse((await zone.get(run.markerKey)) as string) as ExtractMarker;
    expect(marker.runId).toBe(run.runId);
    expect(marker.source).toBe('totesys');
    expect(marker.tables.payment?.from).toBeNull();
    expect(run.markerKey).toMatch(
      /^ingestion\/totesys\/_runs\/\d{4}\/\d{2}\/\d{2}\/\d{8}T\d{9}Z-[0-9a-f]{6}\.json$/,
    );
    expect(run.tables.address?.key).toMatch(/^ingestion\/totesys\/address\/\d{4}\/\d{2}\/\d{2}\//);

    const max = await pool.query(
      `SELECT to_char(max(last_updated), 'YYYY-MM-DD"T"HH24:MI:SS.US') AS m FROM "payment"`,
    );
    const state = await readState(zone);
    expect(state.tables.payment?.watermark).toBe(max.rows[0].m);
    expect(marker.tables.payment?.to).toBe(max.rows[0].m);

    const payments = await csvRows(run, 'payment');
    expect(payments[0]?.paid).toMatch(/^(true|false)$/);
    expect(payments[0]?.last_updated).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$/);
    const addresses = await csvRows(run, 'address');
    expect(addresses.some((a) => a.address_line_2 === null)).toBe(true);
  });

  it('takes nothing when nothing changed, and still writes a marker', async () => {
    await settle();
    const run = await extract();
    expect(run.rows).toBe(0);
    expect(JSON.parse((await zone.get(run.markerKey)) as string).tables).toEqual({});
  });

  it('takes an insert and an update in the next run, and neither again after', async () => {
    await settle();
    await insertRows(pool as unknown as pg.ClientBase, totesysTable('department'), [
      { department_name: 'Research', location: null, manager: 'Ada Byron' },
    ]);
    await pool.query('UPDATE "staff" SET email_address = $1 WHERE staff_id = 3', ['moved@terrifictotes.com']);
    const run = await extract();
    const departments = await csvRows(run, 'department');
    expect(departments.map((d) => d.department_name)).toEqual(['Research']);
    expect(departments[0]?.location).toBeNull();
    const staff = await csvRows(run, 'staff');
    expect(staff).toHaveLength(1);
    expect(staff[0]).toMatchObject({ staff_id: '3', email_address: 'moved@terrifictotes.com' });
    expect(staff[0]?.last_updated).not.toBe(staff[0]?.created_at);
    expect(Object.keys(run.tables).sort()).toEqual(['department', 'staff']);

    expect((await extract()).rows).toBe(0);
  });

  it('takes two rows with the same last_updated straddling a run once each', async () => {
    await settle();
    const stamp = await sourceNow();
    const design = (name: string) => ({
      design_name: name,
      file_location: '/srv',
      file_name: `${name}.json`,
      created_at: stamp,
      last_updated: stamp,
    });
    await insertRows(pool as unknown as pg.ClientBase, totesysTable('design'), [design('straddle-first')]);
    const late = await pool.connect();
    try {
      await late.query('BEGIN');
      await insertRows(late, totesysTable('design'), [design('straddle-second')]);
      // The run reads while the second row is uncommitted: invisible to it, same stamp as the first.
      const first = await extract();
      await late.query('COMMIT');
      const second = await extract();
      expect((await csvRows(first, 'design')).map((d) => d.design_name)).toEqual(['straddle-first']);
      expect((await csvRows(second, 'design')).map((d) => d.design_name)).toEqual(['straddle-second']);
      expect((await csvRows(second, 'design'))[0]?.last_updated).toBe(stamp);
      expect((await extract()).rows).toBe(0);
    } finally {
      late.release();
    }
  });

  it('takes a row committed late with a stamp below the watermark (inside the overlap)', async () => {
    await settle();
    const late = await pool.connect();
    try {
      await late.query('BEGIN');
      // now() is the transaction's start: this row's stamp is older than anything committed below.
      await late.query(`INSERT INTO "currency" (currency_code) VALUES ('CHF')`);
      await pool.query(`INSERT INTO "currency" (currency_code) VALUES ('JPY')`);
      const first = await extract();
      await late.query('COMMIT');
      const second = await extract();
      expect((await csvRows(first, 'currency')).map((c) => c.currency_code)).toEqual(['JPY']);
      const lateRows = await csvRows(second, 'currency');
      expect(lateRows.map((c) => c.currency_code)).toEqual(['CHF']);
      expect(String(lateRows[0]?.last_updated) < String(first.tables.currency?.to)).toBe(true);
    } finally {
      late.release();
    }
  });

  it('keeps a SQL injection string in a text column verbatim', async () => {
    await settle();
    const evil = `Robert'); DROP TABLE "payment"; --, "quoted"\nnext line`;
    await pool.query('UPDATE "counterparty" SET delivery_contact = $1 WHERE counterparty_id = 2', [evil]);
    await pool.query('UPDATE "counterparty" SET delivery_contact = $1 WHERE counterparty_id = 4', ['']);
    const run = await extract();
    const rows = await csvRows(run, 'counterparty');
    expect(rows.find((r) => r.counterparty_id === '2')?.delivery_contact).toBe(evil);
    expect(rows.find((r) => r.counterparty_id === '4')?.delivery_contact).toBe('');
    expect(Number((await pool.query('SELECT count(*) AS n FROM "payment"')).rows[0].n)).toBeGreaterThan(0);
  });

  it('re-takes the same rows when a run fails between the marker and the watermark write', async () => {
    await settle();
    await pool.query('UPDATE "payment" SET paid = NOT paid WHERE payment_id IN (5, 6)');
    const before = await zone.get(WATERMARKS_KEY);
    let markerRun = '';
    await expect(
      extract({
        afterMarker: (runId) => {
          markerRun = runId;
          throw new Error('injected crash after the marker');
        },
      }),
    ).rejects.toThrow(/injected crash/);
    const markers = await zone.list(INGESTION_RUNS_PREFIX);
    expect(markers.some((k) => k.includes(markerRun))).toBe(true);
    const state = await readState(zone);
    expect(state.tables.payment?.watermark).toBe(JSON.parse(before as string).tables.payment.watermark);

    const rerun = await extract();
    const again = await csvRows(rerun, 'payment');
    expect(again.map((p) => p.payment_id)).toEqual(['5', '6']);
    expect((await extract()).rows).toBe(0);
  });

  it('loses nothing when the extract is killed -9 between the marker and the watermark write', async () => {
    await settle();
    await pool.query('UPDATE "address" SET phone = $1 WHERE address_id IN (7, 8, 9)', ['0000 000000']);
    const before = await zone.get(WATERMARKS_KEY);
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
      env: {
        ...process.env,
        CDC_CHILD_SOURCE: stack.endpoints.totesys,
        CDC_CHILD_S3: stack.endpoints.s3,
        CDC_CHILD_BUCKET: config.names.bucket,
        CDC_CHILD_REGION: config.region,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const runId = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /marker-written (\S+)\n/.exec(out);
        if (m?.[1]) resolve(m[1]);
      });
      child.once('exit', (code) => reject(new Error(`child exited (${code}) before the marker: ${stderr}`)));
    });
    child.kill('SIGKILL');
    await exited;

    expect(await zone.get(WATERMARKS_KEY)).toBe(before);
    const killed = JSON.parse(
      (await zone.get(
        (await zone.list(INGESTION_RUNS_PREFIX)).find((k) => k.includes(runId)) as string,
      )) as string,
    ) as ExtractMarker;
    expect(killed.tables.address?.rows).toBe(3);

    const rerun = await extract();
    expect((await csvRows(rerun, 'address')).map((a) => a.address_id)).toEqual(['7', '8', '9']);
    expect(rerun.tables.address?.to).toBe(killed.tables.address?.to);
    expect((await extract()).rows).toBe(0);
  }, 60_000);

  it('seeded the source once, with the rows the seed generates', async () => {
    expect(await ensureSeededSource(pool, 3)).toEqual({ seeded: false });
    const expected = generateSeed(3).sales_order.slice(0, 50);
    const { rows } = await pool.query(
      `SELECT sales_order_id, units_sold, unit_price, agreed_delivery_date,
              to_char(created_at, 'YYYY-MM-DD"T"HH24:MI:SS.US') AS created_at
         FROM "sales_order" ORDER BY sales_order_id LIMIT 50`,
    );
    expect(rows).toEqual(
      expected.map((o) => ({
        sales_order_id: String(o.sales_order_id),
        units_sold: String(o.units_sold),
        unit_price: o.unit_price,
        agreed_delivery_date: o.agreed_delivery_date,
        created_at: o.created_at,
      })),
    );
  });

  it('simulates a business whose changes, stamped by the database clock, the next run takes', async () => {
    await settle();
    const before = await sourceNow();
    const summary = await runSimulator({ pool, rate: 1000, seed: 11, durationMs: 40 });
    expect(summary.failed).toBe(0);
    expect(summary.total).toBe(40);
    const run = await extract();
    expect(run.rows).toBeGreaterThanOrEqual(summary.total);
    for (const entry of Object.values(run.tables)) expect(entry.to >= before).toBe(true);
    const orders = (summary.changes.sale ?? 0) + (summary.changes.purchase ?? 0);
    expect(run.tables.transaction?.rows ?? 0).toBe(orders);
    expect(run.tables.payment?.rows ?? 0).toBeGreaterThanOrEqual(orders);
  });
});

describe('totesys capture with the source unreachable for a while', () => {
  let config: Config;
  let stack: LocalStack;
  let direct: pg.Pool;
  let proxy: ReturnType<typeof tcpProxy>;

  beforeAll(async () => {
    const base = await testConfig();
    stack = await startTestStack(base);
    direct = createSourcePool(stack.endpoints.totesys as string);
    await ensureSeededSource(direct, 5);
    const target = new URL(stack.endpoints.totesys as string);
    proxy = tcpProxy(Number(target.port));
    await proxy.open();
    target.port = String(proxy.port());
    config = await testConfig({ RP_DATA_DIR: base.dataDir, RP_TOTESYS_URL: target.toString() });
  }, 120_000);
  afterAll(async () => {
    await proxy?.close();
    await direct?.end();
    await stack?.stop();
    fs.rmSync(config.dataDir, { recursive: true, force: true });
  });

  it('records the outage, warns once, and catches up by itself when the source returns', async () => {
    const lines: string[] = [];
    const logger = createLogger('info', 'cdc-test', {
      format: 'json',
      destination: { write: (l: string) => lines.push(l) },
    });
    const zone = s3Zone(stack.clients.s3, config.names.bucket);
    const capture = await startTotesysCapture({
      config,
      s3: stack.clients.s3,
      logger,
      localUrl: undefined,
      schedule: false,
    });
    try {
      expect(capture.source).toBe('url');
      expect((await capture.extractNow()).tables.sales_order?.rows).toBe(SEED_COUNTS.sales_order);

      await proxy.close();
      await expect(capture.extractNow()).rejects.toBeInstanceOf(ExtractError);
      await direct.query('UPDATE "sales_order" SET units_sold = 4242 WHERE sales_order_id = 10');
      const failed = await capture.extractNow().catch((err: unknown) => err);
      expect(failed).toMatchObject({ stage: 'source' });
      const during = await readState(zone);
      expect(during.failure).toMatchObject({ stage: 'source', attempts: 2 });
      expect(during.failure?.message).toMatch(/totesys source unreachable/);
      expect(lines.filter((l) => l.includes('totesys extract failing'))).toHaveLength(1);

      await proxy.open();
      const back = await capture.extractNow();
      const rows = parseCsv((await zone.get(back.tables.sales_order?.key as string)) as string).rows;
      expect(rows).toHaveLength(1);
      expect(rows[0]?.[0]).toBe('10');
      const after = await readState(zone);
      expect(after.failure).toBeUndefined();
      expect(after.lastOutage).toMatchObject({ stage: 'source', attempts: 2 });
      expect(lines.filter((l) => l.includes('totesys extract recovered'))).toHaveLength(1);
    } finally {
      await capture.stop();
    }
  }, 60_000);
});

/** A TCP relay to PostgreSQL that a test can take down (dropping every connection) and bring back. */
function tcpProxy(targetPort: number) {
  let server: net.Server | undefined;
  let port = 0;
  const sockets = new Set<net.Socket>();
  return {
    port: () => port,
    open: () =>
      new Promise<void>((resolve, reject) => {
        const listening = net.createServer((client) => {
          const upstream = net.connect(targetPort, '127.0.0.1');
          for (const s of [client, upstream]) {
            sockets.add(s);
            s.on('close', () => sockets.delete(s));
            s.on('error', () => undefined);
          }
          client.pipe(upstream).pipe(client);
        });
        server = listening;
        listening.once('error', reject);
        listening.listen(port, '127.0.0.1', () => {
          port = (listening.address() as net.AddressInfo).port;
          resolve();
        });
      }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        if (!server) return resolve();
        server.close(() => resolve());
        server = undefined;
      }),
  };
}
