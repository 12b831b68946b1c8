import { Transform, type TransformCallback } from 'node:stream';
import { dateKey, wallClockMs } from '#core/dates';
import { invoiceLineInput, lineKey } from '#core/invoice-line';
import { thousandths } from '#core/money';
import { isNonProductCode } from '#core/non-product';
import { instantMs, RULES } from '#core/rules';
import { type ColumnMap, SOURCE_COLUMNS } from '#core/source-row';
import { createSourceDecoder } from '#core/text-encoding';
import { Interner } from './bytes.ts';
import { Spool } from './spool.ts';

/**
 * Types and validates a source object's rows in the loader, on their way into COPY. The rules are
 * the producer's: a CSV row is read by `parseSourceRow` (core/source-row.ts), exactly as
 * `retail-pipeline replay` reads it, and gets `line_no` exactly as replay assigns it (its position
 * among the valid rows of its invoice, in file order), so a file and its replay through the stream
 * converge on the same keys by construction; an archive line is checked by the API's schema
 * (core/invoice-line.ts). Rows arrive in the warehouse already typed (PostgreSQL: binary COPY
 * tuples, Redshift: CSV for COPY FROM S3); bad rows go to a spool with their reason, and the
 * dimension counts of the good ones are kept on the way.
 */

/** A line ready for the warehouse. Times: `invoiceDate` wall-clock text; the others epoch ms. */
export interface TypedLine {
  invoiceNo: string;
  lineNo: number;
  dateKey: number;
  /** Wall-clock `YYYY-MM-DDTHH:MM:SS` (Europe/London, no zone). */
  invoiceDate: string;
  /** The same wall-clock time read as UTC, in epoch ms: a `timestamp`'s value. */
  invoiceMs: number;
  stockCode: string;
  /** Ids in LineTyper's interners (the description's: of '' when there is none). */
  stockId: number;
  description: string | null;
  descriptionId: number;
  /** The (stock code, description) pair's id: LineTyper.productOf. */
  productId: number;
  customerId: string | null;
  country: string;
  /** Ids in LineTyper's interners of the customer (-1: none) and the country, set when accepted. */
  customerNo: number;
  countryNo: number;
  quantity: number;
  /** Unit price in thousandths (exact: at most 15 digits). */
  price: number;
  isNonProduct: boolean;
  isDuplicateRow: boolean;
  producedAt: number | null;
  acceptedAt: number | null;
  streamVisibleAt: number | null;
}

/** The typed columns, in COPY order: the fact's columns less the three a load stamps. */
export const TYPED_COLUMNS = [
  'invoice_no',
  'line_no',
  'date_key',
  'invoice_date',
  'stock_code',
  'description',
  'customer_id',
  'country_name',
  'quantity',
  'unit_price',
  'line_total',
  'is_cancellation',
  'is_adjustment',
  'is_non_product',
  'is_duplicate_row',
  'produced_at',
  'accepted_at',
  'stream_visible_at',
] as const;
/** What a load stamps on every row it writes straight into the fact. */
export const STAMP_COLUMNS = ['warehouse_visible_at', 'source', 'source_key'] as const;
/**
 * Which columns a PgBinaryEncoder writes (encoders.ts, BINARY_COLUMNS): TYPED_COLUMNS ('typed'),
 * those and STAMP_COLUMNS ('fact'), or TYPED_COLUMNS without the lineage times ('bulk': a file's
 * rows into an empty fact, the stamp from column defaults, 15 fields a row instead of 21).
 */
export type BinaryLayout = 'typed' | 'fact' | 'bulk';

export interface Stamp {
  visibleAtMs: number;
  source: 'stream' | 'file';
  sourceKey: string;
}

/** Encodes typed lines for one COPY. */
export interface RowEncoder {
  /** The COPY's column list, in the order `write` writes the fields. */
  readonly columns: readonly string[];
  readonly header: Buffer | undefined;
  readonly trailer: Buffer | undefined;
  write(line: TypedLine): void;
  /** Bytes written since the last take (empty when none). */
  take(): Buffer;
}

/** Price text (already validated) as thousandths: exact, the schema allows at most 15 digits. */
export function thousandthsOf(price: string): number {
  const n = thousandths(price);
  if (n === undefined) throw new Error(`not a price: ${price}`);
  return n;
}

/** A CSV cell: quoted when it must be; empty = NULL (COPY's CSV default). */
export function csvCell(v: string | number | boolean | null | undefined): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'boolean' ? (v ? 't' : 'f') : String(v);
  return s === '' || /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** A rejected CSV row's values, in SOURCE_COLUMNS order. */
export function rawFields(fields: readonly string[], columns: ColumnMap): Array<string | undefined> {
  const out: Array<string | undefined> = [];
  for (const c of SOURCE_COLUMNS) out.push(fields[columns[c]]);
  return out;
}

/** Rejected-row values are stored as text: no NUL (PostgreSQL text cannot hold one), 256 characters. */
const rejectedValue = (v: string | null | undefined) =>
  v === null || v === undefined ? null : v.replaceAll('\u0000', '').slice(0, 256);

export interface TyperOptions {
  loadId: string;
  objectKey: string;
  encoder: RowEncoder;
}

/**
 * The row-level state of one object's load: line numbers, duplicate detection, the rejected rows,
 * the dimension counts. Format-specific readers (CsvTyper, NdjsonTyper) feed it.
 */
export class LineTyper {
  readonly rejects = new Spool();
  /** Stock codes and descriptions ('' = none), by id; per stock code id, its lines per description id. */
  readonly codes = new Interner();
  readonly descriptions = new Interner();
  private readonly nonProduct: boolean[] = [];
  /**
   * Each distinct (stock code id, description id) pair of the object, by id: its parts, its lines,
   * and (for duplicate detection) the current invoice's latest row with it.
   */
  private readonly productIds = new Map<number, number>();
  readonly productStock: number[] = [];
  readonly productDescription: number[] = [];
  private readonly productLines: number[] = [];
  private readonly productInvoice: number[] = [];
  private readonly productLatest: number[] = [];
  private readonly customers = new Map<string, Map<string, number>>();
  private readonly countries = new Set<string>();
  /**
   * Invoices whose rows are not contiguous in the object: their duplicate flags are decided by
   * SQL over the invoice once loaded (the typer only remembers the rows of the current invoice).
   */
  readonly reopened = new Set<string>();
  rowsRead = 0;
  rowsLoaded = 0;
  private readonly lineNos = new Map<string, number>();
  private readonly seenKeys = new Set<string>();
  private readonly rejectedAt = new Date().toISOString();
  // Consecutive rows mostly share their invoice, customer and country: runs are counted, not looked up.
  private numbering = '';
  private numbered = 0;
  private invoice = '';
  private readonly closed = new Set<string>();
  /** The run of rows with the same customer and country being counted, and the last country seen. */
  private customer = '';
  private customerCountry = '';
  private customerRun = 0;
  private lastCountry = '';
  private dateKeyLocal = '';
  private dateKeyValue = 0;
  /**
   * The current invoice's distinct rows, 6 numbers each: quantity, price, time, customer and
   * country ids (with the product, what makes a row a duplicate of an earlier one), and the offset
   * of the invoice's previous row of the same product (-1: none). Reused from invoice to invoice.
   */
  private rows: number[] = [];
  /** Numbers the invoices as they start, so productInvoice tells whether productLatest is current. */
  private invoiceSerial = 0;
  private readonly customerIds = new Interner();
  private readonly countryIds = new Interner();
  private lastCustomerKey: string | null | undefined;
  private lastCustomerId = -1;
  private lastCountryKey = '';
  private lastCountryId = -1;
  /**
   * The row being typed, reused for every row (no allocation per row): a reader fills its values
   * (ids from the interners above), then `csvRow` / the archive reader completes and writes it.
   */
  readonly row: TypedLine = {
    invoiceNo: '',
    lineNo: 0,
    dateKey: 0,
    invoiceDate: '',
    invoiceMs: 0,
    stockCode: '',
    stockId: 0,
    description: null,
    descriptionId: 0,
    productId: 0,
    customerId: null,
    country: '',
    customerNo: -1,
    countryNo: -1,
    quantity: 0,
    price: 0,
    isNonProduct: false,
    isDuplicateRow: false,
    producedAt: null,
    acceptedAt: null,
    streamVisibleAt: null,
  };
  constructor(private readonly options: TyperOptions) {}

  get encoder(): RowEncoder {
    return this.options.encoder;
  }

  /** The object's key: what an error about its bytes names. */
  get objectKey(): string {
    return this.options.objectKey;
  }

  reject(lineNumber: number, reason: string, values: ReadonlyArray<string | null | undefined>): void {
    this.rowsRead++;
    const { loadId, objectKey } = this.options;
    // Always the 8 source values (the first holds an unreadable record's text), then the time.
    const cells: Array<string | number | null> = [loadId, objectKey, lineNumber, reason.slice(0, 512)];
    for (let i = 0; i < SOURCE_COLUMNS.length; i++) cells.push(rejectedValue(values[i]));
    this.rejects.add(`${[...cells, this.rejectedAt].map(csvCell).join(',')}\n`);
  }

  /** Whether a stock code (by id) is a non-product; learns the code on first sight. */
  isNonProduct(stockId: number): boolean {
    let v = this.nonProduct[stockId];
    if (v === undefined) {
      v = isNonProductCode(this.codes.values[stockId] as string);
      this.nonProduct[stockId] = v;
    }
    return v;
  }

  /** The id of a (stock code id, description id) pair; learns the pair on first sight. */
  productOf(stockId: number, descriptionId: number): number {
    if (descriptionId >= PRODUCT_KEY_SPAN)
      throw new Error(
        `the object has more than ${PRODUCT_KEY_SPAN.toLocaleString('en')} distinct descriptions`,
      );
    const key = stockId * PRODUCT_KEY_SPAN + descriptionId;
    let id = this.productIds.get(key);
    if (id === undefined) {
      id = this.productStock.length;
      this.productIds.set(key, id);
      this.productStock.push(stockId);
      this.productDescription.push(descriptionId);
      this.productLines.push(0);
      this.productInvoice.push(0);
      this.productLatest.push(-1);
      this.isNonProduct(stockId);
    }
    return id;
  }

  /** The next line number of an invoice (the replay's numbering), or undefined past the rules' last. */
  private nextLineNo(invoiceNo: string): number | undefined {
    if (invoiceNo !== this.numbering) {
      if (this.numbering !== '') this.lineNos.set(this.numbering, this.numbered);
      this.numbering = invoiceNo;
      this.numbered = this.lineNos.get(invoiceNo) ?? 0;
    }
    if (this.numbered >= LINE_NO_MAX) return undefined;
    return ++this.numbered;
  }

  /**
   * The date key of a wall-clock time. Every reader refused a date outside dim_date's calendar
   * before (core/rules.ts, RULES.invoiceDate), as the API does.
   */
  private dateKeyOf(local: string): number {
    if (local === this.dateKeyLocal) return this.dateKeyValue;
    this.dateKeyLocal = local;
    this.dateKeyValue = dateKey(local);
    return this.dateKeyValue;
  }

  /**
   * The CSV row in `row` (parseSourceRow's rules passed; its values and ids filled in). Returns why
   * the warehouse refuses it, or undefined when it was accepted.
   */
  csvRow(): string | undefined {
    const row = this.row;
    // The replay's numbering: a valid row takes the next number of its invoice.
    const lineNo = this.nextLineNo(row.invoiceNo);
    if (lineNo === undefined)
      return `invoice ${row.invoiceNo} has more than ${RULES.lineNo.max.toLocaleString('en')} lines`;
    row.lineNo = lineNo;
    row.dateKey = this.dateKeyOf(row.invoiceDate);
    row.producedAt = null;
    row.acceptedAt = null;
    row.streamVisibleAt = null;
    this.accept();
    return undefined;
  }

  /** Sets the row's stock code, description, customer and country, and their ids, from strings. */
  setText(stockCode: string, description: string | null, customerId: string | null, country: string): void {
    const row = this.row;
    row.stockCode = stockCode;
    row.stockId = this.codes.string(stockCode);
    row.description = description;
    row.descriptionId = this.descriptions.string(description ?? '');
    row.productId = this.productOf(row.stockId, row.descriptionId);
    row.customerId = customerId;
    row.country = country;
  }

  /** One archive line (the stream path's JSON of an accepted, visible line). */
  archiveRecord(text: string, lineNumber: number): void {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      this.reject(lineNumber, 'not a JSON object', [text.slice(0, 256)]);
      return;
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
      this.reject(lineNumber, 'not a JSON object', [text.slice(0, 256)]);
      return;
    }
    const d = doc as Record<string, unknown>;
    const str = (v: unknown) => (v === null || v === undefined ? null : String(v));
    const raw = () =>
      [
        'invoiceNo',
        'stockCode',
        'description',
        'quantity',
        'invoiceDate',
        'unitPrice',
        'customerId',
        'country',
      ].map((k) => str(d[k]));
    const parsed = invoiceLineInput.safeParse(d);
    if (!parsed.success) {
      this.reject(lineNumber, archiveReason(parsed.error.issues[0]), raw());
      return;
    }
    const line = parsed.data;
    const times: Record<'producedAt' | 'acceptedAt' | 'streamVisibleAt', number | null> = {
      producedAt: null,
      acceptedAt: null,
      streamVisibleAt: null,
    };
    for (const k of ['producedAt', 'acceptedAt', 'streamVisibleAt'] as const) {
      const v = d[k];
      if (v === undefined || v === null) continue;
      const ms = typeof v === 'string' ? instantMs(v) : undefined;
      if (ms === undefined) {
        this.reject(lineNumber, `${k} is not an ISO-8601 instant`, raw());
        return;
      }
      times[k] = ms;
    }
    // The archive is at-least-once: a key's first record in the object is the one loaded.
    const key = lineKey(line);
    if (this.seenKeys.has(key)) {
      this.rowsRead++;
      return;
    }
    this.seenKeys.add(key);
    const row = this.row;
    this.setText(
      line.stockCode,
      line.description === null ? null : line.description.trim() || null,
      line.customerId,
      line.country,
    );
    row.invoiceNo = line.invoiceNo;
    row.lineNo = line.lineNo;
    row.dateKey = this.dateKeyOf(line.invoiceDate);
    row.invoiceDate = line.invoiceDate;
    row.invoiceMs = wallClockMs(line.invoiceDate);
    row.quantity = line.quantity;
    row.price = thousandthsOf(line.unitPrice);
    row.producedAt = times.producedAt;
    row.acceptedAt = times.acceptedAt;
    row.streamVisibleAt = times.streamVisibleAt;
    this.accept();
  }

  private accept(): void {
    const line = this.row;
    this.rowsRead++;
    this.rowsLoaded++;
    line.isNonProduct = this.isNonProduct(line.stockId);
    // A duplicate row: the same values as an earlier row of the invoice (the source repeats some).
    // Only the current invoice's rows are kept; an invoice that comes back later is left to SQL.
    if (line.invoiceNo !== this.invoice) {
      if (this.invoice !== '') this.closed.add(this.invoice);
      this.invoice = line.invoiceNo;
      this.invoiceSerial++;
      this.rows.length = 0;
      if (this.closed.has(line.invoiceNo)) this.reopened.add(line.invoiceNo);
    }
    if (line.customerId !== this.lastCustomerKey) {
      this.lastCustomerKey = line.customerId;
      this.lastCustomerId = line.customerId === null ? -1 : this.customerIds.string(line.customerId);
    }
    if (line.country !== this.lastCountryKey) {
      this.lastCountryKey = line.country;
      this.lastCountryId = this.countryIds.string(line.country);
    }
    const customer = this.lastCustomerId;
    const country = this.lastCountryId;
    line.customerNo = customer;
    line.countryNo = country;
    const product = line.productId;
    const rows = this.rows;
    let duplicate = false;
    let previous = -1;
    if (this.productInvoice[product] === this.invoiceSerial) {
      previous = this.productLatest[product] as number;
      for (let k = previous; k !== -1; k = rows[k + 5] as number) {
        if (
          rows[k] === line.quantity &&
          rows[k + 1] === line.price &&
          rows[k + 2] === line.invoiceMs &&
          rows[k + 3] === customer &&
          rows[k + 4] === country
        ) {
          duplicate = true;
          break;
        }
      }
    } else this.productInvoice[product] = this.invoiceSerial;
    if (!duplicate) {
      this.productLatest[product] = rows.length;
      rows.push(line.quantity, line.price, line.invoiceMs, customer, country, previous);
    }
    line.isDuplicateRow = duplicate;
    this.options.encoder.write(line);
    this.productLines[product] = (this.productLines[product] as number) + 1;
    if (line.customerId !== null) {
      if (line.customerId === this.customer && line.country === this.customerCountry) this.customerRun++;
      else {
        this.countCustomerRun();
        this.customer = line.customerId;
        this.customerCountry = line.country;
        this.customerRun = 1;
      }
    }
    if (line.country !== this.lastCountry) {
      this.lastCountry = line.country;
      this.countries.add(line.country);
    }
  }

  private countCustomerRun(): void {
    if (this.customerRun === 0) return;
    let c = this.customers.get(this.customer);
    if (!c) {
      c = new Map();
      this.customers.set(this.customer, c);
    }
    c.set(this.customerCountry, (c.get(this.customerCountry) ?? 0) + this.customerRun);
    this.customerRun = 0;
  }

  /** The dimension counts as CSV rows of `load_counts` (kind, member, attribute, flag, lines). */
  countsCsv(): string {
    this.countCustomerRun();
    const out: string[] = [];
    this.productLines.forEach((n, product) => {
      // A pair seen only in rows refused after reading it has no lines.
      if (n === 0) return;
      const stockId = this.productStock[product] as number;
      const code = this.codes.values[stockId];
      const desc = this.descriptions.values[this.productDescription[product] as number];
      out.push(`${['product', code, desc, this.nonProduct[stockId], n].map(csvCell).join(',')}\n`);
    });
    for (const [id, byCountry] of this.customers)
      for (const [country, n] of byCountry)
        out.push(`${['customer', id, country, false, n].map(csvCell).join(',')}\n`);
    for (const country of this.countries)
      out.push(`${['country', country, '', false, 0].map(csvCell).join(',')}\n`);
    for (const invoice of this.reopened)
      out.push(`${['invoice', invoice, '', false, 0].map(csvCell).join(',')}\n`);
    return out.join('');
  }
}

/** The last line number of an invoice (core/rules.ts), read once: nextLineNo runs once per row. */
const LINE_NO_MAX = RULES.lineNo.max;

/** Product keys pack a description id below this (2^26: far more descriptions than any file has). */
const PRODUCT_KEY_SPAN = 2 ** 26;

/** An archive field's name as the CSV header spells it, so both sources word a reason alike. */
const FIELD_NAMES: Record<string, string> = {
  invoiceNo: 'InvoiceNo',
  lineNo: 'lineNo',
  stockCode: 'StockCode',
  description: 'Description',
  quantity: 'Quantity',
  invoiceDate: 'InvoiceDate',
  unitPrice: 'UnitPrice',
  customerId: 'CustomerID',
  country: 'Country',
  producedAt: 'producedAt',
};

/** Why the API's schema refuses an archive line, in the words a CSV row gets. */
function archiveReason(issue: { path: PropertyKey[]; message: string } | undefined): string {
  if (!issue) return 'the line is invalid';
  const key = String(issue.path[0] ?? '');
  const name = FIELD_NAMES[key] ?? key;
  return `${name} ${issue.message}`.trim();
}

/** Pushes the encoder's pending bytes once they are worth a chunk. */
export abstract class TyperStream extends Transform {
  private started = false;
  constructor(protected readonly lines: LineTyper) {
    super();
  }

  protected flushRows(force = false): void {
    const enc = this.lines.encoder;
    if (!this.started) {
      this.started = true;
      if (enc.header) this.push(enc.header);
    }
    const out = enc.take();
    if (out.length > 0 || force) this.push(out);
  }

  protected end_(): void {
    this.flushRows();
    const enc = this.lines.encoder;
    if (enc.trailer) this.push(enc.trailer);
  }
}

/** What the loader says of an archive object whose bytes are not UTF-8. */
export const DAMAGED_ARCHIVE_HINT =
  'the stream path writes archive objects in UTF-8: this one is damaged; restore it or re-send its lines';

/**
 * NDJSON archive object -> typed rows; blank lines are skipped. Decoded strictly (core/text-encoding.ts):
 * a byte that is not UTF-8 stops the object with a TextEncodingError naming its line, never a U+FFFD.
 */
export class NdjsonTyper extends TyperStream {
  private carry = '';
  private line = 0;
  private readonly decoder = createSourceDecoder('utf8', this.lines.objectKey, DAMAGED_ARCHIVE_HINT);

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      const text = this.carry + this.decoder.decode(chunk);
      const parts = text.split('\n');
      this.carry = parts.pop() ?? '';
      for (const p of parts) this.record(p);
      this.flushRows();
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  private record(text: string): void {
    this.line++;
    if (text.trim() === '') return;
    this.lines.archiveRecord(text, this.line);
  }

  override _flush(cb: TransformCallback): void {
    try {
      const rest = this.carry + this.decoder.end();
      if (rest !== '') this.record(rest);
      this.end_();
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }
}
