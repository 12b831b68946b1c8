import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Warehouse } from '#adapters/warehouse';

/**
 * The narrowest warehouse capability analytics reads need: one parameterised query. A `pg.Pool`
 * and the warehouse adapters (`#adapters/warehouse`) both satisfy it.
 */
export interface QueryPort {
  query(sql: string, params?: ReadonlyArray<unknown>): Promise<{ rows: Array<Record<string, unknown>> }>;
}

/** What `refreshMarts` needs: all statements in one transaction (the loader's warehouse port). */
export type TransactionPort = Pick<Warehouse, 'transaction'>;

export class AnalyticsQueryError extends Error {
  override name = 'AnalyticsQueryError';
}

const QUERY_DIR = fileURLToPath(new URL('./sql/queries/', import.meta.url));
const cache = new Map<string, string>();

/** The text of `analytics/sql/queries/<name>.sql`: SQL lives in versioned files, read once. */
export function namedQuery(name: string): string {
  let text = cache.get(name);
  if (text === undefined) {
    if (!/^[a-z0-9-]+$/.test(name)) throw new AnalyticsQueryError(`not a query name: ${name}`);
    text = fs.readFileSync(`${QUERY_DIR}${name}.sql`, 'utf8');
    cache.set(name, text);
  }
  return text;
}

/** Runs a named query; failures name the query so the log says which report broke. */
export async function runQuery<R>(
  db: QueryPort,
  name: string,
  params: ReadonlyArray<unknown> = [],
): Promise<R[]> {
  try {
    const result = await db.query(namedQuery(name), params);
    return result.rows as R[];
  } catch (cause) {
    throw new AnalyticsQueryError(`analytics query '${name}' failed: ${(cause as Error)?.message ?? cause}`, {
      cause,
    });
  }
}

/** Counts come back as text from pg (bigint) and as numbers from other drivers. */
export function num(v: unknown): number {
  if (v === null || v === undefined) return 0;
  const n = typeof v === 'number' ? v : Number(v);
  return Number.isFinite(n) ? n : 0;
}

/** Exact decimals stay text (3 decimals); null/undefined become '0.000'. */
export function money(v: unknown): string {
  if (v === null || v === undefined) return '0.000';
  const s = String(v);
  const [int = '0', frac = ''] = s.split('.');
  return `${int}.${`${frac}000`.slice(0, 3)}`;
}

/** Dates from pg come as Date (date columns at local midnight) or text; always `YYYY-MM-DD`. */
export function isoDay(v: unknown): string {
  if (v instanceof Date) {
    const y = v.getFullYear();
    const m = String(v.getMonth() + 1).padStart(2, '0');
    const d = String(v.getDate()).padStart(2, '0');
    return `${y}-${m}-${d}`;
  }
  return String(v).slice(0, 10);
}
