import { parse } from 'csv-parse/sync';

/**
 * The ingestion zone's CSV (the CDC contract): RFC 4180, UTF-8, `\n` line ends, a header line. NULL is
 * an empty unquoted field and the empty string is `""`, so the two stay apart through the zone.
 */

/** A field as the zone carries it: text, or null for SQL NULL. */
export type CsvField = string | null;

const NEEDS_QUOTES = /[",\r\n]/;

export function csvField(value: CsvField): string {
  if (value === null) return '';
  if (value === '' || NEEDS_QUOTES.test(value)) return `"${value.replaceAll('"', '""')}"`;
  return value;
}

export function csvLine(fields: readonly CsvField[]): string {
  return `${fields.map(csvField).join(',')}\n`;
}

export function toCsv(header: readonly string[], rows: ReadonlyArray<readonly CsvField[]>): string {
  let out = csvLine(header);
  for (const row of rows) out += csvLine(row);
  return out;
}

export class CsvFormatError extends Error {
  override name = 'CsvFormatError';
}

/** Parses a zone CSV back: the header and the rows, an empty unquoted field as null. */
export function parseCsv(text: string): { header: string[]; rows: CsvField[][] } {
  let records: CsvField[][];
  try {
    records = parse(text, {
      relax_quotes: false,
      skip_empty_lines: false,
      // csv-parse reports whether a field was quoted: that is the NULL / empty-string distinction.
      cast: (value, context) => (value === '' && !context.quoting ? null : value),
    }) as CsvField[][];
  } catch (cause) {
    throw new CsvFormatError(`not a valid ingestion CSV: ${(cause as Error).message}`, { cause });
  }
  const [header, ...rows] = records;
  if (!header) throw new CsvFormatError('not a valid ingestion CSV: no header line');
  if (header.some((h) => h === null))
    throw new CsvFormatError('not a valid ingestion CSV: empty header name');
  for (const [i, row] of rows.entries()) {
    if (row.length !== header.length) {
      throw new CsvFormatError(
        `not a valid ingestion CSV: row ${i + 1} has ${row.length} fields, the header ${header.length}`,
      );
    }
  }
  return { header: header as string[], rows };
}
