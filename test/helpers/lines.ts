import type { AcceptedLine, InvoiceLine, InvoiceLineInput } from '#core/invoice-line';

/**
 * The one invoice line the tests build on: the first line of the real file (invoice 536365), in
 * the API's input shape. Tests override only the fields they are about.
 */
export const FIRST_LINE = {
  invoiceNo: '536365',
  lineNo: 1,
  stockCode: '85123A',
  description: 'WHITE HANGING HEART T-LIGHT HOLDER',
  quantity: 6,
  invoiceDate: '2010-12-01T08:26:00',
  unitPrice: '2.55',
  customerId: '17850',
  country: 'United Kingdom',
} as const satisfies InvoiceLineInput;

/** A line as the producer sends it (no producedAt unless given). */
export function inputLine(overrides: Partial<InvoiceLineInput> = {}): InvoiceLineInput {
  return { ...FIRST_LINE, ...overrides };
}

/** A validated line, with producedAt. */
export function invoiceLine(overrides: Partial<InvoiceLine> = {}): InvoiceLine {
  return { ...FIRST_LINE, producedAt: '2026-12-06T07:00:00.000Z', ...overrides };
}

/** A line the API accepted (producedAt and acceptedAt set). */
export function acceptedLine(overrides: Partial<AcceptedLine> = {}): AcceptedLine {
  return { ...invoiceLine(), acceptedAt: '2026-12-06T07:00:00.050Z', ...overrides };
}

/** `count` lines of one invoice, numbered from 1, each with its own stock code. */
export function invoiceLines(count: number, overrides: Partial<InvoiceLineInput> = {}): InvoiceLineInput[] {
  return Array.from({ length: count }, (_, i) =>
    inputLine({ stockCode: `T${String(i + 1).padStart(4, '0')}`, ...overrides, lineNo: i + 1 }),
  );
}

/** One row of an Online Retail CSV (the file's header order), fields joined as given. */
export function csvRow(fields: Partial<Record<CsvField, string | number>> = {}): string {
  return csvFields(fields).join(',');
}

/** The fields of one CSV row in the file's header order, as a CSV parser hands them over. */
export function csvFields(fields: Partial<Record<CsvField, string | number>> = {}): string[] {
  const f = { ...CSV_FIRST_ROW, ...fields };
  return CSV_FIELDS.map((k) => String(f[k]));
}

const CSV_FIELDS = [
  'InvoiceNo',
  'StockCode',
  'Description',
  'Quantity',
  'InvoiceDate',
  'UnitPrice',
  'CustomerID',
  'Country',
] as const;
type CsvField = (typeof CSV_FIELDS)[number];

/** The header line of the real file. */
export const CSV_HEADER = CSV_FIELDS.join(',');

const CSV_FIRST_ROW: Record<CsvField, string | number> = {
  InvoiceNo: '536365',
  StockCode: '85123A',
  Description: 'WHITE HANGING HEART T-LIGHT HOLDER',
  Quantity: 6,
  InvoiceDate: '12/1/2010 8:26',
  UnitPrice: '2.55',
  CustomerID: '17850',
  Country: 'United Kingdom',
};
