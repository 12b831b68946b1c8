import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '#adapters/logger';
import { loadPending } from '#cdc/load';
import { columnNames, type TotesysTableName, totesysTable } from '#cdc/totesys/tables';
import {
  listKeys,
  PROCESSED_PREFIX,
  processedObjectKey,
  STATE_TABLES,
  transformPending,
} from '#cdc/transform';
import { startTotesysProcessing } from '#cdc/transform-load';
import { WAREHOUSE_TABLES } from '#cdc/transform-model';
import { type LoaderEnv, startLoaderEnv } from '#test/helpers/loader-env';
import { eventually } from '#test/helpers/stack';

const BUCKET = 'pipeline';
const logger = createLogger('silent');
let env: LoaderEnv;
let deps: Parameters<typeof loadPending>[0];

beforeAll(async () => {
  env = await startLoaderEnv(BUCKET, 'cdc-load-');
  deps = { s3: env.clients.s3, bucket: BUCKET, warehouse: env.warehouse, logger };
});
afterAll(() => env?.stop());

type Row = Record<string, string | null>;
const csvCell = (v: string | null) =>
  v === null ? '' : /^[\w.:-]+$/.test(v) ? v : `"${v.replaceAll('"', '""')}"`;

/** One extraction run in the contract's layout: a CSV per table, then the marker. */
async function writeRun(runId: string, tables: Partial<Record<TotesysTableName, Row[]>>): Promise<void> {
  const day = `${runId.slice(0, 4)}/${runId.slice(4, 6)}/${runId.slice(6, 8)}`;
  const entries: Record<string, { key: string; rows: number; from: string; to: string }> = {};
  for (const [table, rows] of Object.entries(tables) as Array<[TotesysTableName, Row[]]>) {
    const cols = columnNames(totesysTable(table));
    const key = `ingestion/totesys/${table}/${day}/${runId}.csv`;
    const body = [cols.join(','), ...rows.map((r) => cols.map((c) => csvCell(r[c] ?? null)).join(','))].join(
      '\n',
    );
    await env.clients.s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: `${body}\n` }));
    entries[table] = { key, rows: rows.length, from: '', to: '' };
  }
  const marker = { runId, source: 'totesys', startedAt: '', finishedAt: '', tables: entries };
  await env.clients.s3.send(
    new PutObjectCommand({
      Bucket: BUCKET,
      Key: `ingestion/totesys/_runs/${day}/${runId}.json`,
      Body: JSON.stringify(marker),
    }),
  );
}

const stamp = (t: string) => ({ created_at: '2026-12-01T09:00:00.000000', last_updated: t });
const address = (id: string, city: string, t: string): Row => ({
  address_id: id,
  address_line_1: `${id} High Street`,
  address_line_2: null,
  district: '',
  city,
  postal_code: 'LS1 1AA',
  country: 'United Kingdom',
  phone: '0113 000000',
  ...stamp(t),
});
const sale = (units: string, t: string): Row => ({
  sales_order_id: '1',
  design_id: '1',
  staff_id: '1',
  counterparty_id: '1',
  units_sold: units,
  unit_price: '3.25',
  currency_id: '1',
  agreed_delivery_date: '2026-12-10',
  agreed_payment_date: '2026-12-11',
  agreed_delivery_location_id: '1',
  ...stamp(t),
});
const T1 = '2026-12-01T10:00:00.123456';
const T2 = '2026-12-01T10:05:00.000001';
const RUN1 = '20261201T100100000Z-aaaaaa';
const RUN2 = '20261201T100600000Z-bbbbbb';

const q = async (sql: string) => (await env.warehouse.query<Record<string, unknown>>(sql)).rows;
const snapshot = async () => ({
  sales: await q(
    `SELECT sales_order_id, units_sold, CAST(unit_price AS varchar) AS unit_price, CAST(last_updated_time AS varchar) AS t
     FROM totesys.fact_sales_order ORDER BY sales_record_id`,
  ),
  counterparty: await q('SELECT * FROM totesys.dim_counterparty ORDER BY counterparty_id'),
  dates: await q(
    "SELECT to_char(date_id, 'YYYY-MM-DD') AS d, day_name FROM totesys.dim_date ORDER BY date_id",
  ),
  staff: await q('SELECT * FROM totesys.dim_staff'),
  currency: await q('SELECT * FROM totesys.dim_currency'),
  manifest: await q(
    "SELECT object_key, status, rows_loaded, rows_new FROM load_manifest WHERE source = 'cdc' ORDER BY object_key",
  ),
});

/** Run 1: the first capture, every table the stars join. */
const RUN1_TABLES: Partial<Record<TotesysTableName, Row[]>> = {
  address: [address('1', 'Leeds', T1)],
  counterparty: [
    {
      counterparty_id: '1',
      counterparty_legal_name: 'O\'Brien "Totes"\'); DROP TABLE totesys.dim_date;--',
      legal_address_id: '1',
      commercial_contact: null,
      delivery_contact: null,
      ...stamp(T1),
    },
  ],
  department: [{ department_id: '1', department_name: 'Sales', location: null, manager: 'A', ...stamp(T1) }],
  staff: [
    {
      staff_id: '1',
      first_name: 'Ann',
      last_name: 'Lee',
      department_id: '1',
      email_address: 'a@t.com',
      ...stamp(T1),
    },
  ],
  currency: [{ currency_id: '1', currency_code: 'GBP', ...stamp(T1) }],
  sales_order: [sale('1000', T1)],
};
/** Run 2: an address moved and a second version of the sales order. */
const RUN2_TABLES: Partial<Record<TotesysTableName, Row[]>> = {
  address: [address('1', 'York', T2)],
  sales_order: [sale('2000', T2)],
};

/** Writes a run, transforms and loads it: the state a later test starts from. */
async function land(runId: string, tables: Partial<Record<TotesysTableName, Row[]>>): Promise<void> {
  await writeRun(runId, tables);
  const t = await transformPending(deps);
  if (t.failed) throw new Error(`run ${t.failed.runId}: ${t.failed.error}`);
  await loadPending(deps);
}

/** Empties the totesys zones, stars and cdc manifest rows: each test lands the runs it reads. */
async function resetTotesys(): Promise<void> {
  for (const prefix of ['ingestion/totesys/', PROCESSED_PREFIX, `quarantine/${PROCESSED_PREFIX}`])
    for (const key of await listKeys(deps, prefix))
      await env.clients.s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }));
  await q(`TRUNCATE ${WAREHOUSE_TABLES.map((t) => `totesys.${t.name}`).join(', ')}`);
  await q("DELETE FROM load_manifest WHERE source = 'cdc'");
}
beforeEach(resetTotesys);

describe('totesys: ingestion CSV -> transform -> load', () => {
  it('lands a first run in the stars', async () => {
    await writeRun(RUN1, RUN1_TABLES);
    const t = await transformPending(deps);
    expect(t.failed).toBeUndefined();
    expect(t.transformed.map((m) => m.runId)).toEqual([RUN1]);
    const loaded = await loadPending(deps);
    expect(loaded.every((r) => r.status === 'loaded')).toBe(true);

    const s = await snapshot();
    expect(s.sales).toEqual([
      { sales_order_id: 1, units_sold: 1000, unit_price: '3.25', t: '10:00:00.123456' },
    ]);
    expect(s.counterparty).toEqual([
      {
        counterparty_id: 1,
        counterparty_legal_name: 'O\'Brien "Totes"\'); DROP TABLE totesys.dim_date;--',
        counterparty_legal_address_line_1: '1 High Street',
        counterparty_legal_address_line_2: null,
        counterparty_legal_district: '',
        counterparty_legal_city: 'Leeds',
        counterparty_legal_postal_code: 'LS1 1AA',
        counterparty_legal_country: 'United Kingdom',
        counterparty_legal_phone_number: '0113 000000',
      },
    ]);
    expect(s.dates).toEqual([
      { d: '2026-12-01', day_name: 'Tuesday' },
      { d: '2026-12-10', day_name: 'Thursday' },
      { d: '2026-12-11', day_name: 'Friday' },
    ]);
    expect(s.staff).toEqual([
      {
        staff_id: 1,
        first_name: 'Ann',
        last_name: 'Lee',
        department_name: 'Sales',
        location: null,
        email_address: 'a@t.com',
      },
    ]);
    expect(s.currency).toEqual([{ currency_id: 1, currency_code: 'GBP', currency_name: 'Pound Sterling' }]);
  });

  it('a second version of a row is a second fact row; a moved address updates the counterparty', async () => {
    await land(RUN1, RUN1_TABLES);
    await writeRun(RUN2, RUN2_TABLES);
    expect((await transformPending(deps)).transformed.map((m) => m.runId)).toEqual([RUN2]);
    await loadPending(deps);
    const s = await snapshot();
    expect(s.sales.map((r) => [r.units_sold, r.t])).toEqual([
      [1000, '10:00:00.123456'],
      [2000, '10:05:00.000001'],
    ]);
    expect(s.counterparty[0]).toMatchObject({ counterparty_id: 1, counterparty_legal_city: 'York' });
  });

  it('reads the state objects once a sweep: two runs pending, the second sees what the first left', async () => {
    await writeRun(RUN1, RUN1_TABLES);
    await writeRun(RUN2, RUN2_TABLES);
    let stateReads = 0;
    const name = 'count-state-reads';
    deps.s3.middlewareStack.add(
      (next, context) => async (args) => {
        const key = (args.input as { Key?: string }).Key ?? '';
        if (context.commandName === 'GetObjectCommand' && key.startsWith(`${PROCESSED_PREFIX}_state/`))
          stateReads++;
        return next(args);
      },
      { step: 'initialize', name },
    );
    try {
      const t = await transformPending(deps);
      expect(t.transformed.map((m) => m.runId)).toEqual([RUN1, RUN2]);
    } finally {
      deps.s3.middlewareStack.remove(name);
    }
    expect(stateReads).toBe(STATE_TABLES.length);
    await loadPending(deps);
    const s = await snapshot();
    expect(s.counterparty.map((c) => c.counterparty_legal_city)).toEqual(['York']);
    expect(s.sales.map((r) => r.units_sold)).toEqual([1000, 2000]);
  });

  it('running transform and load again changes nothing, and the same input gives the same objects', async () => {
    await land(RUN1, RUN1_TABLES);
    await land(RUN2, RUN2_TABLES);
    const before = await snapshot();
    const key = processedObjectKey('fact_sales_order', RUN2);
    const etag = async () =>
      (await env.clients.s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }))).ETag;
    const first = await etag();
    expect((await transformPending(deps)).transformed).toEqual([]);
    expect(await loadPending(deps)).toEqual([]);
    expect(await snapshot()).toEqual(before);

    // Forget that run 2 was transformed: the rerun writes byte-identical objects (same ETag), which
    // the manifest already knows, so the stars stay as they are.
    const marker = (await listKeys(deps, 'processed/totesys/_runs/')).find((k) => k.includes(RUN2)) as string;
    await env.clients.s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: marker }));
    expect((await transformPending(deps)).transformed.map((m) => m.runId)).toEqual([RUN2]);
    expect(await etag()).toBe(first);
    expect(await loadPending(deps)).toEqual([]);
    expect(await snapshot()).toEqual(before);
  });

  it('quarantines a corrupt Parquet object with its reason', async () => {
    const key = `${PROCESSED_PREFIX}dim_design/2026/12/01/20261201T110000000Z-cccccc.parquet`;
    await env.clients.s3.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: 'PAR1 this is not parquet' }),
    );
    const results = await loadPending(deps);
    expect(results).toEqual([expect.objectContaining({ key, status: 'quarantined' })]);
    const reason = JSON.parse(
      (await (
        await env.clients.s3.send(
          new GetObjectCommand({ Bucket: BUCKET, Key: `quarantine/${key}.reason.json` }),
        )
      ).Body?.transformToString()) ?? '{}',
    );
    expect(reason.reason).toMatch(/^dim_design: not a Parquet file/);
    const row = (await snapshot()).manifest.find((r) => r.object_key === key);
    expect(row).toMatchObject({ status: 'quarantined' });
    expect(await loadPending(deps)).toEqual([]);
  });
});

describe('totesys: npm start processing', () => {
  it('an extraction marker event transforms and loads its run', async () => {
    let emit: (key: string) => void = () => undefined;
    const processing = startTotesysProcessing({
      ...deps,
      onObjectCreated: (listener) => {
        emit = listener;
      },
      // A long interval: once the start-up sweep is over, the event is what starts the next cycle.
      intervalMs: 3_600_000,
    });
    try {
      await eventually(async () => (await processing.runNow()) && true, { what: 'the first sweep' });
      const run = '20261201T120000000Z-dddddd';
      await writeRun(run, { sales_order: [sale('3000', '2026-12-01T11:59:00.000000')] });
      emit(`ingestion/totesys/_runs/2026/12/01/${run}.json`);
      const units = await eventually(
        async () => {
          const rows = await q('SELECT units_sold FROM totesys.fact_sales_order WHERE units_sold = 3000');
          return rows.length === 1 ? rows[0]?.units_sold : undefined;
        },
        { what: 'the third version in fact_sales_order' },
      );
      expect(units).toBe(3000);
    } finally {
      await processing.stop();
    }
  });
});
