import type { Command } from 'commander';
import { createClients } from '#adapters/clients';
import type { Config } from '#adapters/config';
import { stdoutTable } from '#adapters/terminal';
import { createPostgresWarehouse } from '#adapters/warehouse-postgres';
import { createManifest } from '#batch/loader/manifest';
import { sourcePool } from '#cdc/totesys/capture';
import { resolveSourceConnection } from '#cdc/totesys/connection';
import { extractOnce } from '#cdc/totesys/extract';
import { ensureSeededSource } from '#cdc/totesys/seed';
import { type ChangeKind, runSimulator } from '#cdc/totesys/simulator';
import { readChanges } from '#cdc/totesys/source';
import { type CaptureStatus, captureStatus, statusFails } from '#cdc/totesys/status';
import { s3Zone } from '#cdc/zone';
import { readEndpoints } from '#local/endpoints';
import { abortOnShutdown, parseDuration, positiveNumber } from './simulate.ts';
import { configFrom, type DataDirOptions } from './stack.ts';

/**
 * `retail-pipeline totesys simulate | extract | status`: the source's business simulator, one extract
 * run, and the capture's state. Local mode reads the running stack's endpoints.json; aws mode uses
 * RP_TOTESYS_URL / RP_TOTESYS_SECRET_ARN and the SDK's own endpoints.
 */

/** The zone's S3 client and the local source's URL (when the local stack runs). */
async function connect(config: Config) {
  if (config.mode === 'aws') {
    const clients = createClients({ region: config.region, endpoints: config.endpoints });
    return { clients, localUrl: undefined };
  }
  const endpoints = await readEndpoints(config.dataDir);
  const clients = createClients({ region: endpoints.region, endpoints: { s3: endpoints.s3 }, local: true });
  return { clients, localUrl: endpoints.totesys };
}

/** The `totesys` command group: the one another command file created, or a new one. */
function totesysCommand(program: Command): Command {
  return (
    program.commands.find((c) => c.name() === 'totesys') ??
    program.command('totesys').description('the totesys operational database source (change data capture)')
  );
}

interface SimulateOptions extends DataDirOptions {
  rate: number;
  duration?: number;
  seed?: number;
  progress: boolean;
}

export function registerTotesysCommands(program: Command): void {
  const totesys = totesysCommand(program);

  totesys
    .command('simulate')
    .description(
      'make business changes in the totesys source: orders, payments settled, staff and address edits',
    )
    .option('--rate <changes/s>', 'changes per second', positiveNumber, 5)
    .option('--duration <time>', 'stop after this long (60s, 5m, 1h); default: until Ctrl-C', parseDuration)
    .option('--seed <n>', 'PRNG seed of the changes (default: the clock)', (v) => Number.parseInt(v, 10))
    .option('--data-dir <dir>', 'data directory of the local stack (default: $RP_DATA_DIR or .data)')
    .option('--no-progress', 'no progress line')
    .action(simulate);

  totesys
    .command('extract')
    .description('one change-capture run now: changed rows to ingestion/totesys/ as CSV, then the run marker')
    .option('--data-dir <dir>', 'data directory of the local stack (default: $RP_DATA_DIR or .data)')
    .action(extract);

  totesys
    .command('status')
    .description(
      'per table: watermark, last run, rows extracted / transformed / loaded, lag, last error; failures',
    )
    .option('--data-dir <dir>', 'data directory of the local stack (default: $RP_DATA_DIR or .data)')
    .option('--json', 'print JSON', false)
    .action(printStatus);
}

/** `totesys simulate`: business changes at a rate until the duration or Ctrl-C, then a count per kind. */
async function simulate(opts: SimulateOptions): Promise<void> {
  const config = configFrom(opts);
  const { clients, localUrl } = await connect(config);
  clients.destroy();
  const connection = await resolveSourceConnection(config, localUrl);
  const pool = sourcePool(connection);
  try {
    if (connection.kind === 'local') await ensureSeededSource(pool, config.totesys.seed);
    const { signal, done } = abortOnShutdown();
    const counts = new Map<ChangeKind, number>();
    const progress = opts.progress && process.stderr.isTTY === true;
    process.stderr.write(`simulating ${opts.rate} changes/s in the totesys source (${connection.kind})\n`);
    const run = runSimulator({
      pool,
      rate: opts.rate,
      seed: opts.seed ?? Date.now(),
      signal,
      ...(opts.duration !== undefined ? { durationMs: opts.duration } : {}),
      onChange: (kind) => {
        counts.set(kind, (counts.get(kind) ?? 0) + 1);
        if (progress) {
          const total = [...counts.values()].reduce((a, b) => a + b, 0);
          process.stderr.write(`\r\x1b[2K${total} changes`);
        }
      },
      onError: (err) => process.stderr.write(`change failed: ${(err as Error).message}\n`),
    });
    done(run);
    const summary = await run;
    if (progress) process.stderr.write('\n');
    const rows = Object.entries(summary.changes).map(([kind, n]) => [kind, n]);
    rows.push(['total', summary.total], ['failed', summary.failed]);
    process.stdout.write(`${stdoutTable({ head: ['change', 'count'], rows, align: ['left', 'right'] })}\n`);
    if (summary.failed > 0) process.exitCode = 1;
  } finally {
    await pool.end();
  }
}

/** `totesys extract`: one change-capture run, then what it wrote per table. */
async function extract(opts: DataDirOptions): Promise<void> {
  const config = configFrom(opts);
  const { clients, localUrl } = await connect(config);
  const pool = sourcePool(await resolveSourceConnection(config, localUrl));
  try {
    const run = await extractOnce({
      read: (bounds) => readChanges(pool, bounds),
      zone: s3Zone(clients.s3, config.names.bucket),
      overlapMicros: BigInt(Math.round(config.totesys.overlapSeconds * 1e6)),
    });
    const rows = Object.entries(run.tables).map(([table, t]) => [table, t.rows, t.from ?? '', t.to]);
    process.stdout.write(
      `run ${run.runId}: ${run.rows} row(s) changed, marker ${run.markerKey}\n` +
        (rows.length > 0
          ? `${stdoutTable({ head: ['table', 'rows', 'from', 'to (watermark)'], rows, align: ['left', 'right'] })}\n`
          : ''),
    );
  } finally {
    await pool.end();
    clients.destroy();
  }
}

/** `totesys status`: the capture's state as tables or JSON; exit code 1 while any stage fails. */
async function printStatus(opts: DataDirOptions & { json: boolean }): Promise<void> {
  const config = configFrom(opts);
  const { clients } = await connect(config);
  // Local mode also reads the warehouse's manifest (the load's side); aws mode shows the zones only.
  const db =
    config.mode === 'aws'
      ? undefined
      : createPostgresWarehouse({
          connectionString: (await readEndpoints(config.dataDir)).postgres,
          max: 1,
        });
  try {
    const status = await captureStatus(s3Zone(clients.s3, config.names.bucket), {
      ...(db ? { manifest: () => createManifest(db).cdcObjects() } : {}),
    });
    process.stdout.write(opts.json ? `${JSON.stringify(status, null, 2)}\n` : renderStatus(status));
    if (statusFails(status)) process.exitCode = 1;
  } finally {
    clients.destroy();
    await db?.close();
  }
}

export function renderStatus(s: CaptureStatus): string {
  const table = stdoutTable({
    head: ['table', 'watermark (source time)', 'last run', 'rows last run', 'extracted', 'transformed'],
    rows: s.tables.map((t) => [
      t.table,
      t.watermark ?? 'never',
      t.lastRunId ?? '',
      t.lastRows,
      t.rowsExtracted,
      t.rowsTransformed,
    ]),
    align: ['left', 'left', 'left', 'right', 'right', 'right'],
  });
  const lines = [table];
  if (s.warehouseTables) {
    lines.push(
      stdoutTable({
        head: [
          'warehouse table',
          'transformed',
          'objects',
          'loaded',
          'new',
          'failed',
          'quarantined',
          'lag s',
          'last error',
        ],
        rows: s.warehouseTables.map((t) => [
          t.table,
          t.rowsTransformed,
          t.objects,
          t.rowsLoaded,
          t.rowsNew,
          t.failed,
          t.quarantined,
          t.lagSeconds ?? '',
          (t.lastError ?? '').slice(0, 60),
        ]),
        align: ['left', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'left'],
      }),
    );
  }
  lines.push(
    s.lastRun
      ? `last good run ${s.lastRun.runId} (${s.lastRun.rows} rows); lag ${s.lagSeconds} s` +
          (s.warehouseLagSeconds != null ? `; warehouse lag ${s.warehouseLagSeconds} s` : '')
      : 'no extract run yet',
    `runs extracted ${s.runs.extracted}, transformed ${s.runs.transformed}` +
      (s.runs.oldestPending ? `, oldest waiting ${s.runs.oldestPending}` : ''),
  );
  if (s.failure) {
    lines.push(
      `extract FAILING since ${s.failure.since} (${s.failure.attempts} attempts, ${s.failure.stage}): ${s.failure.message}`,
    );
  }
  if (s.lastOutage) {
    lines.push(
      `extract last outage ${s.lastOutage.since} -> ${s.lastOutage.until} (${s.lastOutage.attempts} attempts): ${s.lastOutage.message}`,
    );
  }
  for (const [stage, r] of Object.entries(s.stages)) {
    if (r.failure) {
      const on = r.failure.subject ? ` on ${r.failure.subject}` : '';
      lines.push(
        `${stage} FAILING since ${r.failure.since}${on} (${r.failure.attempts} attempts): ${r.failure.message}`,
      );
    }
    if (r.lastOutage) {
      lines.push(
        `${stage} last outage ${r.lastOutage.since} -> ${r.lastOutage.until} (${r.lastOutage.episodeAttempts} attempts): ${r.lastOutage.message}`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}
