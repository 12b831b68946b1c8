import { describe, expect, it } from 'vitest';
import {
  ingestionKey,
  ingestionMarkerKey,
  newRunId,
  processedMarkerKey,
  runIdOfMarker,
} from '#cdc/totesys/layout';
import {
  advance,
  type ChangedRow,
  fromMicros,
  normaliseTimestamp,
  readFrom,
  type TableWatermark,
  TimestampError,
  toMicros,
  unseen,
} from '#cdc/watermark';

const row = (pk: string, lastUpdated: string): ChangedRow<null> => ({ pk, lastUpdated, fields: null });
const SECOND = 1_000_000n;

describe('source timestamps', () => {
  it('keeps microseconds exactly, both ways', () => {
    for (const ts of [
      '2024-11-03T14:20:52.186123',
      '1999-12-31T23:59:59.999999',
      '2024-02-29T00:00:00.000001',
    ]) {
      expect(fromMicros(toMicros(ts))).toBe(ts);
    }
    expect(toMicros('2024-11-03T14:20:52.000001') - toMicros('2024-11-03T14:20:52.000000')).toBe(1n);
  });

  it("reads PostgreSQL's text form, trimmed fractions included", () => {
    expect(normaliseTimestamp('2024-11-03 14:20:52.18')).toBe('2024-11-03T14:20:52.180000');
    expect(normaliseTimestamp('2024-11-03 14:20:52')).toBe('2024-11-03T14:20:52.000000');
  });

  it('rejects anything else', () => {
    expect(() => toMicros('2024-11-03')).toThrow(TimestampError);
    expect(() => toMicros('2024-11-03T14:20:52+01')).toThrow(TimestampError);
  });
});

describe('watermark capture', () => {
  it('reads everything on the first run, then from the watermark minus the overlap', () => {
    expect(readFrom(undefined, 60n * SECOND)).toBeNull();
    const w: TableWatermark = { watermark: '2024-11-03T14:21:00.000000', seen: [] };
    expect(readFrom(w, 60n * SECOND)).toBe('2024-11-03T14:20:00.000000');
  });

  it('drops versions already taken and keeps a new version of the same row', () => {
    const w: TableWatermark = {
      watermark: '2024-11-03T14:21:00.000000',
      seen: [['1', '2024-11-03T14:21:00.000000']],
    };
    const rows = [
      row('1', '2024-11-03T14:21:00.000000'),
      row('2', '2024-11-03T14:21:00.000000'),
      row('1', '2024-11-03T14:21:05.000000'),
    ];
    expect(unseen(w, rows).map((r) => [r.pk, r.lastUpdated])).toEqual([
      ['2', '2024-11-03T14:21:00.000000'],
      ['1', '2024-11-03T14:21:05.000000'],
    ]);
  });

  it('advances to the highest stamp and keeps only the pairs inside the overlap', () => {
    const w: TableWatermark = {
      watermark: '2024-11-03T14:21:00.000000',
      seen: [
        ['1', '2024-11-03T14:20:10.000000'],
        ['2', '2024-11-03T14:21:00.000000'],
      ],
    };
    const next = advance(w, [row('3', '2024-11-03T14:21:30.000000')], 60n * SECOND);
    expect(next.watermark).toBe('2024-11-03T14:21:30.000000');
    expect(next.seen).toEqual([
      ['2', '2024-11-03T14:21:00.000000'],
      ['3', '2024-11-03T14:21:30.000000'],
    ]);
  });

  it('never moves the watermark back (a late row below it) and keeps it with no rows', () => {
    const w: TableWatermark = { watermark: '2024-11-03T14:21:00.000000', seen: [] };
    expect(advance(w, [row('9', '2024-11-03T14:20:30.000000')], 60n * SECOND)).toEqual({
      watermark: '2024-11-03T14:21:00.000000',
      seen: [['9', '2024-11-03T14:20:30.000000']],
    });
    expect(advance(w, [], 60n * SECOND).watermark).toBe(w.watermark);
    expect(advance(undefined, [], 60n * SECOND)).toEqual({ watermark: null, seen: [] });
  });

  it('with the pairs of one run, takes exactly the rows the next read adds', () => {
    const overlap = 60n * SECOND;
    const first = [row('1', '2024-11-03T14:21:00.000000')];
    const w = advance(undefined, unseen(undefined, first), overlap);
    // The second read sees the first row again (inside the overlap) plus one committed late.
    const second = [row('2', '2024-11-03T14:20:59.000000'), row('1', '2024-11-03T14:21:00.000000')];
    expect(unseen(w, second).map((r) => r.pk)).toEqual(['2']);
  });
});

describe('zone layout', () => {
  it('names runs by their UTC start and files by table and date', () => {
    const runId = newRunId(new Date('2026-12-06T07:03:14.123Z'), () => 'abc123');
    expect(runId).toBe('20261206T070314123Z-abc123');
    expect(ingestionKey('sales_order', runId)).toBe(`ingestion/totesys/sales_order/2026/12/06/${runId}.csv`);
    expect(ingestionMarkerKey(runId)).toBe(`ingestion/totesys/_runs/2026/12/06/${runId}.json`);
    expect(processedMarkerKey(runId)).toBe(`processed/totesys/_runs/2026/12/06/${runId}.json`);
    expect(runIdOfMarker(ingestionMarkerKey(runId))).toBe(runId);
    expect(runIdOfMarker('ingestion/totesys/_state/watermarks.json')).toBeUndefined();
    expect(() => ingestionKey('address', '../../etc')).toThrow(/not a totesys run id/);
  });
});
