import type { Warehouse } from '#adapters/warehouse';
import { lineKey } from '#core/invoice-line';
import { type LakeStore, readLakeTotals } from './invoice-lines.ts';
import { loadedSourceObjects, markedVersions, markerKey } from './lake-manifest.ts';

/** A decimal's text from thousandths (reconcile compares decimal text, never a float). */
function thousandthsText(v: bigint): string {
  const negative = v < 0n;
  const a = negative ? -v : v;
  return `${negative ? '-' : ''}${a / 1000n}.${(a % 1000n).toString().padStart(3, '0')}`;
}

/** Source keys per warehouse query: one IN list of parameters each. */
const KEYS_PER_QUERY = 500;

/**
 * The keys the lake has yet to receive: warehouse lines whose source object loaded and has no lake
 * marker (its write waits to be coalesced, runs, or failed and waits for the catch-up). By the
 * object's key: a key loaded in two versions, one of them written, counts as pending until both are.
 */
export async function lakePendingKeys(
  store: LakeStore,
  warehouse: Pick<Warehouse, 'query'>,
): Promise<Set<string>> {
  const marked = await markedVersions(store);
  const waiting = [
    ...new Set(
      (await loadedSourceObjects(warehouse)).filter((o) => !marked.has(markerKey(o))).map((o) => o.key),
    ),
  ];
  const out = new Set<string>();
  for (let i = 0; i < waiting.length; i += KEYS_PER_QUERY) {
    const keys = waiting.slice(i, i + KEYS_PER_QUERY);
    const { rows } = await warehouse.query<{ invoice_no: string; line_no: number }>(
      `SELECT invoice_no, line_no FROM fact_sales_line WHERE source_key IN (${keys.map((_, k) => `$${k + 1}`).join(', ')})`,
      keys,
    );
    for (const r of rows) out.add(lineKey({ invoiceNo: r.invoice_no, lineNo: Number(r.line_no) }));
  }
  return out;
}

/**
 * The lake's invoice lines as reconcile reads a store (batch/reconcile.ts's LineSource): every row
 * of every data file, a key twice if two files hold it, with its exact total and its quantity.
 * Given the warehouse, lines of loaded objects the lake has not written yet are pending, not missing.
 */
export function lakeLineSource(store: LakeStore, options: { warehouse?: Pick<Warehouse, 'query'> } = {}) {
  const { warehouse } = options;
  return {
    name: 'lake',
    ...(warehouse ? { pendingKeys: () => lakePendingKeys(store, warehouse) } : {}),
    async linesOf() {
      return (await readLakeTotals(store)).map((r) => ({
        invoiceNo: r.invoiceNo,
        lineNo: r.lineNo,
        lineTotal: thousandthsText(r.total),
        quantity: r.quantity,
      }));
    },
  };
}
