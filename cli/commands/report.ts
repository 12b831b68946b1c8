import path from 'node:path';
import type { Command } from 'commander';
import type { Config } from '#adapters/config';
import { loadConfig } from '#adapters/config';
import { stdoutTable } from '#adapters/terminal';
import type { Warehouse } from '#adapters/warehouse';
import { createPostgresWarehouse } from '#adapters/warehouse-postgres';
import { formatLatencyTable, latencyReport } from '#analytics/latency';
import { writeLatencyReport } from '#analytics/latency-page';
import { type SalesReport, salesReport } from '#analytics/sales';
import { readEndpoints } from '#local/endpoints';

interface CommonOptions {
  dataDir?: string;
}

function configFrom(opts: CommonOptions): Config {
  return loadConfig({ ...process.env, ...(opts.dataDir ? { RP_DATA_DIR: opts.dataDir } : {}) });
}

export class UnsupportedModeError extends Error {
  override name = 'UnsupportedModeError';
}

/** The warehouse of the running local stack (its connection string is in endpoints.json). */
async function openWarehouse(config: Config): Promise<Warehouse> {
  if (config.mode !== 'local') {
    throw new UnsupportedModeError(
      'reports read the local warehouse; on AWS query Redshift directly (see docs/analytics.md) or set RP_MODE=local',
    );
  }
  const endpoints = await readEndpoints(config.dataDir);
  return createPostgresWarehouse({ connectionString: endpoints.postgres, max: 2 });
}

async function withWarehouse<T>(opts: CommonOptions, fn: (w: Warehouse) => Promise<T>): Promise<T> {
  const warehouse = await openWarehouse(configFrom(opts));
  try {
    return await fn(warehouse);
  } finally {
    await warehouse.close();
  }
}

const pct = (v: number) => `${(v * 100).toFixed(1)}%`;

/** The sales report as terminal tables. */
export function formatSalesTables(r: SalesReport): string {
  const k = r.kpis;
  const kpis = stdoutTable({
    head: ['measure', 'value'],
    align: ['left', 'right'],
    rows: [
      ['fact rows', k.factRows],
      ['net revenue (GBP)', k.revenue],
      ['gross sales (GBP)', k.grossSales],
      ['cancelled value (GBP)', k.cancelledValue],
      ['purchases (sales invoices)', k.purchases],
      ['cancellation invoices', k.cancellations],
      ['cancellation rate (invoices)', pct(k.cancellationRate)],
      ['cancellation rate (value)', pct(k.cancelledValueRate)],
      ['customers who bought', k.customersBuying],
      ['repeat-customer rate', pct(k.repeatCustomerRate)],
      ['average basket (GBP)', k.averageBasket],
      ['average lines per basket', k.averageLinesPerBasket.toFixed(2)],
      ['average items per basket', k.averageItemsPerBasket.toFixed(1)],
      ['countries', k.countries],
      ['marts refreshed at (UTC)', k.refreshedAt ? new Date(k.refreshedAt) : 'never'],
    ],
  });
  const top = stdoutTable({
    head: ['#', 'stock code', 'product', 'qty sold', 'net revenue'],
    align: ['right', 'left', 'left', 'right', 'right'],
    rows: r.topProducts.map((p, i) => [
      i + 1,
      p.stockCode,
      (p.description ?? '').slice(0, 40),
      p.quantitySold,
      p.revenue,
    ]),
  });
  const months = [...new Set(r.revenueByCountryMonth.map((x) => x.month))].sort();
  const countries = [...new Set(r.revenueByCountryMonth.map((x) => x.country))];
  const cell = new Map(r.revenueByCountryMonth.map((x) => [`${x.country}\n${x.month}`, x.revenue]));
  const cm = stdoutTable({
    head: ['country', ...months],
    rows: countries.map((c) => [c, ...months.map((m) => cell.get(`${c}\n${m}`) ?? '')]),
  });
  return [
    'Sales (duplicate rows excluded; net revenue = sales minus cancellations, adjustments excluded)',
    kpis,
    '',
    'Top products by net revenue',
    top,
    '',
    'Net revenue by country and month (GBP)',
    cm,
  ].join('\n');
}

const csvCell = (v: unknown) => {
  const s = String(v ?? '');
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
};

/** One CSV document with a `section` column, so a spreadsheet can filter each table. */
export function formatSalesCsv(r: SalesReport): string {
  const lines = ['section,key,subkey,value,extra'];
  const push = (...cells: unknown[]) => lines.push(cells.map(csvCell).join(','));
  for (const [key, value] of Object.entries(r.kpis)) push('kpi', key, '', value, '');
  for (const p of r.topProducts)
    push('top_product', p.stockCode, p.description ?? '', p.revenue, p.quantitySold);
  for (const x of r.revenueByCountryMonth) push('country_month', x.country, x.month, x.revenue, x.purchases);
  return `${lines.join('\n')}\n`;
}

export function registerReportCommands(program: Command): void {
  const report = program.command('report').description('analytics reports over the warehouse');

  report
    .command('latency')
    .description('stream path vs batch path latency per hop; writes latency.html, latency.svg, latency.json')
    .option('--since <duration>', 'only lines produced within this duration, e.g. 10m, 2h (default: all)')
    .option('--out <dir>', 'where to write the HTML/SVG/JSON report', 'reports')
    .option('--data-dir <dir>', 'data directory (default: $RP_DATA_DIR or .data)')
    .action(async (opts: CommonOptions & { since?: string; out: string }) => {
      const result = await withWarehouse(opts, (w) => latencyReport(w, { since: opts.since }));
      const files = await writeLatencyReport(result, path.resolve(opts.out));
      process.stdout.write(
        `${formatLatencyTable(result)}\n\nwritten: ${files.html}\n         ${files.svg}\n`,
      );
    });

  report
    .command('sales')
    .description('top products, revenue by country and month, cancellation and repeat-customer rates, basket')
    .option('--format <format>', 'table | csv | json', 'table')
    .option('--top <n>', 'how many top products', '10')
    .option('--data-dir <dir>', 'data directory (default: $RP_DATA_DIR or .data)')
    .action(async (opts: CommonOptions & { format: string; top: string }) => {
      if (!['table', 'csv', 'json'].includes(opts.format)) {
        program.error(`--format must be table, csv or json (got '${opts.format}')`);
      }
      const top = Number(opts.top);
      if (!Number.isInteger(top) || top < 1 || top > 1000) program.error('--top must be an integer 1..1000');
      const r = await withWarehouse(opts, (w) => salesReport(w, { top }));
      const out =
        opts.format === 'json'
          ? `${JSON.stringify(r, null, 2)}\n`
          : opts.format === 'csv'
            ? formatSalesCsv(r)
            : `${formatSalesTables(r)}\n`;
      process.stdout.write(out);
    });
}
