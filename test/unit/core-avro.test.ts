import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import {
  CURRENT_FINGERPRINT,
  crc64Avro,
  decodeLine,
  decodeRecord,
  encodeLine,
  encodeWithSchema,
  InvalidRecordError,
  KNOWN_FINGERPRINTS,
  parsingCanonicalForm,
  schemaFingerprint,
  UnknownSchemaError,
} from '#core/avro';
import type { AcceptedLine } from '#core/invoice-line';
import { INVOICE_LINE_V1, INVOICE_LINE_V2 } from '#core/schemas/invoice-line';
import { acceptedLine } from '#test/helpers/lines';

const schemaDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../core/schemas');
const readAvsc = (v: string) =>
  JSON.parse(readFileSync(path.join(schemaDir, `invoice-line.${v}.avsc`), 'utf8'));

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

  it('exposes the current fingerprint and a different one for v1', () => {
    expect(CURRENT_FINGERPRINT).toMatch(/^[0-9a-f]{16}$/);
    expect(CURRENT_FINGERPRINT).toBe(schemaFingerprint(readAvsc('v2')));
    expect(KNOWN_FINGERPRINTS.v1).toBe(schemaFingerprint(readAvsc('v1')));
    expect(KNOWN_FINGERPRINTS.v1).not.toBe(CURRENT_FINGERPRINT);
  });
});

describe('encodeLine / decodeLine', () => {
  it('frames with 0xC3 0x01 and the little-endian fingerprint', () => {
    const buf = encodeLine(line);
    expect(buf.subarray(0, 2).toString('hex')).toBe('c301');
    expect(buf.readBigUInt64LE(2).toString(16).padStart(16, '0')).toBe(CURRENT_FINGERPRINT);
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
