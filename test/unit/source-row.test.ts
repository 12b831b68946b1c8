import { describe, expect, it } from 'vitest';
import { invoiceLineInput } from '#core/invoice-line';
import { customerIdOf } from '#core/rules';
import { parseSourceDate, parseSourceRow, resolveColumns, type SourceRow } from '#core/source-row';
import { csvFields, inputLine } from '#test/helpers/lines';

/** The row a record parses to; fails the test with the reason when it is refused. */
function parsed(fields: string[], columns?: Parameters<typeof parseSourceRow>[1]): SourceRow {
  const result = parseSourceRow(fields, columns);
  if (!result.ok) throw new Error(`refused: ${result.reason}`);
  return result.row;
}

/** The first row of the real file, with the fields at the given positions replaced. */
const row = (over: Partial<Record<number, string>> = {}) => csvFields().map((v, i) => over[i] ?? v);

describe('parseSourceDate', () => {
  it.each([
    ['12/1/2010 8:26', '2010-12-01T08:26:00'],
    ['1/31/2011 17:05', '2011-01-31T17:05:00'],
    ['12/9/2011 12:50:07', '2011-12-09T12:50:07'],
    ['2010-12-01 08:26', '2010-12-01T08:26:00'],
    ['2010-12-01 08:26:59', '2010-12-01T08:26:59'],
    ['2010-12-01T08:26:59', '2010-12-01T08:26:59'],
    ['2/29/2012 10:00', '2012-02-29T10:00:00'],
  ])('%s -> %s', (text, expected) => {
    expect(parseSourceDate(text)).toBe(expected);
  });

  it.each([
    '13/1/2010 8:26',
    '2/29/2011 10:00',
    '12/1/2010',
    '2010-12-01',
    '12/1/2010 24:00',
    '2010-12-01 08:61',
    'x',
  ])('refuses %s', (text) => {
    expect(parseSourceDate(text)).toBeNull();
  });
});

describe('customerIdOf', () => {
  it('reads 17850, 17850.0 and empty; refuses a fraction and a 13th digit', () => {
    expect(customerIdOf('17850')).toBe('17850');
    expect(customerIdOf('17850.0')).toBe('17850');
    expect(customerIdOf(' ')).toBeNull();
    expect(customerIdOf('17850.5')).toBeUndefined();
    expect(customerIdOf('1234567890123')).toBeUndefined();
  });
});

describe('parseSourceRow', () => {
  it('parses a real row into a line the API schema accepts', () => {
    const line = parsed(row());
    // The same line the API receives for that row (a source row has no line number yet).
    expect({ ...line, lineNo: 1 }).toEqual(inputLine());
    expect(invoiceLineInput.safeParse({ ...line, lineNo: 1 }).success).toBe(true);
  });

  it('keeps the data set quirks: cancellations, empty description and customer, zero and 3-decimal prices', () => {
    expect(parsed(row({ 0: 'C536379', 3: '-1' }))).toMatchObject({
      invoiceNo: 'C536379',
      quantity: -1,
    });
    expect(parsed(row({ 2: '', 6: '' }))).toMatchObject({ description: null, customerId: null });
    expect(parsed(row({ 5: '0' }))).toMatchObject({ unitPrice: '0' });
    expect(parsed(row({ 5: '0.001' }))).toMatchObject({ unitPrice: '0.001' });
    expect(parsed(row({ 5: '-11062.06', 0: 'A563185' }))).toMatchObject({ unitPrice: '-11062.06' });
    expect(parsed(row({ 5: '.5' }))).toMatchObject({ unitPrice: '0.5' });
    expect(parsed(row({ 6: '17850.0' }))).toMatchObject({ customerId: '17850' });
  });

  it.each([
    [{ 0: '5365X65' }, /InvoiceNo/],
    [{ 0: 'CC536365' }, /InvoiceNo/],
    [{ 0: '' }, /InvoiceNo is empty/],
    [{ 1: ' ' }, /StockCode is empty/],
    [{ 3: 'six' }, /Quantity "six"/],
    [{ 3: '1.5' }, /Quantity/],
    [{ 3: '99999999' }, /out of range/],
    [{ 3: '123456789012345678901' }, /^Quantity 123456789012345678901 is out of range/],
    [{ 0: '12345678901' }, /^InvoiceNo "12345678901" is not 1-10 digits/],
    [{ 4: '13/1/2010 8:26' }, /InvoiceDate/],
    [{ 5: '2.5555' }, /UnitPrice/],
    [{ 5: 'abc' }, /UnitPrice/],
    [{ 5: '.' }, /UnitPrice "\." is not a decimal/],
    [{ 5: '-.' }, /UnitPrice/],
    [{ 1: 'X'.repeat(33) }, /^StockCode is longer than 32 characters$/],
    [{ 2: 'NUL\u0000' }, /^Description contains a NUL byte$/],
    [{ 7: 'Fr\u007fance' }, /^Country contains control characters$/],
    [{ 6: 'ABC' }, /CustomerID/],
    [{ 5: '+-5' }, /UnitPrice/],
    [{ 7: '' }, /Country is empty/],
    [{ 2: 'bad\u0001text' }, /control characters/],
  ])('malformed %o -> reason', (over, reason) => {
    const result = parseSourceRow(row(over));
    expect(result.ok).toBe(false);
    expect(result.ok ? '' : result.reason).toMatch(reason);
  });

  it('a short record names the field count', () => {
    expect(parseSourceRow(csvFields().slice(0, 5))).toEqual({
      ok: false,
      reason: 'expected 8 fields, got 5',
    });
  });

  it('follows the header order when columns are mapped', () => {
    const cols = resolveColumns([
      'country',
      'InvoiceNo',
      'StockCode',
      'Description',
      'Quantity',
      'InvoiceDate',
      'UnitPrice',
      'CustomerID',
    ]);
    if (!cols.ok) throw new Error(cols.reason);
    const line = parsed(['EIRE', '536365', '85123A', 'D', '6', '12/1/2010 8:26', '2.55', ''], cols.columns);
    expect(line).toMatchObject({ country: 'EIRE', invoiceNo: '536365', customerId: null });
    expect(resolveColumns(['InvoiceNo', 'StockCode'])).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/lacks column\(s\) Description/),
    });
  });
});
