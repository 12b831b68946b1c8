import fs from 'node:fs/promises';
import path from 'node:path';
import S3rver from 's3rver';
import { type Clients, createClients } from '#adapters/clients';
import { createLogger, type Logger } from '#adapters/logger';
import type { Warehouse } from '#adapters/warehouse';
import { createPostgresWarehouse } from '#adapters/warehouse-postgres';
import { migrate } from '#batch/migrate';
import { startEmulatorProcess } from '#local/emulator-process';
import { freePort } from '#local/ports';
import { startPostgres, wipePostgres } from '#local/postgres';
import { scratchDataDir } from '#local/scratch';

/**
 * What the loader needs, for loader tests and the batch bench: s3rver with one bucket and a
 * migrated embedded PostgreSQL.
 */
export interface LoaderEnv {
  clients: Clients;
  warehouse: Warehouse;
  /** For a client of its own (the bench's bare COPY). */
  connectionString: string;
  stop(): Promise<void>;
}

/** s3rver in this process; stop() closes it. */
async function s3InProcess(directory: string, bucket: string) {
  const s3rver = new S3rver({
    port: 0,
    address: '127.0.0.1',
    silent: true,
    directory,
    configureBuckets: [{ name: bucket, configs: [] }],
  });
  const address = await s3rver.run();
  return { url: `http://127.0.0.1:${address.port}`, stop: () => s3rver.close() };
}

/** s3rver in a child process, as the stack runs it (its CPU is not this process's). */
async function s3Process(directory: string, bucket: string) {
  const child = await startEmulatorProcess({
    service: 's3',
    host: '127.0.0.1',
    port: await freePort(),
    directory,
    buckets: [bucket],
  });
  return { url: child.url, stop: () => child.stop(10_000) };
}

/**
 * `warehouseLogger`: what the warehouse adapter logs to (the bench reads its step timings).
 * `s3: 'process'`: s3rver in a child process as under `npm start` (benches: an S3 request's server
 * side is not the measured process's work); default in this process.
 */
export async function startLoaderEnv(
  bucket: string,
  prefix: string,
  options: { warehouseLogger?: Logger; s3?: 'in-process' | 'process' } = {},
): Promise<LoaderEnv> {
  const logger = createLogger('silent');
  const dir = await scratchDataDir(prefix);
  await fs.mkdir(path.join(dir, 's3'));
  const [s3, pg] = await Promise.all([
    (options.s3 === 'process' ? s3Process : s3InProcess)(path.join(dir, 's3'), bucket),
    startPostgres({
      dataDir: path.join(dir, 'postgres'),
      host: '127.0.0.1',
      port: 0,
      user: 'retail',
      password: 'retail-test',
      database: 'retail',
      logger,
    }),
  ]);
  const clients = createClients({
    region: 'us-east-1',
    endpoints: { s3: s3.url },
    local: true,
  });
  const warehouse = createPostgresWarehouse({
    connectionString: pg.connectionString,
    ...(options.warehouseLogger ? { logger: options.warehouseLogger } : {}),
  });
  await migrate(warehouse, logger);
  return {
    clients,
    warehouse,
    connectionString: pg.connectionString,
    async stop() {
      await warehouse.close();
      clients.destroy();
      await s3.stop();
      await pg.stop();
      await wipePostgres(path.join(dir, 'postgres'));
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
