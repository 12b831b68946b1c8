import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Clients, createClients } from '#adapters/clients';
import { date, decimal, int32, type ParquetSchema, string, writeParquet } from '#adapters/parquet-writer';
import { type LakeObjects, s3LakeObjects } from '#lake/catalog-objects';
import { crawlLake } from '#lake/crawler';
import { LakeQueryError, queryLake, UnknownTableError } from '#lake/query';
import { type RunningS3, startS3 } from '#local/emulators';
import { writeEndpoints } from '#local/endpoints';
import { scratchDataDir } from '#local/scratch';
import { acceptedLine } from '#test/helpers/lines';

const BUCKET = 'rp-lake';
const run = promisify(execFile);
const BIN = path.resolve(import.meta.dirname, '../../bin/retail-pipeline.js');

const LINES: ParquetSchema = [
  { name: 'invoice_no', type: string, nullable: false },
  { name: 'line_no', type: int32, nullable: false },
  { name: 'country_name', type: string, nullable: false },
  { name: 'invoice_day', type: date, nullable: false },
  { name: 'quantity', type: int32, nullable: false },
  { name: 'unit_price', type: decimal(12, 3), nullable: false },
  { name: 'line_total', type: decimal(18, 3), nullable: false },
];
const line = (invoice_no: string, line_no: number, day: string, quantity: number, unit_price: string) => ({
  invoice_no,
  line_no,
  country_name: 'United Kingdom',
  invoice_day: day,
  quantity,
  unit_price,
  line_total: (Math.round(quantity * Number(unit_price) * 1000) / 1000).toFixed(3),
});

let s3: RunningS3;
let clients: Clients;
let objects: LakeObjects;
let dataDir: string;
let cacheDir: string;

async function put(key: string, body: Uint8Array | string): Promise<void> {
  await clients.s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
}

const archiveObject = (lines: object[]) =>
  gzipSync(lines.map((l) => `${JSON.stringify({ ...l, shardId: 'shardId-000000000000' })}\n`).join(''));

beforeAll(async () => {
  dataDir = await scratchDataDir('rp-lake-query-');
  cacheDir = path.join(dataDir, 'lake-cache');
  s3 = await startS3({ host: '127.0.0.1', port: 0, buckets: [BUCKET], directory: path.join(dataDir, 's3') });
  clients = createClients({ region: 'eu-west-2', endpoints: { s3: s3.url }, local: true });
  objects = s3LakeObjects(clients.s3, BUCKET);
  await put(
    'processed/invoice_lines/year=2010/month=12/day=01/part-0.parquet',
    writeParquet(LINES, [
      line('536365', 1, '2010-12-01', 6, '2.550'),
      line('536365', 2, '2010-12-01', 6, '3.390'),
    ]),
  );
  await put(
    'processed/invoice_lines/year=2011/month=01/day=04/part-0.parquet',
    writeParquet(LINES, [line('539993', 1, '2011-01-04', 10, '1.250')]),
  );
  const currency: ParquetSchema = [
    { name: 'currency_id', type: int32, nullable: false },
    { name: 'currency_code', type: string, nullable: false },
  ];
  await put(
    'processed/totesys/dim_currency/2024/11/05/r1.parquet',
    writeParquet(currency, [{ currency_id: 1, currency_code: 'GBP' }]),
  );
  await put(
    'processed/totesys/dim_currency/2024/11/06/r2.parquet',
    writeParquet(currency, [{ currency_id: 2, currency_code: 'EUR' }]),
  );
  await put('processed/totesys/_runs/2024/11/05/r1.json', '{}');
  await put(
    'archive/2026/12/06/07/s-1-2026-12-06-07-00-00-a.gz',
    archiveObject([acceptedLine(), acceptedLine({ lineNo: 2, unitPrice: '0.85' })]),
  );
  await put(
    'archive/2026/12/06/08/s-1-2026-12-06-08-00-00-b.gz',
    archiveObject([acceptedLine({ invoiceNo: '536366', quantity: 2 })]),
  );
  await crawlLake({ objects, bucket: BUCKET });
  await writeEndpoints(dataDir, {
    kinesis: 'http://127.0.0.1:1',
    dynamodb: 'http://127.0.0.1:1',
    s3: s3.url,
    firehose: 'http://127.0.0.1:1',
    postgres: 'postgresql://nobody@127.0.0.1:1/none',
    region: 'eu-west-2',
    names: { stream: 's', table: 't', bucket: BUCKET, deliveryStream: 'd', database: 'db' },
    pid: process.pid,
    startedAt: new Date().toISOString(),
  });
}, 60_000);

afterAll(async () => {
  clients?.destroy();
  await s3?.stop();
  await fs.rm(dataDir, { recursive: true, force: true });
});

const query = (sql: string) => queryLake({ objects, bucket: BUCKET, cacheDir }, sql);

describe('lake query over the catalogued tables (DuckDB over the local S3)', () => {
  it('reads the Hive-partitioned Parquet with exact decimals and its partition columns', async () => {
    const r = await query(
      `SELECT year, month, count(*) AS lines, sum(line_total) AS revenue, sum(quantity * unit_price) AS check_total
         FROM invoice_lines GROUP BY year, month ORDER BY year, month`,
    );
    expect(r.columns.map((c) => [c.name, c.type])).toEqual([
      ['year', 'VARCHAR'],
      ['month', 'VARCHAR'],
      ['lines', 'BIGINT'],
      ['revenue', 'DECIMAL(38,3)'],
      ['check_total', 'DECIMAL(38,3)'],
    ]);
    expect(r.rows).toEqual([
      ['2010', '12', '2', '35.640', '35.640'],
      ['2011', '01', '1', '12.500', '12.500'],
    ]);
    expect(r.tables).toEqual([
      { name: 'invoice_lines', files: 2, downloadedObjects: 2, downloadedBytes: expect.any(Number) },
    ]);
  });

  it('names tables as Athena does (database-qualified) and the path partitions partition_0..', async () => {
    const r = await query(
      `SELECT currency_code, partition_0 || '-' || partition_1 || '-' || partition_2 AS day
         FROM retail_pipeline.totesys_dim_currency WHERE partition_2 = '06'`,
    );
    expect(r.rows).toEqual([['EUR', '2024-11-06']]);
  });

  it('reads the archive with the catalog types, the hour folders as partition_0..3', async () => {
    const r = await query(
      `SELECT invoiceno, lineno, unitprice, CAST(unitprice AS DECIMAL(12,3)) * quantity AS total, partition_3 AS hour
         FROM archive ORDER BY invoiceno, lineno`,
    );
    expect(r.rows).toEqual([
      ['536365', 1, '2.55', '15.300', '07'],
      ['536365', 2, '0.85', '5.100', '07'],
      ['536366', 1, '2.55', '5.100', '08'],
    ]);
    const athena = await query('SELECT approx_distinct(invoiceno) AS invoices FROM archive');
    expect(athena.rows).toEqual([['2']]);
  });

  it('runs statements other than SELECT over the tables they name; Athena CTAS options get DuckDB own refusal', async () => {
    const described = await query('DESCRIBE totesys_dim_currency');
    expect(described.rows.map((r) => [r[0], r[1]])).toEqual([
      ['currency_id', 'INTEGER'],
      ['currency_code', 'VARCHAR'],
      ['partition_0', 'VARCHAR'],
      ['partition_1', 'VARCHAR'],
      ['partition_2', 'VARCHAR'],
    ]);
    await expect(
      query("CREATE TABLE gbp WITH (format = 'PARQUET') AS SELECT * FROM totesys_dim_currency"),
    ).rejects.toThrow(/DuckDB: .*WITH clause is not supported/);
    const athena = await query(
      "SELECT approx_percentile(quantity, 0.5) AS median, date_format(invoice_day, '%Y-%m') AS month FROM invoice_lines WHERE regexp_like(invoice_no, '^5363') GROUP BY 2",
    );
    expect(athena.rows).toEqual([[6, '2010-12']]);
  });

  it('downloads an object once per version: a second query fetches nothing, a rewritten object again', async () => {
    await query('SELECT count(*) FROM invoice_lines');
    const again = await query('SELECT count(*) FROM invoice_lines');
    expect(again.tables[0]?.downloadedObjects).toBe(0);
    await put(
      'processed/invoice_lines/year=2011/month=01/day=04/part-0.parquet',
      writeParquet(LINES, [
        line('539993', 1, '2011-01-04', 10, '1.250'),
        line('539993', 2, '2011-01-04', 1, '0.001'),
      ]),
    );
    const after = await query(`SELECT count(*), sum(line_total) FROM invoice_lines WHERE year = '2011'`);
    expect(after.tables[0]?.downloadedObjects).toBe(1);
    expect(after.rows).toEqual([['2', '12.501']]);
  });

  it('reads files of different columns together, before and after the crawl has seen the new one', async () => {
    const wider: ParquetSchema = [...LINES, { name: 'source', type: string, nullable: false }];
    await put(
      'processed/invoice_lines/year=2011/month=02/day=01/part-0.parquet',
      writeParquet(wider, [{ ...line('540001', 1, '2011-02-01', 1, '1.000'), source: 'file' }]),
    );
    const sql =
      'SELECT count(source) AS with_source, count(*) > count(source) AS older_read FROM invoice_lines';
    expect((await query(sql)).rows).toEqual([['1', true]]);
    await crawlLake({ objects, bucket: BUCKET });
    expect((await query(sql)).rows).toEqual([['1', true]]);
  });

  it('says which tables exist for an unknown one, and gives DuckDB own message for bad SQL', async () => {
    const unknown = query('SELECT * FROM invoice_line');
    await expect(unknown).rejects.toBeInstanceOf(UnknownTableError);
    await expect(unknown).rejects.toThrow(
      /invoice_line does not exist.*archive, invoice_lines, totesys_dim_currency/s,
    );
    const bad = query('SELEC 1');
    await expect(bad).rejects.toBeInstanceOf(LakeQueryError);
    await expect(bad).rejects.toThrow(/syntax error at or near "SELEC"/);
  });

  it('the CLI: lake tables in a pipe, lake query --format csv, and a clear error for an unknown table', async () => {
    const cli = (...args: string[]) =>
      run(process.execPath, [BIN, 'lake', ...args, '--data-dir', dataDir], {
        env: { ...process.env, RP_MODE: 'local', NO_COLOR: '1' },
      });
    const tables = await cli('tables');
    expect(tables.stdout.split('\n')[0]?.split('\t')).toEqual([
      'table',
      'classification',
      'location',
      'columns',
      'partition keys',
      'partitions',
      'objects',
      'updated (UTC)',
    ]);
    expect(tables.stdout).toMatch(
      /^invoice_lines\tparquet\ts3:\/\/rp-lake\/processed\/invoice_lines\/\t[78]\tyear, month, day\t[23]\t[23]\t/m,
    );
    const csv = await cli(
      'query',
      "SELECT year, sum(line_total) AS revenue FROM invoice_lines WHERE year = '2010' GROUP BY year",
      '--format',
      'csv',
    );
    expect(csv.stdout).toBe('year,revenue\n2010,35.640\n');
    const bad = cli('query', 'SELECT * FROM nowhere');
    await expect(bad).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(
        /^retail-pipeline: Table with name nowhere does not exist!.*The lake's tables: archive, invoice_lines, totesys_dim_currency/,
      ),
    });
    // Each run starts the CLI through tsx: seconds on a quiet machine, far more on a loaded one.
  }, 300_000);
});
