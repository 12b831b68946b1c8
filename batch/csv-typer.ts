import type { TransformCallback } from 'node:stream';
import { wallClockMs } from '#core/dates';
import * as rules from '#core/rules';
import { type ColumnMap, parseSourceDate, parseSourceRow, SOURCE_COLUMNS } from '#core/source-row';
import { EncodingDetector, LATIN1_HINT, type TextEncoding } from '#core/text-encoding';
import { allDigits, digitsValue, Interner, isDigit, latin1, sameAscii } from './bytes.ts';
import { type LineTyper, rawFields, TyperStream, thousandthsOf } from './typer.ts';

const LF = 0x0a;
const QUOTE = 0x22;
const COMMA = 0x2c;
const CR = 0x0d;
const SPACE = 0x20;
const MAX_FAST_FIELDS = 64;
/** Printable ASCII other than the comma and the quote: all the record scan needs to know of a byte. */
const PRINTABLE = 1;
const BYTE_CLASS = new Uint8Array(256);
for (let b = SPACE; b <= 0x7e; b++) if (b !== COMMA && b !== QUOTE) BYTE_CLASS[b] = PRINTABLE;
// The limits of core/rules.ts, copied once into this module's constants (no lookup through the
// import per row): the byte path checks them on bytes, without a string.
const INVOICE_DIGITS = rules.RULES.invoiceNo.digits;
const INVOICE_PREFIX_FROM = rules.INVOICE_PREFIX_FROM;
const INVOICE_PREFIX_TO = rules.INVOICE_PREFIX_TO;
const STOCK_CODE_MAX = rules.TEXT_MAX.stockCode;
const DESCRIPTION_MAX = rules.TEXT_MAX.description;
const COUNTRY_MAX = rules.TEXT_MAX.country;
const QUANTITY_DIGITS = rules.QUANTITY_DIGITS;
const QUANTITY_MAX = rules.QUANTITY_MAX;
const PRICE_INTEGER_DIGITS = rules.PRICE_INTEGER_DIGITS;
const PRICE_DECIMALS = rules.PRICE_DECIMALS;
const CUSTOMER_ID_DIGITS = rules.CUSTOMER_ID_DIGITS;
const FIRST_YEAR = rules.RULES.invoiceDate.firstYear;
const LAST_YEAR = rules.RULES.invoiceDate.lastYear;
/** Units of the typed price (thousandths) per unit of a fraction digits long: PRICE_SCALE[digits]. */
const PRICE_SCALE = Array.from(
  { length: PRICE_DECIMALS + 1 },
  (_, digits) => 10 ** (PRICE_DECIMALS - digits),
);
const PRICE_UNIT = PRICE_SCALE[0] as number;

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

/**
 * How a CsvTyper reads text: `detect` by the one detection rule (core/text-encoding.ts), as it
 * goes (the loader); `utf8` strictly (a byte that is not UTF-8 throws); `latin1` as given.
 */
export type CsvEncoding = TextEncoding | 'detect';

/** What the loader tells the owner of a file it refuses for its encoding. */
export const MIXED_ENCODING_HINT =
  'convert the whole file to one encoding (UTF-8 or Latin-1) and drop it in again';

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
  // Each starts as a value no field's bytes can spell (NUL never takes the byte path).
  private invoiceRaw = '\u0000';
  private dateRaw = '\u0000';
  private dateLocal: string | null = null;
  private dateMs = 0;
  private customerRaw = '\u0000';
  private customerId: string | null = null;
  private countryRaw = '\u0000';
  private country = '';
  /**
   * When StockCode is followed by Description: the two fields' bytes as written (comma and spaces
   * included), interned, and the product each spells (-1: one the byte path refuses).
   */
  private readonly pairs: Interner | undefined;
  private readonly pairProduct: number[] = [];
  /** Counts for the benchmark and tests: records through each path. */
  fastRecords = 0;
  slowRecords = 0;
  /**
   * The encoding the text read so far is in: the one given, or the detector's verdict. Only the
   * string path decodes; the byte path takes printable ASCII, the same text in either.
   */
  encoding: TextEncoding;
  /** The encoding check (none for `latin1`: every byte is a Latin-1 character). */
  private readonly detector: EncodingDetector | undefined;
  /** Position in the object of the buffer parse() reads, and how far the detector has seen it. */
  private base: number;
  private checkedTo: number;

  /**
   * `bytePath: false` reads every record the string way (tests compare the two paths). `offset`:
   * the bytes of the object before the body (the header line), for the position an error names.
   */
  constructor(
    lines: LineTyper,
    private readonly columns: ColumnMap,
    encoding: CsvEncoding,
    private readonly options: { bytePath?: boolean; offset?: number } = {},
  ) {
    super(lines);
    this.col = columns;
    this.needed = Math.max(...SOURCE_COLUMNS.map((c) => columns[c])) + 1;
    this.pairs = columns.Description === columns.StockCode + 1 ? new Interner() : undefined;
    this.encoding = encoding === 'latin1' ? 'latin1' : 'utf8';
    this.detector =
      encoding === 'latin1'
        ? undefined
        : encoding === 'utf8'
          ? new EncodingDetector(lines.objectKey, LATIN1_HINT, true)
          : new EncodingDetector(lines.objectKey, MIXED_ENCODING_HINT);
    this.base = options.offset ?? 0;
    this.checkedTo = this.base;
    // The body starts after the header line.
    this.detector?.seek(this.line, this.base);
  }

  /**
   * Shows the detector the bytes [start, end) of `buf` it has not seen, before they are decoded.
   * The bytes it skips went through the byte path: printable ASCII.
   */
  private check(buf: Buffer, start: number, end: number, line: number): void {
    const detector = this.detector;
    if (!detector) return;
    let from = this.base + start;
    const to = this.base + end;
    if (to <= this.checkedTo) return;
    if (from > this.checkedTo) detector.seek(line, from);
    else from = this.checkedTo;
    this.checkedTo = to;
    detector.push(buf.subarray(from - this.base, end));
    this.encoding = detector.encoding;
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
   * The product of the record's StockCode (1-STOCK_CODE_MAX characters) and Description (up to
   * DESCRIPTION_MAX, empty = none) fields, or -1 when the byte path cannot take them.
   */
  private product(buf: Buffer): number {
    const c = this.col;
    const lines = this.lines;
    this.trim(buf, c.StockCode);
    let s = this.starts[c.StockCode] as number;
    let e = this.ends[c.StockCode] as number;
    if (e === s || e - s > STOCK_CODE_MAX) return -1;
    const stockId = lines.codes.bytes(buf, s, e);
    this.trim(buf, c.Description);
    s = this.starts[c.Description] as number;
    e = this.ends[c.Description] as number;
    if (e - s > DESCRIPTION_MAX) return -1;
    return lines.productOf(stockId, lines.descriptions.bytes(buf, s, e));
  }

  /**
   * The byte path for one record of printable ASCII split into fields; false sends it to the
   * string path (which rejects or accepts it with parseSourceRow's exact wording and values).
   */
  // biome-ignore lint/complexity/noExcessiveLinesPerFunction: the byte path's per-row loop, run for nearly every row, kept in one frame with its field offsets in locals rather than a call per field; typing is the load's longer side of the COPY (~2-2.5 s of loader CPU for the real file's 541,909 rows, docs/benchmarks.md "Batch path"; docs/warehouse.md "How the typing keeps up with COPY")
  private fast(buf: Buffer, start: number, end: number, fields: number, lineNumber: number): boolean {
    if (fields < this.needed) return false;
    const c = this.col;
    const st = this.starts;
    const en = this.ends;
    // InvoiceNo: one optional capital letter, 1-INVOICE_DIGITS digits.
    this.trim(buf, c.InvoiceNo);
    let s = st[c.InvoiceNo] as number;
    let e = en[c.InvoiceNo] as number;
    let invoiceNo: string;
    if (sameAscii(buf, s, e, this.invoiceRaw)) invoiceNo = this.invoiceRaw;
    else {
      const first = buf[s] as number;
      const digitsFrom = first >= INVOICE_PREFIX_FROM && first <= INVOICE_PREFIX_TO ? s + 1 : s;
      if (e - digitsFrom < 1 || e - digitsFrom > INVOICE_DIGITS || !allDigits(buf, digitsFrom, e))
        return false;
      invoiceNo = latin1(buf, s, e);
      this.invoiceRaw = invoiceNo;
    }
    // StockCode and Description: one lookup of their bytes as written when they are neighbours.
    const lines = this.lines;
    let productId: number | undefined;
    if (this.pairs) {
      const pairId = this.pairs.bytes(buf, st[c.StockCode] as number, en[c.Description] as number);
      productId = this.pairProduct[pairId];
      if (productId === undefined) {
        productId = this.product(buf);
        this.pairProduct[pairId] = productId;
      }
    } else productId = this.product(buf);
    if (productId === -1) return false;
    const stockId = lines.productStock[productId] as number;
    const stockCode = lines.codes.values[stockId] as string;
    const descriptionId = lines.productDescription[productId] as number;
    const descriptionText = lines.descriptions.values[descriptionId] as string;
    const description = descriptionText === '' ? null : descriptionText;
    // Quantity: optional sign, 1-QUANTITY_DIGITS digits, |q| <= QUANTITY_MAX (longer: string path).
    this.trim(buf, c.Quantity);
    s = st[c.Quantity] as number;
    e = en[c.Quantity] as number;
    const sign = buf[s];
    const qFrom = sign === 0x2d || sign === 0x2b ? s + 1 : s;
    if (e - qFrom < 1 || e - qFrom > QUANTITY_DIGITS || !allDigits(buf, qFrom, e)) return false;
    let quantity = digitsValue(buf, qFrom, e);
    if (quantity > QUANTITY_MAX) return false;
    if (sign === 0x2d) quantity = -quantity || 0;
    // InvoiceDate: parsed by parseSourceDate once per distinct text.
    s = st[c.InvoiceDate] as number;
    e = en[c.InvoiceDate] as number;
    if (!sameAscii(buf, s, e, this.dateRaw)) {
      this.dateRaw = latin1(buf, s, e);
      this.dateLocal = parseSourceDate(this.dateRaw);
      if (this.dateLocal !== null) {
        // Outside the warehouse's calendar: the string path words the refusal (core/source-row.ts).
        const year = Number(this.dateLocal.slice(0, 4));
        if (year < FIRST_YEAR || year > LAST_YEAR) this.dateLocal = null;
        else this.dateMs = wallClockMs(this.dateLocal);
      }
    }
    if (this.dateLocal === null) return false;
    // UnitPrice: optional minus, 1-PRICE_INTEGER_DIGITS digits, optional point and 1-PRICE_DECIMALS
    // digits (other forms: string path).
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
    if (intEnd - pFrom < 1 || intEnd - pFrom > PRICE_INTEGER_DIGITS) return false;
    if (dot !== -1 && (e - dot - 1 < 1 || e - dot - 1 > PRICE_DECIMALS)) return false;
    let price = digitsValue(buf, pFrom, intEnd) * PRICE_UNIT;
    if (dot !== -1) price += digitsValue(buf, dot + 1, e) * (PRICE_SCALE[e - dot - 1] as number);
    if (negative) price = -price || 0;
    // CustomerID: empty, or 1-CUSTOMER_ID_DIGITS digits optionally followed by a point and zeros.
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
        if (digitsEnd === ts || digitsEnd - ts > CUSTOMER_ID_DIGITS) {
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
    // Country: 1-COUNTRY_MAX characters.
    s = st[c.Country] as number;
    e = en[c.Country] as number;
    if (!sameAscii(buf, s, e, this.countryRaw)) {
      this.trim(buf, c.Country);
      const ts = st[c.Country] as number;
      const te = en[c.Country] as number;
      if (te === ts || te - ts > COUNTRY_MAX) return false;
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
    row.productId = productId;
    row.quantity = quantity;
    row.invoiceDate = this.dateLocal;
    row.invoiceMs = this.dateMs;
    row.price = price;
    row.customerId = this.customerId;
    row.country = this.country;
    const reason = lines.csvRow();
    // Refused after reading (an invoice past its last line number): the values as written.
    if (reason !== undefined)
      this.lines.reject(lineNumber, reason, rawFields(latin1(buf, start, end).split(','), c));
    return true;
  }

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
      // Checked before it is decoded: the check may settle the encoding it is decoded in.
      this.check(buf, start, end, this.line);
      text = buf.toString(this.encoding, start, end);
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
    const parsed = parseSourceRow(r.fields, this.columns);
    if (!parsed.ok) {
      this.lines.reject(lineNumber, parsed.reason, rawFields(r.fields, this.columns));
      return next;
    }
    const { row } = parsed;
    const lines = this.lines;
    lines.setText(row.stockCode, row.description, row.customerId, row.country);
    const typed = lines.row;
    typed.invoiceNo = row.invoiceNo;
    typed.quantity = row.quantity;
    typed.invoiceDate = row.invoiceDate;
    typed.invoiceMs = wallClockMs(row.invoiceDate);
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
        // One table lookup per byte; only commas and bytes the byte path refuses look further.
        if (BYTE_CLASS[b] === PRINTABLE) continue;
        if (b === COMMA) {
          if (fields === MAX_FAST_FIELDS - 1) plain = false;
          else {
            st[fields] = fieldStart;
            en[fields] = j;
            fields++;
          }
          fieldStart = j + 1;
        } else {
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
        if (this.options.bytePath !== false && this.fast(buf, start, end, fields, lineNumber)) continue;
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
    this.base += rest;
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
      if (this.detector) this.encoding = this.detector.end();
      this.end_();
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }
}
