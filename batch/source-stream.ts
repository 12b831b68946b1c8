import { Readable, Transform, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import {
  BLANK_MARKER,
  CONTROL_MARKER,
  CSV_FIELDS,
  type CsvField,
  MALFORMED_MARKER,
  NUL_MARKER,
} from './sql.ts';

/**
 * Byte-level preparation of a source object on its way into COPY: decompress when gzipped, split
 * off the CSV header, and make every record COPY-safe. Work per byte is a few comparisons; per row
 * it is nothing, so the stream keeps up with COPY (the typing and validation happen in SQL).
 */

/** The first chunk of a stream plus a stream that replays it and the rest. */
async function peek(source: Readable, minBytes: number): Promise<{ head: Buffer; rest: Readable }> {
  const iterator = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const chunks: Buffer[] = [];
  let size = 0;
  let ended = false;
  while (size < minBytes) {
    const next = await iterator.next();
    if (next.done) {
      ended = true;
      break;
    }
    chunks.push(next.value);
    size += next.value.length;
  }
  const head = Buffer.concat(chunks);
  async function* replay() {
    if (head.length > 0) yield head;
    if (ended) return;
    for (;;) {
      const next = await iterator.next();
      if (next.done) return;
      yield next.value;
    }
  }
  const rest = Readable.from(replay(), { objectMode: false });
  rest.on('close', () => {
    if (!rest.readableEnded) void iterator.return?.();
  });
  return { head, rest };
}

/** Gunzips when the bytes say gzip (1f 8b), whatever the key's extension. */
export async function decompressed(body: Readable): Promise<Readable & { gzip?: boolean }> {
  const { head, rest } = await peek(body, 2);
  if (head[0] === 0x1f && head[1] === 0x8b) {
    const gunzip = createGunzip();
    rest.on('error', (err) => gunzip.destroy(err));
    return Object.assign(rest.pipe(gunzip), { gzip: true });
  }
  return Object.assign(rest, { gzip: false });
}

export interface CsvHead {
  /** Header cells, trimmed, BOM removed. */
  columns: string[];
  encoding: 'UTF8' | 'LATIN1';
  /** The bytes after the header line. */
  body: Readable;
}

/** Splits one CSV line into cells (quotes honoured); for the header only. */
export function splitCsvLine(line: string): string[] {
  const cells: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      cells.push(cell);
      cell = '';
    } else cell += ch;
  }
  cells.push(cell);
  return cells;
}

/** UTF-8 unless the bytes are not valid UTF-8 (then Latin-1, the other encoding the source uses). */
export function sniffEncoding(bytes: Buffer): 'UTF8' | 'LATIN1' {
  // A multi-byte character may be cut at the end of the sample: ignore the last 3 bytes.
  const sample = bytes.length > 4 ? bytes.subarray(0, bytes.length - 3) : bytes;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(sample);
    return 'UTF8';
  } catch {
    return 'LATIN1';
  }
}

export class EmptyFileError extends Error {
  override name = 'EmptyFileError';
}

/** Reads the header line (up to 64 KiB) and sniffs the encoding of the first 256 KiB. */
export async function readCsvHead(text: Readable): Promise<CsvHead> {
  const { head, rest } = await peek(text, 256 * 1024);
  if (head.length === 0) throw new EmptyFileError('the file is empty');
  const nl = head.indexOf(0x0a);
  const headerBytes = nl === -1 ? head : head.subarray(0, nl);
  const encoding = sniffEncoding(head);
  let header = headerBytes.toString(encoding === 'UTF8' ? 'utf8' : 'latin1');
  header = header.replace(/^\uFEFF/, '').replace(/\r$/, '');
  const skip = nl === -1 ? head.length : nl + 1;
  let skipped = 0;
  const body = rest.pipe(
    new Transform({
      transform(chunk: Buffer, _enc, cb) {
        if (skipped >= skip) return cb(null, chunk);
        const cut = Math.min(skip - skipped, chunk.length);
        skipped += cut;
        cb(null, cut < chunk.length ? chunk.subarray(cut) : undefined);
      },
    }),
  );
  rest.on('error', (err) => body.destroy(err));
  return { columns: splitCsvLine(header).map((c) => c.trim()), encoding, body };
}

export interface HeaderCheck {
  /** 1-based column of each required field. */
  columnOf?: Record<CsvField, number>;
  missing: string[];
  extra: string[];
  /** Required fields named by more than one column: which one holds the value is anyone's guess. */
  duplicated?: string[];
}

/** Matches the header to the Online Retail columns: names compared case- and space-insensitively. */
export function checkHeader(columns: string[]): HeaderCheck {
  const norm = (s: string) => s.toLowerCase().replace(/[\s_]/g, '');
  const index = new Map<string, number>();
  columns.forEach((c, i) => {
    if (!index.has(norm(c))) index.set(norm(c), i + 1);
  });
  const missing = CSV_FIELDS.filter((f) => !index.has(norm(f)));
  const wanted = new Set(CSV_FIELDS.map(norm));
  const extra = columns.filter((c) => !wanted.has(norm(c)));
  if (missing.length > 0) return { missing, extra };
  const duplicated = CSV_FIELDS.filter((f) => columns.filter((c) => norm(c) === norm(f)).length > 1);
  if (duplicated.length > 0) return { missing, extra, duplicated };
  const columnOf = Object.fromEntries(CSV_FIELDS.map((f) => [f, index.get(norm(f)) as number])) as Record<
    CsvField,
    number
  >;
  return { columnOf, missing, extra };
}

const QUOTE = 0x22;
const COMMA = 0x2c;
const LF = 0x0a;
const CR = 0x0d;
const TAB = 0x09;
const NUL = 0x00;
const DEL = 0x7f;
const SOH = 0x01;

const digits = new Uint8Array(20);
function writeDigits(out: Buffer, at: number, n: number): number {
  let len = 0;
  let v = n;
  do {
    digits[len++] = 48 + (v % 10);
    v = Math.floor(v / 10);
  } while (v > 0);
  let o = at;
  while (len > 0) out[o++] = digits[--len] as number;
  return o;
}

/**
 * The text fields the API refuses control characters in (core/invoice-line.ts: stockCode,
 * description, country), as 1-based columns of a file's header, for `RecordGuard`.
 */
export function controlCheckedColumns(columnOf: Record<CsvField, number>): Map<number, string> {
  const fields: CsvField[] = ['StockCode', 'Description', 'Country'];
  return new Map(fields.map((f) => [columnOf[f], f]));
}

/**
 * Prefixes every CSV record with its 1-based record number (the staging table's `row_no`, so file
 * order survives into SQL without a sequence, which would double COPY's cost) and replaces a record
 * COPY would refuse (wrong field count, blank line, a NUL byte: PostgreSQL text cannot hold one) by a
 * marker row with the right field count, so one bad row cannot fail the file. A record with a control
 * character (U+0000-U+0008, U+000B, U+000C, U+000E-U+001F, U+007F: the API's rule) in a checked text
 * column becomes a marker row too. These are single bytes in UTF-8 and Latin-1 alike, never part of
 * a multi-byte character, so the byte scan sees them whatever the encoding. SQL reports the marker
 * rows with their reason.
 */
export class RecordGuard extends Transform {
  private carry: Buffer | null = null;
  private scanned = 0;
  private inQuote = false;
  private fields = 1;
  private nul = false;
  /** 1-based column of the first control character found in a checked column of the record, or 0. */
  private control = 0;
  private readonly checked: Uint8Array;
  private readonly ends: number[] = [];
  private readonly bad: Array<string | undefined> = [];
  malformed = 0;
  /** Records replaced because of a NUL byte or a control character. */
  refused = 0;
  records = 0;

  /** `controlChecked`: 1-based column -> field name, the columns control characters are refused in. */
  constructor(
    private readonly expected: number,
    private readonly controlChecked: ReadonlyMap<number, string> = new Map(),
  ) {
    super();
    this.checked = new Uint8Array(expected + 2);
    for (const column of controlChecked.keys()) if (column <= expected) this.checked[column] = 1;
  }

  private classify(buf: Buffer, start: number, end: number, fields: number): string | undefined {
    const blank = end === start || (end === start + 1 && buf[start] === CR);
    const nul = this.nul;
    const control = this.control;
    this.nul = false;
    this.control = 0;
    if (blank) return BLANK_MARKER;
    if (nul) {
      this.refused++;
      return NUL_MARKER;
    }
    if (fields !== this.expected) {
      this.malformed++;
      return `${MALFORMED_MARKER}${fields}`;
    }
    if (control > 0) {
      this.refused++;
      return `${CONTROL_MARKER}${this.controlChecked.get(control) ?? `column ${control}`}`;
    }
    return undefined;
  }

  private writeRecords(buf: Buffer, upTo: number): void {
    // Records [start, ends[i]] (LF included) -> "<n>," + record, or "<n>,<marker row>\n".
    let size = 0;
    let start = 0;
    for (let i = 0; i < this.ends.length; i++) {
      const end = this.ends[i] as number;
      const marker = this.bad[i];
      size += 12 + (marker === undefined ? end + 1 - start : marker.length + this.expected + 3);
      start = end + 1;
    }
    const out = Buffer.allocUnsafe(size);
    let o = 0;
    start = 0;
    for (let i = 0; i < this.ends.length; i++) {
      const end = this.ends[i] as number;
      const marker = this.bad[i];
      o = writeDigits(out, o, ++this.records);
      out[o++] = COMMA;
      if (marker === undefined) {
        // CRLF becomes LF: COPY insists on one line ending per file, and marker rows use LF.
        const stop = end > start && buf[end - 1] === CR ? end - 1 : end;
        o += buf.copy(out, o, start, stop);
        out[o++] = LF;
      } else o += out.write(`"${marker}"${','.repeat(this.expected - 1)}\n`, o, 'latin1');
      start = end + 1;
    }
    this.ends.length = 0;
    this.bad.length = 0;
    if (o > 0) this.push(out.subarray(0, o));
    this.carry = upTo < buf.length ? buf.subarray(upTo) : null;
    this.scanned = this.carry ? this.carry.length : 0;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const buf = this.carry ? Buffer.concat([this.carry, chunk]) : chunk;
    let recStart = 0;
    let inQuote = this.inQuote;
    let fields = this.fields;
    const checked = this.checked;
    for (let i = this.scanned; i < buf.length; i++) {
      const b = buf[i] as number;
      // Control bytes are rare: one range test keeps the common byte at the same few comparisons.
      if (b < 0x20 || b === DEL) {
        if (b === LF) {
          if (!inQuote) {
            this.ends.push(i);
            this.bad.push(this.classify(buf, recStart, i, fields));
            fields = 1;
            recStart = i + 1;
          }
        } else if (b === NUL) this.nul = true;
        else if (b !== CR && b !== TAB && this.control === 0) {
          // A first field starting with SOH would read as a marker row in SQL: refused wherever it is.
          if (checked[fields] === 1 || (fields === 1 && b === SOH)) this.control = fields;
        }
      } else if (b === QUOTE) inQuote = !inQuote;
      else if (b === COMMA && !inQuote) fields++;
    }
    this.inQuote = inQuote;
    this.fields = fields;
    this.writeRecords(buf, recStart);
    cb();
  }

  override _flush(cb: TransformCallback): void {
    if (this.carry && this.carry.length > 0) {
      const buf = Buffer.concat([this.carry, Buffer.from('\n')]);
      this.ends.push(buf.length - 1);
      this.bad.push(this.classify(buf, 0, buf.length - 1, this.fields));
      this.writeRecords(buf, buf.length);
    }
    cb();
  }
}
