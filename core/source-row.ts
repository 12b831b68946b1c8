import { DECIMAL_3 } from './invoice-line.ts';

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

/** Maps a header record to column positions (names compared case-insensitively); a reason string when a column is missing. */
export function resolveColumns(header: readonly string[]): ColumnMap | string {
  const positions = new Map(header.map((name, i) => [name.trim().toLowerCase(), i]));
  const map: Partial<Record<SourceColumn, number>> = {};
  const missing: string[] = [];
  for (const column of SOURCE_COLUMNS) {
    const i = positions.get(column.toLowerCase());
    if (i === undefined) missing.push(column);
    else map[column] = i;
  }
  if (missing.length > 0) return `header lacks column(s) ${missing.join(', ')}`;
  return map as ColumnMap;
}

/** The header order of the real file: the default when a caller knows the layout. */
export const DEFAULT_COLUMNS: ColumnMap = Object.fromEntries(
  SOURCE_COLUMNS.map((c, i) => [c, i]),
) as ColumnMap;

const US_DATE = /^(\d{1,2})\/(\d{1,2})\/(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?$/;
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?$/;
const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

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
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59) return null;
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  if (d > (mo === 2 && !leap ? 28 : (DAYS_IN_MONTH[mo - 1] ?? 0))) return null;
  return `${y}-${pad2(mo)}-${pad2(d)}T${pad2(h)}:${pad2(mi)}:${pad2(sec)}`;
}

/** `17850`, `17850.0` or empty (null). A reason string when it is something else. */
export function parseCustomerId(text: string): string | null | { reason: string } {
  const s = text.trim();
  if (s === '') return null;
  const m = /^(\d{1,12})(?:\.0*)?$/.exec(s);
  if (!m?.[1]) return { reason: `CustomerID ${JSON.stringify(s)} is not a whole number` };
  return m[1];
}

const INVOICE_NO = /^[A-Z]?\d{1,10}$/;
const INTEGER = /^[-+]?\d{1,8}$/;
// Same set the API refuses: control characters break CSV/COPY downstream.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

function normalisePrice(text: string): string | null {
  let s = text.trim();
  if (s.startsWith('+')) s = s.slice(1);
  // A point alone is no number (it would otherwise normalise to 0 below).
  if (!/\d/.test(s)) return null;
  // `.5` and `5.` appear in hand-edited files; normalise them to decimal text the schema accepts.
  if (s.startsWith('.')) s = `0${s}`;
  else if (s.startsWith('-.')) s = `-0${s.slice(1)}`;
  if (s.endsWith('.')) s = s.slice(0, -1);
  return DECIMAL_3.test(s) ? s : null;
}

/** Why a text field is refused (the API's rule: a length limit, no control characters), or undefined. */
export function textProblem(name: string, value: string, max: number): string | undefined {
  if (CONTROL.test(value))
    return value.includes('\u0000') ? `${name} contains a NUL byte` : `${name} contains control characters`;
  if (value.length > max) return `${name} is longer than ${max} characters`;
  return undefined;
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
 * Parses one record (already split into fields) into a {@link SourceRow}, or returns why it is malformed.
 * Cancellations, zero prices, missing customers and non-product codes are valid data, not errors.
 */
export function parseSourceRow(
  fields: readonly string[],
  columns: ColumnMap = DEFAULT_COLUMNS,
): SourceRow | string {
  // No closures here: this runs once per row of a half-million-row file (replay and the loader).
  const needed = neededFields(columns);
  if (fields.length < needed) return `expected ${needed} fields, got ${fields.length}`;
  const invoiceNo = fields[columns.InvoiceNo]?.trim();
  if (!invoiceNo) return 'InvoiceNo is empty';
  if (!INVOICE_NO.test(invoiceNo))
    return `InvoiceNo ${JSON.stringify(invoiceNo)} is not digits with an optional capital letter prefix`;
  const stockCode = fields[columns.StockCode]?.trim();
  if (!stockCode) return 'StockCode is empty';
  const stockProblem = textProblem('StockCode', stockCode, 32);
  if (stockProblem) return stockProblem;
  const rawDescription = fields[columns.Description];
  const trimmed = (rawDescription ?? '').trim();
  const description = trimmed === '' ? null : trimmed;
  const descriptionProblem = description === null ? undefined : textProblem('Description', description, 255);
  if (descriptionProblem) return descriptionProblem;
  const quantityText = fields[columns.Quantity]?.trim() ?? '';
  if (!INTEGER.test(quantityText)) return `Quantity ${JSON.stringify(quantityText)} is not a whole number`;
  const quantity = Number(quantityText);
  if (Math.abs(quantity) > 10_000_000) return `Quantity ${quantityText} is out of range (|q| <= 10,000,000)`;
  const dateText = fields[columns.InvoiceDate] ?? '';
  const invoiceDate = parseSourceDate(dateText);
  if (invoiceDate === null)
    return `InvoiceDate ${JSON.stringify(dateText)} is not M/D/YYYY H:MM or YYYY-MM-DD HH:MM[:SS]`;
  const priceText = fields[columns.UnitPrice] ?? '';
  const unitPrice = normalisePrice(priceText);
  if (unitPrice === null)
    return `UnitPrice ${JSON.stringify(priceText)} is not a decimal with at most 3 decimal places`;
  const customerId = parseCustomerId(fields[columns.CustomerID] ?? '');
  if (customerId !== null && typeof customerId === 'object') return customerId.reason;
  const country = fields[columns.Country]?.trim();
  if (!country) return 'Country is empty';
  const countryProblem = textProblem('Country', country, 64);
  if (countryProblem) return countryProblem;
  return { invoiceNo, stockCode, description, quantity, invoiceDate, unitPrice, customerId, country };
}
