import { describe, expect, it } from 'vitest';
import { decodeLines, encodeLineItem, LINES_RECORD_OVERHEAD } from '#core/avro';
import type { AcceptedLine } from '#core/invoice-line';
import { groupItems, PUT_PAYLOAD_UNIT_BYTES, putPayloadUnits, RECORD_BOUNDS, toRecords } from '#core/records';
import { acceptedLine } from '#test/helpers/lines';

/** `count` accepted lines of one invoice, numbered from 1, each with its own stock code. */
const invoice = (invoiceNo: string, count: number, overrides: Partial<AcceptedLine> = {}) =>
  Array.from({ length: count }, (_, i) =>
    acceptedLine({
      invoiceNo,
      lineNo: i + 1,
      stockCode: `T${String(i + 1).padStart(4, '0')}`,
      unitPrice: '2.550',
      ...overrides,
    }),
  );

const keyOf = (l: AcceptedLine) => `${l.invoiceNo}#${l.lineNo}`;

describe('groupItems', () => {
  it('puts only items of one key in a record, keeping their order, records ordered by first item', () => {
    const items = ['a', 'b', 'a', 'c', 'b', 'a'].map((key) => ({ key, bytes: 10 }));
    expect(groupItems(items)).toEqual([[0, 2, 5], [1, 4], [3]]);
  });

  it('closes a record when the next item would pass the byte bound (overhead included)', () => {
    const items = Array.from({ length: 7 }, () => ({ key: 'a', bytes: 30 }));
    // 4 + 3 * 30 = 94 <= 100; a fourth would make 124.
    expect(groupItems(items, { maxDataBytes: 100, maxLines: 99 }, 4)).toEqual([[0, 1, 2], [3, 4, 5], [6]]);
    // Exactly at the bound still fits.
    expect(groupItems(items.slice(0, 4), { maxDataBytes: 124, maxLines: 99 }, 4)).toEqual([[0, 1, 2, 3]]);
  });

  it('closes a record at the line cap', () => {
    const items = Array.from({ length: 5 }, () => ({ key: 'a', bytes: 1 }));
    expect(groupItems(items, { maxDataBytes: 1000, maxLines: 2 }, 0)).toEqual([[0, 1], [2, 3], [4]]);
  });

  it('gives an item alone over the bound a record of its own', () => {
    const items = [10, 500, 10].map((bytes) => ({ key: 'a', bytes }));
    expect(groupItems(items, { maxDataBytes: 100, maxLines: 99 }, 0)).toEqual([[0], [1], [2]]);
  });
});

describe('toRecords', () => {
  it('a request of several invoices: one record each, partition key = invoice number, lines in order', () => {
    const a = invoice('536365', 3);
    const b = invoice('536366', 2);
    const request = [a[0], b[0], a[1], b[1], a[2]] as AcceptedLine[];
    const records = toRecords(request);
    expect(records.map((r) => r.partitionKey)).toEqual(['536365', '536366']);
    expect(records.map((r) => decodeLines(r.data))).toEqual([a, b]);
    expect(records.map((r) => r.lines)).toEqual([a, b]);
  });

  it('splits the 1,114-line invoice of the real file into records within the bound, losing no line', () => {
    const lines = invoice('573585', 1114, { description: 'PACK OF 12 PAISLEY PARK PENCILS AND ERASERS' });
    const records = toRecords(lines);
    expect(records.length).toBeGreaterThan(1);
    for (const r of records) {
      expect(r.data.length).toBeLessThanOrEqual(RECORD_BOUNDS.maxDataBytes);
      expect(r.lines.length).toBeLessThanOrEqual(RECORD_BOUNDS.maxLines);
      expect(r.partitionKey).toBe('573585');
      expect(putPayloadUnits(r.data.length, r.partitionKey)).toBe(1);
    }
    const back = records.flatMap((r) => decodeLines(r.data));
    expect(back.map(keyOf)).toEqual(lines.map(keyOf));
    expect(back).toEqual(lines);
    // Fuller than a line per record by two orders of magnitude: 1,114 lines in a handful of records.
    const itemBytes = lines.reduce((n, l) => n + encodeLineItem(l).length, 0);
    const floor = Math.ceil(itemBytes / (RECORD_BOUNDS.maxDataBytes - LINES_RECORD_OVERHEAD));
    expect(records.length).toBeLessThanOrEqual(floor + 1);
  });

  it('holds the bound with the longest lines the API accepts', () => {
    const widest = invoice('536365', 400, {
      description: '€'.repeat(255),
      stockCode: 'Ж'.repeat(32),
      country: '語'.repeat(64),
    });
    const records = toRecords(widest);
    for (const r of records) expect(r.data.length).toBeLessThanOrEqual(RECORD_BOUNDS.maxDataBytes);
    expect(records.flatMap((r) => decodeLines(r.data))).toEqual(widest);
  });
});

describe('putPayloadUnits', () => {
  it('counts 25 KiB units of Data plus partition key, rounded up, at least one', () => {
    expect(putPayloadUnits(0, '')).toBe(1);
    expect(putPayloadUnits(PUT_PAYLOAD_UNIT_BYTES - 6, '536365')).toBe(1);
    expect(putPayloadUnits(PUT_PAYLOAD_UNIT_BYTES - 5, '536365')).toBe(2);
    expect(putPayloadUnits(24 * 1024, '536365')).toBe(1);
  });
});
