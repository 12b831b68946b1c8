import { type LakeStore, readLakeTotals } from './invoice-lines.ts';

/** A decimal's text from thousandths (reconcile compares decimal text, never a float). */
function thousandthsText(v: bigint): string {
  const negative = v < 0n;
  const a = negative ? -v : v;
  return `${negative ? '-' : ''}${a / 1000n}.${(a % 1000n).toString().padStart(3, '0')}`;
}

/**
 * The lake's invoice lines as reconcile reads a store (batch/reconcile.ts's LineSource): every row
 * of every data file, a key twice if two files hold it, with its exact total and its quantity.
 */
export function lakeLineSource(store: LakeStore) {
  return {
    name: 'lake',
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
