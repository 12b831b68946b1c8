import { stripVTControlCharacters } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, type LogDestination, LogFormatError, resolveLogFormat } from '#adapters/logger';

/** A destination that keeps what the logger writes; `isTTY` plays a terminal or a pipe. */
function capture(isTTY: boolean): LogDestination & { text(): string } {
  const chunks: string[] = [];
  return {
    isTTY,
    write: (text: string) => chunks.push(text),
    text: () => chunks.join(''),
  };
}

const ESC = '\x1b';

describe('resolveLogFormat', () => {
  it.each([
    ['auto', true, {}, 'pretty'],
    ['auto', false, {}, 'json'],
    ['auto', true, { TERM: 'dumb' }, 'json'],
    ['json', true, {}, 'json'],
    ['pretty', false, {}, 'pretty'],
  ] as const)('%s with isTTY=%s and %o is %s', (format, isTTY, env, expected) => {
    expect(resolveLogFormat(format, { isTTY }, env)).toBe(expected);
  });
});

describe('createLogger', () => {
  const saved = process.env.RP_LOG_FORMAT;
  afterEach(() => {
    if (saved === undefined) delete process.env.RP_LOG_FORMAT;
    else process.env.RP_LOG_FORMAT = saved;
  });

  it('writes one JSON object a line into a pipe', () => {
    const out = capture(false);
    createLogger('info', 'test', { format: 'auto', destination: out }).info({ key: 'a' }, 'object loaded');
    const entry = JSON.parse(out.text().trim());
    expect(entry).toMatchObject({ msg: 'object loaded', key: 'a', name: 'test', level: 30 });
  });

  it('writes a readable line on a terminal, erasing a progress bar drawn on the line first', () => {
    const out = capture(true);
    const log = createLogger('info', 'test', { format: 'auto', destination: out });
    log.warn({ key: 'a', rows: 3 }, 'object quarantined');
    const text = out.text();
    expect(text.startsWith('\r\x1b[2K')).toBe(true);
    const plain = stripVTControlCharacters(text).replace('\r', '');
    expect(plain).toMatch(/^\[\d\d:\d\d:\d\d\] WARN: object quarantined \{"key":"a","rows":3\}\n$/);
    expect(() => JSON.parse(text)).toThrow();
  });

  it('writes JSON on a terminal when told to', () => {
    const out = capture(true);
    createLogger('info', 'test', { format: 'json', destination: out }).info('hello');
    expect(out.text()).not.toContain(ESC);
    expect(JSON.parse(out.text())).toMatchObject({ msg: 'hello' });
  });

  it('keeps the level: debug lines are not written at info', () => {
    const out = capture(true);
    const log = createLogger('info', 'test', { format: 'pretty', destination: out });
    log.debug('per object');
    expect(out.text()).toBe('');
  });

  it('reads RP_LOG_FORMAT when no format is given, and names it when it is wrong', () => {
    const out = capture(true);
    process.env.RP_LOG_FORMAT = 'json';
    createLogger('info', 'test', { destination: out }).info('hello');
    expect(JSON.parse(out.text())).toMatchObject({ msg: 'hello' });
    process.env.RP_LOG_FORMAT = 'yaml';
    expect(() => createLogger('info', 'test', { destination: out })).toThrow(LogFormatError);
    expect(() => createLogger('info', 'test', { destination: out })).toThrow(/RP_LOG_FORMAT="yaml"/);
  });
});
