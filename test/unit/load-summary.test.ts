import { describe, expect, it } from 'vitest';
import { createLogger, type LogDestination } from '#adapters/logger';
import type { LoadResult } from '#batch/loader/index';
import { loadSummary } from '#cli/pipeline';

function setup() {
  const lines: string[] = [];
  const destination: LogDestination = { isTTY: false, write: (text: string) => lines.push(text) };
  let clock = 0;
  const summary = loadSummary(
    createLogger('info', 'test', { format: 'json', destination }),
    60_000,
    () => clock,
  );
  return {
    summary,
    advance: (ms: number) => {
      clock += ms;
    },
    entries: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

const result = (key: string, rowsLoaded: number, rowsNew: number, rowsRejected = 0): LoadResult => ({
  key,
  etag: `"${key}"`,
  status: 'loaded',
  rowsRead: rowsLoaded + rowsRejected,
  rowsLoaded,
  rowsNew,
  rowsRejected,
  ms: 5,
});

describe('loadSummary', () => {
  it('logs one line per interval with the totals, not one per object', () => {
    const { summary, advance, entries } = setup();
    summary.record(result('archive/a.gz', 100, 100));
    advance(30_000);
    summary.record(result('archive/b.gz', 50, 40, 2));
    expect(entries()).toEqual([]);
    advance(30_000);
    summary.record(result('archive/c.gz', 10, 10));
    expect(entries()).toMatchObject([
      { msg: 'objects loaded', objects: 3, rowsLoaded: 160, rowsNew: 150, rowsRejected: 2, seconds: 60 },
    ]);
    advance(1_000);
    summary.record(result('archive/d.gz', 7, 7));
    expect(entries()).toHaveLength(1);
  });

  it('tells what is left when the pipeline stops, and nothing when nothing was loaded', () => {
    const { summary, advance, entries } = setup();
    summary.flush();
    expect(entries()).toEqual([]);
    summary.record(result('archive/a.gz', 4, 4));
    advance(2_000);
    summary.flush();
    expect(entries()).toMatchObject([{ msg: 'objects loaded', objects: 1, rowsLoaded: 4, seconds: 2 }]);
  });
});
