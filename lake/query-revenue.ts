/**
 * Revenue by country and month over the invoice lines, written once for the three engines that run
 * it: Athena and the local DuckDB over the lake's `invoice_lines`, PostgreSQL or Redshift over the
 * warehouse's `fact_sales_line` (the lake's columns are the fact's). Standard SQL all of them
 * accept: EXTRACT, an exact DECIMAL sum, no dialect function. The lake-versus-warehouse test and
 * bench (bench/lake-query.ts) hold the two answers equal to the penny.
 */
export type RevenueSource = 'invoice_lines' | 'fact_sales_line';

export function revenueByCountryMonthSql(table: RevenueSource): string {
  return `SELECT country_name,
       EXTRACT(YEAR FROM invoice_date) AS invoice_year,
       EXTRACT(MONTH FROM invoice_date) AS invoice_month,
       COUNT(*) AS lines,
       SUM(quantity) AS quantity,
       SUM(line_total) AS revenue
  FROM ${table}
 GROUP BY country_name, EXTRACT(YEAR FROM invoice_date), EXTRACT(MONTH FROM invoice_date)
 ORDER BY country_name, invoice_year, invoice_month`;
}

/** One answer row as text, whatever types the engine returned (numeric text, bigint, number). */
export type RevenueRow = [
  country: string,
  year: string,
  month: string,
  lines: string,
  quantity: string,
  revenue: string,
];

export function revenueRow(values: ReadonlyArray<unknown>): RevenueRow {
  const text = (v: unknown) => (v === null || v === undefined ? '' : String(v));
  // EXTRACT is numeric in PostgreSQL ('2010'), bigint in DuckDB: compared as integers.
  const int = (v: unknown) => String(Number(text(v)));
  const [country, year, month, lines, quantity, revenue] = values;
  return [text(country), int(year), int(month), int(lines), int(quantity), text(revenue)];
}
