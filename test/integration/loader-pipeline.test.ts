import { gzipSync } from 'node:zlib';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Clients } from '#adapters/clients';
import { createLogger } from '#adapters/logger';
import { type Warehouse, WarehouseError } from '#adapters/warehouse';
import { createLoader, loadIdOf } from '#batch/loader/index';
import { acceptedLine, CSV_HEADER, csvRow } from '#test/helpers/lines';
import { type LoaderEnv, startLoaderEnv } from '#test/helpers/loader-env';

const BUCKET = 'pipeline';
const logger = createLogger('silent');
let env: LoaderEnv;
let warehouse: Warehouse;
let clients: Clients;

beforeAll(async () => {
  env = await startLoaderEnv(BUCKET, 'loader-pipeline-');
  ({ warehouse, clients } = env);
});

afterAll(() => env?.stop());

const put = async (key: string, body: string | Buffer) => {
  const out = await clients.s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
  return (out.ETag ?? '').replaceAll('"', '');
};
const text = async (key: string) =>
  (await clients.s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body?.transformToString() ?? '';
const exists = (key: string) =>
  clients.s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key })).then(
    () => true,
    () => false,
  );
const rows = async <R = Record<string, unknown>>(sql: string, params: unknown[] = []) =>
  (await warehouse.query<R>(sql, params)).rows;
const factCount = async () =>
  Number((await rows<{ n: string }>('SELECT count(*) AS n FROM fact_sales_line'))[0]?.n);
const loader = (hooks = {}) => createLoader({ s3: clients.s3, bucket: BUCKET, warehouse, logger, hooks });
const rejectedOf = async (key: string, etag: string) =>
  (
    await rows<{ line_number: string; reason: string }>(
      'SELECT line_number, reason FROM load_rejected_row WHERE load_id = $1 ORDER BY line_number',
      [loadIdOf(key, etag)],
    )
  ).map((r) => [Number(r.line_number), r.reason]);

const HEADER = 'InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country';

describe('CSV drops in landing/', () => {
  it('loads a Latin-1, CRLF, gzipped file: good rows in, bad rows quarantined with line numbers', async () => {
    const csv = [
      `${HEADER},Notes`,
      '900001,85123A,CAFÉ MUG,6,2011-03-05 08:26,2.55,17850.0,France,x',
      '900001,85123A,CAFÉ MUG,6,2011-03-05 08:26,2.55,17850.0,France,x',
      '900001,POST,POSTAGE,1,2011-03-05 08:26:00,18,17850,France,',
      'C900002,22423,"REGENCY CAKESTAND, 3 TIER",-1,3/6/2011 9:05,12.75,,Narnia,',
      '900003,22423,bad qty,abc,3/6/2011 9:05,12.75,,France,',
      '900003,22423,bad date,1,2/30/2011 9:05,12.75,,France,',
      '900003,22423,too,few',
      '900003,22424,ok,2,3/6/2011 9:05,1.005,12345,France,',
      '',
    ].join('\r\n');
    const key = 'landing/variants.csv.gz';
    const etag = await put(key, gzipSync(Buffer.from(csv, 'latin1')));

    const started = Date.now();
    const [result] = await loader().sweep();
    const ended = Date.now();

    expect(result).toMatchObject({
      key,
      status: 'loaded',
      rowsRead: 8,
      rowsLoaded: 5,
      rowsNew: 5,
      rowsRejected: 3,
      extraColumns: ['Notes'],
    });
    const facts = await rows(
      `SELECT invoice_no, line_no, description, customer_id, country_name, quantity, unit_price::text AS price,
         line_total::text AS total, is_cancellation, is_non_product, is_duplicate_row, invoice_date::text AS at,
         source, source_key, warehouse_visible_at IS NOT NULL AS visible,
         (extract(epoch FROM warehouse_visible_at) * 1000)::bigint::text AS visible_ms
       FROM fact_sales_line WHERE source_key = $1 ORDER BY invoice_no, line_no`,
      [key],
    );
    // One visible time for the whole file, taken during its load.
    const visibleMs = new Set(facts.map((f) => Number(f.visible_ms)));
    expect(visibleMs.size).toBe(1);
    const [visible] = [...visibleMs] as [number];
    expect(visible).toBeGreaterThanOrEqual(started);
    expect(visible).toBeLessThanOrEqual(ended);
    expect(facts.map((f) => `${f.invoice_no}#${f.line_no}`)).toEqual([
      '900001#1',
      '900001#2',
      '900001#3',
      '900003#1',
      'C900002#1',
    ]);
    expect(facts[0]).toMatchObject({
      description: 'CAFÉ MUG',
      customer_id: '17850',
      at: '2011-03-05 08:26:00',
    });
    expect(facts[0]).toMatchObject({ source: 'file', visible: true, is_duplicate_row: false });
    expect(facts[1]).toMatchObject({ is_duplicate_row: true });
    expect(facts[2]).toMatchObject({ is_non_product: true, total: '18.000' });
    expect(facts[3]).toMatchObject({ price: '1.005', total: '2.010', customer_id: '12345' });
    expect(facts[4]).toMatchObject({
      is_cancellation: true,
      customer_id: null,
      country_name: 'Narnia',
      quantity: -1,
    });
    expect(await rows("SELECT iso_code, is_known FROM dim_country WHERE country_name = 'Narnia'")).toEqual([
      { iso_code: 'XX', is_known: false },
    ]);
    // The first load met an empty fact and took the bulk way: its key is back, its defaults gone.
    expect(await rows("SELECT 1 FROM pg_indexes WHERE indexname = 'fact_sales_line_pkey'")).toHaveLength(1);
    expect(
      await rows(
        `SELECT column_name FROM information_schema.columns WHERE table_name = 'fact_sales_line'
           AND column_default IS NOT NULL`,
      ),
    ).toEqual([]);

    const rejected = await rows<{ line_number: string; reason: string }>(
      'SELECT line_number, reason FROM load_rejected_row WHERE load_id = $1 ORDER BY line_number',
      [loadIdOf(key, etag)],
    );
    expect(rejected.map((r) => Number(r.line_number))).toEqual([6, 7, 8]);
    // The replay's own words (core/source-row.ts): a file is read the same way by both.
    expect(rejected.map((r) => r.reason)).toEqual([
      'Quantity "abc" is not a whole number',
      'InvoiceDate "2/30/2011 9:05" is not M/D/YYYY H:MM or YYYY-MM-DD HH:MM[:SS]',
      'expected 8 fields, got 4',
    ]);
    const file = await text(`quarantine/${key}.rejected.csv`);
    expect(file.split('\n')[0]).toBe(
      'line,reason,InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country',
    );
    expect(file).toContain('6,"Quantity ""abc"" is not a whole number",900003,22423,bad qty,abc');
  });

  it('reads rows by the replay rules: its reasons, its edge forms, its line numbers', async () => {
    const csv = [
      HEADER,
      '960001,85123A,MUG,6,12/1/2010 24:00,2.55,17850,France',
      '960001,85123A,MUG,6,2/29/2011 9:05,2.55,17850,France',
      '960001,85123A,MUG,6,1/1/1999 1:00,2.55,17850,France',
      '960001,85123A,MUG,+5,02/29/2012 9:05,1.234,17850.00,France',
      'AB12,85123A,MUG,6,12/1/2010 8:26,2.55,17850,France',
      '960001,85123A,MUG,10000001,12/1/2010 8:26,2.55,17850,France',
      '960001,85123A,MUG,6,12/1/2010 8:26,.5,17850,France',
      '960001,85123A,MUG,6,12/1/2010 8:26,2.55,123.,France',
      `960001,${'X'.repeat(33)},MUG,6,12/1/2010 8:26,2.55,17850,France`,
      '960001,85123A,MUG,-6,2011-03-05T08:26:59,2.55,,France',
    ].join('\n');
    const key = 'landing/edges.csv';
    const etag = await put(key, csv);

    const [result] = await loader().sweep();

    expect(result).toMatchObject({ status: 'loaded', rowsRead: 10, rowsLoaded: 4, rowsRejected: 6 });
    expect(await rejectedOf(key, etag)).toEqual([
      [2, 'InvoiceDate "12/1/2010 24:00" is not M/D/YYYY H:MM or YYYY-MM-DD HH:MM[:SS]'],
      [3, 'InvoiceDate "2/29/2011 9:05" is not M/D/YYYY H:MM or YYYY-MM-DD HH:MM[:SS]'],
      // Outside dim_date's calendar: refused as the API and replay refuse it, so it takes no number.
      [4, 'InvoiceDate "1/1/1999 1:00" is not a date in 2000-2040 (the warehouse\'s calendar)'],
      [6, 'InvoiceNo "AB12" is not 1-10 digits, optionally prefixed by one capital letter (A-Z)'],
      [7, 'Quantity 10000001 is out of range (|q| <= 10,000,000)'],
      [10, 'StockCode is longer than 32 characters'],
    ]);
    expect(
      await rows(
        `SELECT line_no, quantity, unit_price::text AS price, line_total::text AS total, customer_id,
           invoice_date::text AS at, date_key FROM fact_sales_line WHERE invoice_no = '960001' ORDER BY line_no`,
      ),
    ).toEqual([
      {
        line_no: 1,
        quantity: 5,
        price: '1.234',
        total: '6.170',
        customer_id: '17850',
        at: '2012-02-29 09:05:00',
        date_key: 20120229,
      },
      {
        line_no: 2,
        quantity: 6,
        price: '0.500',
        total: '3.000',
        customer_id: '17850',
        at: '2010-12-01 08:26:00',
        date_key: 20101201,
      },
      {
        line_no: 3,
        quantity: 6,
        price: '2.550',
        total: '15.300',
        customer_id: '123',
        at: '2010-12-01 08:26:00',
        date_key: 20101201,
      },
      {
        line_no: 4,
        quantity: -6,
        price: '2.550',
        total: '-15.300',
        customer_id: null,
        at: '2011-03-05 08:26:59',
        date_key: 20110305,
      },
    ]);
  });

  it('changes nothing when the same file is loaded again, under its key or another', async () => {
    const before = await factCount();
    const again = loader();
    expect(await again.sweep()).toEqual([]);
    expect(await again.loadKey('landing/variants.csv.gz')).toMatchObject({
      status: 'skipped',
      detail: 'already loaded',
    });

    const copy = [HEADER, '900001,85123A,CAFÉ MUG,6,2011-03-05 08:26,2.55,17850.0,France'].join('\n');
    await put('landing/copy-of-variants.csv', copy);
    const [res] = await again.sweep();
    expect(res).toMatchObject({ status: 'loaded', rowsLoaded: 1, rowsNew: 0 });
    expect(await factCount()).toBe(before);
  });

  it('adds only the new keys of a file that overlaps the fact (the direct COPY gives way to a merge)', async () => {
    const line = '900001,85123A,CAFÉ MUG,6,2011-03-05 08:26,2.55,17850.0,France';
    // Lines 1-3 of invoice 900001 are loaded (variants.csv.gz); this file's 4th line is new.
    await put('landing/overlap.csv', [HEADER, line, line, line, line].join('\n'));
    const before = await factCount();

    const [res] = await loader().sweep();

    expect(res).toMatchObject({ status: 'loaded', rowsLoaded: 4, rowsNew: 1 });
    expect(await factCount()).toBe(before + 1);
    expect(
      await rows("SELECT source_key FROM fact_sales_line WHERE invoice_no = '900001' AND line_no = 4"),
    ).toEqual([{ source_key: 'landing/overlap.csv' }]);
  });

  it('reports a loaded file whose rejected-rows file could not be written, keeping the rows', async () => {
    const key = 'landing/rejects-unwritable.csv';
    const etag = await put(
      key,
      `${HEADER}\n926001,22423,CAKESTAND,2,12/1/2010 8:26,12.75,17850,France\n926001,x,y,z\n`,
    );
    // S3 refuses just the quarantine copy of the rejected rows.
    const s3 = {
      send: (command: unknown) =>
        command instanceof PutObjectCommand && String(command.input.Key).endsWith('.rejected.csv')
          ? Promise.reject(new Error('S3 said no (test)'))
          : clients.s3.send(command as never),
    } as unknown as typeof clients.s3;

    const result = await createLoader({ s3, bucket: BUCKET, warehouse, logger }).loadKey(key);

    expect(result).toMatchObject({ status: 'loaded', rowsLoaded: 1, rowsRejected: 1 });
    expect(result.detail).toMatch(
      /rejected rows are in load_rejected_row, but writing .* failed: S3 said no/,
    );
    expect(await rejectedOf(key, etag)).toEqual([[3, 'expected 8 fields, got 4']]);
    expect(await exists(`quarantine/${key}.rejected.csv`)).toBe(false);
  });

  it('moves a file missing required columns to quarantine/ with the reason', async () => {
    const key = 'landing/no-price.csv';
    await put(
      key,
      'InvoiceNo,StockCode,Description,Quantity,InvoiceDate,CustomerID,Country\n1,2,3,4,5,6,7\n',
    );

    const [result] = await loader().sweep();

    expect(result).toMatchObject({ key, status: 'quarantined' });
    expect(await exists(key)).toBe(false);
    expect(await exists(`quarantine/${key}`)).toBe(true);
    const reason = JSON.parse(await text(`quarantine/${key}.reason.json`));
    expect(reason).toMatchObject({ key, missing: ['UnitPrice'] });
    expect(reason.reason).toMatch(/missing required columns: UnitPrice/);
    expect(await rows('SELECT status FROM load_manifest WHERE object_key = $1', [key])).toEqual([
      { status: 'quarantined' },
    ]);
  });

  it('resumes a load that stopped between staging and MERGE', async () => {
    const key = 'landing/crash.csv';
    await put(key, `${HEADER}\n920001,22423,CAKESTAND,2,12/1/2010 8:26,12.75,17850,France\n`);
    // The rows are in (COPY done), the dimensions and the manifest not yet: the process dies here.
    const crashed = loader({
      afterStage: () => Promise.reject(new Error('the loader died between staging and MERGE')),
    });

    const first = await crashed.loadKey(key);

    expect(first).toMatchObject({ status: 'failed', detail: 'the loader died between staging and MERGE' });
    // One transaction per file: nothing of it is visible, nothing half-done is left behind.
    expect(await rows("SELECT 1 FROM fact_sales_line WHERE invoice_no = '920001'")).toHaveLength(0);
    expect(
      await rows("SELECT 1 FROM pg_tables WHERE tablename IN ('load_typed', 'load_counts')"),
    ).toHaveLength(0);
    expect(await rows('SELECT status, attempts FROM load_manifest WHERE object_key = $1', [key])).toEqual([
      { status: 'failed', attempts: 1 },
    ]);

    const [resumed] = await loader().sweep();

    expect(resumed).toMatchObject({ key, status: 'loaded', rowsLoaded: 1, rowsNew: 1 });
    expect(await rows("SELECT line_no FROM fact_sales_line WHERE invoice_no = '920001'")).toEqual([
      { line_no: 1 },
    ]);
    expect(await rows('SELECT status, attempts FROM load_manifest WHERE object_key = $1', [key])).toEqual([
      { status: 'loaded', attempts: 2 },
    ]);
  });

  it('finishes a load an older loader left staged, dropping its staging table', async () => {
    const key = 'landing/left-staged.csv';
    const etag = await put(key, `${HEADER}\n925001,22423,CAKESTAND,2,12/1/2010 8:26,12.75,17850,France\n`);
    const staging = `stg_load_${loadIdOf(key, etag)}`;
    await warehouse.query(`CREATE TABLE ${staging} (row_no bigint, c1 text)`);
    await warehouse.query(
      `INSERT INTO load_manifest (object_key, etag, load_id, source, format, status, attempts, discovered_at)
       VALUES ($1, $2, $3, 'file', 'csv', 'staged', 1, CURRENT_TIMESTAMP)`,
      [key, etag, loadIdOf(key, etag)],
    );

    const [result] = await loader().sweep();

    expect(result).toMatchObject({ key, status: 'loaded', rowsLoaded: 1, rowsNew: 1 });
    expect(await rows('SELECT 1 FROM pg_tables WHERE tablename = $1', [staging])).toHaveLength(0);
    expect(await rows("SELECT line_no FROM fact_sales_line WHERE invoice_no = '925001'")).toEqual([
      { line_no: 1 },
    ]);
  });

  it('loads a notified object without waiting for a sweep', async () => {
    const l = loader();
    const key = 'landing/notified.csv';
    await put(key, `${HEADER}\n930001,22423,CAKESTAND,2,12/1/2010 8:26,12.75,17850,United Kingdom\n`);
    l.notify(key);
    await l.stop();
    expect(await rows("SELECT source FROM fact_sales_line WHERE invoice_no = '930001'")).toEqual([
      { source: 'file' },
    ]);
  });
});

describe('the archive written by Firehose', () => {
  const line = (invoiceNo: string, lineNo: number, stockCode: string, extra: Record<string, unknown> = {}) =>
    JSON.stringify({
      invoiceNo,
      lineNo,
      stockCode,
      description: 'LANTERN',
      quantity: 2,
      invoiceDate: '2011-06-01T10:15:00',
      unitPrice: '3.390',
      customerId: '13047',
      country: 'United Kingdom',
      producedAt: '2026-01-01T10:00:00.000Z',
      acceptedAt: '2026-01-01T10:00:00.100Z',
      streamVisibleAt: '2026-01-01T10:00:00.300Z',
      shard: 'ignored extra field',
      ...extra,
    });

  it('loads NDJSON objects exactly once per line, duplicates judged across objects', async () => {
    const a = [line('940001', 1, '71053'), line('940001', 2, '22423'), '{not json', ''].join('\n');
    // Firehose is at-least-once: line 2 arrives again; line 3 repeats line 1's content (a duplicate row).
    const b = [line('940001', 2, '22423'), line('940001', 3, '71053'), line('940002', 1, '71053')].join('\n');
    await put('archive/2026/01/01/10/stream-1.gz', gzipSync(a));
    await put('archive/2026/01/01/10/stream-2.gz', gzipSync(b));

    const results = await loader().sweep();

    expect(results.map((r) => [r.status, r.rowsLoaded, r.rowsNew, r.rowsRejected])).toEqual([
      ['loaded', 2, 2, 1],
      ['loaded', 3, 2, 0],
    ]);
    const facts = await rows(
      `SELECT invoice_no, line_no, is_duplicate_row, source, unit_price::text AS price,
         stream_visible_at IS NOT NULL AS has_stream, produced_at IS NOT NULL AS has_produced
       FROM fact_sales_line WHERE invoice_no IN ('940001', '940002') ORDER BY invoice_no, line_no`,
    );
    expect(facts).toEqual([
      {
        invoice_no: '940001',
        line_no: 1,
        is_duplicate_row: false,
        source: 'stream',
        price: '3.390',
        has_stream: true,
        has_produced: true,
      },
      {
        invoice_no: '940001',
        line_no: 2,
        is_duplicate_row: false,
        source: 'stream',
        price: '3.390',
        has_stream: true,
        has_produced: true,
      },
      {
        invoice_no: '940001',
        line_no: 3,
        is_duplicate_row: true,
        source: 'stream',
        price: '3.390',
        has_stream: true,
        has_produced: true,
      },
      {
        invoice_no: '940002',
        line_no: 1,
        is_duplicate_row: false,
        source: 'stream',
        price: '3.390',
        has_stream: true,
        has_produced: true,
      },
    ]);
    const [rejected] = await rows<{ line_number: string; reason: string }>(
      "SELECT line_number, reason FROM load_rejected_row WHERE object_key = 'archive/2026/01/01/10/stream-1.gz'",
    );
    expect(rejected).toMatchObject({ line_number: '3', reason: 'not a JSON object' });
  });

  it('converges with a bulk drop of the same lines: the file first, then the stream adds lineage', async () => {
    await put(
      'landing/before-stream.csv',
      `${HEADER}\n950001,71053,LANTERN,2,6/1/2011 10:15,3.39,13047,United Kingdom\n950001,22423,CAKE,1,6/1/2011 10:15,12.75,13047,United Kingdom\n`,
    );
    await loader().sweep();
    await put(
      'archive/2026/01/01/11/stream-3',
      [
        line('950001', 1, '71053'),
        line('950001', 2, '22423', { description: 'CAKE', quantity: 1, unitPrice: '12.75' }),
      ].join('\n'),
    );

    const [res] = await loader().sweep();

    expect(res).toMatchObject({ status: 'loaded', rowsLoaded: 2, rowsNew: 0 });
    expect(
      await rows(
        "SELECT line_no, source, stream_visible_at IS NOT NULL AS has_stream FROM fact_sales_line WHERE invoice_no = '950001' ORDER BY line_no",
      ),
    ).toEqual([
      { line_no: 1, source: 'file', has_stream: true },
      { line_no: 2, source: 'file', has_stream: true },
    ]);
  });
});

describe('bytes the API refuses', () => {
  it('rejects a CSV row with a NUL byte or a control character in a text field; the other rows load', async () => {
    const csv = Buffer.concat([
      Buffer.from(`${HEADER}\n`),
      Buffer.from('970001,22423,CAKESTAND,2,12/1/2010 8:26,12.75,17850,France\n'),
      Buffer.from('970001,22424,NUL\u0000INSIDE,2,12/1/2010 8:26,12.75,17850,France\n'),
      Buffer.from('970001,22425,"QUOTED\u0000NUL, TOO",2,12/1/2010 8:26,12.75,17850,France\n'),
      Buffer.from('970001,22426,BELL\u0007 AND ESC\u001b,2,12/1/2010 8:26,12.75,17850,France\n'),
      Buffer.from('970001,22427\u007f,MUG,2,12/1/2010 8:26,12.75,17850,France\n'),
      Buffer.from('970001,22428,MUG,2,12/1/2010 8:26,12.75,17850,Fra\u0001nce\n'),
      Buffer.from('970001,22429,"TAB\tAND\r\nNEWLINE",2,12/1/2010 8:26,12.75,17850,France\n'),
      Buffer.from('970002,22423,CAKESTAND,2,12/1/2010 8:26,12.75,17850,France\n'),
    ]);
    const key = 'landing/control-bytes.csv.gz';
    const etag = await put(key, gzipSync(csv));

    const [result] = await loader().sweep();

    expect(result).toMatchObject({ key, status: 'loaded', rowsRead: 8, rowsLoaded: 3, rowsRejected: 5 });
    expect(await rejectedOf(key, etag)).toEqual([
      [3, 'Description contains a NUL byte'],
      [4, 'Description contains a NUL byte'],
      [5, 'Description contains control characters'],
      [6, 'StockCode contains control characters'],
      [7, 'Country contains control characters'],
    ]);
    expect(
      await rows(
        "SELECT invoice_no, line_no, description FROM fact_sales_line WHERE invoice_no IN ('970001', '970002') ORDER BY 1, 2",
      ),
    ).toEqual([
      { invoice_no: '970001', line_no: 1, description: 'CAKESTAND' },
      { invoice_no: '970001', line_no: 2, description: 'TAB\tAND\r\nNEWLINE' },
      { invoice_no: '970002', line_no: 1, description: 'CAKESTAND' },
    ]);
    const file = await text(`quarantine/${key}.rejected.csv`);
    // The values as read, less the NUL (no PostgreSQL text holds one).
    expect(file.split('\n').slice(1, 3)).toEqual([
      '3,Description contains a NUL byte,970001,22424,NULINSIDE,2,12/1/2010 8:26,12.75,17850,France',
      '4,Description contains a NUL byte,970001,22425,"QUOTEDNUL, TOO",2,12/1/2010 8:26,12.75,17850,France',
    ]);
  });

  it('rejects archive lines with a control character or an escaped NUL by the same rule', async () => {
    const archiveLine = (lineNo: number, over: Record<string, unknown> = {}) =>
      JSON.stringify({
        invoiceNo: '970101',
        lineNo,
        stockCode: '71053',
        description: 'LANTERN',
        quantity: 2,
        invoiceDate: '2011-06-01T10:15:00',
        unitPrice: '3.39',
        customerId: '13047',
        country: 'United Kingdom',
        ...over,
      });
    const key = 'archive/2026/01/02/10/control-1.gz';
    const etag = await put(
      key,
      gzipSync(
        [
          archiveLine(1),
          archiveLine(2, { description: 'BELL\u0007' }),
          archiveLine(3, { stockCode: '7105\u001f3' }),
          archiveLine(4, { description: 'NUL\u0000' }),
          archiveLine(5, { country: 'United\u007fKingdom' }),
          archiveLine(6, { description: 'TAB\tOK' }),
        ].join('\n'),
      ),
    );

    const [result] = await loader().sweep();

    expect(result).toMatchObject({ key, status: 'loaded', rowsLoaded: 2, rowsRejected: 4 });
    expect(await rejectedOf(key, etag)).toEqual([
      [2, 'Description contains control characters'],
      [3, 'StockCode contains control characters'],
      [4, 'Description contains a NUL byte'],
      [5, 'Country contains control characters'],
    ]);
    expect(await rows("SELECT line_no FROM fact_sales_line WHERE invoice_no = '970101' ORDER BY 1")).toEqual([
      { line_no: 1 },
      { line_no: 6 },
    ]);
  });
});

describe('text encodings: one detection rule, never a silent replacement (issue 13, defect 1)', () => {
  /** Plain ASCII rows of invoice `invoiceNo`, more bytes in all than the 256 KiB head the loader sniffs. */
  const pastTheHead = (invoiceNo: string) =>
    Array.from({ length: 3_500 }, (_, i) =>
      csvRow({
        InvoiceNo: invoiceNo,
        StockCode: `F${String(i).padStart(5, '0')}`,
        Description: 'FILLER ROW',
      }),
    );
  const latin1 = (rows: string[]) => Buffer.from(`${rows.join('\r\n')}\r\n`, 'latin1');
  const utf8 = (rows: string[]) => Buffer.from(`${rows.join('\r\n')}\r\n`, 'utf8');
  const quarantined = async (key: string) => ({
    inQuarantine: await exists(`quarantine/${key}`),
    stillThere: await exists(key),
    reason: JSON.parse(await text(`quarantine/${key}.reason.json`)) as { reason: string; line: number },
    manifest: await rows('SELECT status FROM load_manifest WHERE object_key = $1', [key]),
  });

  it('loads a Latin-1 file whose first non-ASCII byte comes past the sniffed head, £ as £', async () => {
    const key = 'landing/encoding/latin1-late.csv';
    await put(
      key,
      latin1([
        CSV_HEADER,
        ...pastTheHead('991001'),
        csvRow({
          InvoiceNo: '991002',
          StockCode: 'gift_0001_40',
          Description: 'Dotcomgiftshop Gift Voucher £40.00',
        }),
      ]),
    );

    const result = await loader().loadKey(key);

    expect(result).toMatchObject({ status: 'loaded', rowsLoaded: 3_501, rowsRejected: 0 });
    expect(await rows("SELECT description FROM fact_sales_line WHERE invoice_no = '991002'")).toEqual([
      { description: 'Dotcomgiftshop Gift Voucher £40.00' },
    ]);
    expect(await rows('SELECT encoding FROM load_manifest WHERE object_key = $1', [key])).toEqual([
      { encoding: 'LATIN1' },
    ]);
  });

  it('quarantines a file mixing UTF-8 and Latin-1 within the sniffed head, naming the line', async () => {
    const key = 'landing/encoding/mixed-head.csv';
    await put(
      key,
      Buffer.concat([
        utf8([
          CSV_HEADER,
          csvRow({ InvoiceNo: '991101', Description: 'CAFÉ MUG' }),
          csvRow({ InvoiceNo: '991101' }),
        ]),
        latin1([csvRow({ InvoiceNo: '991102', Description: 'Gift Voucher £40.00' })]),
      ]),
    );

    const result = await loader().loadKey(key);

    expect(result).toMatchObject({ status: 'quarantined' });
    expect(result.detail).toMatch(
      /^landing\/encoding\/mixed-head\.csv:4: not valid UTF-8 .*line 2 is UTF-8: the file mixes encodings/,
    );
    const q = await quarantined(key);
    expect(q).toMatchObject({ inQuarantine: true, stillThere: false, manifest: [{ status: 'quarantined' }] });
    expect(q.reason).toMatchObject({ line: 4, reason: result.detail });
    expect(await rows("SELECT 1 FROM fact_sales_line WHERE invoice_no IN ('991101', '991102')")).toEqual([]);
  });

  it('quarantines a file whose Latin-1 byte comes past the sniffed head, after UTF-8 text', async () => {
    const key = 'landing/encoding/mixed-late.csv.gz';
    const filler = pastTheHead('991201');
    await put(
      key,
      gzipSync(
        Buffer.concat([
          utf8([CSV_HEADER, csvRow({ InvoiceNo: '991200', Description: 'CAFÉ MUG' }), ...filler]),
          latin1([csvRow({ InvoiceNo: '991202', Description: 'Gift Voucher £40.00' })]),
        ]),
      ),
    );
    const latin1Line = 3 + filler.length;

    const result = await loader().loadKey(key);

    // Before issue 13 the loader restarted as Latin-1 and stored CAFÃ\u0089 MUG.
    expect(result).toMatchObject({ status: 'quarantined' });
    expect(result.detail).toContain(`mixed-late.csv.gz:${latin1Line}: not valid UTF-8`);
    expect((await quarantined(key)).reason).toMatchObject({ line: latin1Line });
    expect(
      await rows("SELECT 1 FROM fact_sales_line WHERE invoice_no IN ('991200', '991201', '991202')"),
    ).toEqual([]);
  });

  it('quarantines an archive object holding a byte that is not UTF-8, naming the line', async () => {
    const key = 'archive/2026/01/03/10/damaged-1.gz';
    const good = (lineNo: number) => JSON.stringify(acceptedLine({ invoiceNo: '991301', lineNo }));
    const damaged = JSON.stringify(
      acceptedLine({ invoiceNo: '991301', lineNo: 2, description: 'CAF\u0089' }),
    );
    await put(
      key,
      gzipSync(
        Buffer.concat([
          Buffer.from(`${good(1)}\n`),
          Buffer.from(`${damaged}\n`, 'latin1'),
          Buffer.from(good(3)),
        ]),
      ),
    );

    const result = await loader().loadKey(key);

    // Before: a non-fatal decoder loaded line 2 with U+FFFD in its description.
    expect(result).toMatchObject({ status: 'quarantined' });
    expect(result.detail).toMatch(/^archive\/2026\/01\/03\/10\/damaged-1\.gz:2: not valid UTF-8 \(byte 0x89/);
    expect((await quarantined(key)).reason).toMatchObject({ line: 2 });
    expect(await rows("SELECT 1 FROM fact_sales_line WHERE invoice_no = '991301'")).toEqual([]);
  });
});

describe('an outage longer than the fast retries', () => {
  it('retries a failed object after a growing cool-down until it loads, showing the error meanwhile', async () => {
    let down = true;
    // The warehouse refuses every transaction (the staging one first) while "down"; queries still work,
    // so the failures are recorded as they would be when only the load's connection breaks.
    const flaky: Warehouse = {
      dialect: warehouse.dialect,
      copySource: warehouse.copySource,
      query: (sql, params) => warehouse.query(sql, params),
      transaction: (steps) =>
        down
          ? Promise.reject(new WarehouseError('connection refused (test outage)'))
          : warehouse.transaction(steps),
      close: async () => {},
    };
    const l = createLoader({
      s3: clients.s3,
      bucket: BUCKET,
      warehouse: flaky,
      logger,
      maxAttempts: 2,
      coolDown: { baseMs: 60_000, maxMs: 120_000 },
      prefixes: ['landing/outage/'],
    });
    const key = 'landing/outage/late.csv';
    await put(key, `${HEADER}\n980001,22423,CAKESTAND,2,12/1/2010 8:26,12.75,17850,France\n`);
    const manifest = async () =>
      (
        await rows<{ status: string; attempts: number; error: string | null }>(
          'SELECT status, attempts, error FROM load_manifest WHERE object_key = $1',
          [key],
        )
      )[0];
    const statuses = async () => (await l.sweep()).map((r) => r.status);
    // The warehouse's clock moving on, without waiting for it: the last attempt is made older. The
    // steps are half a cool-down or more, so the seconds a busy machine adds cannot tip a check.
    const rest = (ms: number) =>
      warehouse.query(
        "UPDATE load_manifest SET finished_at = finished_at - CAST($2 AS integer) * interval '1 millisecond' WHERE object_key = $1",
        [key, ms],
      );

    // The fast retries: every sweep, up to maxAttempts, each failure counted.
    expect(await statuses()).toEqual(['failed']);
    expect(await statuses()).toEqual(['failed']);
    expect(await manifest()).toEqual({
      status: 'failed',
      attempts: 2,
      error: 'connection refused (test outage)',
    });
    // Then it rests: sweeps leave it alone, and loadKey says when it is retried.
    expect(await statuses()).toEqual([]);
    expect(await l.loadKey(key)).toMatchObject({
      status: 'skipped',
      detail: expect.stringMatching(/^failed 2 times, next retry in \d+ s: connection refused/),
    });

    await rest(30_000);
    expect(await statuses()).toEqual([]); // half the first cool-down (60 s): still resting
    await rest(30_000);
    expect(await statuses()).toEqual(['failed']); // retried after the first cool-down, still down
    expect(await manifest()).toMatchObject({ status: 'failed', attempts: 3 });
    await rest(60_000);
    expect(await statuses()).toEqual([]); // the second cool-down is longer (doubled: 120 s)

    down = false;
    await rest(60_000);
    expect(await statuses()).toEqual(['loaded']);
    expect(await manifest()).toMatchObject({ status: 'loaded', error: null });
    expect(await rows("SELECT line_no FROM fact_sales_line WHERE invoice_no = '980001'")).toEqual([
      { line_no: 1 },
    ]);
  });
});

describe('archive objects waiting together: one transaction', () => {
  const archived = (invoiceNo: string, lineNo: number, stockCode = '71053') =>
    JSON.stringify({
      ...acceptedLine({ invoiceNo, lineNo, stockCode }),
      streamVisibleAt: '2026-12-06T07:00:00.300Z',
    });
  const object = (...lines: string[]) => gzipSync(lines.join('\n'));
  /** The warehouse, counting the transactions the loader runs. */
  const counted = () => {
    const seen = { transactions: 0 };
    const w: Warehouse = {
      dialect: warehouse.dialect,
      copySource: warehouse.copySource,
      query: (sql, params) => warehouse.query(sql, params),
      transaction: (steps) => {
        seen.transactions++;
        return warehouse.transaction(steps);
      },
      close: async () => undefined,
    };
    return {
      seen,
      loader: (hooks = {}) => createLoader({ s3: clients.s3, bucket: BUCKET, warehouse: w, logger, hooks }),
    };
  };
  const manifest = (prefix: string) =>
    rows<{
      object_key: string;
      status: string;
      attempts: number;
      rows_new: string;
      error: string | null;
      started_at: Date;
    }>(
      `SELECT object_key, status, attempts, rows_new, error, started_at FROM load_manifest
       WHERE object_key LIKE $1 ORDER BY object_key`,
      [`${prefix}%`],
    );

  it('loads several objects in one transaction, each with its own counts, a key in two of them once', async () => {
    const p = 'archive/2026/02/01/10/';
    // Object 3 repeats line 965001#2 of object 1 (Firehose is at-least-once) and has a bad line.
    await put(`${p}s-1.gz`, object(archived('965001', 1), archived('965001', 2, '22423')));
    await put(`${p}s-2.gz`, object(archived('965002', 1), archived('965002', 2), archived('965002', 3)));
    const etag3 = await put(
      `${p}s-3.gz`,
      object(archived('965001', 2, '22423'), archived('965003', 1), '{not json'),
    );
    const { seen, loader: l } = counted();

    const results = await l().loadKeys([`${p}s-3.gz`, `${p}s-1.gz`, `${p}s-2.gz`]);

    expect(seen.transactions).toBe(1);
    expect(results.map((r) => [r.key, r.status, r.rowsLoaded, r.rowsNew, r.rowsRejected])).toEqual([
      [`${p}s-1.gz`, 'loaded', 2, 2, 0],
      [`${p}s-2.gz`, 'loaded', 3, 3, 0],
      [`${p}s-3.gz`, 'loaded', 2, 1, 1],
    ]);
    const m = await manifest(p);
    expect(m.map((r) => [r.status, r.attempts, Number(r.rows_new)])).toEqual([
      ['loaded', 1, 2],
      ['loaded', 1, 3],
      ['loaded', 1, 1],
    ]);
    // One claim time for all: they were claimed by one transaction.
    expect(new Set(m.map((r) => r.started_at.getTime())).size).toBe(1);
    const facts = await rows<{ invoice_no: string; line_no: number; source_key: string }>(
      `SELECT invoice_no, line_no, source_key FROM fact_sales_line
       WHERE invoice_no IN ('965001', '965002', '965003') ORDER BY invoice_no, line_no`,
    );
    expect(facts.map((f) => `${f.invoice_no}#${f.line_no} ${f.source_key.slice(p.length)}`)).toEqual([
      '965001#1 s-1.gz',
      '965001#2 s-1.gz',
      '965002#1 s-2.gz',
      '965002#2 s-2.gz',
      '965002#3 s-2.gz',
      '965003#1 s-3.gz',
    ]);
    expect(await rejectedOf(`${p}s-3.gz`, etag3)).toEqual([[3, 'not a JSON object']]);
    expect(await rows("SELECT 1 FROM pg_tables WHERE tablename IN ('load_typed', 'load_counts')")).toEqual(
      [],
    );
  });

  it('quarantines the one bad object of a batch with its reason and loads the good ones', async () => {
    const p = 'archive/2026/02/02/10/';
    await put(`${p}s-1.gz`, object(archived('961001', 1)));
    await put(`${p}s-2.gz`, Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x01, 0x02])); // a gzip cut short
    await put(`${p}s-3.gz`, object(archived('961003', 1)));

    const results = await loader().loadKeys([`${p}s-1.gz`, `${p}s-2.gz`, `${p}s-3.gz`]);

    expect(results.map((r) => r.status)).toEqual(['loaded', 'quarantined', 'loaded']);
    expect(results[1]?.detail).toMatch(/^not a valid gzip stream/);
    expect((await manifest(p)).map((r) => [r.status, r.attempts])).toEqual([
      ['loaded', 1],
      ['quarantined', 1],
      ['loaded', 1],
    ]);
    expect((await manifest(p))[1]?.error).toMatch(/^not a valid gzip stream/);
    expect(await exists(`quarantine/${p}s-2.gz.reason.json`)).toBe(true);
    expect(
      await rows(
        "SELECT invoice_no FROM fact_sales_line WHERE invoice_no IN ('961001', '961003') ORDER BY 1",
      ),
    ).toEqual([{ invoice_no: '961001' }, { invoice_no: '961003' }]);
  });

  it('adds nothing for a redelivered object whose lines are loaded, beside a new one', async () => {
    const p = 'archive/2026/02/03/10/';
    await put(`${p}s-1.gz`, object(archived('962001', 1), archived('962001', 2)));
    await loader().loadKey(`${p}s-1.gz`);
    const before = await factCount();
    // The same records again in a new object (a Firehose retry), and the loaded object notified again.
    await put(`${p}s-2.gz`, object(archived('962001', 1), archived('962001', 2)));
    await put(`${p}s-3.gz`, object(archived('962002', 1)));
    const { seen, loader: l } = counted();

    const results = await l().loadKeys([`${p}s-1.gz`, `${p}s-2.gz`, `${p}s-3.gz`]);

    expect(results.map((r) => [r.status, r.rowsLoaded, r.rowsNew])).toEqual([
      ['skipped', 2, 2],
      ['loaded', 2, 0],
      ['loaded', 1, 1],
    ]);
    expect(results[0]?.detail).toBe('already loaded');
    expect(seen.transactions).toBe(1);
    expect(await factCount()).toBe(before + 1);
    expect(
      await rows("SELECT line_no, source_key FROM fact_sales_line WHERE invoice_no = '962001' ORDER BY 1"),
    ).toEqual([
      { line_no: 1, source_key: `${p}s-1.gz` },
      { line_no: 2, source_key: `${p}s-1.gz` },
    ]);
  });

  it('leaves every object of a batch retryable when the loader dies between two of them', async () => {
    const p = 'archive/2026/02/04/10/';
    await put(`${p}s-1.gz`, object(archived('963001', 1)));
    await put(`${p}s-2.gz`, object(archived('963002', 1)));
    await put(`${p}s-3.gz`, object(archived('963003', 1)));
    const staged: string[] = [];
    // The first object's rows are COPYed, the second's not yet: the loader dies there.
    const dying = loader({
      afterStage: (key: string) => {
        staged.push(key);
        return Promise.reject(new Error('the loader died between two objects'));
      },
    });

    const failed = await dying.loadKeys([`${p}s-1.gz`, `${p}s-2.gz`, `${p}s-3.gz`]);

    expect(staged[0]).toBe(`${p}s-1.gz`);
    expect(failed.map((r) => r.status)).toEqual(['failed', 'failed', 'failed']);
    expect(
      await rows("SELECT 1 FROM fact_sales_line WHERE invoice_no IN ('963001', '963002', '963003')"),
    ).toEqual([]);
    expect(await rows("SELECT 1 FROM pg_tables WHERE tablename IN ('load_typed', 'load_counts')")).toEqual(
      [],
    );

    const results = await loader().loadKeys([`${p}s-1.gz`, `${p}s-2.gz`, `${p}s-3.gz`]);

    expect(results.map((r) => [r.status, r.rowsNew])).toEqual([
      ['loaded', 1],
      ['loaded', 1],
      ['loaded', 1],
    ]);
    expect(
      await rows(
        "SELECT invoice_no, line_no FROM fact_sales_line WHERE invoice_no IN ('963001', '963002', '963003') ORDER BY 1",
      ),
    ).toEqual([
      { invoice_no: '963001', line_no: 1 },
      { invoice_no: '963002', line_no: 1 },
      { invoice_no: '963003', line_no: 1 },
    ]);
  });

  it('loads the objects notified while a load ran together, in one transaction', async () => {
    const p = 'archive/2026/02/05/10/';
    for (const n of [1, 2, 3, 4]) await put(`${p}s-${n}.gz`, object(archived(`96400${n}`, 1)));
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let firstStaged!: () => void;
    const staging = new Promise<void>((resolve) => {
      firstStaged = resolve;
    });
    const { seen, loader: l } = counted();
    const running = l({
      afterStage: async (key: string) => {
        if (key !== `${p}s-1.gz`) return;
        firstStaged();
        await held;
      },
    });

    running.notify(`${p}s-1.gz`);
    await staging;
    for (const n of [2, 3, 4]) running.notify(`${p}s-${n}.gz`);
    release();
    await running.stop();

    expect(seen.transactions).toBe(2);
    const m = await manifest(p);
    expect(m.map((r) => r.status)).toEqual(['loaded', 'loaded', 'loaded', 'loaded']);
    const claimed = m.map((r) => r.started_at.getTime());
    expect(new Set(claimed.slice(1)).size).toBe(1);
    expect(claimed[0]).not.toBe(claimed[1]);
  });
});
