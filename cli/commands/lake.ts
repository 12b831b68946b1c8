import path from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { createClients } from '#adapters/clients';
import type { Config } from '#adapters/config';
import { type Cell, isInteractive, stdoutTable } from '#adapters/terminal';
import { findTable, type LakeCatalog, readCatalog } from '#lake/catalog';
import { s3LakeObjects } from '#lake/catalog-objects';
import { type CrawlReport, crawlLake } from '#lake/crawler';
import { readEndpoints } from '#local/endpoints';
import { configFrom, type DataDirOptions } from './stack.ts';

/**
 * `retail-pipeline lake crawl | tables | query`: the local catalog of processed/ and archive/, and
 * SQL over it. On AWS the Glue crawler and Athena do this (docs/lake.md).
 */

export class LakeCommandError extends Error {
  override name = 'LakeCommandError';
}

type Format = 'table' | 'plain' | 'csv' | 'json';

function formatOption(allowed: Format[]) {
  return (value: string): Format => {
    if (!allowed.includes(value as Format)) throw new InvalidArgumentError(`one of ${allowed.join(', ')}`);
    return value as Format;
  };
}

/** A table for a person at a terminal; plain lines for a pipe. */
const defaultFormat = (): Format => (isInteractive(process.stdout) ? 'table' : 'plain');

async function connect(config: Config) {
  if (config.mode !== 'local')
    throw new LakeCommandError(
      'lake commands run on the local stack; on AWS the Glue crawler catalogs the lake and Athena queries it (see docs/lake.md)',
    );
  const endpoints = await readEndpoints(config.dataDir);
  const clients = createClients({ region: endpoints.region, endpoints: { s3: endpoints.s3 }, local: true });
  const bucket = endpoints.names.bucket;
  return { clients, bucket, objects: s3LakeObjects(clients.s3, bucket) };
}

export function registerLakeCommands(program: Command): void {
  const lake = program
    .command('lake')
    .description('the lake: processed/ and archive/, its catalog, SQL over it');
  const dataDir = [
    '--data-dir <dir>',
    'data directory of the local stack (default: $RP_DATA_DIR or .data)',
  ] as const;
  lake
    .command('crawl')
    .description(
      'discover the tables, columns, types and partitions of processed/ and archive/ into the catalog',
    )
    .option(...dataDir)
    .option(
      '--format <format>',
      'table | plain | json (default: table on a terminal, plain in a pipe)',
      formatOption(['table', 'plain', 'json']),
    )
    .action(crawl);
  lake
    .command('tables')
    .description('print the catalog: tables, columns and types, partition keys and partitions')
    .option(...dataDir)
    .option('--table <name>', 'one table, with its partitions')
    .option(
      '--format <format>',
      'table | plain | json (default: table on a terminal, plain in a pipe)',
      formatOption(['table', 'plain', 'json']),
    )
    .action(tables);
  lake
    .command('query')
    .description('run SQL (Athena dialect where DuckDB agrees) over the catalogued tables by name')
    .argument('<sql>', 'the query, e.g. "SELECT country, count(*) FROM invoice_lines GROUP BY 1"')
    .option(...dataDir)
    .option(
      '--format <format>',
      'table | csv | json (default: table on a terminal, csv in a pipe)',
      formatOption(['table', 'csv', 'json']),
    )
    .action(query);
}

/** Rows as a boxed table, or tab-separated lines (header first) for a pipe. */
function rowsText(format: Format, head: string[], rows: Cell[][]): string {
  if (format === 'table') return `${stdoutTable({ head, rows })}\n`;
  const text = (c: Cell) => (c === null || c === undefined ? '' : String(c));
  return `${[head, ...rows].map((r) => r.map(text).join('\t')).join('\n')}\n`;
}

async function crawl(opts: DataDirOptions & { format?: Format }): Promise<void> {
  const { clients, bucket, objects } = await connect(configFrom(opts));
  try {
    const report = await crawlLake({ objects, bucket });
    const format = opts.format ?? defaultFormat();
    if (format === 'json') {
      const { catalog: _, ...rest } = report;
      process.stdout.write(`${JSON.stringify(rest, null, 2)}\n`);
      return;
    }
    process.stdout.write(renderCrawl(report, format));
  } finally {
    clients.destroy();
  }
}

export function renderCrawl(report: CrawlReport, format: Format): string {
  const tables = rowsText(
    format,
    ['table', 'location', 'columns', 'partitions', 'objects'],
    report.tables.map((t) => [t.name, t.location, t.columns, t.partitions, t.objects]),
  );
  const changes =
    report.changes.length === 0
      ? 'no change since the last crawl\n'
      : rowsText(
          format,
          ['table', 'change', 'detail'],
          report.changes.map((c) => [
            c.table,
            c.kind,
            c.detail.length > 100 ? `${c.detail.slice(0, 97)}...` : c.detail,
          ]),
        );
  const skipped = report.skipped.map((s) => `skipped ${s.key}: ${s.reason}\n`).join('');
  return `${tables}${changes}${skipped}${report.objectsRead} object(s) read for their schema\n`;
}

async function tables(opts: DataDirOptions & { table?: string; format?: Format }): Promise<void> {
  const { clients, objects } = await connect(configFrom(opts));
  try {
    const catalog = await readCatalog(objects);
    process.stdout.write(renderTables(catalog, opts.table, opts.format ?? defaultFormat()));
  } finally {
    clients.destroy();
  }
}

export function renderTables(catalog: LakeCatalog, name: string | undefined, format: Format): string {
  if (catalog.Tables.length === 0)
    throw new LakeCommandError('the lake catalog is empty: run retail-pipeline lake crawl first');
  const table = name === undefined ? undefined : findTable(catalog, name);
  if (name !== undefined && !table)
    throw new LakeCommandError(
      `no table ${name} in the lake catalog; it has: ${catalog.Tables.map((t) => t.Name).join(', ')}`,
    );
  if (format === 'json') {
    const out = table ? { Table: table, Partitions: catalog.Partitions[table.Name] ?? [] } : catalog;
    return `${JSON.stringify(out, null, 2)}\n`;
  }
  if (!table) {
    return rowsText(
      format,
      [
        'table',
        'classification',
        'location',
        'columns',
        'partition keys',
        'partitions',
        'objects',
        'updated (UTC)',
      ],
      catalog.Tables.map((t) => [
        t.Name,
        t.Parameters.classification,
        t.StorageDescriptor.Location,
        t.StorageDescriptor.Columns.length,
        t.PartitionKeys.map((k) => k.Name).join(', '),
        (catalog.Partitions[t.Name] ?? []).length,
        t.Parameters.objectCount,
        new Date(t.UpdateTime),
      ]),
    );
  }
  const columns = rowsText(
    format,
    ['column', 'type', 'partition key'],
    [
      ...table.StorageDescriptor.Columns.map((c) => [c.Name, c.Type, '']),
      ...table.PartitionKeys.map((c) => [c.Name, c.Type, 'yes']),
    ],
  );
  const partitions = rowsText(
    format,
    [...table.PartitionKeys.map((k) => k.Name), 'location', 'objects', 'bytes'],
    (catalog.Partitions[table.Name] ?? []).map((p) => [
      ...p.Values,
      p.StorageDescriptor.Location,
      p.Parameters.objectCount,
      p.Parameters.sizeKey,
    ]),
  );
  const head = `${table.Name} (${table.Parameters.classification}, ${table.StorageDescriptor.Location})\n`;
  return `${head}${columns}${table.PartitionKeys.length > 0 ? partitions : ''}`;
}

async function query(sql: string, opts: DataDirOptions & { format?: Format }): Promise<void> {
  const config = configFrom(opts);
  const { clients, bucket, objects } = await connect(config);
  try {
    // Imported here, not at the top: DuckDB's native module loads only for the command that needs it.
    const { queryLake } = await import('#lake/query');
    const result = await queryLake(
      { objects, bucket, cacheDir: path.join(config.dataDir, 'lake-cache') },
      sql,
    );
    const format = opts.format ?? (isInteractive(process.stdout) ? 'table' : 'csv');
    const head = result.columns.map((c) => c.name);
    if (format === 'json') {
      const rows = result.rows.map((r) => Object.fromEntries(head.map((h, i) => [h, r[i] ?? null])));
      process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    } else if (format === 'csv') {
      process.stdout.write(`${[head, ...result.rows].map((r) => r.map(csvField).join(',')).join('\n')}\n`);
    } else {
      process.stdout.write(rowsText('table', head, result.rows as Cell[][]));
      process.stderr.write(`${result.rows.length} row(s)\n`);
    }
  } finally {
    clients.destroy();
  }
}

/** RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled; NULL is empty. */
function csvField(value: unknown): string {
  if (value === null || value === undefined) return '';
  const text = typeof value === 'object' ? JSON.stringify(value) : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}
