import { isUtf8 } from 'node:buffer';
import { Transform, type TransformCallback } from 'node:stream';
import { invoiceLineInput } from '#core/invoice-line';
import { isNonProductCode } from '#core/non-product';
import { type ColumnMap, parseSourceDate, parseSourceRow, SOURCE_COLUMNS } from '#core/source-row';
import { BINARY_HEADER, BINARY_TRAILER, BinaryTupleWriter, localMs } from './pg-binary.ts';
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
  customerId: string | null;
  country: string;
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
/** The lineage times only archive lines carry. */
const LINEAGE_COLUMNS = ['produced_at', 'accepted_at', 'stream_visible_at'];
/**
 * A file's rows in the bulk path: no lineage (NULL) and the stamp from column defaults the load
 * sets for its COPY, so each row carries 15 fields, not 21 (a third fewer bytes to write and parse).
 */
export const BULK_COLUMNS = TYPED_COLUMNS.filter((c) => !LINEAGE_COLUMNS.includes(c));

/** Which columns a PgBinaryEncoder writes: TYPED_COLUMNS, those and STAMP_COLUMNS, or BULK_COLUMNS. */
export type BinaryLayout = 'typed' | 'fact' | 'bulk';

export interface Stamp {
  visibleAtMs: number;
  source: 'stream' | 'file';
  sourceKey: string;
}

/** Encodes typed lines for one COPY. */
export interface RowEncoder {
  readonly header: Buffer | undefined;
  readonly trailer: Buffer | undefined;
  write(line: TypedLine): void;
  /** Bytes written since the last take (empty when none). */
  take(): Buffer;
}

const PRICE = /^(-?)(\d{1,12})(?:\.(\d{1,3}))?$/;

/** Price text as thousandths (exact, < 2^53). The schema allows 12 integer digits: always fits. */
export function thousandthsOf(price: string): number {
  const m = PRICE.exec(price);
  if (!m) throw new Error(`not a price: ${price}`);
  const n = Number(m[2]) * 1000 + (m[3] ? Number(m[3].padEnd(3, '0')) : 0);
  return m[1] ? -n : n;
}

/** Exact `quantity x price` text, 3 decimals, for totals past 2^53 thousandths. */
function bigTotal(quantity: number, priceThousandths: number): string {
  const t = BigInt(quantity) * BigInt(priceThousandths);
  const neg = t < 0n;
  const abs = (neg ? -t : t).toString().padStart(4, '0');
  return `${neg ? '-' : ''}${abs.slice(0, -3)}.${abs.slice(-3)}`;
}

/** PostgreSQL binary tuples; with a stamp, the fact's whole column list (TYPED + STAMP). */
export class PgBinaryEncoder implements RowEncoder {
  readonly header = BINARY_HEADER;
  readonly trailer = BINARY_TRAILER;
  private readonly w = new BinaryTupleWriter();
  /** The fields after is_duplicate_row when the line has no lineage: three NULLs and the stamp. */
  private readonly plainTail: Buffer;
  private readonly stampTail: Buffer;
  private readonly fields: number;
  /** Encoded (length-prefixed) text fields, by interner id or for the last value seen. */
  private readonly codes: Buffer[] = [];
  private readonly descriptions: Buffer[] = [];
  private lastInvoice = '';
  private lastInvoiceBytes: Buffer = Buffer.alloc(0);
  private lastCustomer: string | null | undefined;
  private lastCustomerBytes: Buffer = Buffer.alloc(0);
  private lastCountry = '';
  private lastCountryBytes: Buffer = Buffer.alloc(0);

  /** `stamp` is required by the 'fact' layout. */
  constructor(
    private readonly layout: BinaryLayout = 'typed',
    stamp?: Stamp,
  ) {
    const tail = new BinaryTupleWriter();
    if (layout === 'fact') {
      if (!stamp) throw new Error("the 'fact' layout writes a stamp");
      tail.instant(stamp.visibleAtMs);
      tail.text(stamp.source);
      tail.text(stamp.sourceKey);
    }
    this.stampTail = tail.take();
    if (layout !== 'bulk') {
      tail.null();
      tail.null();
      tail.null();
    }
    this.plainTail = Buffer.concat([tail.take(), this.stampTail]);
    this.fields =
      layout === 'bulk'
        ? BULK_COLUMNS.length
        : layout === 'fact'
          ? TYPED_COLUMNS.length + STAMP_COLUMNS.length
          : TYPED_COLUMNS.length;
  }

  private encoded(value: string | null): Buffer {
    const w = new BinaryTupleWriter();
    w.text(value);
    return w.take();
  }

  write(l: TypedLine): void {
    const w = this.w;
    let code = this.codes[l.stockId];
    if (code === undefined) {
      code = this.encoded(l.stockCode);
      this.codes[l.stockId] = code;
    }
    let desc = this.descriptions[l.descriptionId];
    if (desc === undefined) {
      desc = this.encoded(l.description);
      this.descriptions[l.descriptionId] = desc;
    }
    if (l.invoiceNo !== this.lastInvoice) {
      this.lastInvoice = l.invoiceNo;
      this.lastInvoiceBytes = this.encoded(l.invoiceNo);
    }
    if (l.customerId !== this.lastCustomer) {
      this.lastCustomer = l.customerId;
      this.lastCustomerBytes = this.encoded(l.customerId);
    }
    if (l.country !== this.lastCountry) {
      this.lastCountry = l.country;
      this.lastCountryBytes = this.encoded(l.country);
    }
    w.tuple(this.fields);
    w.bytes(this.lastInvoiceBytes);
    w.int4(l.lineNo);
    w.int4(l.dateKey);
    w.timestamp(l.invoiceMs);
    w.bytes(code);
    w.bytes(desc);
    w.bytes(this.lastCustomerBytes);
    w.bytes(this.lastCountryBytes);
    w.int4(l.quantity);
    const price = l.price;
    w.thousandths(price);
    const total = price * l.quantity;
    if (Number.isSafeInteger(total)) w.thousandths(total);
    else w.decimal(bigTotal(l.quantity, price));
    const kind = l.invoiceNo.charCodeAt(0);
    w.bool(kind === 0x43); // C: cancellation
    w.bool(kind === 0x41); // A: adjustment
    w.bool(l.isNonProduct);
    w.bool(l.isDuplicateRow);
    if (l.producedAt === null && l.acceptedAt === null && l.streamVisibleAt === null) w.bytes(this.plainTail);
    else if (this.layout === 'bulk') throw new Error('the bulk layout has no lineage columns');
    else {
      w.instant(l.producedAt);
      w.instant(l.acceptedAt);
      w.instant(l.streamVisibleAt);
      w.bytes(this.stampTail);
    }
  }

  take(): Buffer {
    return this.w.take();
  }
}

/** A CSV cell: quoted when it must be; empty = NULL (COPY's CSV default). */
export function csvCell(v: string | number | boolean | null | undefined): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'boolean' ? (v ? 't' : 'f') : String(v);
  return s === '' || /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

const sqlInstant = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** CSV rows of TYPED_COLUMNS, for warehouses that COPY from S3 (Redshift). */
export class CsvRowEncoder implements RowEncoder {
  readonly header = undefined;
  readonly trailer = undefined;
  private parts: string[] = [];

  write(l: TypedLine): void {
    const price = l.price;
    const total = price * l.quantity;
    const kind = l.invoiceNo.charCodeAt(0);
    this.parts.push(
      [
        l.invoiceNo,
        l.lineNo,
        l.dateKey,
        l.invoiceDate.replace('T', ' '),
        l.stockCode,
        l.description,
        l.customerId,
        l.country,
        l.quantity,
        bigTotal(1, price),
        Number.isSafeInteger(total) ? bigTotal(1, total) : bigTotal(l.quantity, price),
        kind === 0x43,
        kind === 0x41,
        l.isNonProduct,
        l.isDuplicateRow,
        sqlInstant(l.producedAt),
        sqlInstant(l.acceptedAt),
        sqlInstant(l.streamVisibleAt),
      ]
        .map(csvCell)
        .join(','),
      '\n',
    );
  }

  take(): Buffer {
    const out = Buffer.from(this.parts.join(''), 'utf8');
    this.parts = [];
    return out;
  }
}

/** A rejected CSV row's values, in SOURCE_COLUMNS order. */
function rawFields(fields: readonly string[], columns: ColumnMap): Array<string | undefined> {
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

/** FNV-1a over the length, the first 8 and the last 4 units (bytes of ASCII, or UTF-16 units). */
function sampleHash(buf: Buffer, s: number, e: number, len: number): number {
  let h = Math.imul(0x811c9dc5 ^ len, 0x01000193);
  const head = Math.min(e, s + 8);
  for (let i = s; i < head; i++) h = Math.imul(h ^ (buf[i] as number), 0x01000193);
  for (let i = Math.max(head, e - 4); i < e; i++) h = Math.imul(h ^ (buf[i] as number), 0x01000193);
  return h;
}

function sampleHashString(value: string): number {
  const len = value.length;
  let h = Math.imul(0x811c9dc5 ^ len, 0x01000193);
  const head = Math.min(len, 8);
  for (let i = 0; i < head; i++) h = Math.imul(h ^ value.charCodeAt(i), 0x01000193);
  for (let i = Math.max(head, len - 4); i < len; i++) h = Math.imul(h ^ value.charCodeAt(i), 0x01000193);
  return h;
}

/**
 * Distinct strings and a small integer id for each, found from bytes without making a string: a
 * file repeats a few thousand stock codes and descriptions half a million times, and turning bytes
 * into a string costs more than hashing them. Open addressing over FNV-1a hashes of the bytes (or
 * of the UTF-16 units of a string, the same for ASCII).
 */
export class Interner {
  private slots = new Int32Array(1 << 12);
  private readonly hashes: number[] = [];
  readonly values: string[] = [];

  private find(h: number, same: (value: string) => boolean): number {
    const mask = this.slots.length - 1;
    for (let k = h & mask; ; k = (k + 1) & mask) {
      const slot = this.slots[k] as number;
      if (slot === 0) return -1 - k;
      const id = slot - 1;
      if (this.hashes[id] === h && same(this.values[id] as string)) return id;
    }
  }

  private add(slot: number, h: number, value: string): number {
    const id = this.values.length;
    this.values.push(value);
    this.hashes.push(h);
    this.slots[slot] = id + 1;
    if (this.values.length * 2 > this.slots.length) {
      const next = new Int32Array(this.slots.length * 2);
      const mask = next.length - 1;
      for (let i = 0; i < this.values.length; i++) {
        let k = (this.hashes[i] as number) & mask;
        while (next[k] !== 0) k = (k + 1) & mask;
        next[k] = i + 1;
      }
      this.slots = next;
    }
    return id;
  }

  /**
   * The id of printable-ASCII bytes [s, e). The hash reads the length and at most 12 bytes (the
   * first 8, the last 4): values that share them only make a probe longer, the comparison is exact.
   */
  bytes(buf: Buffer, s: number, e: number): number {
    const h = sampleHash(buf, s, e, e - s);
    const mask = this.slots.length - 1;
    for (let k = h & mask; ; k = (k + 1) & mask) {
      const slot = this.slots[k] as number;
      if (slot === 0) return this.add(k, h, latin1(buf, s, e));
      const id = slot - 1;
      if (this.hashes[id] === h && sameAscii(buf, s, e, this.values[id] as string)) return id;
    }
  }

  /** The id of a string. */
  string(value: string): number {
    const h = sampleHashString(value);
    const found = this.find(h, (v) => v === value);
    return found >= 0 ? found : this.add(-1 - found, h, value);
  }
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
  private readonly descriptionLines: Array<Map<number, number>> = [];
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
  /**
   * The current invoice's rows by stock code id, each as 6 numbers (description, quantity, price,
   * time, customer, country ids): what makes a row a duplicate of an earlier one.
   */
  private rows = new Map<number, number[]>();
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
    customerId: null,
    country: '',
    quantity: 0,
    price: 0,
    isNonProduct: false,
    isDuplicateRow: false,
    producedAt: null,
    acceptedAt: null,
    streamVisibleAt: null,
  };
  private readonly closed = new Set<string>();
  private customer = '';
  private customerCountry = '';
  private customerRun = 0;
  private lastCountry = '';

  constructor(private readonly options: TyperOptions) {}

  get encoder(): RowEncoder {
    return this.options.encoder;
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
      this.descriptionLines[stockId] = new Map();
    }
    return v;
  }

  /** The next line number of an invoice (the replay's numbering), or undefined past 1,000,000. */
  private nextLineNo(invoiceNo: string): number | undefined {
    if (invoiceNo !== this.numbering) {
      if (this.numbering !== '') this.lineNos.set(this.numbering, this.numbered);
      this.numbering = invoiceNo;
      this.numbered = this.lineNos.get(invoiceNo) ?? 0;
    }
    if (this.numbered >= 1_000_000) return undefined;
    return ++this.numbered;
  }

  private dateKeyLocal = '';
  private dateKeyValue: number | string = 0;

  /** The date key of a wall-clock time, or a reason when dim_date has no such day. */
  private dateKeyOf(local: string): number | string {
    if (local === this.dateKeyLocal) return this.dateKeyValue;
    const year = Number(local.slice(0, 4));
    this.dateKeyLocal = local;
    this.dateKeyValue =
      year < 2000 || year > 2040
        ? 'InvoiceDate is not a calendar date in 2000-2040'
        : year * 10000 + Number(local.slice(5, 7)) * 100 + Number(local.slice(8, 10));
    return this.dateKeyValue;
  }

  /**
   * The CSV row in `row` (parseSourceRow's rules passed; its values and ids filled in). Returns why
   * the warehouse refuses it, or undefined when it was accepted.
   */
  csvRow(): string | undefined {
    const row = this.row;
    // The replay's numbering: a valid row takes the next number of its invoice, even one the
    // warehouse then refuses (a date outside dim_date), so the rows after it keep their numbers.
    const lineNo = this.nextLineNo(row.invoiceNo);
    if (lineNo === undefined) return `invoice ${row.invoiceNo} has more than 1,000,000 lines`;
    const dateKey = this.dateKeyOf(row.invoiceDate);
    if (typeof dateKey === 'string') return dateKey;
    row.lineNo = lineNo;
    row.dateKey = dateKey;
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
      this.reject(lineNumber, archiveReason(d, parsed.error.issues[0]), raw());
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
      const ms = typeof v === 'string' && ISO_INSTANT.test(v) ? Date.parse(v) : Number.NaN;
      if (Number.isNaN(ms)) {
        this.reject(lineNumber, `${k} is not an ISO-8601 instant`, raw());
        return;
      }
      times[k] = ms;
    }
    const dateKey = this.dateKeyOf(line.invoiceDate);
    if (typeof dateKey === 'string') {
      this.reject(lineNumber, dateKey, raw());
      return;
    }
    // The archive is at-least-once: a key's first record in the object is the one loaded.
    const key = `${line.invoiceNo}#${line.lineNo}`;
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
    row.dateKey = dateKey;
    row.invoiceDate = line.invoiceDate;
    row.invoiceMs = localMs(line.invoiceDate);
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
      this.rows = new Map();
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
    line.isDuplicateRow = false;
    const same = this.rows.get(line.stockId);
    if (same === undefined) {
      this.rows.set(line.stockId, [
        line.descriptionId,
        line.quantity,
        line.price,
        line.invoiceMs,
        customer,
        country,
      ]);
    } else {
      for (let k = 0; k < same.length; k += 6) {
        if (
          same[k] === line.descriptionId &&
          same[k + 1] === line.quantity &&
          same[k + 2] === line.price &&
          same[k + 3] === line.invoiceMs &&
          same[k + 4] === customer &&
          same[k + 5] === country
        ) {
          line.isDuplicateRow = true;
          break;
        }
      }
      if (!line.isDuplicateRow)
        same.push(line.descriptionId, line.quantity, line.price, line.invoiceMs, customer, country);
    }
    this.options.encoder.write(line);
    const lines = this.descriptionLines[line.stockId] as Map<number, number>;
    lines.set(line.descriptionId, (lines.get(line.descriptionId) ?? 0) + 1);
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
    this.descriptionLines.forEach((lines, stockId) => {
      const code = this.codes.values[stockId];
      const nonProduct = this.nonProduct[stockId];
      for (const [descriptionId, n] of lines) {
        const desc = this.descriptions.values[descriptionId];
        out.push(`${['product', code, desc, nonProduct, n].map(csvCell).join(',')}\n`);
      }
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
function archiveReason(
  doc: Record<string, unknown>,
  issue: { path: PropertyKey[]; message: string } | undefined,
): string {
  if (!issue) return 'the line is invalid';
  const key = String(issue.path[0] ?? '');
  const name = FIELD_NAMES[key] ?? key;
  const value = doc[key];
  if (typeof value === 'string' && value.includes('\u0000')) return `${name} contains a NUL byte`;
  return `${name} ${issue.message}`.trim();
}

const ISO_INSTANT =
  /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[T ]([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?(Z|[+-]([01]\d|2[0-3]):?[0-5]\d)$/;

/** The object is not valid UTF-8 past the sniffed sample: read it again as Latin-1. */
export class NotUtf8Error extends Error {
  override name = 'NotUtf8Error';
}

const LF = 0x0a;

/** Pushes the encoder's pending bytes once they are worth a chunk. */
abstract class TyperStream extends Transform {
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

/** One quoted-aware record read from text: its fields, where the next one starts, the line ends it spans. */
interface QuotedRecord {
  fields: string[];
  next: number;
  newlines: number;
  bad?: string;
}

/**
 * Reads one record that holds a quote, from `start` (RFC 4180: a quote opens a field only at its
 * start; `""` inside quotes is a quote). Undefined when the text ends before the record does.
 */
function readQuotedRecord(text: string, start: number, final: boolean): QuotedRecord | undefined {
  const fields: string[] = [];
  let i = start;
  let newlines = 0;
  let bad: string | undefined;
  const len = text.length;
  for (;;) {
    if (text.charCodeAt(i) === 0x22) {
      let value = '';
      let from = i + 1;
      for (;;) {
        const q = text.indexOf('"', from);
        if (q === -1) {
          if (!final) return undefined;
          // Unclosed: the rest of the text is the record.
          const rest = text.slice(from);
          for (let k = rest.indexOf('\n'); k !== -1; k = rest.indexOf('\n', k + 1)) newlines++;
          fields.push(value + rest);
          return { fields, next: len, newlines, bad: 'a quoted field is not closed' };
        }
        const part = text.slice(from, q);
        for (let k = part.indexOf('\n'); k !== -1; k = part.indexOf('\n', k + 1)) newlines++;
        value += part;
        if (q + 1 >= len && !final) return undefined;
        if (text.charCodeAt(q + 1) === 0x22) {
          value += '"';
          from = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      fields.push(value);
      const c = text.charCodeAt(i);
      if (c === 0x2c) {
        i++;
        continue;
      }
      if (i >= len) return { fields, next: len, newlines, ...(bad ? { bad } : {}) };
      if (c === 0x0a || (c === 0x0d && text.charCodeAt(i + 1) === 0x0a)) {
        return { fields, next: text.indexOf('\n', i) + 1, newlines, ...(bad ? { bad } : {}) };
      }
      if (c === 0x0d && i + 1 >= len && !final) return undefined;
      // Text after a closing quote: the record is refused, up to its line end.
      const eol = text.indexOf('\n', i);
      if (eol === -1 && !final) return undefined;
      return {
        fields,
        next: eol === -1 ? len : eol + 1,
        newlines,
        bad: 'a quoted field has text after its closing quote',
      };
    }
    let j = i;
    while (j < len) {
      const c = text.charCodeAt(j);
      if (c === 0x2c || c === 0x0a) break;
      if (c === 0x22) bad ??= 'a quote inside an unquoted field';
      j++;
    }
    if (j >= len && !final) return undefined;
    const end =
      j < len && text.charCodeAt(j) === 0x0a && text.charCodeAt(j - 1) === 0x0d && j > i ? j - 1 : j;
    fields.push(text.slice(i, end));
    if (j < len && text.charCodeAt(j) === 0x2c) {
      i = j + 1;
      continue;
    }
    return { fields, next: j + 1 > len ? len : j + 1, newlines, ...(bad ? { bad } : {}) };
  }
}

const QUOTE = 0x22;
const COMMA = 0x2c;
const CR = 0x0d;
const SPACE = 0x20;
const MAX_FAST_FIELDS = 64;

/**
 * Bytes [s, e) as a string, one char per byte. Node's Buffer#latin1Slice (what toString('latin1')
 * calls after checking its arguments): undocumented but stable since Node 0.x, and the cheapest
 * way to turn ASCII bytes into a string; the byte path only calls it on printable ASCII.
 */
const latin1 = (buf: Buffer, s: number, e: number): string =>
  (buf as unknown as { latin1Slice(s: number, e: number): string }).latin1Slice(s, e);

const isDigit = (b: number) => b >= 0x30 && b <= 0x39;

/** Whether bytes [s, e) spell `text` (ASCII). */
function sameAscii(buf: Buffer, s: number, e: number, text: string): boolean {
  if (e - s !== text.length) return false;
  for (let i = 0; i < text.length; i++) if (buf[s + i] !== text.charCodeAt(i)) return false;
  return true;
}

/** Digits [s, e) as a number (the caller checked they are digits). */
function digitsValue(buf: Buffer, s: number, e: number): number {
  let n = 0;
  for (let i = s; i < e; i++) n = n * 10 + ((buf[i] as number) - 0x30);
  return n;
}

function allDigits(buf: Buffer, s: number, e: number): boolean {
  for (let i = s; i < e; i++) if (!isDigit(buf[i] as number)) return false;
  return true;
}

/**
 * CSV body (after the header) -> typed rows. RFC 4180 as csv-parse reads it for replay: a quote
 * opens a field only at its start, `""` inside quotes is a quote, blank lines are skipped, CRLF or
 * LF; a record with a stray quote is rejected with the reason.
 *
 * Two ways through, one set of rules. A record of printable ASCII without quotes (nearly every
 * record of a real file) is checked and converted on its bytes: no string per field, caches for the
 * values consecutive rows share (invoice, date, customer, country). Anything else (quotes, non-ASCII
 * text, control characters, a value the byte checks are not sure of) is decoded and read by
 * `parseSourceRow`, the replay's own parser, which also words every rejection. The byte path only
 * accepts what parseSourceRow accepts, with the same values; a test holds the two to that.
 */
export class CsvTyper extends TyperStream {
  private carry: Buffer | null = null;
  /** Physical line of the next record (the header is line 1). */
  private line = 2;
  private readonly starts = new Int32Array(MAX_FAST_FIELDS);
  private readonly ends = new Int32Array(MAX_FAST_FIELDS);
  private readonly needed: number;
  private readonly col: Readonly<Record<(typeof SOURCE_COLUMNS)[number], number>>;
  // Caches of the last value read per field.
  private invoiceRaw = '';
  private dateRaw = '';
  private dateLocal: string | null = null;
  private dateMs = 0;
  private customerRaw = '';
  private customerId: string | null = null;
  private countryRaw = '';
  /** Counts for the benchmark and tests: records through each path. */
  fastRecords = 0;
  slowRecords = 0;

  constructor(
    lines: LineTyper,
    private readonly columns: ColumnMap,
    private readonly encoding: 'utf8' | 'latin1',
  ) {
    super(lines);
    this.col = columns;
    this.needed = Math.max(...SOURCE_COLUMNS.map((c) => columns[c])) + 1;
  }

  /** A field's bytes without the spaces around them, into starts/ends[i]. */
  private trim(buf: Buffer, i: number): void {
    let s = this.starts[i] as number;
    let e = this.ends[i] as number;
    while (s < e && buf[s] === SPACE) s++;
    while (e > s && buf[e - 1] === SPACE) e--;
    this.starts[i] = s;
    this.ends[i] = e;
  }

  /**
   * The byte path for one record of printable ASCII split into fields; false sends it to the
   * string path (which rejects or accepts it with parseSourceRow's exact wording and values).
   */
  private fast(buf: Buffer, fields: number, lineNumber: number): boolean {
    if (fields < this.needed) return false;
    const c = this.col;
    const st = this.starts;
    const en = this.ends;
    // InvoiceNo: one optional capital letter, 1-10 digits.
    this.trim(buf, c.InvoiceNo);
    let s = st[c.InvoiceNo] as number;
    let e = en[c.InvoiceNo] as number;
    let invoiceNo: string;
    if (sameAscii(buf, s, e, this.invoiceRaw)) invoiceNo = this.invoiceRaw;
    else {
      const first = buf[s] as number;
      const digitsFrom = first >= 0x41 && first <= 0x5a ? s + 1 : s;
      if (e - digitsFrom < 1 || e - digitsFrom > 10 || !allDigits(buf, digitsFrom, e)) return false;
      invoiceNo = latin1(buf, s, e);
      this.invoiceRaw = invoiceNo;
    }
    // StockCode: 1-32 characters.
    this.trim(buf, c.StockCode);
    s = st[c.StockCode] as number;
    e = en[c.StockCode] as number;
    if (e === s || e - s > 32) return false;
    const lines = this.lines;
    const stockId = lines.codes.bytes(buf, s, e);
    const stockCode = lines.codes.values[stockId] as string;
    // Description: up to 255 characters, empty = none.
    this.trim(buf, c.Description);
    s = st[c.Description] as number;
    e = en[c.Description] as number;
    if (e - s > 255) return false;
    const descriptionId = lines.descriptions.bytes(buf, s, e);
    const description = e === s ? null : (lines.descriptions.values[descriptionId] as string);
    // Quantity: optional sign, 1-8 digits, |q| <= 10,000,000.
    this.trim(buf, c.Quantity);
    s = st[c.Quantity] as number;
    e = en[c.Quantity] as number;
    const sign = buf[s];
    const qFrom = sign === 0x2d || sign === 0x2b ? s + 1 : s;
    if (e - qFrom < 1 || e - qFrom > 8 || !allDigits(buf, qFrom, e)) return false;
    let quantity = digitsValue(buf, qFrom, e);
    if (quantity > 10_000_000) return false;
    if (sign === 0x2d) quantity = -quantity || 0;
    // InvoiceDate: parsed by parseSourceDate once per distinct text.
    s = st[c.InvoiceDate] as number;
    e = en[c.InvoiceDate] as number;
    if (!sameAscii(buf, s, e, this.dateRaw)) {
      this.dateRaw = latin1(buf, s, e);
      this.dateLocal = parseSourceDate(this.dateRaw);
      if (this.dateLocal !== null) this.dateMs = localMs(this.dateLocal);
    }
    if (this.dateLocal === null) return false;
    // UnitPrice: optional minus, 1-12 digits, optional point and 1-3 digits (other forms: string path).
    this.trim(buf, c.UnitPrice);
    s = st[c.UnitPrice] as number;
    e = en[c.UnitPrice] as number;
    const negative = buf[s] === 0x2d;
    const pFrom = negative ? s + 1 : s;
    let dot = -1;
    for (let i = pFrom; i < e; i++) {
      const b = buf[i] as number;
      if (b === 0x2e && dot === -1) dot = i;
      else if (!isDigit(b)) return false;
    }
    const intEnd = dot === -1 ? e : dot;
    if (intEnd - pFrom < 1 || intEnd - pFrom > 12) return false;
    if (dot !== -1 && (e - dot - 1 < 1 || e - dot - 1 > 3)) return false;
    let price = digitsValue(buf, pFrom, intEnd) * 1000;
    if (dot !== -1) {
      const frac = digitsValue(buf, dot + 1, e);
      price += e - dot - 1 === 1 ? frac * 100 : e - dot - 1 === 2 ? frac * 10 : frac;
    }
    if (negative) price = -price || 0;
    // CustomerID: empty, or 1-12 digits optionally followed by a point and zeros.
    s = st[c.CustomerID] as number;
    e = en[c.CustomerID] as number;
    if (!sameAscii(buf, s, e, this.customerRaw)) {
      this.customerRaw = latin1(buf, s, e);
      this.trim(buf, c.CustomerID);
      const ts = st[c.CustomerID] as number;
      const te = en[c.CustomerID] as number;
      if (te === ts) this.customerId = null;
      else {
        let digitsEnd = ts;
        while (digitsEnd < te && isDigit(buf[digitsEnd] as number)) digitsEnd++;
        if (digitsEnd === ts || digitsEnd - ts > 12) {
          this.customerRaw = '\u0000';
          return false;
        }
        if (digitsEnd < te) {
          if (buf[digitsEnd] !== 0x2e) {
            this.customerRaw = '\u0000';
            return false;
          }
          for (let i = digitsEnd + 1; i < te; i++)
            if (buf[i] !== 0x30) {
              this.customerRaw = '\u0000';
              return false;
            }
        }
        this.customerId = latin1(buf, ts, digitsEnd);
      }
    }
    // Country: 1-64 characters.
    s = st[c.Country] as number;
    e = en[c.Country] as number;
    if (!sameAscii(buf, s, e, this.countryRaw)) {
      this.trim(buf, c.Country);
      const ts = st[c.Country] as number;
      const te = en[c.Country] as number;
      if (te === ts || te - ts > 64) return false;
      this.countryRaw = latin1(buf, s, e);
      this.country = latin1(buf, ts, te);
    }
    this.fastRecords++;
    const row = lines.row;
    row.invoiceNo = invoiceNo;
    row.stockCode = stockCode;
    row.stockId = stockId;
    row.description = description;
    row.descriptionId = descriptionId;
    row.quantity = quantity;
    row.invoiceDate = this.dateLocal;
    row.invoiceMs = this.dateMs;
    row.price = price;
    row.customerId = this.customerId;
    row.country = this.country;
    const reason = lines.csvRow();
    if (reason !== undefined) {
      const values: string[] = [];
      for (const f of SOURCE_COLUMNS) values.push(latin1(buf, st[c[f]] as number, en[c[f]] as number));
      this.lines.reject(lineNumber, reason, values);
    }
    return true;
  }
  private country = '';

  /**
   * The string path for the record at `start`: decoded, split with quotes honoured, read by
   * parseSourceRow. Returns the byte offset after it, or -1 when the bytes end before it does.
   */
  private slow(buf: Buffer, start: number, final: boolean): number {
    // Decoded a line at a time: a quoted field may span lines, but nearly every record is one.
    let end = start;
    let text: string;
    let r: QuotedRecord | undefined;
    do {
      if (end === buf.length) return -1;
      const lf = buf.indexOf(LF, end);
      if (lf === -1 && !final) return -1;
      end = lf === -1 ? buf.length : lf + 1;
      const bytes = buf.subarray(start, end);
      if (this.encoding === 'utf8' && !isUtf8(bytes))
        throw new NotUtf8Error('the object is not valid UTF-8 past its first 256 KiB');
      text = bytes.toString(this.encoding);
      r = readQuotedRecord(text, 0, final && end === buf.length);
    } while (r === undefined);
    const lineNumber = this.line;
    this.line += 1 + r.newlines;
    const next = start + Buffer.byteLength(text.slice(0, r.next), this.encoding);
    this.slowRecords++;
    if (r.bad !== undefined) {
      this.lines.reject(lineNumber, r.bad, rawFields(r.fields, this.columns));
      return next;
    }
    // A blank line (csv-parse skips them).
    if (r.fields.length === 1 && (r.fields[0] === '' || r.fields[0] === '\r')) return next;
    const last = r.fields.length - 1;
    const tail = r.fields[last] as string;
    if (tail.endsWith('\r')) r.fields[last] = tail.slice(0, -1);
    const row = parseSourceRow(r.fields, this.columns);
    if (typeof row === 'string') {
      this.lines.reject(lineNumber, row, rawFields(r.fields, this.columns));
      return next;
    }
    const lines = this.lines;
    lines.setText(row.stockCode, row.description, row.customerId, row.country);
    const typed = lines.row;
    typed.invoiceNo = row.invoiceNo;
    typed.quantity = row.quantity;
    typed.invoiceDate = row.invoiceDate;
    typed.invoiceMs = localMs(row.invoiceDate);
    typed.price = thousandthsOf(row.unitPrice);
    const reason = lines.csvRow();
    if (reason !== undefined) this.lines.reject(lineNumber, reason, rawFields(r.fields, this.columns));
    return next;
  }

  /** Reads the records of `buf`; returns where the unread rest starts. */
  private parse(buf: Buffer, final: boolean): number {
    const len = buf.length;
    const st = this.starts;
    const en = this.ends;
    let i = 0;
    while (i < len) {
      const start = i;
      let fields = 0;
      let fieldStart = i;
      let plain = true;
      let j = i;
      for (; j < len; j++) {
        const b = buf[j] as number;
        if (b === COMMA) {
          if (fields === MAX_FAST_FIELDS - 1) plain = false;
          else {
            st[fields] = fieldStart;
            en[fields] = j;
            fields++;
          }
          fieldStart = j + 1;
        } else if (b < SPACE || b > 0x7e || b === QUOTE) {
          if (b === LF) break;
          if (!(b === CR && buf[j + 1] === LF)) plain = false;
        }
      }
      if (j === len && !final) return start;
      if (plain) {
        const end = j > fieldStart && buf[j - 1] === CR ? j - 1 : j;
        st[fields] = fieldStart;
        en[fields] = end;
        fields++;
        const lineNumber = this.line++;
        i = j + 1;
        // A blank line (csv-parse skips them).
        if (fields === 1 && end === start) continue;
        if (this.fast(buf, fields, lineNumber)) continue;
        this.line--;
        i = start;
      }
      const next = this.slow(buf, start, final);
      if (next === -1) return start;
      i = next;
    }
    return len;
  }

  private run(chunk: Buffer | null, final: boolean): void {
    const buf = this.carry
      ? chunk
        ? Buffer.concat([this.carry, chunk])
        : this.carry
      : (chunk ?? Buffer.alloc(0));
    const rest = this.parse(buf, final);
    this.carry = rest < buf.length ? buf.subarray(rest) : null;
    this.flushRows();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.run(chunk, false);
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      if (this.carry) this.run(null, true);
      this.end_();
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }
}

/** NDJSON archive object -> typed rows; blank lines are skipped. */
export class NdjsonTyper extends TyperStream {
  private carry = '';
  private line = 0;
  private readonly decoder = new TextDecoder('utf-8');

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      const text = this.carry + this.decoder.decode(chunk, { stream: true });
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
      const rest = this.carry + this.decoder.decode();
      if (rest !== '') this.record(rest);
      this.end_();
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }
}
