import fs from 'node:fs/promises';
import path from 'node:path';
import S3rver from 's3rver';
import { type Clients, createClients } from '#adapters/clients';
import { createLogger, type Logger } from '#adapters/logger';
import type { Warehouse } from '#adapters/warehouse';
import { createPostgresWarehouse } from '#adapters/warehouse-postgres';
import { migrate } from '#batch/migrate';
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

/** `warehouseLogger`: what the warehouse adapter logs to (the bench reads its step timings). */
export async function startLoaderEnv(
  bucket: string,
  prefix: string,
  options: { warehouseLogger?: Logger } = {},
): Promise<LoaderEnv> {
  const logger = createLogger('silent');
  const dir = await scratchDataDir(prefix);
  await fs.mkdir(path.join(dir, 's3'));
  const s3rver = new S3rver({
    port: 0,
    address: '127.0.0.1',
    silent: true,
    directory: path.join(dir, 's3'),
    configureBuckets: [{ name: bucket, configs: [] }],
  });
  const [address, pg] = await Promise.all([
    s3rver.run(),
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
    endpoints: { s3: `http://127.0.0.1:${address.port}` },
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
      await s3rver.close();
      await pg.stop();
      await wipePostgres(path.join(dir, 'postgres'));
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
