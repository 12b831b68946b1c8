import type { Command } from 'commander';
import { createClients } from '#adapters/clients';
import { loadConfig } from '#adapters/config';
import { createLogger } from '#adapters/logger';
import { stdoutTable } from '#adapters/terminal';
import { createPostgresWarehouse } from '#adapters/warehouse-postgres';
import { BY_HAND, loadCycle, transformCycle } from '#cdc/transform-load';
import { readEndpoints } from '#local/endpoints';

/**
 * `retail-pipeline totesys transform` and `totesys load`: one sweep each, against the running local
 * stack (what `npm start` also does on events and on its interval).
 */

interface Opts {
  dataDir?: string;
}

async function connect(opts: Opts) {
  const config = loadConfig({ ...process.env, ...(opts.dataDir ? { RP_DATA_DIR: opts.dataDir } : {}) });
  const endpoints = await readEndpoints(config.dataDir);
  const clients = createClients({ region: endpoints.region, endpoints: { s3: endpoints.s3 }, local: true });
  const logger = createLogger(config.logLevel, 'totesys');
  return { bucket: endpoints.names.bucket, endpoints, clients, logger };
}

/** The `totesys` command group: the one another command file created, or a new one. */
function totesysCommand(program: Command): Command {
  return (
    program.commands.find((c) => c.name() === 'totesys') ??
    program.command('totesys').description('the totesys operational database source (change data capture)')
  );
}

export function registerTotesysProcessCommands(program: Command): void {
  const totesys = totesysCommand(program);
  totesys
    .command('transform')
    .description('transform every extraction run not yet transformed into Parquet in processed/totesys/')
    .option('--data-dir <dir>', 'data directory of the running stack (default: $RP_DATA_DIR or .data)')
    .action(async (opts: Opts) => {
      const { bucket, clients, logger } = await connect(opts);
      const sweep = await transformCycle({ s3: clients.s3, bucket, logger }, BY_HAND);
      const rows = sweep.transformed.map((m) => [
        m.runId,
        Object.values(m.sourceRows).reduce((a, b) => a + b, 0),
        Object.keys(m.objects).length,
        Object.values(m.objects).reduce((a, o) => a + o.rows, 0),
      ]);
      process.stdout.write(
        `${stdoutTable({ head: ['run', 'source rows', 'objects', 'warehouse rows'], rows })}\n`,
      );
      if (sweep.failed) {
        process.stderr.write(`run ${sweep.failed.runId} failed: ${sweep.failed.error}\n`);
        process.exitCode = 1;
      }
    });
  totesys
    .command('load')
    .description('load every processed totesys object not yet loaded into the totesys stars')
    .option('--data-dir <dir>', 'data directory of the running stack (default: $RP_DATA_DIR or .data)')
    .action(async (opts: Opts) => {
      const { bucket, endpoints, clients, logger } = await connect(opts);
      const warehouse = createPostgresWarehouse({ connectionString: endpoints.postgres, max: 1 });
      try {
        const results = await loadCycle({ s3: clients.s3, bucket, warehouse, logger }, BY_HAND);
        const rows = results.map((r) => [r.key, r.status, r.rowsRead ?? '', (r.error ?? '').slice(0, 80)]);
        process.stdout.write(`${stdoutTable({ head: ['object', 'status', 'rows', 'error'], rows })}\n`);
        if (results.some((r) => r.status === 'failed')) process.exitCode = 1;
      } finally {
        await warehouse.close();
      }
    });
}
