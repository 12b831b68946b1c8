import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import {
  CURRENT_FINGERPRINT,
  crc64Avro,
  decodeLine,
  decodeLines,
  decodeRecord,
  decodeRecords,
  encodeLine,
  encodeLineItem,
  encodeLines,
  encodeWithSchema,
  frameLineItems,
  InvalidRecordError,
  KNOWN_FINGERPRINTS,
  parsingCanonicalForm,
  schemaFingerprint,
  UnknownSchemaError,
} from '#core/avro';
import type { AcceptedLine } from '#core/invoice-line';
import { INVOICE_LINE_V1, INVOICE_LINE_V2, INVOICE_LINES_V1 } from '#core/schemas/invoice-line';
import { acceptedLine } from '#test/helpers/lines';

const schemaDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../core/schemas');
const readAvsc = (v: string) =>
  JSON.parse(readFileSync(path.join(schemaDir, `invoice-line.${v}.avsc`), 'utf8'));
const readLinesAvsc = () => JSON.parse(readFileSync(path.join(schemaDir, 'invoice-lines.v1.avsc'), 'utf8'));
const fingerprintOf = (buf: Buffer) => buf.readBigUInt64LE(2).toString(16).padStart(16, '0');

/** The schema with its logical types replaced by their underlying types: avsc's own reading of the bytes. */
function withoutLogicalTypes(schema: unknown): avro.Type {
  const strip = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(strip);
    if (typeof node !== 'object' || node === null) return node;
    const o = node as Record<string, unknown>;
    if (typeof o.logicalType === 'string') return o.type;
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, strip(v)]));
  };
  return avro.Type.forSchema(strip(JSON.parse(JSON.stringify(schema))) as avro.Schema);
}

// The price in its decoded form (3 decimals) and instants with milliseconds, so round trips compare equal.
const line: AcceptedLine = acceptedLine({
  unitPrice: '2.550',
  producedAt: '2010-12-01T08:26:00.123Z',
  acceptedAt: '2010-12-01T08:26:00.456Z',
});

describe('schemas', () => {
  it('keeps the .avsc files and the schemas in code identical', () => {
    expect(readAvsc('v1')).toEqual(INVOICE_LINE_V1);
    expect(readAvsc('v2')).toEqual(INVOICE_LINE_V2);
    expect(readLinesAvsc()).toEqual(INVOICE_LINES_V1);
  });

  it('computes CRC-64-AVRO as the Avro reference test vectors', () => {
    expect(crc64Avro('"null"')).toBe(7195948357588979594n);
    expect(crc64Avro('"int"')).toBe(8247732601305521295n);
    expect(crc64Avro('{"name":"x.y.foo","type":"record","fields":[]}')).toBe(5916914534497305771n);
  });

  it('builds the parsing canonical form (full names, no docs, defaults or logical types)', () => {
    const pcf = parsingCanonicalForm(INVOICE_LINE_V2);
    expect(pcf.startsWith('{"name":"retailpipeline.InvoiceLine","type":"record","fields":[')).toBe(true);
    expect(pcf).toContain('{"name":"unitPrice","type":"bytes"}');
    expect(pcf).toContain('{"name":"description","type":["null","string"]}');
    expect(pcf).not.toMatch(/doc|default|logicalType|namespace|\s/);
    // avsc's own canonical schema is an independent implementation of the same rules.
    expect(pcf).toBe(JSON.stringify(avro.Type.forSchema(INVOICE_LINE_V2 as unknown as avro.Schema).schema()));
  });

  it('exposes the current fingerprint (the multi-line record) and one for each single-line schema', () => {
    expect(CURRENT_FINGERPRINT).toMatch(/^[0-9a-f]{16}$/);
    expect(CURRENT_FINGERPRINT).toBe(schemaFingerprint(readLinesAvsc()));
    expect(KNOWN_FINGERPRINTS['lines-v1']).toBe(CURRENT_FINGERPRINT);
    expect(KNOWN_FINGERPRINTS.v2).toBe(schemaFingerprint(readAvsc('v2')));
    expect(KNOWN_FINGERPRINTS.v1).toBe(schemaFingerprint(readAvsc('v1')));
    expect(new Set(Object.values(KNOWN_FINGERPRINTS)).size).toBe(3);
  });
});

describe('encodeLine / decodeLine (single-line records, as the previous version wrote them)', () => {
  it('frames with 0xC3 0x01 and the little-endian fingerprint', () => {
    const buf = encodeLine(line);
    expect(buf.subarray(0, 2).toString('hex')).toBe('c301');
    expect(fingerprintOf(buf)).toBe(KNOWN_FINGERPRINTS.v2);
  });

  it('round-trips every field', () => {
    expect(decodeLine(encodeLine(line))).toEqual(line);
  });

  it.each([
    ['0.001', '0.001'],
    ['2.55', '2.550'],
    ['0', '0.000'],
    ['-11062.06', '-11062.060'],
    ['999999999999.999', '999999999999.999'],
    ['-999999999999.999', '-999999999999.999'],
    ['0.128', '0.128'],
    ['-0.128', '-0.128'],
    ['-0.129', '-0.129'],
  ])('decodes unit price %s exactly as %s', (price, expected) => {
    expect(decodeLine(encodeLine({ ...line, unitPrice: price })).unitPrice).toBe(expected);
  });

  it('writes decimals as minimal two-complement bytes', () => {
    // The same schema without logical types exposes the raw bytes of the decimal.
    const raw = JSON.parse(JSON.stringify(INVOICE_LINE_V2));
    for (const f of raw.fields) if (f.type.logicalType) f.type = f.type.type;
    const generic = avro.Type.forSchema(raw);
    const priceBytes = (price: string) =>
      (
        generic.fromBuffer(encodeLine({ ...line, unitPrice: price }).subarray(10)) as { unitPrice: Buffer }
      ).unitPrice.toString('hex');
    expect(priceBytes('2.55')).toBe('09f6');
    expect(priceBytes('0.128')).toBe('0080');
    expect(priceBytes('-0.128')).toBe('80');
    expect(priceBytes('-0.001')).toBe('ff');
    expect(priceBytes('0')).toBe('00');
  });

  it('round-trips nulls, negatives and non-ASCII text', () => {
    const odd = {
      ...line,
      invoiceNo: 'C581569',
      description: null,
      customerId: null,
      quantity: -80995,
      country: 'Côte d’Ivoire',
      stockCode: 'BANK CHARGES',
    };
    expect(decodeLine(encodeLine(odd))).toEqual(odd);
  });

  it('accepts a Uint8Array view into a larger buffer', () => {
    const buf = encodeLine(line);
    const big = new Uint8Array(buf.length + 7);
    big.set(buf, 3);
    expect(decodeLine(big.subarray(3, 3 + buf.length))).toEqual(line);
  });

  it('refuses to encode values outside the schema, naming the field', () => {
    expect(() => encodeLine({ ...line, unitPrice: '1.2345' })).toThrow(InvalidRecordError);
    expect(() => encodeLine({ ...line, unitPrice: '1.2345' })).toThrow(/unitPrice/);
    expect(() => encodeLine({ ...line, quantity: 1.5 })).toThrow(/quantity/);
    expect(() => encodeLine({ ...line, producedAt: 'yesterday' })).toThrow(/producedAt/);
  });
});

describe('multi-line records', () => {
  const lines = [1, 2, 3].map((n) => ({ ...line, lineNo: n, stockCode: `S${n}`, quantity: n * 10 }));

  it('frames with the current fingerprint and round-trips every line in order', () => {
    const buf = encodeLines(lines);
    expect(buf.subarray(0, 2).toString('hex')).toBe('c301');
    expect(fingerprintOf(buf)).toBe(CURRENT_FINGERPRINT);
    expect(decodeLines(buf)).toEqual(lines);
  });

  it('writes exactly the bytes Avro itself writes for the array (framed by hand from encoded items)', () => {
    const generic = withoutLogicalTypes(INVOICE_LINES_V1);
    for (const n of [1, 63, 64, 200]) {
      const many = Array.from({ length: n }, (_, i) => ({ ...line, lineNo: i + 1 }));
      const body = encodeLines(many).subarray(10);
      const read = generic.fromBuffer(body) as { lines: unknown[] };
      expect(read.lines).toHaveLength(n);
      expect(generic.toBuffer(read).equals(body), `${n} lines`).toBe(true);
    }
  });

  it('frames the same bytes as encoding the lines one by one', () => {
    expect(frameLineItems(lines.map(encodeLineItem)).equals(encodeLines(lines))).toBe(true);
  });

  it('refuses a record without lines, written or read', () => {
    expect(() => frameLineItems([])).toThrow(/at least one line/);
    const empty = Buffer.concat([encodeLines(lines).subarray(0, 10), Buffer.from([0])]);
    expect(() => decodeLines(empty)).toThrow(/holds no line/);
  });

  it('names a multi-line record where one line is expected', () => {
    expect(() => decodeRecord(encodeLines(lines))).toThrow(/holds 3 lines, expected one/);
    expect(decodeLine(encodeLines([line]))).toEqual(line);
  });

  it('rejects every truncation of a multi-line record with InvalidRecordError', () => {
    const buf = encodeLines(lines);
    for (let n = 0; n < buf.length; n++) {
      expect(() => decodeLines(buf.subarray(0, n)), `first ${n} bytes`).toThrow(InvalidRecordError);
    }
  });
});

describe('fingerprint dispatch: every decoder reads every known schema as a list of lines', () => {
  it('reads single-line v1 and v2 records (the previous version wrote one line per record)', () => {
    const v1 = encodeWithSchema('v1', line);
    const v2 = encodeLine(line);
    expect(fingerprintOf(v1)).toBe(KNOWN_FINGERPRINTS.v1);
    expect(fingerprintOf(v2)).toBe(KNOWN_FINGERPRINTS.v2);
    expect(decodeLines(v1)).toEqual([line]);
    expect(decodeLines(v2)).toEqual([line]);
    expect(decodeRecords(v1)).toEqual([{ ...line, currency: 'GBP' }]);
  });

  it('reads a body by the schema its fingerprint names, not by guessing', () => {
    // A multi-line body under the v2 fingerprint is not a v2 line: refused, not misread.
    const lines = encodeLines([line, { ...line, lineNo: 2 }]);
    const relabelled = Buffer.from(lines);
    relabelled.writeBigUInt64LE(BigInt(`0x${KNOWN_FINGERPRINTS.v2}`), 2);
    expect(() => decodeLines(relabelled)).toThrow(/schema v2/);
    const single = Buffer.from(encodeLine(line));
    single.writeBigUInt64LE(BigInt(`0x${CURRENT_FINGERPRINT}`), 2);
    expect(() => decodeLines(single)).toThrow(/schema lines-v1/);
  });
});

describe('schema evolution', () => {
  it('reads a v1 record under the v2 reader, filling currency with its default', () => {
    const buf = encodeWithSchema('v1', line);
    expect(buf.readBigUInt64LE(2).toString(16).padStart(16, '0')).toBe(KNOWN_FINGERPRINTS.v1);
    expect({ ...decodeRecord(buf) }).toEqual({ ...line, currency: 'GBP' });
    expect(decodeLine(buf)).toEqual(line);
  });

  it('refuses a record in a currency the money code does not handle', () => {
    const buf = encodeWithSchema('v2', { ...line, currency: 'EUR' });
    expect(decodeRecord(buf).currency).toBe('EUR');
    expect(() => decodeLine(buf)).toThrow(/unsupported currency 'EUR'/);
  });
});

describe('bad input', () => {
  it('rejects an unknown fingerprint with UnknownSchemaError naming it', () => {
    const buf = Buffer.from(encodeLine(line));
    buf.writeBigUInt64LE(0x0123456789abcdefn, 2);
    expect(() => decodeLine(buf)).toThrow(UnknownSchemaError);
    expect(() => decodeLine(buf)).toThrow(/0123456789abcdef/);
  });

  it('rejects every truncation of a valid record with InvalidRecordError', () => {
    const buf = encodeLine(line);
    for (let n = 0; n < buf.length; n++) {
      expect(() => decodeLine(buf.subarray(0, n)), `first ${n} bytes`).toThrow(InvalidRecordError);
    }
    expect(() => decodeLine(buf.subarray(0, 20))).toThrow(
      /corrupt invoice line record \(schema v2\): truncated/,
    );
    expect(() => decodeLine(buf.subarray(0, 4))).toThrow(/too short/);
  });

  it('rejects trailing bytes and a wrong magic', () => {
    expect(() => decodeLine(Buffer.concat([encodeLine(line), Buffer.from([0])]))).toThrow(/trailing data/);
    const json = Buffer.from(JSON.stringify(line));
    expect(() => decodeLine(json)).toThrow(InvalidRecordError);
    expect(() => decodeLine(json)).toThrow(/expected 0xc301/);
  });

  it('keeps the cause of a decoding failure', () => {
    try {
      decodeLine(encodeLine(line).subarray(0, 30));
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(InvalidRecordError);
      expect((err as Error).cause).toBeInstanceOf(Error);
    }
  });
});
