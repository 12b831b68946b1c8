import { createReadStream, existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGunzip } from 'node:zlib';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { pino } from 'pino';
import S3rver from 's3rver';
import { createClients } from '#adapters/clients';
import { createLogger } from '#adapters/logger';
import { createPostgresWarehouse } from '#adapters/warehouse-postgres';
import { createLoader } from '#batch/loader';
import { migrate } from '#batch/migrate';
import { startPostgres, wipePostgres } from '#local/postgres';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const REAL_FILE = path.resolve(REPO, '../shared/data/online-retail/online-retail.csv.gz');

/**
 * The batch path against its floor, on the real file: a bare COPY of the CSV into one unindexed
 * all-text table, vs. the loader's full load into the star schema (stage + type + validate + MERGE
 * dimensions and facts), each into a fresh database. Also the loader's peak RSS.
 */
export async function runBatchBench(): Promise<Record<string, unknown>> {
  if (!existsSync(REAL_FILE)) return { skipped: `${REAL_FILE} is absent` };
  const logger = createLogger('silent');
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bench-batch-'));
  await fs.mkdir(path.join(dir, 's3'));
  const s3rver = new S3rver({
    port: 0,
    address: '127.0.0.1',
    silent: true,
    directory: path.join(dir, 's3'),
    configureBuckets: [{ name: 'bench', configs: [] }],
  });
  const address = await s3rver.run();
  const postgres = await startPostgres({
    dataDir: path.join(dir, 'postgres'),
    host: '127.0.0.1',
    port: 0,
    user: 'bench',
    password: 'bench',
    database: 'bench',
    logger,
  });
  const clients = createClients({
    region: 'us-east-1',
    endpoints: { s3: `http://127.0.0.1:${address.port}` },
    local: true,
  });
  try {
    // The floor: gunzip + COPY into an unlogged all-text table, nothing else. Measured before and
    // after the load (the machine is shared and its load drifts); the ratio uses their mean.
    const floorCopy = async (): Promise<number> => {
      const client = new pg.Client({ connectionString: postgres.connectionString });
      await client.connect();
      await client.query('DROP TABLE IF EXISTS floor_copy');
      await client.query(
        'CREATE UNLOGGED TABLE floor_copy (c1 text, c2 text, c3 text, c4 text, c5 text, c6 text, c7 text, c8 text)',
      );
      const t0 = performance.now();
      await pipeline(
        createReadStream(REAL_FILE),
        createGunzip(),
        client.query(copyFrom('COPY floor_copy FROM STDIN WITH (FORMAT csv, HEADER true)')),
      );
      const ms = performance.now() - t0;
      await client.query('DROP TABLE floor_copy');
      await client.end();
      return ms;
    };
    const floorBeforeMs = await floorCopy();

    // The adapter logs every transaction step with its duration at debug level: collected per statement.
    const steps: Array<{ ms: number; sql: string }> = [];
    const stepLogger = pino(
      { level: 'debug' },
      {
        write(line: string) {
          const entry = JSON.parse(line) as { msg?: string; ms?: number; sql?: string };
          if (entry.msg === 'warehouse step' && entry.ms !== undefined)
            steps.push({ ms: entry.ms, sql: (entry.sql ?? '').replace(/\s+/g, ' ').slice(0, 48) });
        },
      },
    );
    const warehouse = createPostgresWarehouse({
      connectionString: postgres.connectionString,
      logger: stepLogger,
    });
    await migrate(warehouse, logger);
    steps.length = 0;
    await clients.s3.send(
      new PutObjectCommand({
        Bucket: 'bench',
        Key: 'landing/online-retail.csv.gz',
        Body: await fs.readFile(REAL_FILE),
      }),
    );
    const loader = createLoader({ s3: clients.s3, bucket: 'bench', warehouse, logger });
    const rssBefore = process.memoryUsage().rss;
    let peakRss = rssBefore;
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
    }, 20);
    const started = performance.now();
    const [result] = await loader.sweep();
    const loadMs = performance.now() - started;
    clearInterval(sampler);
    const floorAfterMs = await floorCopy();
    const floorMs = (floorBeforeMs + floorAfterMs) / 2;
    const { rows } = await warehouse.query<{ stage_ms: number; merge_ms: number }>(
      'SELECT stage_ms, merge_ms FROM load_manifest',
    );
    await warehouse.close();
    const mb = (b: number) => Math.round(b / 2 ** 20);
    return {
      file: path.basename(REAL_FILE),
      rows: result?.rowsLoaded,
      floorCopyMs: Math.round(floorMs),
      floorBeforeAfterMs: `${Math.round(floorBeforeMs)} / ${Math.round(floorAfterMs)}`,
      fullLoadMs: Math.round(loadMs),
      stageMs: rows[0]?.stage_ms,
      mergeMs: rows[0]?.merge_ms,
      ratioToFloor: Number((loadMs / floorMs).toFixed(2)),
      targetRatio: 2,
      loaderPeakRssMb: mb(peakRss),
      loaderRssBeforeMb: mb(rssBefore),
      targetPeakRssMb: 300,
      status: result?.status,
      // Statements that took 50 ms or more, in order (COPY = the staging COPY).
      slowSteps: steps.filter((x) => x.ms >= 50).map((x) => `${x.ms} ms ${x.sql}`),
    };
  } finally {
    clients.destroy();
    await s3rver.close();
    await postgres.stop();
    await wipePostgres(path.join(dir, 'postgres'));
    await fs.rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(JSON.stringify(await runBatchBench(), null, 2));
}
