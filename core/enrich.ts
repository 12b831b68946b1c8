import { countryInfo } from './countries.ts';
import { dateKey, londonToUtcMs } from './dates.ts';
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

/** Pure: flags and derived fields only; the original fields are copied unchanged. */
export function enrich(line: AcceptedLine): EnrichedLine {
  const country = countryInfo(line.country);
  return {
    ...line,
    lineTotal: lineTotal(line.quantity, line.unitPrice),
    isCancellation: line.invoiceNo.startsWith('C'),
    isAdjustment: line.invoiceNo.startsWith('A'),
    isNonProduct: isNonProductCode(line.stockCode),
    countryCode: country.isoCode,
    region: country.region,
    customerKnown: line.customerId !== null,
    dateKey: dateKey(line.invoiceDate),
    invoiceTs: new Date(londonToUtcMs(line.invoiceDate)).toISOString(),
  };
}
