import type pg from 'pg';
import { Rng, WeightedPicker } from '#core/random';
import { sleep } from '#core/resilience';
import * as seed from './seed.ts';
import { insertRows, inTransaction } from './source.ts';
import { quoteIdent, totesysTable } from './tables.ts';
import * as words from './words.ts';

/**
 * The business behind the totesys source: new sales and purchase orders, each with its transaction
 * and payment, payments settled, orders amended, staff, address and counterparty edits. Each change is
 * one source transaction; the database clock stamps `created_at` / `last_updated` (column defaults and
 * the update trigger), as in the real system.
 */
export const CHANGE_KINDS = [
  'sale',
  'purchase',
  'payment-paid',
  'sale-amended',
  'staff-edit',
  'address-edit',
  'counterparty-edit',
] as const;
export type ChangeKind = (typeof CHANGE_KINDS)[number];

const WEIGHTS: Record<ChangeKind, number> = {
  sale: 35,
  purchase: 15,
  'payment-paid': 25,
  'sale-amended': 10,
  'staff-edit': 5,
  'address-edit': 5,
  'counterparty-edit': 5,
};

type Change = (client: pg.ClientBase, rng: Rng) => Promise<void>;

/** Today's date as the source's clock sees it, the base of agreed dates. */
async function sourceNow(client: pg.ClientBase): Promise<string> {
  const { rows } = await client.query<{ now: string }>(
    `SELECT to_char(now(), 'YYYY-MM-DD"T"HH24:MI:SS.US') AS now`,
  );
  return (rows[0] as { now: string }).now;
}

async function newOrder(client: pg.ClientBase, rng: Rng, kind: 'SALE' | 'PURCHASE'): Promise<void> {
  const created = await sourceNow(client);
  const table = kind === 'SALE' ? 'sales_order' : 'purchase_order';
  const fields =
    kind === 'SALE' ? seed.salesOrderFields(rng, created) : seed.purchaseOrderFields(rng, created);
  const t = totesysTable(table);
  await insertRows(client, t, [fields]);
  const orderId = await lastId(client, table, t.primaryKey);
  await insertRows(client, totesysTable('transaction'), [
    {
      transaction_type: kind,
      sales_order_id: kind === 'SALE' ? orderId : null,
      purchase_order_id: kind === 'PURCHASE' ? orderId : null,
    },
  ]);
  const transactionId = await lastId(client, 'transaction', 'transaction_id');
  await insertRows(client, totesysTable('payment'), [
    { transaction_id: transactionId, ...seed.paymentFields(rng, fields, kind), paid: false },
  ]);
}

/** The key the identity column just gave this session's insert. */
async function lastId(client: pg.ClientBase, table: string, column: string): Promise<number> {
  const { rows } = await client.query<{ id: string }>(
    'SELECT currval(pg_get_serial_sequence($1, $2)) AS id',
    [quoteIdent(table), column],
  );
  return Number((rows[0] as { id: string }).id);
}

/** A random existing key: the first row at or after a random point of the key range. */
async function someRow(client: pg.ClientBase, rng: Rng, sql: string): Promise<number | undefined> {
  const { rows } = await client.query<{ id: string }>(sql, [rng.next()]);
  return rows[0] ? Number(rows[0].id) : undefined;
}

const CHANGES: Record<ChangeKind, Change> = {
  sale: (c, rng) => newOrder(c, rng, 'SALE'),
  purchase: (c, rng) => newOrder(c, rng, 'PURCHASE'),
  async 'payment-paid'(c, rng) {
    const id = await someRow(
      c,
      rng,
      `SELECT payment_id AS id FROM "payment" WHERE NOT paid AND payment_id >=
         (SELECT min(payment_id) + $1::float8 * (max(payment_id) - min(payment_id)) FROM "payment" WHERE NOT paid)
       ORDER BY payment_id LIMIT 1`,
    );
    if (id !== undefined) await c.query('UPDATE "payment" SET paid = true WHERE payment_id = $1', [id]);
  },
  async 'sale-amended'(c, rng) {
    const id = await someRow(
      c,
      rng,
      `SELECT sales_order_id AS id FROM "sales_order" WHERE sales_order_id >=
         (SELECT $1::float8 * max(sales_order_id) FROM "sales_order") ORDER BY sales_order_id LIMIT 1`,
    );
    if (id === undefined) return;
    await c.query(
      'UPDATE "sales_order" SET units_sold = $2, agreed_delivery_date = $3 WHERE sales_order_id = $1',
      [id, seed.between(rng, 1_000, 100_000), seed.dateAfter(await sourceNow(c), seed.between(rng, 1, 14))],
    );
  },
  async 'staff-edit'(c, rng) {
    const id = seed.between(rng, 1, seed.SEED_COUNTS.staff);
    await c.query('UPDATE "staff" SET department_id = $2 WHERE staff_id = $1', [
      id,
      seed.between(rng, 1, seed.SEED_COUNTS.department),
    ]);
  },
  async 'address-edit'(c, rng) {
    const id = seed.between(rng, 1, seed.SEED_COUNTS.address);
    await c.query('UPDATE "address" SET phone = $2 WHERE address_id = $1', [id, words.phone(rng)]);
  },
  async 'counterparty-edit'(c, rng) {
    const id = seed.between(rng, 1, seed.SEED_COUNTS.counterparty);
    await c.query('UPDATE "counterparty" SET commercial_contact = $2 WHERE counterparty_id = $1', [
      id,
      words.personName(rng),
    ]);
  },
};

const PICKER = new WeightedPicker(
  CHANGE_KINDS,
  CHANGE_KINDS.map((k) => WEIGHTS[k]),
);

/** One business change, in its own transaction. */
export async function simulateChange(pool: pg.Pool, rng: Rng, kind = PICKER.pick(rng)): Promise<ChangeKind> {
  await inTransaction(pool, (client) => CHANGES[kind](client, rng));
  return kind;
}

export interface SimulatorOptions {
  pool: pg.Pool;
  /** Changes per second. */
  rate: number;
  seed: number;
  signal?: AbortSignal;
  durationMs?: number;
  /** After each change, or each failed attempt (the simulator keeps going through an outage). */
  onChange?: (kind: ChangeKind) => void;
  onError?: (err: unknown) => void;
}

export interface SimulatorSummary {
  changes: Partial<Record<ChangeKind, number>>;
  total: number;
  failed: number;
}

/** Makes changes at `rate` per second until the signal aborts or the duration passes. */
export async function runSimulator(opts: SimulatorOptions): Promise<SimulatorSummary> {
  const rng = new Rng(opts.seed);
  const interval = 1000 / opts.rate;
  const started = performance.now();
  const summary: SimulatorSummary = { changes: {}, total: 0, failed: 0 };
  for (let i = 0; !opts.signal?.aborted; i++) {
    const due = started + i * interval;
    if (opts.durationMs !== undefined && due - started >= opts.durationMs) break;
    await sleep(Math.max(0, due - performance.now()), opts.signal);
    if (opts.signal?.aborted) break;
    try {
      const kind = await simulateChange(opts.pool, rng);
      summary.changes[kind] = (summary.changes[kind] ?? 0) + 1;
      summary.total++;
      opts.onChange?.(kind);
    } catch (err) {
      summary.failed++;
      opts.onError?.(err);
    }
  }
  return summary;
}
