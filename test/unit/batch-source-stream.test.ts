import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { checkHeader, decompressed, readCsvHead, sniffEncoding, splitCsvLine } from '#batch/source-stream';

const collect = async (stream: Readable) => {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(parts);
};

describe('source objects', () => {
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
    // The replay's rule (core/text-encoding.ts): a head mixing both is not UTF-8.
    expect(sniffEncoding(Buffer.concat([Buffer.from('CAFÉ\n'), Buffer.from('£1\n', 'latin1')]))).toBe(
      'LATIN1',
    );
  });

  it('decodes the header by the sniffed encoding, Latin-1 and UTF-8 alike', async () => {
    for (const encoding of ['latin1', 'utf8'] as const) {
      const head = await readCsvHead(
        Readable.from([Buffer.from('InvoiceNo,Descripción,Prix £\r\n1,é,2\r\n', encoding)]),
      );
      expect(head.columns).toEqual(['InvoiceNo', 'Descripción', 'Prix £']);
      expect(head.encoding).toBe(encoding === 'utf8' ? 'UTF8' : 'LATIN1');
    }
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
