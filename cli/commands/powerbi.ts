import path from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '#adapters/config';
import {
  POWERBI_VIEWS,
  type PowerBiMode,
  TOTESYS_POWERBI_VIEWS,
  writePowerBiFiles,
} from '#analytics/powerbi';
import { readEndpoints } from '#local/endpoints';

export function registerPowerBiCommand(program: Command): void {
  program
    .command('powerbi')
    .description('write Power BI data source files (.pbids) for the local PostgreSQL and for Redshift')
    .option('--out <dir>', 'output directory', 'powerbi')
    .option('--mode <mode>', 'DirectQuery | Import', 'DirectQuery')
    .option(
      '--redshift-host <host>',
      'Redshift endpoint host (default: built from RP_REDSHIFT_WORKGROUP + region)',
    )
    .option('--data-dir <dir>', 'data directory (default: $RP_DATA_DIR or .data)')
    .action(async (opts: { out: string; mode: string; redshiftHost?: string; dataDir?: string }) => {
      if (opts.mode !== 'DirectQuery' && opts.mode !== 'Import') {
        program.error(`--mode must be DirectQuery or Import (got '${opts.mode}')`);
      }
      const config = loadConfig({ ...process.env, ...(opts.dataDir ? { RP_DATA_DIR: opts.dataDir } : {}) });
      // The running stack knows its real port; without one, the configured port is the best guess.
      const postgres = await readEndpoints(config.dataDir).then(
        (e) => e.postgres,
        () =>
          `postgresql://${config.db.user}@${config.host}:${config.ports.postgres || 5433}/${config.names.database}`,
      );
      const files = await writePowerBiFiles({
        outDir: path.resolve(opts.out),
        postgresConnectionString: postgres,
        redshift: {
          host: opts.redshiftHost,
          workgroup: config.redshift.workgroup,
          database: config.redshift.database,
          region: config.region,
        },
        mode: opts.mode as PowerBiMode,
      });
      const lines = [
        `written: ${files.postgres}`,
        `         ${files.redshift}${files.redshiftHasPlaceholders ? '  (edit the <PLACEHOLDERS> or pass --redshift-host)' : ''}`,
        '',
        `Open one in Power BI Desktop, sign in (local: user ${config.db.user}, password from RP_DB_PASSWORD),`,
        `then pick the views in schema "powerbi": ${POWERBI_VIEWS.join(', ')}.`,
        '',
        'totesys stars, one model each (same warehouse, schema "powerbi"):',
        ...Object.entries(files.totesys).flatMap(([star, f]) => [
          `  ${star}: ${f.postgres}`,
          `  ${' '.repeat(star.length)}  ${f.redshift}`,
          `  ${' '.repeat(star.length)}  views: ${TOTESYS_POWERBI_VIEWS[star as keyof typeof TOTESYS_POWERBI_VIEWS].join(', ')}`,
        ]),
        '',
        'Relationships, DAX measures and a suggested layout: docs/powerbi.md',
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
