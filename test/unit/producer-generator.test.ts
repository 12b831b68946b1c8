import { describe, expect, it } from 'vitest';
import type { InvoiceLine } from '#core/invoice-line';
import { invoiceLineInput } from '#core/invoice-line';
import { createGenerator } from '#producer/generator';
import { COUNTRY_LINES, REAL } from '#producer/real-figures';

const N = 100_000;
const fixedNow = () => new Date('2024-01-01T00:00:00Z');

function generate(seed: number, n: number): InvoiceLine[] {
  const g = createGenerator({ seed, now: fixedNow });
  return Array.from({ length: n }, () => g.next());
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)] as number;
}

describe('createGenerator statistics on 100k lines vs the real file', () => {
  const lines = generate(42, N);
  const share = (pred: (l: InvoiceLine) => boolean) => lines.filter(pred).length / N;
  // The last invoice may be cut short by N; it is a negligible part of 100k lines.
  const perInvoice = new Map<string, number>();
  for (const l of lines) perInvoice.set(l.invoiceNo, (perInvoice.get(l.invoiceNo) ?? 0) + 1);
  const counts = [...perInvoice.values()];

  it('every line passes the API input schema', () => {
    const bad = lines.filter((l) => !invoiceLineInput.safeParse(l).success);
    expect(bad).toEqual([]);
  });

  it('lines per invoice: median 10 (+-3), mean ~21 (+-20%)', () => {
    expect(Math.abs(median(counts) - REAL.linesPerInvoice.median)).toBeLessThanOrEqual(3);
    const mean = N / counts.length;
    expect(mean).toBeGreaterThan(REAL.linesPerInvoice.mean * 0.8);
    expect(mean).toBeLessThan(REAL.linesPerInvoice.mean * 1.2);
    // The long tail: 100k lines hold ~4,800 invoices; the real file has 49 of 25,900 over 500 lines.
    expect(Math.max(...counts)).toBeGreaterThan(300);
  });

  it('~25% of lines without a customer (+-3 points)', () => {
    expect(
      Math.abs(share((l) => l.customerId === null) - REAL.linesWithoutCustomer / REAL.lines),
    ).toBeLessThan(0.03);
  });

  it('~1.7% cancellation lines (+-0.4 points) with negative quantities referencing earlier invoices', () => {
    const cancellations = lines.filter((l) => l.invoiceNo.startsWith('C'));
    expect(Math.abs(cancellations.length / N - 0.0171)).toBeLessThan(0.004);
    const byKey = new Map<string, InvoiceLine[]>();
    for (const l of lines)
      if (/^\d/.test(l.invoiceNo))
        byKey.set(`${l.customerId}|${l.stockCode}`, [
          ...(byKey.get(`${l.customerId}|${l.stockCode}`) ?? []),
          l,
        ]);
    const unreferenced = cancellations.filter((c) => {
      const originals = byKey.get(`${c.customerId}|${c.stockCode}`) ?? [];
      return c.quantity >= 0 || !originals.some((o) => Number(o.invoiceNo) < Number(c.invoiceNo.slice(1)));
    });
    expect(unreferenced).toEqual([]);
  });

  it("~91% UK (+-2 points), only the real set's country names, most of its 38 countries", () => {
    expect(Math.abs(share((l) => l.country === 'United Kingdom') - 0.914)).toBeLessThan(0.02);
    const real = new Set(COUNTRY_LINES.map(([c]) => c));
    const seen = new Set(lines.map((l) => l.country));
    for (const c of seen) expect(real.has(c)).toBe(true);
    expect(seen.size).toBeGreaterThanOrEqual(25);
  });

  it('quirks: non-product codes, zero prices, duplicates, 3-decimal prices', () => {
    expect(
      Math.abs(share((l) => !/^\d{5}/.test(l.stockCode)) - REAL.nonProductLines / REAL.lines),
    ).toBeLessThan(0.003);
    expect(Math.abs(share((l) => Number(l.unitPrice) === 0) - REAL.zeroPriceLines / REAL.lines)).toBeLessThan(
      0.0025,
    );
    const keys = new Set<string>();
    let dups = 0;
    for (const l of lines) {
      const k = [
        l.invoiceNo,
        l.stockCode,
        l.description,
        l.quantity,
        l.invoiceDate,
        l.unitPrice,
        l.customerId,
        l.country,
      ].join('|');
      if (keys.has(k)) dups++;
      keys.add(k);
    }
    expect(Math.abs(dups / N - REAL.duplicateLines / REAL.lines)).toBeLessThan(0.004);
    expect(lines.some((l) => /\.\d{3}$/.test(l.unitPrice))).toBe(true);
    expect(lines.every((l) => /^-?\d+(\.\d{1,3})?$/.test(l.unitPrice))).toBe(true);
  });

  it('trading hours 6-20, no Saturdays', () => {
    const outside = lines.filter((l) => {
      const hour = Number(l.invoiceDate.slice(11, 13));
      return hour < 6 || hour > 20 || new Date(`${l.invoiceDate}Z`).getUTCDay() === 6;
    });
    expect(outside).toEqual([]);
    expect(new Set(lines.map((l) => l.invoiceDate.slice(11, 13))).size).toBeGreaterThanOrEqual(12);
  });

  it('~4,000 stock codes with Zipf-like popularity and ~4,400 customers with one home country', () => {
    const g = createGenerator({ seed: 42 });
    expect(g.catalogue.products).toBe(4_000);
    expect(g.catalogue.customers).toBe(REAL.customers);
    const byCode = new Map<string, number>();
    for (const l of lines)
      if (/^\d{5}/.test(l.stockCode)) byCode.set(l.stockCode, (byCode.get(l.stockCode) ?? 0) + 1);
    const ranked = [...byCode.values()].sort((a, b) => b - a);
    const total = ranked.reduce((a, b) => a + b, 0);
    const top = (k: number) => ranked.slice(0, k).reduce((a, b) => a + b, 0) / total;
    // Real: top 100 codes 18.8% of lines, top 1,000 71.9%.
    expect(Math.abs(top(100) - 0.188)).toBeLessThan(0.04);
    expect(Math.abs(top(1000) - 0.719)).toBeLessThan(0.05);
    const home = new Map<string, string>();
    let moved = 0;
    for (const l of lines) {
      if (l.customerId === null) continue;
      if ((home.get(l.customerId) ?? l.country) !== l.country) moved++;
      home.set(l.customerId, l.country);
    }
    expect(moved).toBe(0);
    expect(home.size).toBeLessThanOrEqual(REAL.customers);
  });

  it('lineNo counts 1.. per invoice in order; invoice dates never go back in time', () => {
    const lastNo = new Map<string, number>();
    let lastDate = '';
    let wrong = 0;
    for (const l of lines) {
      if (l.lineNo !== (lastNo.get(l.invoiceNo) ?? 0) + 1 || l.invoiceDate < lastDate) wrong++;
      lastNo.set(l.invoiceNo, l.lineNo);
      lastDate = l.invoiceDate;
    }
    expect(wrong).toBe(0);
  });
});

describe('createGenerator determinism', () => {
  it('the same seed gives the same lines; another seed differs', () => {
    expect(generate(7, 5_000)).toEqual(generate(7, 5_000));
    expect(generate(8, 200)).not.toEqual(generate(7, 200));
  });

  it('startDate moves the timeline', () => {
    const g = createGenerator({ seed: 7, startDate: new Date(Date.UTC(2024, 2, 4)) });
    expect(g.next().invoiceDate.startsWith('2024-03-04')).toBe(true);
  });
});
