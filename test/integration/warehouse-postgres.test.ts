import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '#adapters/logger';
import { BACKGROUND_NICE } from '#adapters/priority';
import { createPostgresWarehouse } from '#adapters/warehouse-postgres';
import { migrate, readMigrations } from '#batch/migrate';
import { startPostgres, wipePostgres } from '#local/postgres';
import { niceOf } from '#test/helpers/proc';

const logger = createLogger('silent');
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

const options = (dataDir: string) => ({
  dataDir,
  host: '127.0.0.1',
  port: 0,
  user: 'retail',
  password: "it's secret",
  database: 'retail',
  logger,
});

describe('embedded PostgreSQL and the schema migrations', () => {
  it('starts on a free port, resumes the cluster with its data, stops cleanly, and wipes', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'warehouse-pg-'));
    dirs.push(dir);
    const dataDir = path.join(dir, 'postgres');

    const first = await startPostgres(options(dataDir));
    const warehouse = createPostgresWarehouse({ connectionString: first.connectionString });
    expect(await migrate(warehouse, logger)).toEqual(
      (await readMigrations('postgres')).map((m) => m.version),
    );
    expect(await migrate(warehouse, logger)).toEqual([]);
    const countries = await warehouse.query<{ n: number; known: number }>(
      "SELECT count(*)::int AS n, sum(CASE WHEN is_known THEN 1 ELSE 0 END)::int AS known FROM dim_country WHERE iso_code <> ''",
    );
    expect(countries.rows[0]).toEqual({ n: 38, known: 38 });
    const dates = await warehouse.query<{ first: number; last: number; n: number }>(
      'SELECT min(date_key) AS first, max(date_key) AS last, count(*)::int AS n FROM dim_date',
    );
    expect(dates.rows[0]).toEqual({ first: 20000101, last: 20401231, n: 14_976 });
    await warehouse.close();
    await first.stop();
    const gone = new pg.Client({ connectionString: first.connectionString, connectionTimeoutMillis: 2000 });
    await expect(gone.connect()).rejects.toThrow();

    // How long a resume takes is bench/warehouse.ts's figure; here only that the data is back.
    const second = await startPostgres(options(dataDir));
    const again = createPostgresWarehouse({ connectionString: second.connectionString });
    const applied = await again.query<{ n: number }>('SELECT count(*)::int AS n FROM schema_migrations');
    expect(applied.rows[0]?.n).toBeGreaterThanOrEqual(2);
    await again.close();
    await second.stop();

    const record = JSON.parse(await fs.readFile(path.join(dataDir, 'cluster.json'), 'utf8')) as {
      clusterDir: string;
    };
    await wipePostgres(dataDir);
    await expect(fs.access(record.clusterDir)).rejects.toThrow();
    await expect(fs.access(dataDir)).rejects.toThrow();
  }, 120_000);
});

describe('background warehouse sessions', () => {
  it('run without parallel workers, in a server process at background priority; ordinary ones are untouched', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'warehouse-pg-bg-'));
    dirs.push(dir);
    const server = await startPostgres(options(path.join(dir, 'postgres')));
    const background = createPostgresWarehouse({
      connectionString: server.connectionString,
      max: 1,
      background: true,
    });
    const ordinary = createPostgresWarehouse({ connectionString: server.connectionString, max: 1 });
    try {
      const session = async (w: typeof background) => {
        // A transaction's first statement and a plain query, on the pool's one connection.
        const tx = await w.transaction([{ sql: 'SELECT 1' }]);
        expect(tx.committed).toBe(true);
        const r = await w.query<{ pid: number; workers: string }>(
          'SELECT pg_backend_pid() AS pid, current_setting($1) AS workers',
          ['max_parallel_workers_per_gather'],
        );
        const row = r.rows[0] as { pid: number; workers: string };
        return { workers: row.workers, nice: await niceOf(row.pid) };
      };
      const before = await session(ordinary);
      expect(await session(background)).toEqual({ workers: '0', nice: BACKGROUND_NICE });
      // The ordinary session's process kept the server's priority and settings.
      expect(await session(ordinary)).toEqual(before);
      expect(before.workers).not.toBe('0');
      expect(before.nice).toBeLessThan(BACKGROUND_NICE);
    } finally {
      await background.close();
      await ordinary.close();
      await server.stop();
    }
  }, 120_000);
});
