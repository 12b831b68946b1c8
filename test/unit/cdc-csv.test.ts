import { describe, expect, it } from 'vitest';
import { CsvFormatError, csvField, parseCsv, toCsv } from '#cdc/csv';

describe('ingestion CSV', () => {
  it('round-trips commas, quotes, newlines, NULL and the empty string', () => {
    const header = ['id', 'text', 'note'];
    const rows = [
      ['1', 'a, b', null],
      ['2', 'say "hi"', ''],
      ['3', 'line one\nline two\r\nthree', 'plain'],
      ['4', `Robert'); DROP TABLE "payment"; --`, ' spaced '],
      ['5', '', null],
      ['6', 'ünïcødé €', '"'],
    ];
    const text = toCsv(header, rows);
    expect(parseCsv(text)).toEqual({ header, rows });
  });

  it('writes NULL as an empty unquoted field and the empty string quoted', () => {
    expect(csvField(null)).toBe('');
    expect(csvField('')).toBe('""');
    expect(toCsv(['a', 'b', 'c'], [[null, '', 'x']])).toBe('a,b,c\n,"",x\n');
  });

  it('quotes only what needs it and doubles quotes', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('a"b')).toBe('"a""b"');
    expect(csvField('a\nb')).toBe('"a\nb"');
  });

  it('rejects a row whose field count differs from the header, and a file without a header', () => {
    expect(() => parseCsv('a,b\n1,2,3\n')).toThrow(CsvFormatError);
    expect(() => parseCsv('')).toThrow(/no header/);
  });
});
