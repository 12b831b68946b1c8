import avro from 'avsc';
import type { AcceptedLine } from './invoice-line.ts';
import { errorMessage } from './resilience.ts';
import { INVOICE_LINE_V1, INVOICE_LINE_V2 } from './schemas/invoice-line.ts';

/**
 * Stream records are Avro single-object encoded: 0xC3 0x01, the writer schema's CRC-64-AVRO
 * fingerprint (8 bytes, little-endian), then the binary body. The fingerprint lets a consumer
 * read records written by any known schema version while producers upgrade one by one.
 *
 * Schema history (core/schemas/*.avsc):
 * - v1: the first writer schema.
 * - v2 (current writer and reader): adds `currency` (string, default 'GBP'). Every v1 record was
 *   GBP, so the default is the truth, not a guess. decodeLine refuses any other currency until
 *   the money code handles more than one.
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
const CURRENT_VERSION: SchemaVersion = 'v2';

interface Writer {
  version: SchemaVersion;
  type: avro.Type;
  fingerprint: string;
  header: Buffer;
  /** Reads a body written by this schema into a current (v2) record; undefined for v2 itself. */
  resolver: ReturnType<avro.Type['createResolver']> | undefined;
}

const MAGIC_0 = 0xc3;
const MAGIC_1 = 0x01;
const HEADER_LENGTH = 10;

function buildWriter(version: SchemaVersion, reader: avro.Type | undefined): Writer {
  const type = avro.Type.forSchema(SCHEMAS[version] as avro.Schema, { logicalTypes: LOGICAL_TYPES });
  const fp = crc64Avro(parsingCanonicalForm(SCHEMAS[version]));
  const header = Buffer.alloc(HEADER_LENGTH);
  header[0] = MAGIC_0;
  header[1] = MAGIC_1;
  header.writeBigUInt64LE(fp, 2);
  return {
    version,
    type,
    fingerprint: fp.toString(16).padStart(16, '0'),
    header,
    resolver: reader ? reader.createResolver(type) : undefined,
  };
}

const CURRENT = buildWriter(CURRENT_VERSION, undefined);
const READER = CURRENT.type;
const WRITERS: Record<SchemaVersion, Writer> = { v1: buildWriter('v1', READER), v2: CURRENT };
const BY_FINGERPRINT = new Map<bigint, Writer>(
  Object.values(WRITERS).map((w) => [w.header.readBigUInt64LE(2), w]),
);

/** Fingerprint (16 hex digits) of the current writer schema. */
export const CURRENT_FINGERPRINT: string = CURRENT.fingerprint;
/** Fingerprints of every schema version decodeLine can read. */
export const KNOWN_FINGERPRINTS: Readonly<Record<SchemaVersion, string>> = Object.freeze({
  v1: WRITERS.v1.fingerprint,
  v2: WRITERS.v2.fingerprint,
});

function frame(writer: Writer, value: unknown): Buffer {
  let body: Buffer;
  try {
    body = writer.type.toBuffer(value);
  } catch (err) {
    const problems: string[] = [];
    writer.type.isValid(value, {
      errorHook: (path: string[], v: unknown) =>
        problems.push(`${path.join('.') || '(record)'}=${String(v)}`),
    });
    throw new InvalidRecordError(
      `cannot encode invoice line (${writer.version}): ${problems.join(', ') || err}`,
      {
        cause: err,
      },
    );
  }
  const out = Buffer.allocUnsafe(HEADER_LENGTH + body.length);
  writer.header.copy(out, 0);
  body.copy(out, HEADER_LENGTH);
  return out;
}

/** Single-object encoding of a line with the current writer schema. */
export function encodeLine(line: AcceptedLine): Buffer {
  return frame(CURRENT, {
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
  });
}

/** Encodes any value with a given schema version (tests of schema evolution, replay tools). */
export function encodeWithSchema(version: SchemaVersion, value: unknown): Buffer {
  const writer = WRITERS[version];
  if (!writer) throw new UnknownSchemaError(String(version));
  return frame(writer, value);
}

function asBuffer(buf: Uint8Array): Buffer {
  return Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Decodes a single-object encoded record of any known version into the current (v2) record. */
export function decodeRecord(bytes: Uint8Array): InvoiceLineRecord {
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
    buf.compare(CURRENT.header, 2, HEADER_LENGTH, 2, HEADER_LENGTH) === 0
      ? CURRENT
      : BY_FINGERPRINT.get(buf.readBigUInt64LE(2));
  if (!writer) {
    throw new UnknownSchemaError(buf.readBigUInt64LE(2).toString(16).padStart(16, '0'));
  }
  try {
    return READER.fromBuffer(buf.subarray(HEADER_LENGTH), writer.resolver) as InvoiceLineRecord;
  } catch (err) {
    throw new InvalidRecordError(
      `corrupt invoice line record (schema ${writer.version}): ${errorMessage(err, { name: false })}`,
      { cause: err },
    );
  }
}

/** Decodes to the domain type; throws UnknownSchemaError or InvalidRecordError on bad input. */
export function decodeLine(bytes: Uint8Array): AcceptedLine {
  const r = decodeRecord(bytes);
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
