import { Decimal } from 'decimal.js';
import { isoDay, money, num, type QueryPort, runQuery } from './db.ts';

/** Sales figures read from the marts; money stays exact decimal text ('1234.500'). */
export interface SalesKpis {
  purchases: number;
  cancellations: number;
  lines: number;
  salesLines: number;
  itemsSold: number;
  revenue: string;
  grossSales: string;
  cancelledValue: string;
  countries: number;
  customersBuying: number;
  repeatCustomers: number;
  /** Cancellation invoices / (sales + cancellation invoices). */
  cancellationRate: number;
  /** Cancelled value / gross sales. */
  cancelledValueRate: number;
  /** Customers with two or more purchases / customers with at least one. */
  repeatCustomerRate: number;
  /** Gross sales / purchases (3 decimals). */
  averageBasket: string;
  averageLinesPerBasket: number;
  averageItemsPerBasket: number;
  refreshedAt: string | null;
  factRows: number;
}

export interface ProductSales {
  stockCode: string;
  description: string | null;
  quantitySold: number;
  quantityReturned: number;
  purchases: number;
  grossSales: string;
  revenue: string;
}

export interface CountrySales {
  country: string;
  isoCode: string | null;
  region: string | null;
  revenue: string;
  purchases: number;
  lines: number;
}

export interface DaySales {
  day: string;
  revenue: string;
  purchases: number;
  lines: number;
}

export interface CountryMonthSales {
  country: string;
  month: string;
  revenue: string;
  purchases: number;
  cancellations: number;
}

const ratio = (a: number, b: number) => (b === 0 ? 0 : a / b);

export async function salesKpis(db: QueryPort): Promise<SalesKpis> {
  const [r = {}] = await runQuery<Record<string, unknown>>(db, 'sales-kpis');
  const purchases = num(r.purchases);
  const cancellations = num(r.cancellations);
  const grossSales = money(r.gross_sales);
  const cancelledValue = money(r.cancelled_value);
  const customersBuying = num(r.customers_buying);
  const repeatCustomers = num(r.repeat_customers);
  const gross = new Decimal(grossSales);
  return {
    purchases,
    cancellations,
    lines: num(r.lines),
    salesLines: num(r.sales_lines),
    itemsSold: num(r.items_sold),
    revenue: money(r.revenue),
    grossSales,
    cancelledValue,
    countries: num(r.countries),
    customersBuying,
    repeatCustomers,
    cancellationRate: ratio(cancellations, purchases + cancellations),
    cancelledValueRate: gross.isZero() ? 0 : new Decimal(cancelledValue).div(gross).toNumber(),
    repeatCustomerRate: ratio(repeatCustomers, customersBuying),
    averageBasket:
      purchases === 0 ? '0.000' : gross.div(purchases).toDecimalPlaces(3, Decimal.ROUND_HALF_UP).toFixed(3),
    averageLinesPerBasket: ratio(num(r.sales_lines), purchases),
    averageItemsPerBasket: ratio(num(r.items_sold), purchases),
    refreshedAt: r.refreshed_at ? new Date(r.refreshed_at as string).toISOString() : null,
    factRows: num(r.fact_rows),
  };
}

export async function topProducts(db: QueryPort, limit = 10): Promise<ProductSales[]> {
  const rows = await runQuery<Record<string, unknown>>(db, 'sales-top-products', [limit]);
  return rows.map((r) => ({
    stockCode: String(r.stock_code),
    description: r.description === null || r.description === undefined ? null : String(r.description),
    quantitySold: num(r.quantity_sold),
    quantityReturned: num(r.quantity_returned),
    purchases: num(r.purchases),
    grossSales: money(r.gross_sales),
    revenue: money(r.revenue),
  }));
}

export async function revenueByCountry(db: QueryPort, limit = 50): Promise<CountrySales[]> {
  const rows = await runQuery<Record<string, unknown>>(db, 'sales-by-country', [limit]);
  return rows.map((r) => ({
    country: String(r.country_name),
    isoCode: r.iso_code ? String(r.iso_code) : null,
    region: r.region ? String(r.region) : null,
    revenue: money(r.revenue),
    purchases: num(r.purchases),
    lines: num(r.lines),
  }));
}

export async function revenueByDay(db: QueryPort, days = 90): Promise<DaySales[]> {
  const rows = await runQuery<Record<string, unknown>>(db, 'sales-by-day', [days]);
  return rows.map((r) => ({
    day: isoDay(r.full_date),
    revenue: money(r.revenue),
    purchases: num(r.purchases),
    lines: num(r.lines),
  }));
}

export async function revenueByCountryMonth(db: QueryPort): Promise<CountryMonthSales[]> {
  const rows = await runQuery<Record<string, unknown>>(db, 'sales-country-month');
  return rows.map((r) => ({
    country: String(r.country_name),
    month: String(r.year_month),
    revenue: money(r.revenue),
    purchases: num(r.purchases),
    cancellations: num(r.cancellations),
  }));
}

export interface SalesReport {
  kpis: SalesKpis;
  topProducts: ProductSales[];
  revenueByCountryMonth: CountryMonthSales[];
}

/** Everything `retail-pipeline report sales` prints. */
export async function salesReport(db: QueryPort, opts: { top?: number } = {}): Promise<SalesReport> {
  const [kpis, top, byCountryMonth] = await Promise.all([
    salesKpis(db),
    topProducts(db, opts.top ?? 10),
    revenueByCountryMonth(db),
  ]);
  return { kpis, topProducts: top, revenueByCountryMonth: byCountryMonth };
}
