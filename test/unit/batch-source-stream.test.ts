import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  checkHeader,
  decompressed,
  RecordGuard,
  readCsvHead,
  sniffEncoding,
  splitCsvLine,
} from '#batch/source-stream';

const collect = async (stream: Readable) => {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(parts);
};

const guard = async (expected: number, chunks: string[]) => {
  const g = new RecordGuard(expected);
  const out = (await collect(Readable.from(chunks.map((c) => Buffer.from(c))).pipe(g))).toString();
  return { out, g };
};

describe('RecordGuard', () => {
  it('numbers records, keeps quoted commas and newlines, and normalises CRLF', async () => {
    const { out, g } = await guard(3, ['a,b,c\r\nd,"e,\nx",f\r', '\ng,"h ""q""",i']);
    expect(out).toBe('1,a,b,c\n2,d,"e,\nx",f\n3,g,"h ""q""",i\n');
    expect(g.records).toBe(3);
    expect(g.malformed).toBe(0);
  });

  it('replaces blank lines and records with the wrong field count by marker rows, in place', async () => {
    const { out, g } = await guard(3, ['a,b,c\n\nshort,row\n', 'x,y,z,extra\nok,ok,ok']);
    expect(out.split('\n')).toEqual([
      '1,a,b,c',
      '2,"\u0001blank",,',
      '3,"\u0001malformed:2",,',
      '4,"\u0001malformed:4",,',
      '5,ok,ok,ok',
      '',
    ]);
    expect(g.malformed).toBe(2);
  });

  it('replaces a record with a NUL byte anywhere, or a control character in a checked column, by a marker row', async () => {
    const checked = new Map([[2, 'Description']]);
    const g = new RecordGuard(3, checked);
    const text = [
      'a,ok\ttab\r,c', // TAB and a CR inside a field are allowed, as the API allows them
      'a,b\u0000,c', // NUL in any column
      '"x\u0000y",b,c',
      'a,"be\u0007ll",c', // BEL in the checked column
      'a\u001b,b,c', // ESC outside the checked columns: left to SQL
      '\u0001a,b,c', // SOH in the first column would read as a marker row
      'a,b\u007f,c', // DEL
      'a,b\u0000', // NUL beats the field count
      'ok,ok,ok',
    ].join('\n');
    const out = (await collect(Readable.from([Buffer.from(text)]).pipe(g))).toString();
    expect(out.split('\n')).toEqual([
      '1,a,ok\ttab\r,c',
      '2,"\u0001nul",,',
      '3,"\u0001nul",,',
      '4,"\u0001control:Description",,',
      '5,a\u001b,b,c',
      '6,"\u0001control:column 1",,',
      '7,"\u0001control:Description",,',
      '8,"\u0001nul",,',
      '9,ok,ok,ok',
      '',
    ]);
    expect(g.refused).toBe(6);
    expect(g.malformed).toBe(0);
    for (let cut = 1; cut < text.length; cut++) {
      const parts = [text.slice(0, cut), text.slice(cut)].map((p) => Buffer.from(p));
      const split = new RecordGuard(3, checked);
      expect((await collect(Readable.from(parts).pipe(split))).toString()).toBe(out);
    }
  });

  it('finds record ends split across chunks at any byte', async () => {
    const text = 'aa,"b\nb",cc\nd,e,f\n';
    for (let cut = 1; cut < text.length; cut++) {
      const { out } = await guard(3, [text.slice(0, cut), text.slice(cut)]);
      expect(out).toBe('1,aa,"b\nb",cc\n2,d,e,f\n');
    }
  });
});

describe('header and encoding', () => {
  it('maps the Online Retail columns in any order and case, reporting extra and missing ones', () => {
    const ok = checkHeader([
      'Country',
      'invoiceno',
      'StockCode',
      'Description',
      'Quantity',
      'Invoice Date',
      'UnitPrice',
      'CustomerID',
      'Note',
    ]);
    expect(ok.columnOf).toMatchObject({ Country: 1, InvoiceNo: 2, InvoiceDate: 6 });
    expect(ok.extra).toEqual(['Note']);
    const missing = checkHeader(['InvoiceNo', 'StockCode', 'Quantity']);
    expect(missing.columnOf).toBeUndefined();
    expect(missing.missing).toEqual(['Description', 'InvoiceDate', 'UnitPrice', 'CustomerID', 'Country']);
  });

  it('splits a quoted header line', () => {
    expect(splitCsvLine('a,"b,c","d""e"')).toEqual(['a', 'b,c', 'd"e']);
  });

  it('tells UTF-8 from Latin-1, tolerating a character cut at the end of the sample', () => {
    expect(sniffEncoding(Buffer.from('CAFÉ MUG, plain', 'utf8'))).toBe('UTF8');
    expect(sniffEncoding(Buffer.from('CAFÉ MUG, plain', 'latin1'))).toBe('LATIN1');
    expect(sniffEncoding(Buffer.from('abcdefgh É', 'utf8').subarray(0, 10))).toBe('UTF8');
  });

  it('gunzips by magic bytes and splits off a BOM-prefixed header', async () => {
    const body = Readable.from([gzipSync(Buffer.from('\uFEFFInvoiceNo , StockCode\r\n1,2\r\n'))]);
    const text = await decompressed(body);
    expect(text.gzip).toBe(true);
    const head = await readCsvHead(text);
    expect(head.columns).toEqual(['InvoiceNo', 'StockCode']);
    expect(head.encoding).toBe('UTF8');
    expect((await collect(head.body)).toString()).toBe('1,2\r\n');
  });
});
