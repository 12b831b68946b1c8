import { describe, expect, it } from 'vitest';
import { CURRENCIES, generateSeed, PAYMENT_TYPES, SEED_COUNTS } from '#cdc/totesys/seed';
import { changedRowsQuery, sourceDdl } from '#cdc/totesys/source';
import { quoteIdent, TOTESYS_TABLE_NAMES, TOTESYS_TABLES } from '#cdc/totesys/tables';

const seed = generateSeed(1);
const num = (v: unknown) => Number(v);

describe('totesys seed', () => {
  it('gives the same rows for the same seed and other rows for another', () => {
    expect(generateSeed(1)).toEqual(seed);
    expect(generateSeed(2).sales_order.slice(0, 20)).not.toEqual(seed.sales_order.slice(0, 20));
  });

  it('has the published row counts, one transaction per order and one payment per transaction', () => {
    for (const [table, n] of Object.entries(SEED_COUNTS))
      expect(seed[table as keyof typeof seed], table).toHaveLength(n);
    const orders = SEED_COUNTS.sales_order + SEED_COUNTS.purchase_order;
    expect(seed.transaction).toHaveLength(orders);
    expect(seed.payment).toHaveLength(orders);
    expect(new Set(seed.transaction.map((t) => t.sales_order_id).filter((x) => x !== null)).size).toBe(
      SEED_COUNTS.sales_order,
    );
    expect(new Set(seed.transaction.map((t) => t.purchase_order_id).filter((x) => x !== null)).size).toBe(
      SEED_COUNTS.purchase_order,
    );
    expect(new Set(seed.payment.map((p) => p.transaction_id)).size).toBe(orders);
    for (const t of seed.transaction) {
      expect(t.transaction_type === 'SALE' ? t.sales_order_id : t.purchase_order_id).not.toBeNull();
    }
  });

  it('keeps values inside the published ranges', () => {
    const within = (rows: Array<Record<string, unknown>>, col: string, lo: number, hi: number) => {
      const values = rows.map((r) => num(r[col]));
      expect(Math.min(...values), col).toBeGreaterThanOrEqual(lo);
      expect(Math.max(...values), col).toBeLessThanOrEqual(hi);
    };
    within(seed.sales_order, 'units_sold', 1_000, 100_000);
    within(seed.sales_order, 'unit_price', 2, 4);
    within(seed.purchase_order, 'item_quantity', 1, 1_000);
    within(seed.purchase_order, 'item_unit_price', 3, 1_000);
    within(seed.payment, 'payment_amount', 1, 1_000_000);
    within(seed.payment, 'company_ac_number', 10_000_000, 99_999_999);
    within(seed.payment, 'counterparty_ac_number', 10_000_000, 99_999_999);
    expect(seed.currency.map((c) => c.currency_code)).toEqual([...CURRENCIES]);
    expect(seed.payment_type.map((p) => p.payment_type_name)).toEqual([...PAYMENT_TYPES]);
    for (const o of seed.sales_order) {
      expect(o.unit_price).toMatch(/^\d+\.\d{2}$/);
      expect(o.agreed_delivery_date).toMatch(/^\d{4}-\d{2}-\d{2}$/);
      expect(String(o.last_updated) >= String(o.created_at)).toBe(true);
    }
  });

  it('references only rows that exist', () => {
    const ids = (rows: Array<Record<string, unknown>>, col: string) => new Set(rows.map((r) => r[col]));
    const addresses = ids(seed.address, 'address_id');
    for (const c of seed.counterparty) expect(addresses.has(c.legal_address_id)).toBe(true);
    const designs = ids(seed.design, 'design_id');
    for (const o of seed.sales_order) expect(designs.has(o.design_id)).toBe(true);
    const departments = ids(seed.department, 'department_id');
    for (const s of seed.staff) expect(departments.has(s.department_id)).toBe(true);
  });
});

describe('totesys tables and their SQL', () => {
  it('lists the 11 tables in SCHEMA.md order, each ending with created_at and last_updated', () => {
    expect(TOTESYS_TABLES.map((t) => t.name)).toEqual([...TOTESYS_TABLE_NAMES]);
    expect(TOTESYS_TABLES).toHaveLength(11);
    for (const t of TOTESYS_TABLES) {
      expect(t.columns.slice(-2).map((c) => c.name)).toEqual(['created_at', 'last_updated']);
      expect(t.columns[0]?.name).toBe(t.primaryKey);
    }
  });

  it('builds statements from quoted fixed names only, values as parameters', () => {
    expect(changedRowsQuery(TOTESYS_TABLES[10] as (typeof TOTESYS_TABLES)[number])).toBe(
      'SELECT "transaction_id", "transaction_type", "sales_order_id", "purchase_order_id", "created_at", "last_updated" ' +
        'FROM "transaction" WHERE "last_updated" >= $1::timestamp ORDER BY "last_updated", "transaction_id"',
    );
    expect(() => quoteIdent('x"; DROP TABLE payment; --')).toThrow(/not a safe SQL identifier/);
    const ddl = sourceDdl().join('\n');
    expect(ddl).toContain(
      'CREATE INDEX IF NOT EXISTS "payment_last_updated_idx" ON "payment" ("last_updated")',
    );
    // payment references transaction, which SCHEMA.md lists after it: created first anyway.
    expect(ddl.indexOf('CREATE TABLE IF NOT EXISTS "transaction"')).toBeLessThan(
      ddl.indexOf('CREATE TABLE IF NOT EXISTS "payment"'),
    );
  });
});
