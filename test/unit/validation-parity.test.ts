import type { Readable } from 'node:stream';
import { parse } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import { type CsvEncoding, CsvTyper } from '#batch/csv-typer';
import { CsvRowEncoder } from '#batch/encoders';
import { LineTyper } from '#batch/typer';
import { invoiceLineInput } from '#core/invoice-line';
import { ENCODINGS, RULES, type SourceEncoding } from '#core/rules';
import {
  DEFAULT_COLUMNS,
  parseSourceDate,
  parseSourceRow,
  SOURCE_COLUMNS,
  type SourceColumn,
} from '#core/source-row';
import { fileCases, HEADER, requestCases } from '#test/fixtures/bad-input/corpus';
import { CSV_HEADER, inputLine } from '#test/helpers/lines';

/**
 * One rule for each thing: every path that validates a line (the API's schema, the source-row
 * parser of replay and the loader, the loader's byte path and its string path, the archive reader)
 * gives the same verdict on the same row, and where paths give reasons they name the same column.
 * The rows: the bad-input corpus (its files' rows, and its requests' lines that are a row's values)
 * and a row at each side of every limit of core/rules.ts.
 */

type Fields = Record<SourceColumn, string>;
interface Case {
  name: string;
  fields: Fields;
}
interface Verdict {
  ok: boolean;
  /** The column the path blames (when it says), or the reason text (when it only words one). */
  column?: SourceColumn | undefined;
  reason?: string | undefined;
}

// ----- the rows -----------------------------------------------------------------------------------

const BASE: Fields = {
  InvoiceNo: '536365',
  StockCode: '85123A',
  Description: 'WHITE HANGING HEART T-LIGHT HOLDER',
  Quantity: '6',
  InvoiceDate: '2011-06-01T10:00:00',
  UnitPrice: '2.55',
  CustomerID: '17850',
  Country: 'United Kingdom',
};
const edge = (name: string, over: Partial<Fields>): Case => ({ name, fields: { ...BASE, ...over } });
const digits = (n: number) => '1234567890'.repeat(Math.ceil(n / 10)).slice(0, n);
const { stockCode, description, country, quantity, unitPrice, customerId, invoiceNo } = RULES;

/** An invoice date at each side of the warehouse calendar's ends, and whether it is accepted. */
const CALENDAR: ReadonlyArray<[date: string, accepted: boolean]> = [
  ['1999-12-31T23:59:59', false],
  ['2000-01-01T00:00:00', true],
  ['2040-12-31T23:59:59', true],
  ['2041-01-01T00:00:00', false],
];
const CALENDAR_EDGES = () => CALENDAR.map(([date]) => edge(`invoice date ${date}`, { InvoiceDate: date }));

const EDGES: Case[] = [
  edge('the base row', {}),
  edge('stock code at its limit', { StockCode: 'S'.repeat(stockCode.maxLength) }),
  edge('stock code one over', { StockCode: 'S'.repeat(stockCode.maxLength + 1) }),
  edge('non-ASCII stock code at its limit', { StockCode: 'É'.repeat(stockCode.maxLength) }),
  edge('non-ASCII stock code one over', { StockCode: 'É'.repeat(stockCode.maxLength + 1) }),
  edge('blank stock code', { StockCode: '   ' }),
  edge('description at its limit', { Description: 'D'.repeat(description.maxLength) }),
  edge('description one over', { Description: 'D'.repeat(description.maxLength + 1) }),
  edge('non-ASCII description at its limit', { Description: `£${'é'.repeat(description.maxLength - 1)}` }),
  edge('non-ASCII description one over', { Description: `£${'é'.repeat(description.maxLength)}` }),
  edge('padded description at its limit', { Description: ` ${'D'.repeat(description.maxLength)} ` }),
  edge('no description', { Description: '' }),
  edge('country at its limit', { Country: 'C'.repeat(country.maxLength) }),
  edge('country one over', { Country: 'C'.repeat(country.maxLength + 1) }),
  edge('no country', { Country: '' }),
  edge('quantity at +max', { Quantity: String(quantity.maxAbs) }),
  edge('quantity at -max', { Quantity: String(-quantity.maxAbs) }),
  edge('quantity one over +max', { Quantity: String(quantity.maxAbs + 1) }),
  edge('quantity one under -max', { Quantity: String(-quantity.maxAbs - 1) }),
  edge('quantity with a digit more than max', { Quantity: digits(String(quantity.maxAbs).length + 1) }),
  edge('quantity 0', { Quantity: '0' }),
  edge('fractional quantity', { Quantity: '1.5' }),
  edge('quantity as words', { Quantity: 'six' }),
  edge('price with all integer digits', { UnitPrice: digits(unitPrice.integerDigits) }),
  edge('price with an integer digit more', { UnitPrice: digits(unitPrice.integerDigits + 1) }),
  edge('price with all decimals', { UnitPrice: `1.${digits(unitPrice.decimals)}` }),
  edge('price with a decimal more', { UnitPrice: `1.${digits(unitPrice.decimals + 1)}` }),
  edge('largest price', {
    UnitPrice: `${'9'.repeat(unitPrice.integerDigits)}.${'9'.repeat(unitPrice.decimals)}`,
  }),
  edge('negative price', { UnitPrice: '-11062.06' }),
  edge('price written .5', { UnitPrice: '.5' }),
  edge('price written 5.', { UnitPrice: '5.' }),
  edge('price written +1.5', { UnitPrice: '+1.5' }),
  edge('price written +-1.5', { UnitPrice: '+-1.5' }),
  edge('price a point alone', { UnitPrice: '.' }),
  edge('price with an exponent', { UnitPrice: '1e3' }),
  edge('price NaN', { UnitPrice: 'NaN' }),
  edge('invoice number with all digits', { InvoiceNo: digits(invoiceNo.digits) }),
  edge('invoice number with a digit more', { InvoiceNo: digits(invoiceNo.digits + 1) }),
  edge('cancellation', { InvoiceNo: 'C536379', Quantity: '-1' }),
  edge('adjustment', { InvoiceNo: 'A563185' }),
  edge('another capital prefix', { InvoiceNo: 'B536365' }),
  edge('the last capital prefix', { InvoiceNo: 'Z536365' }),
  edge('lower-case prefix', { InvoiceNo: 'c536365' }),
  edge('two prefix letters', { InvoiceNo: 'CC536365' }),
  edge('prefix alone', { InvoiceNo: 'C' }),
  edge('no invoice number', { InvoiceNo: '' }),
  edge('customer id with all digits', { CustomerID: digits(customerId.digits) }),
  edge('customer id with a digit more', { CustomerID: digits(customerId.digits + 1) }),
  edge('customer id written 17850.0', { CustomerID: '17850.0' }),
  edge('customer id written 17850.', { CustomerID: '17850.' }),
  edge('fractional customer id', { CustomerID: '17850.5' }),
  edge('blank customer id', { CustomerID: '  ' }),
  edge('leap day', { InvoiceDate: '2012-02-29T10:00:00' }),
  edge('leap day of a common year', { InvoiceDate: '2011-02-29T10:00:00' }),
  edge('month 13', { InvoiceDate: '2011-13-01T10:00:00' }),
  edge('hour 24', { InvoiceDate: '2011-06-01T24:00:00' }),
  edge('minute 60', { InvoiceDate: '2011-06-01T10:60:00' }),
  edge('date without a time', { InvoiceDate: '2011-06-01' }),
  // The warehouse's calendar (dim_date, migration 0002) holds 2000-01-01 .. 2040-12-31.
  ...CALENDAR_EDGES(),
  // Control characters (the CONTROL set), and what is not in it.
  edge('NUL in a description', { Description: 'NUL\u0000HERE' }),
  edge('BEL in a description', { Description: 'BELL\u0007' }),
  edge('ESC in a description', { Description: 'ESC\u001b' }),
  edge('DEL in a stock code', { StockCode: '22755\u007f' }),
  edge('vertical tab in a country', { Country: 'Fr\u000bance' }),
  edge('form feed in a country', { Country: 'Fr\u000cance' }),
  edge('tab in a description', { Description: 'TAB\tINSIDE' }),
  edge('C1 control in a description', { Description: 'C1\u0085' }),
];

/** The bad-input corpus's file rows: the rows of every file written with the standard header. */
function corpusFileRows(): Case[] {
  const out: Case[] = [];
  for (const file of fileCases) {
    const text = file.body.toString('utf8');
    const [header, ...rows] = text.split('\n');
    if (header !== HEADER) continue;
    rows.forEach((row, i) => {
      if (row === '') return;
      let records: string[][];
      try {
        records = parse(row) as string[][];
      } catch {
        return; // a record CSV cannot read (a stray quote): no row values to compare
      }
      const cells = records[0] ?? [];
      const fields = Object.fromEntries(SOURCE_COLUMNS.map((c, k) => [c, cells[k] ?? ''])) as Fields;
      out.push({ name: `corpus file "${file.name}" row ${i + 1}`, fields });
    });
  }
  return out;
}

const SCHEMA_TYPES: Record<string, ReadonlyArray<string>> = {
  invoiceNo: ['string'],
  stockCode: ['string'],
  description: ['string', 'null'],
  quantity: ['number'],
  invoiceDate: ['string'],
  unitPrice: ['string', 'number'],
  customerId: ['string', 'number', 'null'],
  country: ['string'],
};

/**
 * The bad-input corpus's request lines that are a row's values: one line, each value of the JSON
 * type the schema takes (a value of another JSON type has no CSV spelling to compare with).
 */
function corpusRequestRows(): Case[] {
  const out: Case[] = [];
  for (const c of requestCases) {
    if (c.method === 'GET' || typeof c.body !== 'string' || c.status !== 400) continue;
    let lines: unknown;
    try {
      lines = JSON.parse(c.body);
    } catch {
      continue;
    }
    if (!Array.isArray(lines) || lines.length !== 1) continue;
    const line = lines[0] as Record<string, unknown>;
    if (typeof line !== 'object' || line === null || line.lineNo !== 1 || 'producedAt' in line) continue;
    const typed = Object.entries(SCHEMA_TYPES).every(([k, types]) => {
      const v = line[k];
      return v === undefined || types.includes(v === null ? 'null' : typeof v);
    });
    if (!typed) continue;
    const text = (k: string) => (line[k] === undefined || line[k] === null ? '' : String(line[k]));
    out.push({
      name: `corpus request "${c.name}"`,
      fields: {
        InvoiceNo: text('invoiceNo'),
        StockCode: text('stockCode'),
        Description: text('description'),
        Quantity: text('quantity'),
        InvoiceDate: text('invoiceDate'),
        UnitPrice: text('unitPrice'),
        CustomerID: text('customerId'),
        Country: text('country'),
      },
    });
  }
  return out;
}

// ----- the paths ----------------------------------------------------------------------------------

const COLUMN_OF: Record<string, SourceColumn> = {
  invoiceNo: 'InvoiceNo',
  stockCode: 'StockCode',
  description: 'Description',
  quantity: 'Quantity',
  invoiceDate: 'InvoiceDate',
  unitPrice: 'UnitPrice',
  customerId: 'CustomerID',
  country: 'Country',
};

/**
 * The row as a producer sends it to the API: the file's date format read as replay reads it, a
 * numeric quantity as a JSON number, an empty description or customer as null.
 */
function apiLine(f: Fields): Record<string, unknown> {
  const q = f.Quantity.trim();
  return {
    invoiceNo: f.InvoiceNo,
    lineNo: 1,
    stockCode: f.StockCode,
    description: f.Description === '' ? null : f.Description,
    quantity: /^[-+]?\d+(\.\d+)?$/.test(q) ? Number(q) : f.Quantity,
    invoiceDate: parseSourceDate(f.InvoiceDate) ?? f.InvoiceDate,
    unitPrice: f.UnitPrice,
    customerId: f.CustomerID === '' ? null : f.CustomerID,
    country: f.Country,
  };
}

function viaSchema(f: Fields): Verdict {
  const parsed = invoiceLineInput.safeParse(apiLine(f));
  if (parsed.success) return { ok: true };
  const issue = parsed.error.issues[0];
  return { ok: false, column: COLUMN_OF[String(issue?.path[0])], reason: issue?.message };
}

function viaSourceRow(f: Fields): Verdict {
  const parsed = parseSourceRow(SOURCE_COLUMNS.map((c) => f[c]));
  return parsed.ok ? { ok: true } : { ok: false, column: parsed.column, reason: parsed.reason };
}

/** The archive reader: the line as the stream path archives it, read by the loader. */
function viaArchive(f: Fields): Verdict {
  const lines = new LineTyper({ loadId: 'parity', objectKey: 'archive', encoder: new CsvRowEncoder() });
  lines.archiveRecord(JSON.stringify(apiLine(f)), 1);
  if (lines.rowsLoaded === 1) return { ok: true };
  return { ok: false };
}

const csvCell = (v: string) => (/[",\r\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v);

async function drain(stream: Readable): Promise<string> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(parts).toString('utf8');
}

/**
 * The loader's CSV typer over a one-row file written in `encoding`, on the byte path or the string
 * path, read as `readAs` (the loader detects it).
 */
async function viaTyper(
  f: Fields,
  encoding: SourceEncoding,
  bytePath: boolean,
  readAs: CsvEncoding = encoding,
): Promise<Verdict & { fast: number }> {
  const lines = new LineTyper({ loadId: 'parity', objectKey: 'file.csv', encoder: new CsvRowEncoder() });
  const typer = new CsvTyper(lines, DEFAULT_COLUMNS, readAs, { bytePath });
  typer.resume();
  const done = new Promise<void>((resolve, reject) => {
    typer.on('end', resolve);
    typer.on('error', reject);
  });
  typer.end(Buffer.from(`${SOURCE_COLUMNS.map((c) => csvCell(f[c])).join(',')}\n`, encoding));
  await done;
  const fast = typer.fastRecords;
  if (lines.rowsLoaded === 1) return { ok: true, fast };
  const [reject] = parse(await drain(await lines.rejects.readable())) as string[][];
  return { ok: false, reason: reject?.[3], fast };
}

const fitsLatin1 = (f: Fields) =>
  Object.values(f).every((v) => [...v].every((ch) => ch.charCodeAt(0) <= 0xff));

/** Every path's verdict on a row but source-row's, and how many records the byte path took. */
async function verdictsOf(f: Fields): Promise<{ verdicts: Record<string, Verdict>; fast: number }> {
  const verdicts: Record<string, Verdict> = { schema: viaSchema(f), archive: viaArchive(f) };
  let fast = 0;
  for (const encoding of ENCODINGS) {
    if (encoding === 'latin1' && !fitsLatin1(f)) continue;
    for (const bytePath of [true, false]) {
      const v = await viaTyper(f, encoding, bytePath);
      fast += v.fast;
      verdicts[`${bytePath ? 'byte' : 'string'} path (${encoding})`] = v;
      const detected = await viaTyper(f, encoding, bytePath, 'detect');
      verdicts[`${bytePath ? 'byte' : 'string'} path (${encoding}, detected as the loader does)`] = detected;
    }
  }
  return { verdicts, fast };
}

// ----- the test -----------------------------------------------------------------------------------

describe('validation parity: every path, the same verdict on the same rows', () => {
  const CASES = [...EDGES, ...corpusFileRows(), ...corpusRequestRows()];

  it('has the corpus and every limit in its rows', () => {
    expect(corpusFileRows().length).toBeGreaterThanOrEqual(20);
    expect(corpusRequestRows().length).toBeGreaterThanOrEqual(15);
    expect(EDGES.filter((c) => viaSourceRow(c.fields).ok).length).toBeGreaterThan(20);
    expect(EDGES.filter((c) => !viaSourceRow(c.fields).ok).length).toBeGreaterThan(20);
    expect(ENCODINGS).toEqual(['utf8', 'latin1']);
  });

  it('the schema, source-row, the archive reader and both typer paths in each encoding agree', async () => {
    const disagreements: string[] = [];
    let fastRecords = 0;
    for (const c of CASES) {
      const row = viaSourceRow(c.fields);
      const { verdicts, fast } = await verdictsOf(c.fields);
      fastRecords += fast;
      for (const [path, v] of Object.entries(verdicts)) {
        if (v.ok !== row.ok)
          disagreements.push(
            `${c.name}: source-row ${row.ok ? 'accepts' : `refuses (${row.reason})`}, ${path} ${
              v.ok ? 'accepts' : `refuses (${v.reason})`
            }`,
          );
        else if (!row.ok && v.column !== undefined && v.column !== row.column)
          disagreements.push(`${c.name}: source-row blames ${row.column}, ${path} blames ${v.column}`);
        else if (!row.ok && v.column === undefined && v.reason !== undefined && v.reason !== row.reason)
          disagreements.push(`${c.name}: source-row says "${row.reason}", ${path} says "${v.reason}"`);
      }
    }
    expect(disagreements).toEqual([]);
    // The byte path took the plain rows itself (a fall back to the string path for every row would
    // make it agree by never deciding).
    expect(fastRecords).toBeGreaterThan(40);
  });

  it("refuses an invoice date outside the warehouse's calendar on every path, and takes its ends", async () => {
    const wrong: string[] = [];
    for (const [date, accepted] of CALENDAR) {
      const fields = { ...BASE, InvoiceDate: date };
      const { verdicts } = await verdictsOf(fields);
      verdicts['source-row'] = viaSourceRow(fields);
      for (const [path, v] of Object.entries(verdicts))
        if (v.ok !== accepted) wrong.push(`${date}: ${path} ${v.ok ? 'accepts' : `refuses (${v.reason})`}`);
    }
    expect(wrong).toEqual([]);
    // The source-row reason names the column and the calendar's years, from core/rules.ts.
    expect(viaSourceRow({ ...BASE, InvoiceDate: '12/31/1999 23:59' })).toEqual({
      ok: false,
      column: 'InvoiceDate',
      reason: `InvoiceDate "12/31/1999 23:59" is not a date in ${RULES.invoiceDate.firstYear}-${RULES.invoiceDate.lastYear} (the warehouse's calendar)`,
    });
  });

  it('holds lineNo to its bounds in the schema (a file numbers its own lines)', () => {
    const at = (lineNo: number) => invoiceLineInput.safeParse(inputLine({ lineNo })).success;
    expect([
      at(RULES.lineNo.min - 1),
      at(RULES.lineNo.min),
      at(RULES.lineNo.max),
      at(RULES.lineNo.max + 1),
    ]).toEqual([false, true, true, false]);
  });

  it('a refusal names its column in words made from the rules', () => {
    const r = parseSourceRow(
      CSV_HEADER.split(',').map((c) => (c === 'InvoiceNo' ? 'c1' : BASE[c as SourceColumn])),
    );
    expect(r).toEqual({
      ok: false,
      column: 'InvoiceNo',
      reason: `InvoiceNo "c1" is not 1-${RULES.invoiceNo.digits} digits, optionally prefixed by one capital letter (A-Z)`,
    });
    const api = invoiceLineInput.safeParse(inputLine({ invoiceNo: 'c1' }));
    expect(api.error?.issues[0]?.message).toBe(
      `must be 1-${RULES.invoiceNo.digits} digits, optionally prefixed by one capital letter (A-Z)`,
    );
  });
});
