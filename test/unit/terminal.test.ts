import { stripVTControlCharacters } from 'node:util';
import { describe, expect, it } from 'vitest';
import { colourEnabled, formatTime, isInteractive, renderTable } from '#adapters/terminal';

const tty = { isTTY: true };
const pipe = { isTTY: false };
const ESC = '\x1b';

describe('colourEnabled', () => {
  it.each([
    ['a terminal', tty, {}, true],
    ['a pipe or file', pipe, {}, false],
    ['a stream that says nothing', {}, {}, false],
    ['a terminal with NO_COLOR', tty, { NO_COLOR: '1' }, false],
    ['a terminal with an empty NO_COLOR (unset, per no-color.org)', tty, { NO_COLOR: '' }, true],
    ['a dumb terminal', tty, { TERM: 'dumb' }, false],
    ['a pipe with FORCE_COLOR', pipe, { FORCE_COLOR: '1' }, true],
    ['a pipe with an empty FORCE_COLOR', pipe, { FORCE_COLOR: '' }, true],
    ['a terminal with FORCE_COLOR=0', tty, { FORCE_COLOR: '0' }, false],
    ['a terminal with FORCE_COLOR=false', tty, { FORCE_COLOR: 'false' }, false],
    [
      'NO_COLOR and FORCE_COLOR together (forcing wins, as in Node)',
      pipe,
      { NO_COLOR: '1', FORCE_COLOR: '1' },
      true,
    ],
  ])('%s', (_what, stream, env, expected) => {
    expect(colourEnabled(stream, env)).toBe(expected);
  });
});

describe('isInteractive', () => {
  it('is a terminal that is not dumb', () => {
    expect(isInteractive(tty, {})).toBe(true);
    expect(isInteractive(pipe, {})).toBe(false);
    expect(isInteractive(tty, { TERM: 'dumb' })).toBe(false);
  });
});

describe('formatTime', () => {
  it('reads as date and time in UTC, whatever the zone of the process', () => {
    expect(formatTime(new Date('2026-12-06T07:03:14.987Z'))).toBe('2026-12-06 07:03:14');
    expect(formatTime(new Date('2026-01-02T23:59:59+02:00'))).toBe('2026-01-02 21:59:59');
  });

  it('says so when the date is not one', () => {
    expect(formatTime(new Date('not a date'))).toBe('invalid date');
  });
});

describe('renderTable', () => {
  const opts = {
    head: ['object', 'rows', 'finished (UTC)'],
    rows: [
      ['archive/a.json.gz', 12, new Date('2026-12-06T07:03:14Z')],
      ['landing/b.csv', 3n, null],
    ],
  };

  it('holds no escape code for a pipe, and shows dates as date and time', () => {
    const text = renderTable({ ...opts, colour: false });
    expect(text).not.toContain(ESC);
    expect(text).toContain('2026-12-06 07:03:14');
    expect(text).not.toContain('GMT');
    expect(text).toMatch(/landing\/b\.csv\s+│\s+3\s+│\s+│/);
  });

  it('colours the borders on a terminal', () => {
    const text = renderTable({ ...opts, colour: true });
    expect(text).toContain(`${ESC}[90m`);
    // Colour only decorates: without the codes it is the same table.
    expect(stripVTControlCharacters(text)).toBe(renderTable({ ...opts, colour: false }));
  });

  it('aligns columns as asked', () => {
    const text = renderTable({ head: ['n'], rows: [[1], [100]], align: ['right'], colour: false });
    expect(text).toContain('│   1 │');
  });
});
