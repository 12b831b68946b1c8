import type { Command } from 'commander';
import { loadConfig } from '#adapters/config';
import { stdoutTable } from '#adapters/terminal';
import { createPostgresWarehouse } from '#adapters/warehouse-postgres';
import { createManifest } from '#batch/loader/manifest';
import { readEndpoints } from '#local/endpoints';

export function registerWarehouseCommands(program: Command): void {
  const warehouse = program.command('warehouse').description('the local warehouse (PostgreSQL)');
  warehouse
    .command('status')
    .description('load manifest summary: objects and rows per status, and the latest loads')
    .option('--data-dir <dir>', 'data directory of the running stack (default: $RP_DATA_DIR or .data)')
    .option('--last <n>', 'how many recent loads to list', '10')
    .action(async (opts: { dataDir?: string; last: string }) => {
      const config = loadConfig({ ...process.env, ...(opts.dataDir ? { RP_DATA_DIR: opts.dataDir } : {}) });
      const endpoints = await readEndpoints(config.dataDir);
      const db = createPostgresWarehouse({ connectionString: endpoints.postgres, max: 1 });
      try {
        const manifest = createManifest(db);
        const summary = await manifest.summary();
        const t1 = stdoutTable({
          head: [
            'source',
            'status',
            'objects',
            'rows read',
            'loaded',
            'new',
            'rejected',
            'last finished (UTC)',
          ],
          rows: summary.map((r) => [
            r.source,
            r.status,
            r.objects,
            r.read,
            r.loaded,
            r.new,
            r.rejected,
            // pg gives a Date for timestamptz; the table shows it as date and time.
            r.last_finished ? new Date(r.last_finished) : '',
          ]),
        });
        const recent = await manifest.recent(Number(opts.last));
        const t2 = stdoutTable({
          head: ['object', 'status', 'loaded', 'rejected', 'stage ms', 'merge ms', 'error'],
          rows: recent.map((r) => [
            r.object_key,
            r.status,
            r.rows_loaded,
            r.rows_rejected,
            r.stage_ms,
            r.merge_ms,
            (r.error ?? '').slice(0, 80),
          ]),
        });
        const facts = await db.query<{ n: string }>('SELECT count(*) AS n FROM fact_sales_line');
        process.stdout.write(
          `${t1}\n\nlatest loads\n${t2}\n\nfact_sales_line rows: ${facts.rows[0]?.n ?? 0}\n`,
        );
      } finally {
        await db.close();
      }
    });
}
