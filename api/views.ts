import { compareMoney, sumMoney } from '#core/money';
import type {
  CountryAggregate,
  InvoiceHeader,
  InvoiceSummary,
  ProductLines,
  ProductSale,
  StoredLine,
} from '#core/serving';

export type InvoiceKind = 'sale' | 'cancellation' | 'adjustment';
/** complete: lines 1..n all present; partial: a gap (lines still on the way, or never sent). */
export type InvoiceStatus = 'complete' | 'partial' | 'cancellation' | 'adjustment';

const kindOf = (h: { isCancellation: boolean; isAdjustment: boolean }): InvoiceKind =>
  h.isCancellation ? 'cancellation' : h.isAdjustment ? 'adjustment' : 'sale';

function lineView(l: ProductSale) {
  return {
    lineNo: l.lineNo,
    stockCode: l.stockCode,
    description: l.description ?? null,
    quantity: l.quantity,
    unitPrice: l.unitPrice,
    lineTotal: l.lineTotal,
    isNonProduct: l.isNonProduct,
    // The item holds when its DynamoDB write was sent; the acknowledged time (streamVisibleAt) is
    // known only after the write, so it travels on to the archive and the warehouse instead.
    lineage: {
      producedAt: l.producedAt,
      acceptedAt: l.acceptedAt,
      streamWriteSentAt: l.streamWriteSentAt,
      ...(l.streamVisibleAt ? { streamVisibleAt: l.streamVisibleAt } : {}),
    },
  };
}

export function invoiceView(header: InvoiceHeader | undefined, lines: StoredLine[]) {
  const sorted = [...lines].sort((a, b) => a.lineNo - b.lineNo);
  const first = sorted[0];
  const base = header ?? first;
  if (!base) throw new Error('an invoice has a header or lines');
  const kind = kindOf(base);
  const contiguous = sorted.every((l, i) => l.lineNo === i + 1);
  const status: InvoiceStatus = kind === 'sale' ? (contiguous ? 'complete' : 'partial') : kind;
  return {
    invoiceNo: base.invoiceNo,
    kind,
    status,
    invoiceDate: base.invoiceDate,
    invoiceTs: base.invoiceTs,
    customerId: base.customerId ?? null,
    country: base.country,
    countryCode: base.countryCode,
    region: base.region,
    totals: {
      lines: sorted.length,
      quantity: sorted.reduce((s, l) => s + l.quantity, 0),
      amount: sumMoney(sorted.map((l) => l.lineTotal)),
    },
    lines: sorted.map(lineView),
  };
}

export function invoiceSummaryView(h: InvoiceSummary) {
  return {
    invoiceNo: h.invoiceNo,
    kind: kindOf(h),
    invoiceDate: h.invoiceDate,
    invoiceTs: h.invoiceTs,
    customerId: h.customerId,
    country: h.country,
    countryCode: h.countryCode,
  };
}

export function productSalesView(stockCode: string, p: ProductLines) {
  return {
    stockCode,
    description: p.recent.find((l) => l.description)?.description ?? null,
    totals: { ...p.totals, complete: p.totalsComplete },
    recent: p.recent.map((l) => ({
      invoiceNo: l.invoiceNo,
      invoiceDate: l.invoiceDate,
      customerId: l.customerId ?? null,
      country: l.country,
      ...lineView(l),
    })),
  };
}

export function countryStatsView(stats: CountryAggregate[], asOf: Date) {
  const countries = [...stats]
    .sort((a, b) => compareMoney(b.amount, a.amount) || a.country.localeCompare(b.country))
    .map((c) => ({
      country: c.country,
      countryCode: c.countryCode,
      region: c.region,
      lines: c.lineCount,
      invoices: c.invoiceCount,
      quantity: c.quantity,
      revenue: c.amount,
    }));
  return {
    asOf: asOf.toISOString(),
    totals: {
      lines: countries.reduce((s, c) => s + c.lines, 0),
      invoices: countries.reduce((s, c) => s + c.invoices, 0),
      quantity: countries.reduce((s, c) => s + c.quantity, 0),
      revenue: sumMoney(countries.map((c) => c.revenue)),
    },
    countries,
  };
}
