import { Decimal } from 'decimal.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { latencyReport } from '#analytics/latency';
import { refreshMarts } from '#analytics/marts';
import { revenueByCountry, revenueByDay, salesKpis, salesReport, topProducts } from '#analytics/sales';
import {
  type FixtureLine,
  fixtureLine,
  insertFixture,
  insertManifest,
  resetWarehouse,
  SALES_FIXTURE,
  sale,
  startTestWarehouse,
  type TestWarehouse,
} from './analytics-fixtures.ts';

// Expected figures are computed here from the fixture with decimal.js, independently of the SQL.
const kept = SALES_FIXTURE.filter((l) => !l.duplicate);
const sum = (ls: FixtureLine[]) => ls.reduce((s, l) => s.plus(l.lineTotal), new Decimal(0)).toFixed(3);
const net = (ls: FixtureLine[]) => sum(ls.filter((l) => !l.adjustment));
const distinct = (xs: Array<string | null>) => new Set(xs.filter((x) => x !== null)).size;
const groupBy = <T>(xs: T[], key: (x: T) => string) => {
  const m = new Map<string, T[]>();
  for (const x of xs) m.set(key(x), [...(m.get(key(x)) ?? []), x]);
  return m;
};

let t: TestWarehouse;

beforeAll(async () => {
  t = await startTestWarehouse();
});
afterAll(async () => {
  await t?.stop();
});

describe('marts and sales reports before any load', () => {
  beforeAll(async () => {
    await resetWarehouse(t.warehouse);
  });

  it('are empty, not failing', async () => {
    await refreshMarts(t.warehouse);
    const kpis = await salesKpis(t.warehouse);
    expect(kpis).toMatchObject({ purchases: 0, revenue: '0.000', factRows: 0, averageBasket: '0.000' });
    expect(await topProducts(t.warehouse)).toEqual([]);
    expect(await revenueByCountry(t.warehouse)).toEqual([]);
  });
});

describe('marts and sales reports over the sales fixture', () => {
  // Both tests only read what this loads.
  beforeAll(async () => {
    await resetWarehouse(t.warehouse);
    await insertFixture(t.warehouse, SALES_FIXTURE);
    await refreshMarts(t.warehouse);
  });

  it('equal the figures computed from the fixture', async () => {
    const sales = kept.filter(sale);
    const purchases = distinct(sales.map((l) => l.invoiceNo));
    const cancellations = distinct(kept.filter((l) => l.cancellation).map((l) => l.invoiceNo));
    const perCustomer = groupBy(
      sales.filter((l) => l.customerId),
      (l) => l.customerId as string,
    );
    const repeat = [...perCustomer.values()].filter((ls) => distinct(ls.map((l) => l.invoiceNo)) >= 2).length;
    const gross = sum(sales);

    const kpis = await salesKpis(t.warehouse);
    expect(kpis).toMatchObject({
      purchases,
      cancellations,
      lines: kept.length,
      salesLines: sales.length,
      itemsSold: sales.reduce((s, l) => s + l.quantity, 0),
      revenue: net(kept),
      grossSales: gross,
      cancelledValue: new Decimal(sum(kept.filter((l) => l.cancellation))).neg().toFixed(3),
      customersBuying: perCustomer.size,
      repeatCustomers: repeat,
      countries: distinct(kept.map((l) => l.country)),
      factRows: SALES_FIXTURE.length,
    });
    expect(kpis.cancellationRate).toBeCloseTo(cancellations / (purchases + cancellations), 12);
    expect(kpis.repeatCustomerRate).toBeCloseTo(repeat / perCustomer.size, 12);
    expect(kpis.averageBasket).toBe(new Decimal(gross).div(purchases).toDecimalPlaces(3).toFixed(3));
    expect(kpis.refreshedAt).not.toBeNull();

    const byCountry = await revenueByCountry(t.warehouse);
    const expectedCountries = [...groupBy(kept, (l) => l.country)]
      .map(([country, ls]) => ({ country, revenue: net(ls) }))
      .sort((a, b) => Number(b.revenue) - Number(a.revenue));
    expect(byCountry.map((c) => ({ country: c.country, revenue: c.revenue }))).toEqual(expectedCountries);
    expect(byCountry.find((c) => c.country === 'France')?.isoCode).toBe('FR');

    const top = await topProducts(t.warehouse, 2);
    const expectedTop = [
      ...groupBy(
        kept.filter((l) => !l.nonProduct),
        (l) => l.stockCode,
      ),
    ]
      .map(([stockCode, ls]) => ({
        stockCode,
        revenue: net(ls),
        quantitySold: ls.filter(sale).reduce((s, l) => s + l.quantity, 0),
      }))
      .sort((a, b) => Number(b.revenue) - Number(a.revenue))
      .slice(0, 2);
    expect(
      top.map((p) => ({ stockCode: p.stockCode, revenue: p.revenue, quantitySold: p.quantitySold })),
    ).toEqual(expectedTop);

    const days = await revenueByDay(t.warehouse, 3);
    const expectedDays = [...groupBy(kept, (l) => l.invoiceDate.slice(0, 10))]
      .map(([day, ls]) => ({ day, revenue: net(ls) }))
      .sort((a, b) => a.day.localeCompare(b.day))
      .slice(-3);
    expect(days.map((d) => ({ day: d.day, revenue: d.revenue }))).toEqual(expectedDays);

    const report = await salesReport(t.warehouse, { top: 5 });
    const ukFeb = kept.filter((l) => l.country === 'United Kingdom' && l.invoiceDate.startsWith('2011-02'));
    expect(report.revenueByCountryMonth).toContainEqual(
      expect.objectContaining({ country: 'United Kingdom', month: '2011-02', revenue: net(ukFeb) }),
    );
  });

  it('fill the customer-month mart and the RFM view consistently with the fixture', async () => {
    const { rows } = await t.warehouse.query<Record<string, unknown>>(
      `SELECT customer_id, year_month, purchases, invoices, cancellations, revenue, items_bought
       FROM mart_customer_month ORDER BY customer_id, year_month`,
    );
    const expected = [
      ...groupBy(
        kept.filter((l) => l.customerId),
        (l) => `${l.customerId}|${l.invoiceDate.slice(0, 7)}`,
      ),
    ]
      .map(([k, ls]) => {
        const [customer_id, year_month] = k.split('|');
        return {
          customer_id,
          year_month,
          purchases: distinct(ls.filter(sale).map((l) => l.invoiceNo)),
          invoices: distinct(ls.map((l) => l.invoiceNo)),
          cancellations: distinct(ls.filter((l) => l.cancellation).map((l) => l.invoiceNo)),
          revenue: net(ls),
          items_bought: String(ls.filter(sale).reduce((s, l) => s + l.quantity, 0)),
        };
      })
      .sort((a, b) => `${a.customer_id}${a.year_month}`.localeCompare(`${b.customer_id}${b.year_month}`));
    expect(rows).toEqual(expected);

    const rfm = await t.warehouse.query<Record<string, unknown>>(
      'SELECT customer_id, recency_days, frequency, monetary, segment FROM v_customer_rfm ORDER BY customer_id',
    );
    const latest = (ls: FixtureLine[]) =>
      ls
        .map((l) => l.invoiceDate)
        .sort()
        .at(-1) as string;
    const lastSale = latest(kept.filter(sale));
    const days = (a: string, b: string) =>
      Math.floor((Date.parse(`${b}Z`) - Date.parse(`${a}Z`)) / 86_400_000);
    const expectedRfm = [
      ...groupBy(
        kept.filter((l) => l.customerId),
        (l) => l.customerId as string,
      ),
    ]
      .map(([customer_id, ls]) => {
        const last = latest(ls.filter(sale));
        return {
          customer_id,
          recency_days: days(last, lastSale),
          frequency: distinct(ls.filter(sale).map((l) => l.invoiceNo)),
          monetary: net(ls),
        };
      })
      .sort((a, b) => a.customer_id.localeCompare(b.customer_id));
    expect(rfm.rows.map(({ segment: _s, ...r }) => r)).toEqual(expectedRfm);
    expect(rfm.rows.every((r) => typeof r.segment === 'string' && r.segment.length > 0)).toBe(true);

    const pbi = await t.warehouse.query<Record<string, unknown>>(
      'SELECT "Country", SUM("Net Revenue") AS revenue FROM powerbi."Country Day" GROUP BY "Country" ORDER BY 1',
    );
    expect(pbi.rows.map((r) => [r.Country, new Decimal(String(r.revenue)).toFixed(3)])).toEqual(
      [...groupBy(kept, (l) => l.country)]
        .map(([c, ls]) => [c, net(ls)])
        .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    );
  });
});

describe('latency report', () => {
  beforeAll(async () => {
    await resetWarehouse(t.warehouse);
  });

  it('reports latency per path and hop with nearest-rank percentiles', async () => {
    // 20 lines produced a minute ago, with growing delays on each hop; half archived in each of two objects.
    const base = Date.now() - 60_000;
    const iso = (ms: number) => new Date(ms).toISOString();
    const lines: FixtureLine[] = [];
    const expected = {
      pa: [] as number[],
      asv: [] as number[],
      st: [] as number[],
      par: [] as number[],
      arw: [] as number[],
      bt: [] as number[],
    };
    const archived = [base + 4_000, base + 9_000];
    const keys = ['archive/2024/01/01/00/s-1-a.gz', 'archive/2024/01/01/00/s-1-b.gz'];
    for (let i = 0; i < 20; i++) {
      const produced = base + i * 10;
      const accepted = produced + 5 + i;
      const visible = accepted + 20 + 3 * i;
      const arch = archived[i % 2] as number;
      const wh = arch + 1_500 + 100 * i;
      lines.push({
        ...fixtureLine({ invoiceNo: `9${String(i).padStart(5, '0')}` }),
        producedAt: iso(produced),
        acceptedAt: iso(accepted),
        streamVisibleAt: iso(visible),
        warehouseVisibleAt: iso(wh),
        sourceKey: keys[i % 2],
      });
      expected.pa.push(accepted - produced);
      expected.asv.push(visible - accepted);
      expected.st.push(visible - produced);
      expected.par.push(arch - produced);
      expected.arw.push(wh - arch);
      expected.bt.push(wh - produced);
    }
    // An old line outside a 10-minute window must not count.
    lines.push({
      ...fixtureLine({ invoiceNo: '999999' }),
      producedAt: iso(base - 3_600_000),
      acceptedAt: iso(base - 3_599_000),
      streamVisibleAt: iso(base - 3_598_000),
      warehouseVisibleAt: iso(base),
      sourceKey: 'landing/old.csv',
    });
    await insertFixture(t.warehouse, lines);
    await insertManifest(t.warehouse, keys[0] as string, iso(archived[0] as number));
    await insertManifest(t.warehouse, keys[1] as string, iso(archived[1] as number));

    const rank = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.ceil(p * xs.length) - 1];
    const stats = (xs: number[]) => ({
      count: xs.length,
      p50: rank(xs, 0.5),
      p90: rank(xs, 0.9),
      p99: rank(xs, 0.99),
      max: Math.max(...xs),
    });

    const report = await latencyReport(t.warehouse, { since: '10m' });
    const hop = (path: string, name: string) => {
      const h = report.hops.find((x) => x.path === path && x.hop === name);
      return { count: h?.count, p50: h?.p50, p90: h?.p90, p99: h?.p99, max: h?.max };
    };
    expect(hop('stream', 'produced_accepted')).toEqual(stats(expected.pa));
    expect(hop('stream', 'accepted_stream_visible')).toEqual(stats(expected.asv));
    expect(hop('stream', 'total')).toEqual(stats(expected.st));
    expect(hop('batch', 'produced_archived')).toEqual(stats(expected.par));
    expect(hop('batch', 'archived_warehouse_visible')).toEqual(stats(expected.arw));
    expect(hop('batch', 'total')).toEqual(stats(expected.bt));
    expect(report.cdf.stream.at(-1)).toEqual([Math.max(...expected.st), 1]);

    const all = await latencyReport(t.warehouse);
    expect(all.hops.find((h) => h.path === 'stream' && h.hop === 'total')?.count).toBe(21);
    // The old line has no archive object: the batch path's archive hop does not count it.
    expect(all.hops.find((h) => h.path === 'batch' && h.hop === 'produced_archived')?.count).toBe(20);
  });
});

describe('a refresh after the first rebuilds only the months that changed', () => {
  const MARTS = ['mart_customer_month', 'mart_product_month', 'mart_country_day', 'mart_cancellation_month'];
  const martRows = async () => {
    const out: Record<string, unknown[]> = {};
    for (const m of MARTS)
      out[m] = (await t.warehouse.query(`SELECT * FROM ${m} ORDER BY 1, 2, 3`)).rows.map((r) =>
        JSON.stringify(r),
      );
    return out;
  };
  // One invoice a month, each with a product and a customer of its own; January has two invoices.
  const month = (m: string, invoiceNo: string, extra: Partial<FixtureLine> = {}) =>
    fixtureLine({
      invoiceNo,
      lineNo: 1,
      invoiceDate: `2011-${m}-10T10:00:00`,
      stockCode: `P-${m}`,
      description: `ITEM ${m}`,
      customerId: `C-${m}`,
      country: 'United Kingdom',
      ...extra,
    });

  it('equals a full rebuild after lines added, flags moved, dimensions moved and a month gone; an unchanged month is left as it was', async () => {
    await resetWarehouse(t.warehouse);
    await insertFixture(t.warehouse, [
      month('01', '580001'),
      month('01', '580002', { lineNo: 1, stockCode: 'P-01B', customerId: 'C-01B', quantity: 3 }),
      month('02', '580010'),
      month('03', '580020'),
      month('04', '580030', { quantity: -2, cancellation: true, invoiceNo: 'C580030' }),
      month('05', '580040'),
      month('06', '580050'),
    ]);
    await refreshMarts(t.warehouse);
    const first = await martRows();
    // A mark in April's mart row: a refresh that rebuilt April would replace it.
    await t.warehouse.query(
      "UPDATE mart_cancellation_month SET purchases = purchases + 1000 WHERE month_start = '2011-04-01'",
    );

    // February: a line added. January: a flag moved. March: its lines gone. May: a customer's country
    // moved by a load elsewhere; June: a product's description. April: nothing.
    await insertFixture(t.warehouse, [month('02', '580011', { stockCode: 'P-02B', customerId: 'C-02B' })]);
    await t.warehouse.query(
      "UPDATE fact_sales_line SET is_duplicate_row = true WHERE invoice_no = '580002' AND line_no = 1",
    );
    await t.warehouse.query("DELETE FROM fact_sales_line WHERE invoice_no = '580020'");
    await t.warehouse.query("UPDATE dim_customer SET country_name = 'France' WHERE customer_id = 'C-05'");
    await t.warehouse.query("UPDATE dim_product SET description = 'ITEM 06 NEW' WHERE stock_code = 'P-06'");
    await refreshMarts(t.warehouse);
    const incremental = await martRows();

    const april = await t.warehouse.query<{ purchases: number }>(
      "SELECT purchases FROM mart_cancellation_month WHERE month_start = '2011-04-01'",
    );
    expect(april.rows[0]?.purchases).toBe(1000);
    expect(incremental).not.toEqual(first);

    // The same warehouse rebuilt whole, from no state: every mart equal, April's mark aside.
    await t.warehouse.query(
      "UPDATE mart_cancellation_month SET purchases = purchases - 1000 WHERE month_start = '2011-04-01'",
    );
    const repaired = await martRows();
    await t.warehouse.query(
      'TRUNCATE mart_customer_month, mart_product_month, mart_country_day, mart_cancellation_month, mart_month_state',
    );
    await refreshMarts(t.warehouse);
    expect(repaired).toEqual(await martRows());

    const months = async (sql: string) =>
      (await t.warehouse.query<{ m: string }>(sql)).rows.map((r) => String(r.m).slice(0, 7));
    expect(
      await months("SELECT to_char(month_start, 'YYYY-MM') AS m FROM mart_cancellation_month ORDER BY 1"),
    ).toEqual(['2011-01', '2011-02', '2011-04', '2011-05', '2011-06']);
    const may = await t.warehouse.query<{ country_name: string }>(
      "SELECT country_name FROM mart_customer_month WHERE customer_id = 'C-05'",
    );
    expect(may.rows).toEqual([{ country_name: 'France' }]);
    const june = await t.warehouse.query<{ description: string }>(
      "SELECT description FROM mart_product_month WHERE stock_code = 'P-06'",
    );
    expect(june.rows).toEqual([{ description: 'ITEM 06 NEW' }]);
  });
});
