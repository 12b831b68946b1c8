import { countryInfo } from './countries.ts';
import { dateKey, londonToUtcIso } from './dates.ts';
import type { AcceptedLine } from './invoice-line.ts';
import { lineTotal } from './money.ts';
import { isNonProductCode } from './non-product.ts';

/** A line with everything the serving store and the warehouse derive from it. */
export interface EnrichedLine extends AcceptedLine {
  /** quantity x unitPrice, exact, 3 decimals (negative for cancellations). */
  lineTotal: string;
  isCancellation: boolean;
  isAdjustment: boolean;
  isNonProduct: boolean;
  /** ISO 3166-1 alpha-2, 'XX' when the country is unknown or unspecified. */
  countryCode: string;
  region: string;
  customerKnown: boolean;
  /** London calendar day YYYYMMDD. */
  dateKey: number;
  /** UTC ISO-8601 instant of invoiceDate. */
  invoiceTs: string;
}

/** A cancellation's invoice number starts with C. */
export const isCancellationInvoice = (invoiceNo: string): boolean => invoiceNo.startsWith('C');
/** A manual adjustment's (bad debt) invoice number starts with A. */
export const isAdjustmentInvoice = (invoiceNo: string): boolean => invoiceNo.startsWith('A');

/** Pure: flags and derived fields only; the original fields are copied unchanged. */
export function enrich(line: AcceptedLine): EnrichedLine {
  const country = countryInfo(line.country);
  // Fields listed one by one, not spread: V8 builds one fixed object shape this way and enrich runs
  // ~10x faster than with `...line` (measured 30k/s vs 300k+/s), which matters on the stream path.
  return {
    invoiceNo: line.invoiceNo,
    lineNo: line.lineNo,
    stockCode: line.stockCode,
    description: line.description,
    quantity: line.quantity,
    invoiceDate: line.invoiceDate,
    unitPrice: line.unitPrice,
    customerId: line.customerId,
    country: line.country,
    producedAt: line.producedAt,
    acceptedAt: line.acceptedAt,
    lineTotal: lineTotal(line.quantity, line.unitPrice),
    isCancellation: isCancellationInvoice(line.invoiceNo),
    isAdjustment: isAdjustmentInvoice(line.invoiceNo),
    isNonProduct: isNonProductCode(line.stockCode),
    countryCode: country.isoCode,
    region: country.region,
    customerKnown: line.customerId !== null,
    dateKey: dateKey(line.invoiceDate),
    invoiceTs: londonToUtcIso(line.invoiceDate),
  };
}
