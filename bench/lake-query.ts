/**
 * `npm run bench -- lake-query`: revenue by country and month over the whole real file, on the lake
 * (the local DuckDB over processed/invoice_lines/, as `retail-pipeline lake query` runs it) and on the
 * warehouse (PostgreSQL over fact_sales_line), the same SQL text (lake/query-revenue.ts): both
 * answers held equal to the penny, their times side by side (first run, then the median of warm
 * runs), with the crawl that catalogs the lake. Runnable alone: `node --import tsx bench/lake-query.ts`.
 * Skipped with a message without the real file.
 */
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { type Clients, createClients } from '#adapters/clients';
import { createLogger } from '#adapters/logger';
import type { Warehouse } from '#adapters/warehouse';
import { createPostgresWarehouse } from '#adapters/warehouse-postgres';
import { createLoader } from '#batch/loader/index';
import { migrate } from '#batch/migrate';
import { typeObjectInto } from '#batch/typed-object';
import { type LakeObjects, s3LakeObjects } from '#lake/catalog-objects';
import { crawlLake } from '#lake/crawler';
import { catchUpLake } from '#lake/invoice-lines-stage';
import { loadedSourceObjects } from '#lake/lake-manifest';
import { queryLake } from '#lake/query';
import { type RevenueRow, revenueByCountryMonthSql, revenueRow } from '#lake/query-revenue';
import { type RunningS3, startS3 } from '#local/emulators';
import { startPostgres, wipePostgres } from '#local/postgres';
import { scratchDataDir } from '#local/scratch';

const here = path.dirname(fileURLToPath(import.meta.url));
const REAL_FILE = path.resolve(here, '../../shared/data/online-retail/online-retail.csv.gz');
const BUCKET = 'rp-bench-lake';
const WARM_RUNS = 5;

export interface LakeQueryBenchOptions {
  progress?: (message: string) => void;
}

interface Metric {
  metric: string;
  value: number | string;
  target?: string;
  met?: boolean;
}

interface Setup {
  warehouse: Warehouse;
  clients: Clients;
  objects: LakeObjects;
  cacheDir: string;
  lakeLines: number;
  close(): Promise<void>;
}

const timed = async <T>(fn: () => Promise<T>): Promise<[T, number]> => {
  const t0 = performance.now();
  const value = await fn();
  return [value, Math.round(performance.now() - t0)];
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

/** A fresh warehouse and bucket with the real file loaded into both the warehouse and the lake. */
async function setUp(progress: (m: string) => void): Promise<Setup> {
  const dir = await scratchDataDir('rp-bench-lake-');
  const logger = createLogger('warn', 'bench-lake-query');
  const pgDir = path.join(dir, 'postgres');
  const pg = await startPostgres({
    dataDir: pgDir,
    host: '127.0.0.1',
    port: 0,
    user: 'retail',
    password: 'retail',
    database: 'retail',
    logger,
  });
  const warehouse = createPostgresWarehouse({ connectionString: pg.connectionString, logger });
  await migrate(warehouse, logger);
  const s3: RunningS3 = await startS3({
    host: '127.0.0.1',
    port: 0,
    buckets: [BUCKET],
    directory: path.join(dir, 's3'),
  });
  const clients = createClients({ region: 'eu-west-2', endpoints: { s3: s3.url }, local: true });
  const key = 'landing/online-retail.csv.gz';
  await clients.s3.send(
    new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: await fs.readFile(REAL_FILE) }),
  );
  progress('loading the real file into the warehouse');
  const loader = createLoader({ s3: clients.s3, bucket: BUCKET, warehouse, logger });
  const loaded = await loader.loadKey(key);
  await loader.stop();
  if (loaded.status !== 'loaded') throw new Error(`the real file did not load: ${loaded.status}`);
  progress('writing the lake');
  const lake = await catchUpLake({
    store: { s3: clients.s3, bucket: BUCKET },
    loaded: () => loadedSourceObjects(warehouse),
    readLines: (object, collector) => typeObjectInto(clients.s3, BUCKET, object, collector),
    logger,
  });
  if (lake.failed.length > 0) throw new Error(`the lake stage failed: ${JSON.stringify(lake.failed)}`);
  return {
    warehouse,
    clients,
    objects: s3LakeObjects(clients.s3, BUCKET),
    cacheDir: path.join(dir, 'lake-cache'),
    lakeLines: lake.lines,
    async close() {
      clients.destroy();
      await warehouse.close();
      await s3.stop();
      await pg.stop();
      await wipePostgres(pgDir);
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/** The first run and the warm runs of one engine, with its last answer. */
async function rounds(run: () => Promise<RevenueRow[]>) {
  const [rows, firstMs] = await timed(run);
  const warm: number[] = [];
  for (let i = 0; i < WARM_RUNS; i++) warm.push((await timed(run))[1]);
  return { rows, firstMs, warmMs: median(warm) };
}

const totalOf = (rows: RevenueRow[]) => {
  const thousandths = rows.reduce((a, r) => a + BigInt(r[5].replace('.', '')), 0n);
  const text = (thousandths < 0n ? -thousandths : thousandths).toString().padStart(4, '0');
  return `${thousandths < 0n ? '-' : ''}${text.slice(0, -3)}.${text.slice(-3)}`;
};

async function measure(s: Setup, progress: (m: string) => void): Promise<Metric[]> {
  progress('crawling');
  const [crawl, crawlMs] = await timed(() => crawlLake({ objects: s.objects, bucket: BUCKET }));
  const [, recrawlMs] = await timed(() => crawlLake({ objects: s.objects, bucket: BUCKET }));
  progress('revenue by country and month: warehouse');
  const warehouse = await rounds(async () =>
    (await s.warehouse.query<Record<string, unknown>>(revenueByCountryMonthSql('fact_sales_line'))).rows.map(
      (r) => revenueRow(Object.values(r)),
    ),
  );
  progress('revenue by country and month: lake');
  let downloaded = { objects: 0, bytes: 0 };
  const timings: Array<{ prepareMs: number; engineMs: number }> = [];
  const lake = await rounds(async () => {
    const r = await queryLake(
      { objects: s.objects, bucket: BUCKET, cacheDir: s.cacheDir },
      revenueByCountryMonthSql('invoice_lines'),
    );
    if (downloaded.objects === 0)
      downloaded = { objects: r.tables[0]?.downloadedObjects ?? 0, bytes: r.tables[0]?.downloadedBytes ?? 0 };
    timings.push(r.timings);
    return r.rows.map(revenueRow);
  });
  const equal = JSON.stringify(lake.rows) === JSON.stringify(warehouse.rows);
  const partitions = crawl.catalog.Partitions.invoice_lines?.length ?? 0;
  return [
    { metric: 'lines in the lake (fact rows)', value: s.lakeLines },
    { metric: `crawl: ${partitions} partitions catalogued, ms`, value: crawlMs },
    { metric: 're-crawl of the unchanged lake, ms', value: recrawlMs },
    { metric: 'answer rows (country x month)', value: lake.rows.length },
    { metric: 'total revenue, lake (GBP)', value: totalOf(lake.rows) },
    { metric: 'total revenue, warehouse (GBP)', value: totalOf(warehouse.rows) },
    {
      metric: 'lake answer = warehouse answer, every row',
      value: equal ? 'equal' : 'DIFFERENT',
      target: 'equal, to the penny',
      met: equal,
    },
    { metric: 'warehouse (PostgreSQL): first run, ms', value: warehouse.firstMs },
    { metric: `warehouse (PostgreSQL): median of ${WARM_RUNS} warm runs, ms`, value: warehouse.warmMs },
    { metric: 'lake (DuckDB): first run, empty cache, ms', value: lake.firstMs },
    {
      metric: `lake: objects downloaded by the first run (MB)`,
      value: `${downloaded.objects} (${(downloaded.bytes / 1e6).toFixed(1)})`,
    },
    { metric: `lake (DuckDB): median of ${WARM_RUNS} warm runs, ms`, value: lake.warmMs },
    {
      metric: 'lake warm runs: catalog, listing and cache check / DuckDB, median ms',
      value: `${median(timings.slice(1).map((t) => t.prepareMs))} / ${median(timings.slice(1).map((t) => t.engineMs))}`,
    },
    {
      metric: 'lake warm / warehouse warm',
      value: Math.round((lake.warmMs / Math.max(warehouse.warmMs, 1)) * 100) / 100,
    },
  ];
}

export async function runLakeQueryBench(opts: LakeQueryBenchOptions = {}): Promise<Record<string, unknown>> {
  const progress = opts.progress ?? (() => {});
  if (!fsSync.existsSync(REAL_FILE)) return { skipped: `the real file is absent: ${REAL_FILE}` };
  const setup = await setUp(progress);
  try {
    return { summary: await measure(setup, progress) };
  } finally {
    await setup.close();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(
    JSON.stringify(await runLakeQueryBench({ progress: (m) => process.stderr.write(`${m}\n`) }), null, 2),
  );
}
