import {
  CUSTOMER_ID_WORDING,
  customerIdOf,
  DECIMAL_WORDING,
  decimalOf,
  INVOICE_DATE_WORDING,
  INVOICE_NO,
  INVOICE_NO_WORDING,
  inInvoiceCalendar,
  isCalendarTime,
  QUANTITY_MAX,
  QUANTITY_WORDING,
  type TextField,
  textProblem,
} from './rules.ts';

/**
 * Pure parsing of one record of a CSV file in the "Online Retail" format
 * (`InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country`).
 * No I/O: the caller reads the file, tokenises it and assigns `lineNo`.
 */

/** A parsed row: an invoice line input without `lineNo` (assigned per invoice in source order) and `producedAt`. */
export interface SourceRow {
  invoiceNo: string;
  stockCode: string;
  description: string | null;
  quantity: number;
  /** Europe/London local wall-clock time, `YYYY-MM-DDTHH:MM:SS`. */
  invoiceDate: string;
  unitPrice: string;
  customerId: string | null;
  country: string;
}

export const SOURCE_COLUMNS = [
  'InvoiceNo',
  'StockCode',
  'Description',
  'Quantity',
  'InvoiceDate',
  'UnitPrice',
  'CustomerID',
  'Country',
] as const;

export type SourceColumn = (typeof SOURCE_COLUMNS)[number];
/** Index of each source column in a record. */
export type ColumnMap = Readonly<Record<SourceColumn, number>>;

/** Why a header or a row is refused: the column at fault (when one is) and the reason, for a person. */
export interface Refused {
  ok: false;
  column?: SourceColumn;
  reason: string;
}
export type HeaderResult = { ok: true; columns: ColumnMap } | Refused;
export type RowResult = { ok: true; row: SourceRow } | Refused;

const refused = (reason: string, column?: SourceColumn): Refused =>
  column === undefined ? { ok: false, reason } : { ok: false, column, reason };

/** Maps a header record to column positions (names compared case-insensitively). */
export function resolveColumns(header: readonly string[]): HeaderResult {
  const positions = new Map(header.map((name, i) => [name.trim().toLowerCase(), i]));
  const map: Partial<Record<SourceColumn, number>> = {};
  const missing: string[] = [];
  for (const column of SOURCE_COLUMNS) {
    const i = positions.get(column.toLowerCase());
    if (i === undefined) missing.push(column);
    else map[column] = i;
  }
  if (missing.length > 0) return refused(`header lacks column(s) ${missing.join(', ')}`);
  return { ok: true, columns: map as ColumnMap };
}

/** The header order of the real file: the default when a caller knows the layout. */
export const DEFAULT_COLUMNS: ColumnMap = Object.fromEntries(
  SOURCE_COLUMNS.map((c, i) => [c, i]),
) as ColumnMap;

const US_DATE = /^(\d{1,2})\/(\d{1,2})\/(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?$/;
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?$/;
const SOURCE_DATE_WORDING = 'M/D/YYYY H:MM or YYYY-MM-DD HH:MM[:SS]';

const pad2 = (n: number) => (n < 10 ? `0${n}` : String(n));

/** `M/D/YYYY H:MM[:SS]` or `YYYY-MM-DD[ T]HH:MM[:SS]` to `YYYY-MM-DDTHH:MM:SS`; null when not a valid date-time. */
export function parseSourceDate(text: string): string | null {
  // Consecutive rows of an invoice repeat its date text: remember the last answer.
  if (text === lastDateText) return lastDate;
  lastDateText = text;
  lastDate = parseDate(text);
  return lastDate;
}
let lastDateText = '';
let lastDate: string | null = null;

function parseDate(text: string): string | null {
  const s = text.trim();
  let y: number;
  let mo: number;
  let d: number;
  let m = US_DATE.exec(s);
  if (m) {
    mo = Number(m[1]);
    d = Number(m[2]);
    y = Number(m[3]);
  } else {
    m = ISO_DATE.exec(s);
    if (!m) return null;
    y = Number(m[1]);
    mo = Number(m[2]);
    d = Number(m[3]);
  }
  const h = Number(m[4]);
  const mi = Number(m[5]);
  const sec = m[6] === undefined ? 0 : Number(m[6]);
  if (!isCalendarTime(y, mo, d, h, mi, sec)) return null;
  return `${y}-${pad2(mo)}-${pad2(d)}T${pad2(h)}:${pad2(mi)}:${pad2(sec)}`;
}

const INTEGER = /^[-+]?\d+$/;

/** The `Name problem` reason of a text field, or undefined when the rules (core/rules.ts) take it. */
function textRefusal(column: SourceColumn, field: TextField, value: string): Refused | undefined {
  const problem = textProblem(value, field);
  return problem === undefined ? undefined : refused(`${column} ${problem}`, column);
}

const neededCache = new WeakMap<ColumnMap, number>();
/** How many fields a record needs to hold every column of the map. */
function neededFields(columns: ColumnMap): number {
  if (columns === DEFAULT_COLUMNS) return SOURCE_COLUMNS.length;
  let n = neededCache.get(columns);
  if (n === undefined) {
    n = Math.max(...Object.values(columns)) + 1;
    neededCache.set(columns, n);
  }
  return n;
}

/**
 * Parses one record (already split into fields) into a {@link SourceRow}, or says why it is
 * malformed. The rules are core/rules.ts's, as the API's schema holds them; cancellations, zero
 * prices, missing customers and non-product codes are valid data, not errors.
 */
export function parseSourceRow(fields: readonly string[], columns: ColumnMap = DEFAULT_COLUMNS): RowResult {
  // No closures here: this runs once per row of a half-million-row file (replay and the loader).
  const needed = neededFields(columns);
  if (fields.length < needed) return refused(`expected ${needed} fields, got ${fields.length}`);
  const invoiceNo = fields[columns.InvoiceNo]?.trim();
  if (!invoiceNo) return refused('InvoiceNo is empty', 'InvoiceNo');
  if (!INVOICE_NO.test(invoiceNo))
    return refused(`InvoiceNo ${JSON.stringify(invoiceNo)} is not ${INVOICE_NO_WORDING}`, 'InvoiceNo');
  const stockCode = fields[columns.StockCode]?.trim();
  if (!stockCode) return refused('StockCode is empty', 'StockCode');
  const stockProblem = textRefusal('StockCode', 'stockCode', stockCode);
  if (stockProblem) return stockProblem;
  const trimmed = (fields[columns.Description] ?? '').trim();
  const description = trimmed === '' ? null : trimmed;
  const descriptionProblem =
    description === null ? undefined : textRefusal('Description', 'description', description);
  if (descriptionProblem) return descriptionProblem;
  const quantityText = fields[columns.Quantity]?.trim() ?? '';
  if (!INTEGER.test(quantityText))
    return refused(`Quantity ${JSON.stringify(quantityText)} is not a whole number`, 'Quantity');
  // `-0` is 0; any digit count is read (too many digits is only ever out of range).
  const quantity = Number(quantityText) || 0;
  if (Math.abs(quantity) > QUANTITY_MAX)
    return refused(`Quantity ${quantityText} is out of range (${QUANTITY_WORDING})`, 'Quantity');
  const dateText = fields[columns.InvoiceDate] ?? '';
  const invoiceDate = parseSourceDate(dateText);
  if (invoiceDate === null)
    return refused(`InvoiceDate ${JSON.stringify(dateText)} is not ${SOURCE_DATE_WORDING}`, 'InvoiceDate');
  if (!inInvoiceCalendar(invoiceDate))
    return refused(`InvoiceDate ${JSON.stringify(dateText)} is not ${INVOICE_DATE_WORDING}`, 'InvoiceDate');
  const priceText = fields[columns.UnitPrice] ?? '';
  const unitPrice = decimalOf(priceText);
  if (unitPrice === undefined)
    return refused(`UnitPrice ${JSON.stringify(priceText)} is not ${DECIMAL_WORDING}`, 'UnitPrice');
  const customerText = fields[columns.CustomerID] ?? '';
  const customerId = customerIdOf(customerText);
  if (customerId === undefined)
    return refused(
      `CustomerID ${JSON.stringify(customerText.trim())} is not ${CUSTOMER_ID_WORDING}`,
      'CustomerID',
    );
  const country = fields[columns.Country]?.trim();
  if (!country) return refused('Country is empty', 'Country');
  const countryProblem = textRefusal('Country', 'country', country);
  if (countryProblem) return countryProblem;
  return {
    ok: true,
    row: { invoiceNo, stockCode, description, quantity, invoiceDate, unitPrice, customerId, country },
  };
}
