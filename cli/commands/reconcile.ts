import path from 'node:path';
import type { Command } from 'commander';
import { createClients } from '#adapters/clients';
import { formatTime, stdoutTable } from '#adapters/terminal';
import { createPostgresWarehouse } from '#adapters/warehouse-postgres';
import {
  dynamoLineSource,
  ReconcileInputError,
  type ReconcileReport,
  reconcile,
  reconcileWith,
  warehouseLineSource,
} from '#batch/reconcile';
import { lakeLineSource } from '#lake/invoice-lines-reconcile';
import { readEndpoints } from '#local/endpoints';
import { configFrom, type DataDirOptions } from './stack.ts';

interface ReconcileOptions extends DataDirOptions {
  since?: string;
  run?: string[];
  json: boolean;
  limit: string;
  dynamo: 'auto' | 'query' | 'scan';
  lake: boolean;
}

/** `2024-05-06T07:00:00Z`, `2024-05-06`, or a duration back from now: `90s`, `15m`, `2h`, `1d`. */
export function parseSince(text: string, now = Date.now()): Date {
  const rel = /^(\d+(?:\.\d+)?)\s*(s|m|h|d)$/.exec(text.trim());
  if (rel) {
    const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as 's' | 'm' | 'h' | 'd'];
    return new Date(now - Number(rel[1]) * unit);
  }
  const t = Date.parse(text);
  if (Number.isNaN(t))
    throw new ReconcileInputError(`--since must be a time (ISO 8601) or a duration like 15m, got ${text}`);
  return new Date(t);
}

/** The stores' table: a pending column only where a store can have lines on their way (the lake). */
function storesTable(r: ReconcileReport): string {
  const reference = r.scope.reference;
  const withPending = r.stores.some((s) => s.pending !== undefined);
  const pendingCell = <T>(v: T): T[] => (withPending ? [v] : []);
  return stdoutTable({
    head: [
      '',
      'lines',
      'revenue (GBP)',
      'missing',
      ...pendingCell('pending'),
      'duplicated',
      'mismatched',
      'extra',
      'ms',
    ],
    align: [
      'left',
      'right',
      'right',
      'right',
      ...pendingCell('right'),
      'right',
      'right',
      'right',
      'right',
    ] as Array<'left' | 'right'>,
    rows: [
      [
        reference ?? 'accepted (run logs)',
        r.accepted.lines,
        r.accepted.revenue,
        '',
        ...pendingCell(''),
        '',
        '',
        '',
        '',
      ],
      ...r.stores.map((s) => [
        s.store,
        s.lines,
        s.revenue,
        s.missing,
        ...pendingCell(s.pending ?? ''),
        s.duplicated,
        s.mismatched,
        s.extra,
        s.ms,
      ]),
    ],
  });
}

export function formatReconcile(r: ReconcileReport): string {
  const reference = r.scope.reference;
  const table = storesTable(r);
  const out = [
    reference
      ? `against the ${reference}: ${r.accepted.lines} lines in ${r.accepted.invoices} invoices`
      : `runs: ${r.scope.runs.length ? r.scope.runs.join(', ') : '(none)'}${r.scope.since ? `  since ${formatTime(new Date(r.scope.since))} UTC` : ''}`,
    `accepted: ${r.accepted.lines} lines in ${r.accepted.invoices} invoices, ${r.accepted.batches} batches` +
      (r.accepted.reaccepted
        ? `, ${r.accepted.reaccepted} keys re-sent (${r.accepted.conflicting} with another total)`
        : ''),
    table,
  ];
  for (const s of r.stores) {
    if (s.pending)
      out.push(
        `${s.store}: ${s.pending} line${s.pending === 1 ? '' : 's'} pending: loaded into the warehouse, the ${s.store}'s write not made yet ` +
          '(coalesced for up to 30 s, or caught up after a failure or at the next start); run again to see them',
      );
    for (const kind of ['missing', 'duplicated', 'mismatched'] as const) {
      const count = s[kind];
      if (count === 0) continue;
      const shown = s.samples[kind]
        .map((d) =>
          kind === 'duplicated'
            ? `${d.key} x${d.copies}`
            : kind === 'mismatched'
              ? `${d.key} expected ${d.expected} got ${d.actual}`
              : `${d.key} (${d.expected})`,
        )
        .join('\n    ');
      const more =
        count > s.samples[kind].length ? `\n    ... and ${count - s.samples[kind].length} more` : '';
      out.push(`${s.store}: ${count} ${kind}\n    ${shown}${more}`);
    }
  }
  out.push(
    r.ok ? 'OK: every accepted line is in each store exactly once, totals agree.' : 'DIFFERENCES FOUND',
  );
  return out.join('\n');
}

export function registerReconcileCommand(program: Command): void {
  program
    .command('reconcile')
    .description(
      'check that every accepted line is in DynamoDB, the warehouse and the lake exactly once, totals to the penny',
    )
    .option('--data-dir <dir>', 'data directory (default: $RP_DATA_DIR or .data)')
    .option('--since <time>', 'only lines accepted since: ISO time or a duration back from now (15m, 2h)')
    .option('--run <runId...>', 'only these producer runs (see <data-dir>/runs)')
    .option('--json', 'print the report as JSON', false)
    .option('--limit <n>', 'differing keys listed per kind and store', '20')
    .option('--dynamo <mode>', 'how DynamoDB is read: auto | query (per invoice) | scan (parallel)', 'auto')
    .option(
      '--lake',
      "the lake's invoice lines too (the default): against the run logs, and every warehouse line exactly once in the lake",
      true,
    )
    .option('--no-lake', 'leave the lake out')
    .action(async (opts: ReconcileOptions) => {
      const config = configFrom(opts);
      const endpoints = await readEndpoints(config.dataDir);
      const clients = createClients({
        region: endpoints.region,
        endpoints: { dynamodb: endpoints.dynamodb, s3: endpoints.s3 },
        local: true,
      });
      const warehouse = createPostgresWarehouse({ connectionString: endpoints.postgres, max: 2 });
      const lake = lakeLineSource({ s3: clients.s3, bucket: endpoints.names.bucket }, { warehouse });
      const sampleLimit = Math.max(0, Number.parseInt(opts.limit, 10) || 0);
      try {
        const report = await reconcile({
          runLogDir: path.join(config.dataDir, 'runs'),
          scope: {
            ...(opts.run?.length ? { runIds: opts.run } : {}),
            ...(opts.since ? { since: parseSince(opts.since) } : {}),
          },
          sources: [
            dynamoLineSource({ client: clients.dynamodb, table: endpoints.names.table, mode: opts.dynamo }),
            warehouseLineSource(warehouse),
            ...(opts.lake ? [lake] : []),
          ],
          sampleLimit,
        });
        // Bulk drops reach the warehouse without a run log: the lake is also held to the warehouse.
        const against = opts.lake
          ? await reconcileWith({ reference: warehouseLineSource(warehouse), sources: [lake], sampleLimit })
          : undefined;
        const reports = against ? { runLogs: report, lakeAgainstWarehouse: against } : report;
        const text = [formatReconcile(report), ...(against ? ['', formatReconcile(against)] : [])].join('\n');
        process.stdout.write(`${opts.json ? JSON.stringify(reports, null, 2) : text}\n`);
        if (!report.ok || against?.ok === false) process.exitCode = 1;
      } finally {
        clients.destroy();
        await warehouse.close();
      }
    });
}
