import avro from 'avsc';
import type { AcceptedLine } from './invoice-line.ts';
import { errorMessage } from './resilience.ts';
import { INVOICE_LINE_V1, INVOICE_LINE_V2, INVOICE_LINES_V1 } from './schemas/invoice-line.ts';

/**
 * Stream records are Avro single-object encoded: 0xC3 0x01, the writer schema's CRC-64-AVRO
 * fingerprint (8 bytes, little-endian), then the binary body. The fingerprint lets a consumer
 * read records written by any known schema version while producers upgrade one by one.
 *
 * Schema history (core/schemas/*.avsc):
 * - line v1: the first writer schema, one line per record.
 * - line v2: adds `currency` (string, default 'GBP'). Every v1 record was GBP, so the default is the
 *   truth, not a guess. The line is refused in any other currency until the money code handles more
 *   than one.
 * - lines v1 (current writer): `InvoiceLines`, an array of complete line v2 records: many lines of
 *   one invoice per stream record (core/records.ts groups them), because Kinesis bills and throttles
 *   per record and per 25 KB. Single-line v1 and v2 records still decode (they may still be on a
 *   stream or in a dead letter): every decoder answers a list of lines.
 *
 * Value mapping: unitPrice is an Avro decimal(15, 3) and decodes as decimal text with exactly 3
 * places ('2.55' comes back as '2.550': same amount, canonical form); producedAt and acceptedAt
 * are timestamp-millis and decode as UTC ISO strings with milliseconds.
 */

export class UnknownSchemaError extends Error {
  constructor(
    readonly fingerprint: string,
    options?: { cause?: unknown },
  ) {
    super(`record written with an unknown Avro schema, fingerprint ${fingerprint}`, options);
    this.name = 'UnknownSchemaError';
  }
}

export class InvalidRecordError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InvalidRecordError';
  }
}

export type SchemaVersion = 'v1' | 'v2';

/** The v2 record as Avro sees it: an AcceptedLine plus the fields the domain type does not carry. */
export interface InvoiceLineRecord extends AcceptedLine {
  currency: string;
}

// ---------------------------------------------------------------------------------------------
// Parsing canonical form and CRC-64-AVRO, as in the Avro specification ("Schema Fingerprints").

type JsonSchema = string | JsonSchema[] | { [key: string]: unknown };

const PCF_KEYS = ['name', 'type', 'fields', 'symbols', 'items', 'values', 'size'] as const;
const PRIMITIVES = new Set(['null', 'boolean', 'int', 'long', 'float', 'double', 'bytes', 'string']);

function fullName(name: string, namespace: string | undefined): string {
  return name.includes('.') || !namespace ? name : `${namespace}.${name}`;
}

function canonical(schema: JsonSchema, namespace: string | undefined): string {
  if (typeof schema === 'string') {
    return JSON.stringify(PRIMITIVES.has(schema) ? schema : fullName(schema, namespace));
  }
  if (Array.isArray(schema)) return `[${schema.map((s) => canonical(s, namespace)).join(',')}]`;
  const type = schema.type as JsonSchema;
  if (typeof type === 'string' && PRIMITIVES.has(type)) return JSON.stringify(type);
  if (typeof type !== 'string') return canonical(type, namespace);
  let ns = namespace;
  const parts: string[] = [];
  if (typeof schema.name === 'string') {
    const ownNs = typeof schema.namespace === 'string' ? schema.namespace : namespace;
    const name = fullName(schema.name, ownNs);
    ns = name.includes('.') ? name.slice(0, name.lastIndexOf('.')) : undefined;
    parts.push(`"name":${JSON.stringify(name)}`);
  }
  for (const key of PCF_KEYS) {
    if (key === 'name' || !(key in schema)) continue;
    const v = schema[key];
    if (key === 'type') parts.push(`"type":${JSON.stringify(v)}`);
    else if (key === 'fields') {
      const fields = (v as { name: string; type: JsonSchema }[]).map(
        (f) => `{"name":${JSON.stringify(f.name)},"type":${canonical(f.type, ns)}}`,
      );
      parts.push(`"fields":[${fields.join(',')}]`);
    } else if (key === 'items' || key === 'values') parts.push(`"${key}":${canonical(v as JsonSchema, ns)}`);
    else parts.push(`"${key}":${JSON.stringify(v)}`);
  }
  return `{${parts.join(',')}}`;
}

/** The Avro parsing canonical form of a schema (JSON), e.g. for fingerprints. */
export function parsingCanonicalForm(schema: unknown): string {
  return canonical(schema as JsonSchema, undefined);
}

const CRC64_EMPTY = 0xc15d213aa4d7a795n;
const MASK64 = 0xffffffffffffffffn;
const CRC64_TABLE = Array.from({ length: 256 }, (_, i) => {
  let fp = BigInt(i);
  for (let j = 0; j < 8; j++) fp = (fp >> 1n) ^ (CRC64_EMPTY & -(fp & 1n) & MASK64);
  return fp;
});

/** CRC-64-AVRO (Rabin) of a string's UTF-8 bytes, as an unsigned 64-bit value. */
export function crc64Avro(text: string): bigint {
  let fp = CRC64_EMPTY;
  for (const b of Buffer.from(text, 'utf8'))
    fp = (fp >> 8n) ^ (CRC64_TABLE[Number((fp ^ BigInt(b)) & 0xffn)] ?? 0n);
  return fp;
}

/** The schema's 64-bit fingerprint as 16 hex digits (the number, most significant first). */
export function schemaFingerprint(schema: unknown): string {
  return crc64Avro(parsingCanonicalForm(schema)).toString(16).padStart(16, '0');
}

// ---------------------------------------------------------------------------------------------
// Logical types.

const DECIMAL_TEXT = /^(-?)(\d+)(?:\.(\d+))?$/;

/**
 * Avro decimal (bytes, two's complement big-endian unscaled value) <-> decimal text with exactly
 * `scale` places. Precision 15 keeps the unscaled value below 2^53, so plain numbers are exact.
 */
class DecimalType extends avro.types.LogicalType {
  readonly precision: number;
  readonly scale: number;
  private readonly limit: number;
  private readonly unit: number;

  constructor(schema: avro.Schema, opts?: unknown) {
    super(schema, opts);
    const { precision, scale = 0 } = schema as unknown as { precision: number; scale?: number };
    if (!Number.isInteger(precision) || precision < 1 || precision > 15) {
      throw new Error(`decimal precision must be 1..15 here, got ${precision}`);
    }
    if (!Number.isInteger(scale) || scale < 0 || scale > precision)
      throw new Error(`bad decimal scale ${scale}`);
    this.precision = precision;
    this.scale = scale;
    this.limit = 10 ** precision;
    this.unit = 10 ** scale;
  }

  protected override _fromValue(buf: Buffer): string {
    // Reading past the end of a truncated body yields no buffer; avsc reports 'truncated buffer' after.
    if (!Buffer.isBuffer(buf)) return '';
    if (buf.length === 0 || buf.length > 7) throw new Error(`decimal of ${buf.length} bytes`);
    let n = (buf[0] as number) >= 0x80 ? (buf[0] as number) - 0x100 : (buf[0] as number);
    for (let i = 1; i < buf.length; i++) n = n * 256 + (buf[i] as number);
    if (Math.abs(n) >= this.limit) throw new Error(`decimal exceeds precision ${this.precision}`);
    const abs = Math.abs(n);
    const int = Math.floor(abs / this.unit);
    const sign = n < 0 ? '-' : '';
    if (this.scale === 0) return `${sign}${int}`;
    return `${sign}${int}.${String(abs % this.unit).padStart(this.scale, '0')}`;
  }

  protected override _toValue(v: unknown): Buffer {
    const text = typeof v === 'number' && Number.isFinite(v) ? String(v) : v;
    const m = typeof text === 'string' ? DECIMAL_TEXT.exec(text) : null;
    const frac = m?.[3] ?? '';
    if (!m || frac.length > this.scale || (m[2] as string).length > this.precision - this.scale) {
      throw new Error(`not a decimal(${this.precision},${this.scale}): ${String(v)}`);
    }
    const digits = Number(`${m[2]}${frac.padEnd(this.scale, '0')}`);
    let n = m[1] === '-' ? -digits : digits;
    // Minimal two's complement, most significant byte first.
    const bytes: number[] = [];
    for (;;) {
      const b = ((n % 256) + 256) % 256;
      n = (n - b) / 256;
      bytes.push(b);
      if ((n === 0 && b < 0x80) || (n === -1 && b >= 0x80)) break;
    }
    return Buffer.from(bytes.reverse());
  }

  protected override _resolve(type: avro.Type): ((v: string) => string) | undefined {
    if (type instanceof DecimalType && type.scale === this.scale && type.precision <= this.precision) {
      return (v) => v;
    }
    return undefined;
  }

  protected override _export(schema: avro.Schema): void {
    const attrs = schema as unknown as Record<string, unknown>;
    attrs.precision = this.precision;
    attrs.scale = this.scale;
  }
}

/** timestamp-millis (long) <-> ISO-8601 UTC string; accepts any ISO string or Date on write. */
class TimestampMillisType extends avro.types.LogicalType {
  protected override _fromValue(ms: number): string {
    // NaN comes from reading past the end of a truncated body; avsc reports 'truncated buffer' after.
    if (Number.isNaN(ms)) return '';
    if (!(Math.abs(ms) <= 8.64e15)) throw new Error(`timestamp out of range: ${ms}`);
    return new Date(ms).toISOString();
  }

  protected override _toValue(v: unknown): number {
    const ms = typeof v === 'string' ? Date.parse(v) : v instanceof Date ? v.getTime() : Number.NaN;
    if (!Number.isFinite(ms)) throw new Error(`not a timestamp: ${String(v)}`);
    return ms;
  }

  protected override _resolve(type: avro.Type): ((v: unknown) => string) | undefined {
    if (type instanceof TimestampMillisType) return (v) => v as string;
    if (type.typeName === 'long' || type.typeName === 'int')
      return (v) => new Date(v as number).toISOString();
    return undefined;
  }
}

const LOGICAL_TYPES = { decimal: DecimalType, 'timestamp-millis': TimestampMillisType };

// ---------------------------------------------------------------------------------------------
// Types, fingerprints and resolvers, all built once at module load.

const SCHEMAS: Record<SchemaVersion, unknown> = { v1: INVOICE_LINE_V1, v2: INVOICE_LINE_V2 };

interface Writer {
  version: SchemaVersion | 'lines-v1';
  type: avro.Type;
  fingerprint: string;
  header: Buffer;
  /** The lines of a body written by this schema, as current (v2) line records. */
  read(body: Buffer): InvoiceLineRecord[];
}

const MAGIC_0 = 0xc3;
const MAGIC_1 = 0x01;
const HEADER_LENGTH = 10;

function buildWriter(
  version: Writer['version'],
  schema: unknown,
  read: (type: avro.Type) => Writer['read'],
): Writer {
  const type = avro.Type.forSchema(schema as avro.Schema, { logicalTypes: LOGICAL_TYPES });
  const fp = crc64Avro(parsingCanonicalForm(schema));
  const header = Buffer.alloc(HEADER_LENGTH);
  header[0] = MAGIC_0;
  header[1] = MAGIC_1;
  header.writeBigUInt64LE(fp, 2);
  return { version, type, fingerprint: fp.toString(16).padStart(16, '0'), header, read: read(type) };
}

/** The line v2 type: the element of every multi-line record and the reader of single-line ones. */
const LINE = buildWriter('v2', SCHEMAS.v2, (type) => (body) => [type.fromBuffer(body) as InvoiceLineRecord]);
const LINE_TYPE = LINE.type;
const LINE_V1 = buildWriter('v1', SCHEMAS.v1, (type) => {
  const resolver = LINE_TYPE.createResolver(type);
  return (body) => [LINE_TYPE.fromBuffer(body, resolver) as InvoiceLineRecord];
});
const LINES = buildWriter(
  'lines-v1',
  INVOICE_LINES_V1,
  (type) => (body) => (type.fromBuffer(body) as { lines: InvoiceLineRecord[] }).lines,
);
const WRITERS: Record<SchemaVersion, Writer> = { v1: LINE_V1, v2: LINE };
const BY_FINGERPRINT = new Map<bigint, Writer>(
  [LINE_V1, LINE, LINES].map((w) => [w.header.readBigUInt64LE(2), w]),
);

/** Fingerprint (16 hex digits) of the current writer schema: the multi-line record. */
export const CURRENT_FINGERPRINT: string = LINES.fingerprint;
/** Fingerprints of every schema version the decoders can read. */
export const KNOWN_FINGERPRINTS: Readonly<Record<SchemaVersion | 'lines-v1', string>> = Object.freeze({
  v1: LINE_V1.fingerprint,
  v2: LINE.fingerprint,
  'lines-v1': LINES.fingerprint,
});

function encodeBody(type: avro.Type, value: unknown, what: string): Buffer {
  try {
    return type.toBuffer(value);
  } catch (err) {
    const problems: string[] = [];
    type.isValid(value, {
      errorHook: (path: string[], v: unknown) =>
        problems.push(`${path.join('.') || '(record)'}=${String(v)}`),
    });
    throw new InvalidRecordError(`cannot encode ${what}: ${problems.join(', ') || err}`, { cause: err });
  }
}

function frame(writer: Writer, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(HEADER_LENGTH + body.length);
  writer.header.copy(out, 0);
  body.copy(out, HEADER_LENGTH);
  return out;
}

function lineValue(line: AcceptedLine): InvoiceLineRecord {
  return {
    invoiceNo: line.invoiceNo,
    lineNo: line.lineNo,
    stockCode: line.stockCode,
    description: line.description,
    quantity: line.quantity,
    invoiceDate: line.invoiceDate,
    unitPrice: line.unitPrice,
    customerId: line.customerId,
    country: line.country,
    producedAt: line.producedAt,
    acceptedAt: line.acceptedAt,
    currency: 'GBP',
  };
}

/**
 * A single-line record (line v2), as the previous version wrote every record. Still read by every
 * decoder; written only by tools and tests that need an old record (and the bench's bare chain).
 */
export function encodeLine(line: AcceptedLine): Buffer {
  return frame(LINE, encodeBody(LINE_TYPE, lineValue(line), 'invoice line (v2)'));
}

/** Encodes any value with a given single-line schema version (tests of schema evolution, replay tools). */
export function encodeWithSchema(version: SchemaVersion, value: unknown): Buffer {
  const writer = WRITERS[version];
  if (!writer) throw new UnknownSchemaError(String(version));
  return frame(writer, encodeBody(writer.type, value, `invoice line (${version})`));
}

/**
 * One line as an element of a multi-line record (its Avro body, no header). core/records.ts sizes
 * lines by these bytes to group them, then frames the same bytes: each line is encoded once.
 */
export function encodeLineItem(line: AcceptedLine): Buffer {
  return encodeBody(LINE_TYPE, lineValue(line), `invoice line ${line.invoiceNo}#${line.lineNo}`);
}

/** Bytes a multi-line record adds to its items: header, block count (up to 3 bytes below 2^20 lines), end. */
export const LINES_RECORD_OVERHEAD = HEADER_LENGTH + 3 + 1;

/**
 * A multi-line record from encoded items. The Avro binary of an array is a block count (zig-zag
 * varint), the items, and a zero count: written here directly so the items are not encoded twice.
 */
export function frameLineItems(items: readonly Buffer[]): Buffer {
  if (items.length === 0) throw new InvalidRecordError('a record holds at least one line');
  const count: number[] = [];
  for (let n = items.length * 2; ; n = Math.floor(n / 128)) {
    if (n < 128) {
      count.push(n);
      break;
    }
    count.push((n % 128) | 0x80);
  }
  let size = HEADER_LENGTH + count.length + 1;
  for (const item of items) size += item.length;
  const out = Buffer.allocUnsafe(size);
  LINES.header.copy(out, 0);
  let at = HEADER_LENGTH;
  for (const b of count) out[at++] = b;
  for (const item of items) at += item.copy(out, at);
  out[at] = 0;
  return out;
}

/** A multi-line record (the current writer schema) of the given lines, in order. */
export function encodeLines(lines: readonly AcceptedLine[]): Buffer {
  return frameLineItems(lines.map(encodeLineItem));
}

function asBuffer(buf: Uint8Array): Buffer {
  return Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * The line records of a single-object encoded record of any known schema: one for a single-line
 * record, one or more for a multi-line record. Throws UnknownSchemaError or InvalidRecordError when
 * the record cannot be read at all.
 */
export function decodeRecords(bytes: Uint8Array): InvoiceLineRecord[] {
  const buf = asBuffer(bytes);
  if (buf.length < HEADER_LENGTH) {
    throw new InvalidRecordError(`record too short for Avro single-object encoding: ${buf.length} bytes`);
  }
  if (buf[0] !== MAGIC_0 || buf[1] !== MAGIC_1) {
    throw new InvalidRecordError(
      `not Avro single-object encoding: starts with 0x${buf.subarray(0, 2).toString('hex')}, expected 0xc301`,
    );
  }
  // Comparing the header bytes is cheaper than a map lookup, and nearly every record is current.
  const writer =
    buf.compare(LINES.header, 2, HEADER_LENGTH, 2, HEADER_LENGTH) === 0
      ? LINES
      : BY_FINGERPRINT.get(buf.readBigUInt64LE(2));
  if (!writer) {
    throw new UnknownSchemaError(buf.readBigUInt64LE(2).toString(16).padStart(16, '0'));
  }
  let lines: InvoiceLineRecord[];
  try {
    lines = writer.read(buf.subarray(HEADER_LENGTH));
  } catch (err) {
    throw new InvalidRecordError(
      `corrupt invoice line record (schema ${writer.version}): ${errorMessage(err, { name: false })}`,
      { cause: err },
    );
  }
  if (lines.length === 0) throw new InvalidRecordError(`record (schema ${writer.version}) holds no line`);
  return lines;
}

/** The one line record of a single-line record (line v1 or v2); refuses a record of several lines. */
export function decodeRecord(bytes: Uint8Array): InvoiceLineRecord {
  const lines = decodeRecords(bytes);
  if (lines.length !== 1) throw new InvalidRecordError(`record holds ${lines.length} lines, expected one`);
  return lines[0] as InvoiceLineRecord;
}

/** A decoded line record as the domain type; throws InvalidRecordError for what the domain cannot hold. */
export function toAcceptedLine(r: InvoiceLineRecord): AcceptedLine {
  if (r.currency !== 'GBP') {
    throw new InvalidRecordError(`unsupported currency '${r.currency}' for ${r.invoiceNo}#${r.lineNo}`);
  }
  return {
    invoiceNo: r.invoiceNo,
    lineNo: r.lineNo,
    stockCode: r.stockCode,
    description: r.description,
    quantity: r.quantity,
    invoiceDate: r.invoiceDate,
    unitPrice: r.unitPrice,
    customerId: r.customerId,
    country: r.country,
    producedAt: r.producedAt,
    acceptedAt: r.acceptedAt,
  };
}

/** Every line of a record of any known schema; throws on the first line the domain cannot hold. */
export function decodeLines(bytes: Uint8Array): AcceptedLine[] {
  return decodeRecords(bytes).map(toAcceptedLine);
}

/** The line of a single-line record; throws UnknownSchemaError or InvalidRecordError on bad input. */
export function decodeLine(bytes: Uint8Array): AcceptedLine {
  return toAcceptedLine(decodeRecord(bytes));
}
