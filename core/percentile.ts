/**
 * Nearest-rank percentiles, the one definition the latency report and the benchmarks share: the p-th
 * percentile of n values is the value at rank ceil(p/100 * n) (at least 1) in ascending order. It is
 * always a value that was measured (no interpolation), and p100 is the maximum.
 */

/** The 1-based rank of the p-th percentile (p in 0..100) among `count` values; 0 when there are none. */
export function nearestRank(count: number, p: number): number {
  if (count <= 0) return 0;
  return Math.min(count, Math.max(1, Math.ceil((p / 100) * count)));
}

/**
 * The p-th percentile (0..100) of values sorted ascending. No values have no percentile: null, not 0
 * (which reads as a measurement) nor NaN (which JSON turns into null anyway), so a report shows "none".
 */
export function percentile(sorted: readonly number[], p: number): number | null {
  const rank = nearestRank(sorted.length, p);
  return rank === 0 ? null : (sorted[rank - 1] as number);
}
