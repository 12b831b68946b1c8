import { en, Faker } from '@faker-js/faker';
import type { InvoiceLine } from '#core/invoice-line';
import { Rng, rankCurve, shuffle, WeightedPicker } from '#core/random';
import {
  COUNTRY_LINES,
  CUSTOMER_COUNTRIES,
  CUSTOMER_RANK_INVOICES,
  GUEST_COUNTRY_LINES,
  HOUR_LINES,
  MONTH_LINES,
  NON_PRODUCT_CODES,
  PRICE_QUANTILES,
  PRODUCT_RANK_LINES,
  QUANTITY_LINES,
  REAL,
  WEEKDAY_LINES,
} from './real-figures.ts';

/**
 * Synthetic invoice lines with the real file's shape. Every distribution and the figure it comes from is in
 * docs/producer.md; the constants below are derived from producer/real-figures.ts.
 */

const PRODUCTS = 4_000;
const FIRST_INVOICE = 536_365;
const CUSTOMER_ID_RANGE = [12_346, 18_287] as const;

// Invoice kinds as shares of the real file's 25,900 invoices.
const P_CANCELLATION = REAL.cancellationInvoices / REAL.invoices; // 14.8%
const P_ADJUSTMENT = 3 / REAL.invoices;
const P_STOCK_ADJUSTMENT = REAL.guestInvoiceLines.singles / REAL.invoices; // 8.9%
const P_GUEST_ORDER = (REAL.guestInvoiceLines.count - REAL.guestInvoiceLines.singles) / REAL.invoices; // 4.7%

// Per-line quirks as shares of all lines.
const P_DUPLICATE = REAL.duplicateLines / REAL.lines;
const P_NON_PRODUCT = REAL.nonProductLines / REAL.lines;
// Zero prices outside stock adjustments: 2,515 zero-price lines minus the 2,315 stock adjustments.
const P_ZERO_PRICE = 200 / 400_000;
// Stock adjustments: 1,336 negative-quantity lines outside C invoices and 1,454 without description.
const P_ADJUSTMENT_NEGATIVE = 1_336 / REAL.guestInvoiceLines.singles;
const P_ADJUSTMENT_NO_DESCRIPTION = REAL.missingDescriptionLines / REAL.guestInvoiceLines.singles;
const ADJUSTMENT_NOTES = ['damaged', 'check', 'missing', 'wet damaged', 'found', 'amazon', 'Damaged', '?'];

// Log-normal fits: customer invoices (median 15, mean 21.5 incl. 7.5% single lines), guest orders (mean ~109).
const CUSTOMER_LINES = { single: REAL.customerInvoiceLines.singleShare, median: 16, sigma: 0.86, max: 1_500 };
const GUEST_LINES = { median: 60, sigma: 1.1, max: 1_200 };
// Cancellations: 50% one line, else 2 + floor(Exp(2.8)); capping at the referenced invoice's size brings the
// mean to ~2.4 (real 2.42).
const CANCEL_LINES = { single: 0.5, tailMean: 2.8, max: REAL.cancellationInvoiceLines.max };
// Unit prices: log-normal through the real median (2.08) and quartiles: sigma = ln(p75/p50) / 0.674.
const PRICE_SIGMA = Math.log(PRICE_QUANTILES.p75 / PRICE_QUANTILES.p50) / 0.6745;
const QUANTITY_HEAD_SHARE = 0.916;

export interface GeneratorOptions {
  seed: number;
  /** First trading day (local date). Default 2010-12-01, the real file's first day, so a seed replays exactly. */
  startDate?: Date;
  /** Clock for `producedAt`; injectable for deterministic tests. */
  now?: () => Date;
  /**
   * Number of the first invoice (default 536365, the real file's first). A later run against the same
   * pipeline must start past the numbers already used: `(invoiceNo, lineNo)` is a line's identity.
   */
  firstInvoiceNo?: number;
}

export interface Generator extends Iterable<InvoiceLine> {
  next(): InvoiceLine;
  /** The catalogue and customer base, for tests and docs. */
  readonly catalogue: { products: number; customers: number };
}

interface Product {
  stockCode: string;
  description: string | null;
  price: number;
}

interface Customer {
  id: string;
  country: string;
}

type Line = Omit<InvoiceLine, 'producedAt' | 'lineNo'>;

const pad2 = (n: number) => (n < 10 ? `0${n}` : String(n));

/** Decimal text as the source writes it: at most 2 decimals, trailing zeros dropped (`2.1`, `3`). */
function priceText(value: number): string {
  const fixed = value.toFixed(2);
  return fixed.replace(/\.?0+$/, '') || '0';
}

/** What a seed draws from: the catalogue, the customers and pickers over the real file's distributions. */
function buildWorld(seed: number) {
  const rng = new Rng(seed);
  const faker = new Faker({ locale: [en] });
  faker.seed(seed);
  const products = buildCatalogue(rng, faker);
  const productPicker = new WeightedPicker(products, rankCurve(PRODUCT_RANK_LINES, products.length));
  const nonProductPicker = new WeightedPicker(
    NON_PRODUCT_CODES,
    NON_PRODUCT_CODES.map((c) => c.lines),
  );
  const quantityPicker = new WeightedPicker(
    QUANTITY_LINES.map(([q]) => q),
    QUANTITY_LINES.map(([, n]) => n),
  );
  const hourPicker = new WeightedPicker(
    HOUR_LINES.map(([h]) => h),
    HOUR_LINES.map(([, n]) => n),
  );
  const { customerCountryPicker, customersByCountry, count: customerCount } = buildCustomers(rng);
  const guestCountryPicker = new WeightedPicker(
    GUEST_COUNTRY_LINES.map(([c]) => c),
    GUEST_COUNTRY_LINES.map(([, n]) => n),
  );
  return {
    rng,
    products,
    productPicker,
    nonProductPicker,
    quantityPicker,
    hourPicker,
    customerCountryPicker,
    customersByCountry,
    customerCount,
    guestCountryPicker,
  };
}

type World = ReturnType<typeof buildWorld>;

/** Invoice times in time order from `start`: trading days only, as many as the weekday and month carry. */
function invoiceDates(world: World, start: Date): () => string {
  const { rng, hourPicker } = world;
  const tradingWeekday = WEEKDAY_LINES.reduce((a, b) => a + b, 0) / 6;
  const monthMean = MONTH_LINES.reduce((a, b) => a + b, 0) / 12;
  // Calendar day cursor (UTC fields used as a plain local calendar).
  let day = Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), start.getUTCDate()) - 86_400_000;
  let dayTimes: string[] = [];
  return () => {
    while (dayTimes.length === 0) {
      day += 86_400_000;
      const d = new Date(day);
      const weekday = WEEKDAY_LINES[d.getUTCDay()] ?? 0;
      if (weekday === 0) continue;
      const factor = (weekday / tradingWeekday) * ((MONTH_LINES[d.getUTCMonth()] ?? monthMean) / monthMean);
      const count = Math.round(REAL.invoicesPerDay * factor * rng.logNormal(1, 0.25));
      const date = `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())}`;
      const times: string[] = [];
      for (let i = 0; i < count; i++)
        times.push(`${date}T${pad2(hourPicker.pick(rng))}:${pad2(rng.int(60))}:00`);
      // Reversed so pop() hands them out in time order.
      dayTimes = times.sort().reverse();
    }
    return dayTimes.pop() as string;
  };
}

function quantity({ rng, quantityPicker }: World): number {
  return rng.chance(QUANTITY_HEAD_SHARE)
    ? quantityPicker.pick(rng)
    : Math.max(1, Math.round(Math.exp(rng.next() * 6.9)));
}

function saleLines(
  world: World,
  count: number,
  customer: Customer | null,
  country: string,
  invoiceNo: string,
  date: string,
): Line[] {
  const { rng, productPicker, nonProductPicker } = world;
  const lines: Line[] = [];
  const used = new Set<string>();
  for (let i = 0; i < count; i++) {
    const previous = lines[lines.length - 1];
    if (previous && rng.chance(P_DUPLICATE)) {
      lines.push({ ...previous });
      continue;
    }
    if (rng.chance(P_NON_PRODUCT)) {
      const np = nonProductPicker.pick(rng);
      lines.push({
        invoiceNo,
        stockCode: np.code,
        description: np.description,
        quantity: 1,
        invoiceDate: date,
        unitPrice: np.price,
        customerId: customer?.id ?? null,
        country,
      });
      continue;
    }
    let product = productPicker.pick(rng);
    for (let tries = 0; used.has(product.stockCode) && tries < 5; tries++) product = productPicker.pick(rng);
    used.add(product.stockCode);
    const q = quantity(world);
    // Guests pay list price (+20%), large quantities get the trade discount: 4 prices per product in the file.
    const price = customer === null ? product.price * 1.2 : q >= 100 ? product.price * 0.85 : product.price;
    lines.push({
      invoiceNo,
      stockCode: product.stockCode,
      description: product.description,
      quantity: q,
      invoiceDate: date,
      unitPrice: rng.chance(P_ZERO_PRICE) ? '0' : priceText(Math.max(0.01, price)),
      customerId: customer?.id ?? null,
      country,
    });
  }
  return lines;
}

interface Order {
  customer: Customer;
  lines: Line[];
}

/** A C invoice taking back some lines of a recent order. */
function cancellation({ rng }: World, recent: Order[], number: number, date: string): Line[] {
  const ref = recent[recent.length - 1 - rng.int(recent.length)] as Order;
  const wanted = rng.chance(CANCEL_LINES.single) ? 1 : 2 + Math.floor(rng.exponential(CANCEL_LINES.tailMean));
  const count = Math.min(wanted, ref.lines.length, CANCEL_LINES.max);
  const picked = shuffle(rng, [...ref.lines]).slice(0, count);
  return picked.map((l) => ({
    ...l,
    invoiceNo: `C${number}`,
    invoiceDate: date,
    quantity: -Math.abs(l.quantity),
  }));
}

/** An A invoice: the real file's bad debt adjustment. */
function badDebtAdjustment({ rng }: World, number: number, date: string): Line {
  return {
    invoiceNo: `A${number}`,
    stockCode: 'B',
    description: 'Adjust bad debt',
    quantity: 1,
    invoiceDate: date,
    unitPrice: rng.chance(2 / 3) ? '-11062.06' : '11062.06',
    customerId: null,
    country: 'United Kingdom',
  };
}

/** A single zero-price line without a customer: stock written off or found, often with a note. */
function stockAdjustment(world: World, invoiceNo: string, date: string): Line {
  const { rng, productPicker, guestCountryPicker } = world;
  const product = productPicker.pick(rng);
  const q = quantity(world);
  return {
    invoiceNo,
    stockCode: product.stockCode,
    description: rng.chance(P_ADJUSTMENT_NO_DESCRIPTION)
      ? null
      : (ADJUSTMENT_NOTES[rng.int(ADJUSTMENT_NOTES.length)] as string),
    quantity: rng.chance(P_ADJUSTMENT_NEGATIVE) ? -q : q,
    invoiceDate: date,
    unitPrice: '0',
    customerId: null,
    country: guestCountryPicker.pick(rng),
  };
}

function guestOrder(world: World, invoiceNo: string, date: string): Line[] {
  const { rng, guestCountryPicker } = world;
  const count = Math.min(
    GUEST_LINES.max,
    Math.max(2, Math.round(rng.logNormal(GUEST_LINES.median, GUEST_LINES.sigma))),
  );
  return saleLines(world, count, null, guestCountryPicker.pick(rng), invoiceNo, date);
}

function customerOrder(world: World, invoiceNo: string, date: string): Order {
  const { rng, customerCountryPicker, customersByCountry } = world;
  const country = customerCountryPicker.pick(rng);
  const customer = (customersByCountry.get(country) as WeightedPicker<Customer>).pick(rng);
  const count = rng.chance(CUSTOMER_LINES.single)
    ? 1
    : Math.min(
        CUSTOMER_LINES.max,
        Math.max(2, Math.round(rng.logNormal(CUSTOMER_LINES.median, CUSTOMER_LINES.sigma))),
      );
  return { customer, lines: saleLines(world, count, customer, customer.country, invoiceNo, date) };
}

export function createGenerator(opts: GeneratorOptions): Generator {
  const world = buildWorld(opts.seed);
  const now = opts.now ?? (() => new Date());
  const nextInvoiceDate = invoiceDates(world, opts.startDate ?? new Date(Date.UTC(2010, 11, 1)));
  let invoiceCounter = opts.firstInvoiceNo ?? FIRST_INVOICE;
  const recent: Order[] = [];
  let pending: Line[] = [];
  let pendingIndex = 0;

  const nextInvoice = (): Line[] => {
    const date = nextInvoiceDate();
    const number = invoiceCounter++;
    const kind = world.rng.next();
    if (kind < P_CANCELLATION && recent.length > 0) return cancellation(world, recent, number, date);
    let k = kind - P_CANCELLATION;
    if (k >= 0 && k < P_ADJUSTMENT) return [badDebtAdjustment(world, number, date)];
    k -= P_ADJUSTMENT;
    const invoiceNo = String(number);
    if (k >= 0 && k < P_STOCK_ADJUSTMENT) return [stockAdjustment(world, invoiceNo, date)];
    k -= P_STOCK_ADJUSTMENT;
    if (k >= 0 && k < P_GUEST_ORDER) return guestOrder(world, invoiceNo, date);
    const order = customerOrder(world, invoiceNo, date);
    recent.push(order);
    // Cancellations refer to recent orders (days to weeks back); keeping a window bounds memory.
    if (recent.length > 2_000) recent.shift();
    return order.lines;
  };

  const next = (): InvoiceLine => {
    while (pendingIndex >= pending.length) {
      pending = nextInvoice();
      pendingIndex = 0;
    }
    const line = pending[pendingIndex] as Line;
    pendingIndex++;
    return { ...line, lineNo: pendingIndex, producedAt: now().toISOString() };
  };

  return {
    next,
    catalogue: { products: world.products.length, customers: world.customerCount },
    *[Symbol.iterator]() {
      for (;;) yield next();
    },
  };
}

function buildCatalogue(rng: Rng, faker: Faker): Product[] {
  const codes = new Set<string>();
  const products: Product[] = [];
  while (products.length < PRODUCTS) {
    // Real codes: 5 digits, a fifth of them with a variant letter (85123A).
    const base = String(10_002 + rng.int(80_000));
    const code = rng.chance(0.2) ? `${base}${String.fromCharCode(65 + rng.int(8))}` : base;
    if (codes.has(code)) continue;
    codes.add(code);
    const description =
      `${faker.commerce.productAdjective()} ${faker.color.human()} ${faker.commerce.product()}`.toUpperCase();
    products.push({ stockCode: code, description, price: rng.logNormal(PRICE_QUANTILES.p50, PRICE_SIGMA) });
  }
  return products;
}

function buildCustomers(rng: Rng) {
  const ids: number[] = [];
  for (let id = CUSTOMER_ID_RANGE[0]; id <= CUSTOMER_ID_RANGE[1]; id++) ids.push(id);
  shuffle(rng, ids);
  const customers: Customer[] = [];
  let next = 0;
  for (const [country, count] of CUSTOMER_COUNTRIES) {
    for (let i = 0; i < count; i++) customers.push({ id: String(ids[next++]), country });
  }
  // Activity (invoices per customer) follows the real rank curve; ranks are dealt out at random.
  const activity = shuffle(rng, rankCurve(CUSTOMER_RANK_INVOICES, customers.length));
  const byCountry = new Map<string, { items: Customer[]; weights: number[] }>();
  customers.forEach((c, i) => {
    let entry = byCountry.get(c.country);
    if (!entry) {
      entry = { items: [], weights: [] };
      byCountry.set(c.country, entry);
    }
    entry.items.push(c);
    entry.weights.push(activity[i] as number);
  });
  const customersByCountry = new Map<string, WeightedPicker<Customer>>();
  for (const [country, { items, weights }] of byCountry)
    customersByCountry.set(country, new WeightedPicker(items, weights));
  // Countries weighted by their lines that carry a customer (all lines minus guest lines).
  const guest = new Map(GUEST_COUNTRY_LINES);
  const countries = COUNTRY_LINES.filter(
    ([c, n]) => customersByCountry.has(c) && n - (guest.get(c) ?? 0) > 0,
  );
  const customerCountryPicker = new WeightedPicker(
    countries.map(([c]) => c),
    countries.map(([c, n]) => n - (guest.get(c) ?? 0)),
  );
  return { customerCountryPicker, customersByCountry, count: customers.length };
}
