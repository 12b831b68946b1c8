import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeLine, encodeLine } from '#core/avro';
import { countryInfo } from '#core/countries';
import { enrich } from '#core/enrich';
import type { AcceptedLine } from '#core/invoice-line';
import { compareMoney, sumMoney } from '#core/money';
import { isNonProductCode } from '#core/non-product';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dataFile = path.resolve(repoRoot, '../shared/data/online-retail/online-retail.csv.gz');
const present = existsSync(dataFile);
if (!present) console.warn(`core-real-data: ${dataFile} is absent, skipping the real-data checks`);

/** RFC 4180 fields of one line; the file has no line breaks inside quotes. A hand-rolled split reads the
 * 45 MB file several times faster than a general CSV parser, which keeps this test lean. */
function fields(line: string): string[] {
  if (!line.includes('"')) return line.split(',');
  const out: string[] = [];
  let i = 0;
  while (i <= line.length) {
    if (line[i] === '"') {
      let v = '';
      i++;
      for (;;) {
        const q = line.indexOf('"', i);
        if (line[q + 1] === '"') {
          v += `${line.slice(i, q)}"`;
          i = q + 2;
        } else {
          v += line.slice(i, q);
          i = q + 2;
          break;
        }
      }
      out.push(v);
    } else {
      const c = line.indexOf(',', i);
      const end = c === -1 ? line.length : c;
      out.push(line.slice(i, end));
      i = end + 1;
    }
  }
  return out;
}

/** '12/1/2010 8:26' (M/D/YYYY H:MM) -> '2010-12-01T08:26:00'. */
function toLocal(source: string): string {
  const m = /^(\d{1,2})\/(\d{1,2})\/(\d{4}) (\d{1,2}):(\d{2})$/.exec(source);
  if (!m) throw new Error(`unexpected date ${source}`);
  const p = (s: string | undefined) => (s as string).padStart(2, '0');
  return `${m[3]}-${p(m[1])}-${p(m[2])}T${p(m[4])}:${m[5]}:00`;
}

describe.skipIf(!present)('the Online Retail data set', () => {
  const lines: AcceptedLine[] = [];

  beforeAll(() => {
    const perInvoice = new Map<string, number>();
    const text = gunzipSync(readFileSync(dataFile)).toString('utf8');
    const rows = text.split('\n');
    expect(rows[0]).toBe('InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country');
    for (let i = 1; i < rows.length; i++) {
      if (rows[i] === '') continue;
      const [
        invoiceNo = '',
        stockCode = '',
        description,
        quantity,
        invoiceDate = '',
        unitPrice = '',
        customerId,
        country = '',
      ] = fields(rows[i] as string);
      const lineNo = (perInvoice.get(invoiceNo) ?? 0) + 1;
      perInvoice.set(invoiceNo, lineNo);
      lines.push({
        invoiceNo,
        lineNo,
        stockCode,
        description: description || null,
        quantity: Number(quantity),
        invoiceDate: toLocal(invoiceDate),
        unitPrice,
        customerId: customerId || null,
        country,
        producedAt: '2024-01-01T00:00:00.000Z',
        acceptedAt: '2024-01-01T00:00:00.001Z',
      });
    }
  });

  it('sums the exact line totals to 9747747.934', () => {
    expect(lines).toHaveLength(541_909);
    const enriched = lines.map(enrich);
    expect(sumMoney(enriched.map((e) => e.lineTotal))).toBe('9747747.934');
    expect(enriched.filter((e) => e.isCancellation)).toHaveLength(9288);
    expect(enriched.filter((e) => e.isAdjustment)).toHaveLength(3);
    expect(enriched.filter((e) => !e.customerKnown)).toHaveLength(135_080);
  });

  it('knows every country in the file', () => {
    const unknown = new Set(lines.filter((l) => !countryInfo(l.country).known).map((l) => l.country));
    expect([...unknown]).toEqual([]);
    expect(new Set(lines.map((l) => l.country)).size).toBe(38);
  });

  it('classifies exactly the bookkeeping codes as non-products', () => {
    const nonProduct = [...new Set(lines.map((l) => l.stockCode).filter(isNonProductCode))].sort();
    expect(nonProduct).toEqual(
      [
        'AMAZONFEE',
        'B',
        'BANK CHARGES',
        'C2',
        'CRUK',
        'D',
        'DOT',
        'M',
        'PADS',
        'POST',
        'S',
        'gift_0001_10',
        'gift_0001_20',
        'gift_0001_30',
        'gift_0001_40',
        'gift_0001_50',
        'm',
      ].sort(),
    );
  });

  it('round-trips a sample of real lines through Avro, prices equal as amounts', () => {
    const sample = lines.filter((_, i) => i % 541 === 0);
    const back = sample.map((l) => decodeLine(encodeLine(l)));
    expect(back.map((b, i) => ({ ...b, unitPrice: (sample[i] as AcceptedLine).unitPrice }))).toEqual(sample);
    const changed = back.filter(
      (b, i) => compareMoney(b.unitPrice, (sample[i] as AcceptedLine).unitPrice) !== 0,
    );
    expect(changed).toEqual([]);
  });
});
