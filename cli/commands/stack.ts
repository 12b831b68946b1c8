import type { Command } from 'commander';
import { loadConfig } from '#adapters/config';
import { createLogger } from '#adapters/logger';
import { formatTime, stdoutTable } from '#adapters/terminal';
import { type Endpoints, readEndpoints } from '#local/endpoints';
import { checkHealth, redactPassword } from '#local/health';
import { startStack } from '#local/stack';
import { onShutdown } from '../lifecycle.ts';

export interface DataDirOptions {
  dataDir?: string;
}

/** Applies --data-dir on top of the environment so every command reads one config. */
export function configFrom(opts: DataDirOptions) {
  return loadConfig({ ...process.env, ...(opts.dataDir ? { RP_DATA_DIR: opts.dataDir } : {}) });
}

/** The endpoints table plus ready-to-paste aws / psql command lines. */
export function describeEndpoints(endpoints: Endpoints): string {
  const services: Array<[string, string | undefined]> = [
    ['api', endpoints.api],
    ['dashboard', endpoints.dashboard],
    ['kinesis', endpoints.kinesis],
    ['dynamodb', endpoints.dynamodb],
    ['s3', endpoints.s3],
    ['firehose', endpoints.firehose],
    ['postgres', redactPassword(endpoints.postgres)],
    ['totesys', endpoints.totesys === undefined ? undefined : redactPassword(endpoints.totesys)],
  ];
  const table = stdoutTable({ head: ['service', 'endpoint'], rows: services.filter(([, url]) => url) });
  const n = endpoints.names;
  const lines = [
    table,
    '',
    'Look inside (Debian awscli at /usr/bin/aws; the S3 emulator only knows the S3RVER key pair):',
    `  export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_DEFAULT_REGION=${endpoints.region}`,
    `  /usr/bin/aws --endpoint-url ${endpoints.kinesis} kinesis list-streams`,
    `  /usr/bin/aws --endpoint-url ${endpoints.kinesis} kinesis describe-stream-summary --stream-name ${n.stream}`,
    `  /usr/bin/aws --endpoint-url ${endpoints.dynamodb} dynamodb scan --table-name ${n.table} --max-items 5`,
    `  /usr/bin/aws --endpoint-url ${endpoints.s3} s3 ls s3://${n.bucket}/ --recursive`,
    `  /usr/bin/aws --endpoint-url ${endpoints.firehose} firehose describe-delivery-stream --delivery-stream-name ${n.deliveryStream}`,
    `  psql '${endpoints.postgres}'`,
  ];
  return lines.join('\n');
}

export function registerStackCommands(program: Command): void {
  const stack = program.command('stack').description('the embedded local AWS stack');

  stack
    .command('up')
    .description('start every local emulator in the foreground until Ctrl-C')
    .option('--data-dir <dir>', 'data directory (default: $RP_DATA_DIR or .data)')
    .option('--fresh', 'wipe the data directory first', false)
    .action(async (opts: DataDirOptions & { fresh: boolean }) => {
      const config = configFrom(opts);
      const logger = createLogger(config.logLevel, undefined, { format: config.logFormat });
      const started = performance.now();
      const local = await startStack({ config, logger, fresh: opts.fresh });
      onShutdown(() => local.stop());
      process.stdout.write(
        `local stack up in ${((performance.now() - started) / 1000).toFixed(1)} s (data: ${config.dataDir})\n` +
          `${describeEndpoints(local.endpoints)}\n\nendpoints written to ${config.dataDir}/endpoints.json; Ctrl-C stops everything.\n`,
      );
    });

  stack
    .command('status')
    .description('report the health of the local stack found in <data-dir>/endpoints.json')
    .option('--data-dir <dir>', 'data directory (default: $RP_DATA_DIR or .data)')
    .option('--json', 'print JSON', false)
    .action(async (opts: DataDirOptions & { json: boolean }) => {
      const config = configFrom(opts);
      const endpoints = await readEndpoints(config.dataDir);
      const health = await checkHealth(endpoints);
      if (opts.json) {
        process.stdout.write(
          `${JSON.stringify({ pid: endpoints.pid, startedAt: endpoints.startedAt, health }, null, 2)}\n`,
        );
      } else {
        const table = stdoutTable({
          head: ['service', 'status', 'ms', 'endpoint', 'detail'],
          rows: health.map((h) => [h.service, h.ok ? 'up' : 'DOWN', h.ms, h.endpoint, h.detail]),
        });
        const started = formatTime(new Date(endpoints.startedAt));
        process.stdout.write(`stack pid ${endpoints.pid}, started ${started} UTC\n${table}\n`);
      }
      if (health.some((h) => !h.ok)) process.exitCode = 1;
    });
}
