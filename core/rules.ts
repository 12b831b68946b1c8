/**
 * The rules an invoice line is held to, in one table. Every path that accepts lines reads its limits
 * here: the API's schema (core/invoice-line.ts), the API's route parameters, the stream consumer, the
 * CSV reader of replay and the loader (core/source-row.ts) and the loader's byte path
 * (batch/csv-typer.ts). The patterns and the error texts below are made from the same entries, so a
 * limit and its wording cannot drift apart. test/unit/validation-parity.test.ts holds every path to
 * the same verdict on the same rows.
 */
export const RULES = {
  /** `536365`, `C536379` (cancellation), `A563185` (adjustment): any capital letter is taken. */
  invoiceNo: { digits: 10, prefixFrom: 'A', prefixTo: 'Z' },
  /** A line's 1-based position in its invoice. */
  lineNo: { min: 1, max: 1_000_000 },
  stockCode: { maxLength: 32 },
  description: { maxLength: 255 },
  country: { maxLength: 64 },
  quantity: { maxAbs: 10_000_000 },
  /** Exact decimal text (GBP prices in the source go to 3 places); 15 digits fit a double exactly. */
  unitPrice: { integerDigits: 12, decimals: 3 },
  /** The file writes `17850` or `17850.0`; none is empty (about 25% of the real lines). */
  customerId: { digits: 12 },
  /** Europe/London wall-clock time, no zone. */
  localDateTime: { format: 'YYYY-MM-DDTHH:MM:SS' },
  /**
   * The years of the warehouse's calendar (dim_date holds 2000-01-01 .. 2040-12-31, migration
   * 0002_dim_date_calendar.sql): a line dated outside it is refused at every door, not accepted by
   * the API and then refused by the warehouse.
   */
  invoiceDate: { firstYear: 2000, lastYear: 2040 },
  /** Lineage instants: UTC or with an offset, up to nanoseconds. */
  instant: { maxFractionDigits: 9 },
  /** Encodings a source file may be in (the decoder in core/text-encoding.ts reads these names). */
  encodings: ['utf8', 'latin1'],
} as const;

export type SourceEncoding = (typeof RULES.encodings)[number];
export const ENCODINGS: readonly SourceEncoding[] = RULES.encodings;

export function isSourceEncoding(name: string): name is SourceEncoding {
  return (ENCODINGS as readonly string[]).includes(name);
}

// ----- invoice number ---------------------------------------------------------------------------

const inv = RULES.invoiceNo;
export const INVOICE_NO = new RegExp(`^[${inv.prefixFrom}-${inv.prefixTo}]?\\d{1,${inv.digits}}$`);
/** Char codes of the prefix range, for the byte path. */
export const INVOICE_PREFIX_FROM = inv.prefixFrom.charCodeAt(0);
export const INVOICE_PREFIX_TO = inv.prefixTo.charCodeAt(0);
export const INVOICE_NO_WORDING = `1-${inv.digits} digits, optionally prefixed by one capital letter (${inv.prefixFrom}-${inv.prefixTo})`;

// ----- numbers ----------------------------------------------------------------------------------

export const LINE_NO_WORDING = `a whole number from ${RULES.lineNo.min} to ${RULES.lineNo.max.toLocaleString('en')}`;

export const QUANTITY_MAX = RULES.quantity.maxAbs;
/** The most digits a quantity in range has: the byte path's bound before it adds digits up. */
export const QUANTITY_DIGITS = String(QUANTITY_MAX).length;
export const QUANTITY_WORDING = `|q| <= ${QUANTITY_MAX.toLocaleString('en')}`;

const price = RULES.unitPrice;
export const PRICE_INTEGER_DIGITS = price.integerDigits;
export const PRICE_DECIMALS = price.decimals;
/** Decimal text as the schema and the warehouse keep it: `-?digits[.digits]`. */
export const DECIMAL = new RegExp(`^-?\\d{1,${price.integerDigits}}(\\.\\d{1,${price.decimals}})?$`);
export const DECIMAL_WORDING = `a decimal with at most ${price.integerDigits} digits before the point and ${price.decimals} after`;

/**
 * Decimal text as written -> as kept, or undefined when it is not one. Hand-edited files write
 * `.5`, `5.` and `+5`: the same numbers, normalised to the form {@link DECIMAL} takes.
 */
export function decimalOf(text: string): string | undefined {
  let s = text.trim();
  if (s.startsWith('+')) {
    s = s.slice(1);
    if (s.startsWith('-')) return undefined;
  }
  // A point alone is no number (it would otherwise normalise to 0 below).
  if (!/\d/.test(s)) return undefined;
  if (s.startsWith('.')) s = `0${s}`;
  else if (s.startsWith('-.')) s = `-0${s.slice(1)}`;
  if (s.endsWith('.')) s = s.slice(0, -1);
  return DECIMAL.test(s) ? s : undefined;
}

export const CUSTOMER_ID_DIGITS = RULES.customerId.digits;
const CUSTOMER_ID = new RegExp(`^(\\d{1,${CUSTOMER_ID_DIGITS}})(?:\\.0*)?$`);
export const CUSTOMER_ID_WORDING = `a whole number of at most ${CUSTOMER_ID_DIGITS} digits`;

/** A customer id as written (`17850`, `17850.0`, blank) -> its digits, null for none, undefined when malformed. */
export function customerIdOf(text: string): string | null | undefined {
  const s = text.trim();
  if (s === '') return null;
  const m = CUSTOMER_ID.exec(s);
  return m ? m[1] : undefined;
}

// ----- text -------------------------------------------------------------------------------------

/**
 * Control characters are refused in text fields: they have no place in an invoice and break
 * CSV/COPY downstream. Tab, LF and CR are not in the set: a quoted CSV field may hold a line break.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is this pattern's job
export const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

export type TextField = 'stockCode' | 'description' | 'country';
export const TEXT_MAX: Readonly<Record<TextField, number>> = {
  stockCode: RULES.stockCode.maxLength,
  description: RULES.description.maxLength,
  country: RULES.country.maxLength,
};

/**
 * Why a text value (already trimmed) is refused, worded to follow the field's name, or undefined.
 * Length is counted in UTF-16 units, as every path counts it.
 */
export function textProblem(value: string, field: TextField): string | undefined {
  if (CONTROL.test(value))
    return value.includes('\u0000') ? 'contains a NUL byte' : 'contains control characters';
  const max = TEXT_MAX[field];
  if (value.length > max) return `is longer than ${max} characters`;
  return undefined;
}

// ----- time -------------------------------------------------------------------------------------

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Whether the parts name a real calendar time (month 1-12, the month's days, 00:00:00-23:59:59). */
export function isCalendarTime(y: number, mo: number, d: number, h: number, mi: number, s: number): boolean {
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return false;
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  return d <= (mo === 2 && !leap ? 28 : (DAYS_IN_MONTH[mo - 1] ?? 0));
}

/** The shape of a local date-time; {@link isLocalDateTime} also checks the calendar. */
export const LOCAL_DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})$/;
export const LOCAL_DATE_TIME_WORDING = `local time ${RULES.localDateTime.format}`;

export function isLocalDateTime(text: string): boolean {
  const m = LOCAL_DATE_TIME.exec(text);
  return (
    m !== null &&
    isCalendarTime(Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]))
  );
}

const calendar = RULES.invoiceDate;
export const INVOICE_DATE_WORDING = `a date in ${calendar.firstYear}-${calendar.lastYear} (the warehouse's calendar)`;

/** Whether a local date-time (`YYYY-MM-DDTHH:MM:SS`, already checked) falls in the warehouse's calendar. */
export function inInvoiceCalendar(local: string): boolean {
  const year = Number(local.slice(0, 4));
  return year >= calendar.firstYear && year <= calendar.lastYear;
}

export const ISO_INSTANT = new RegExp(
  `^(\\d{4})-(\\d{2})-(\\d{2})T(\\d{2}):(\\d{2}):(\\d{2})(\\.\\d{1,${RULES.instant.maxFractionDigits}})?(Z|[+-]([01]\\d|2[0-3]):[0-5]\\d)$`,
);
export const ISO_INSTANT_WORDING = 'an ISO-8601 instant (YYYY-MM-DDTHH:MM:SS[.fraction], then Z or ±HH:MM)';

/** An ISO-8601 instant's epoch ms, or undefined when the text is not one (Date.parse alone rolls Feb 30 over). */
export function instantMs(text: string): number | undefined {
  const m = ISO_INSTANT.exec(text);
  if (!m) return undefined;
  if (!isCalendarTime(Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])))
    return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}
