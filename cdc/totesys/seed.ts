import type pg from 'pg';
import { Rng, shuffle } from '#core/random';
import { fromMicros, toMicros } from '../watermark.ts';
import { insertRows, inTransaction, type SourceRowValues, sourceDdl, syncIdentities } from './source.ts';
import { type TotesysTableName, totesysTable } from './tables.ts';
import * as words from './words.ts';

/**
 * The seeded totesys source: the row counts and value ranges of the published 2024-11 snapshot
 * (SCHEMA.md), generated from a seeded PRNG, so the same seed gives the same rows, stamps included
 * (they run over a fixed two-year timeline, not the wall clock).
 */
export const SEED_COUNTS = {
  address: 30,
  counterparty: 20,
  currency: 3,
  department: 8,
  design: 472,
  staff: 20,
  payment_type: 4,
  sales_order: 11_175,
  purchase_order: 4_640,
} as const;

export const CURRENCIES = ['GBP', 'USD', 'EUR'] as const;
export const PAYMENT_TYPES = [
  'SALES_RECEIPT',
  'SALES_REFUND',
  'PURCHASE_PAYMENT',
  'PURCHASE_REFUND',
] as const;

const TIMELINE_START = toMicros('2022-11-03T14:20:49.962000');
const TIMELINE_END = toMicros('2024-11-14T09:41:09.839000');
const MICROS_PER_DAY = 86_400_000_000n;

export type SeedRows = Record<TotesysTableName, SourceRowValues[]>;

/** An integer in [lo, hi]. */
export const between = (rng: Rng, lo: number, hi: number) => lo + rng.int(hi - lo + 1);
/** A decimal in [lo, hi] with two places, as exact text. */
export const money = (rng: Rng, lo: number, hi: number) =>
  (between(rng, lo * 100, hi * 100) / 100).toFixed(2);
/** `YYYY-MM-DD`, `days` after a stamp. */
export const dateAfter = (stamp: string, days: number) =>
  fromMicros(toMicros(stamp) + BigInt(days) * MICROS_PER_DAY).slice(0, 10);
const stamps = (created: string) => ({ created_at: created, last_updated: created });

/** Reference data: addresses, counterparties, currencies, departments, designs, staff, payment types. */
function referenceRows(
  rng: Rng,
  at: string,
): Omit<SeedRows, 'sales_order' | 'purchase_order' | 'transaction' | 'payment'> {
  const address = Array.from({ length: SEED_COUNTS.address }, (_, i) => ({
    address_id: i + 1,
    ...words.addressFields(rng),
    ...stamps(at),
  }));
  const counterparty = Array.from({ length: SEED_COUNTS.counterparty }, (_, i) => ({
    counterparty_id: i + 1,
    counterparty_legal_name: words.companyName(rng),
    legal_address_id: between(rng, 1, SEED_COUNTS.address),
    commercial_contact: rng.chance(0.9) ? words.personName(rng) : null,
    delivery_contact: rng.chance(0.9) ? words.personName(rng) : null,
    ...stamps(at),
  }));
  const currency = CURRENCIES.map((code, i) => ({ currency_id: i + 1, currency_code: code, ...stamps(at) }));
  const department = words.DEPARTMENTS.slice(0, SEED_COUNTS.department).map((name, i) => ({
    department_id: i + 1,
    department_name: name,
    location: rng.chance(0.9) ? words.pick(rng, words.CITIES) : null,
    manager: rng.chance(0.9) ? words.personName(rng) : null,
    ...stamps(at),
  }));
  const design = Array.from({ length: SEED_COUNTS.design }, (_, i) => words.designFields(rng, i + 1, at));
  const staff = Array.from({ length: SEED_COUNTS.staff }, (_, i) => ({
    staff_id: i + 1,
    ...words.staffFields(rng, SEED_COUNTS.department),
    ...stamps(at),
  }));
  const payment_type = PAYMENT_TYPES.map((name, i) => ({
    payment_type_id: i + 1,
    payment_type_name: name,
    ...stamps(at),
  }));
  return { address, counterparty, currency, department, design, staff, payment_type };
}

/** A sales order's business fields (shared with the simulator). */
export function salesOrderFields(rng: Rng, created: string): SourceRowValues {
  return {
    design_id: between(rng, 1, SEED_COUNTS.design),
    staff_id: between(rng, 1, SEED_COUNTS.staff),
    counterparty_id: between(rng, 1, SEED_COUNTS.counterparty),
    units_sold: between(rng, 1_000, 100_000),
    unit_price: money(rng, 2, 4),
    currency_id: between(rng, 1, CURRENCIES.length),
    agreed_delivery_date: dateAfter(created, between(rng, 1, 7)),
    agreed_payment_date: dateAfter(created, between(rng, 1, 7)),
    agreed_delivery_location_id: between(rng, 1, SEED_COUNTS.address),
  };
}

export function purchaseOrderFields(rng: Rng, created: string): SourceRowValues {
  return {
    staff_id: between(rng, 1, SEED_COUNTS.staff),
    counterparty_id: between(rng, 1, SEED_COUNTS.counterparty),
    item_code: words.itemCode(rng),
    item_quantity: between(rng, 1, 1_000),
    item_unit_price: money(rng, 3, 1_000),
    currency_id: between(rng, 1, CURRENCIES.length),
    agreed_delivery_date: dateAfter(created, between(rng, 1, 7)),
    agreed_payment_date: dateAfter(created, between(rng, 1, 7)),
    agreed_delivery_location_id: between(rng, 1, SEED_COUNTS.address),
  };
}

/** The payment of an order: its amount is the order's value, refunds are rare. */
export function paymentFields(rng: Rng, order: SourceRowValues, kind: 'SALE' | 'PURCHASE'): SourceRowValues {
  const sale = kind === 'SALE';
  const amount = sale
    ? (Number(order.units_sold) * Number(order.unit_price)).toFixed(2)
    : (Number(order.item_quantity) * Number(order.item_unit_price)).toFixed(2);
  const refund = rng.chance(0.03);
  return {
    counterparty_id: order.counterparty_id ?? null,
    payment_amount: amount,
    currency_id: order.currency_id ?? null,
    payment_type_id: sale ? (refund ? 2 : 1) : refund ? 4 : 3,
    payment_date: order.agreed_payment_date ?? null,
    company_ac_number: between(rng, 10_000_000, 99_999_999),
    counterparty_ac_number: between(rng, 10_000_000, 99_999_999),
  };
}

/** Every row of the seed, deterministic per seed. */
export function generateSeed(seed: number): SeedRows {
  const rng = new Rng(seed);
  const reference = referenceRows(rng, fromMicros(TIMELINE_START));
  const kinds = shuffle(rng, [
    ...Array<'SALE'>(SEED_COUNTS.sales_order).fill('SALE'),
    ...Array<'PURCHASE'>(SEED_COUNTS.purchase_order).fill('PURCHASE'),
  ]);
  const rows: SeedRows = { ...reference, sales_order: [], purchase_order: [], transaction: [], payment: [] };
  const span = TIMELINE_END - TIMELINE_START;
  const n = BigInt(kinds.length);
  kinds.forEach((kind, i) => {
    // Increasing stamps over the timeline; about one order in ten was amended some hours later.
    const created = fromMicros(TIMELINE_START + (span * BigInt(i)) / n + BigInt(rng.int(1_000_000)));
    const lastUpdated = rng.chance(0.1)
      ? fromMicros(toMicros(created) + BigInt(between(rng, 1, 72)) * 3_600_000_000n)
      : created;
    const at = { created_at: created, last_updated: lastUpdated };
    const transactionId = i + 1;
    let order: SourceRowValues;
    if (kind === 'SALE') {
      order = { sales_order_id: rows.sales_order.length + 1, ...salesOrderFields(rng, created), ...at };
      rows.sales_order.push(order);
    } else {
      order = {
        purchase_order_id: rows.purchase_order.length + 1,
        ...purchaseOrderFields(rng, created),
        ...at,
      };
      rows.purchase_order.push(order);
    }
    rows.transaction.push({
      transaction_id: transactionId,
      transaction_type: kind,
      sales_order_id: kind === 'SALE' ? (order.sales_order_id ?? null) : null,
      purchase_order_id: kind === 'PURCHASE' ? (order.purchase_order_id ?? null) : null,
      ...at,
    });
    rows.payment.push({
      payment_id: transactionId,
      transaction_id: transactionId,
      ...paymentFields(rng, order, kind),
      // Older payments have settled; the last few weeks' are still open.
      paid: i < kinds.length - 400 ? true : rng.chance(0.3),
      ...at,
    });
  });
  return rows;
}

export type SeedOutcome = { seeded: true; rows: number } | { seeded: false };

/**
 * Creates the source tables and, on an empty source, seeds them, all in one transaction: a crash
 * leaves either nothing or the whole seed, and a second start finds it and resumes.
 */
export async function ensureSeededSource(pool: pg.Pool, seed: number): Promise<SeedOutcome> {
  return inTransaction(pool, async (client) => {
    // Two starts racing on one database: the second waits, then finds the seed.
    await client.query("SELECT pg_advisory_xact_lock(hashtext('totesys-seed'))");
    for (const statement of sourceDdl()) await client.query(statement);
    const existing = await client.query('SELECT 1 FROM "currency" LIMIT 1');
    if (existing.rowCount) return { seeded: false };
    const rows = generateSeed(seed);
    let total = 0;
    for (const name of SEED_ORDER) {
      await insertRows(client, totesysTable(name), rows[name]);
      total += rows[name].length;
    }
    await syncIdentities(client);
    return { seeded: true, rows: total };
  });
}

/** Referenced tables first. */
const SEED_ORDER: TotesysTableName[] = [
  'address',
  'counterparty',
  'currency',
  'department',
  'design',
  'staff',
  'payment_type',
  'sales_order',
  'purchase_order',
  'transaction',
  'payment',
];
