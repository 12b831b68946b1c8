import type { EnrichedLine } from '#core/enrich';
import type { AggregateUpdate, Delta } from '#core/serving';

/** A line's contribution to the real-time aggregates. */
export function lineDelta(line: EnrichedLine): Delta {
  return {
    lines: 1,
    quantity: line.quantity,
    amount: line.lineTotal,
    // Every invoice has exactly one line 1, so counting it counts the invoice once, whatever the batching.
    invoices: line.lineNo === 1 ? 1 : 0,
  };
}

/**
 * Groups the contributions of the records a batch accounts for by aggregate item (one per
 * country). `batchMaxSeq` becomes each item's high-water mark for the shard.
 */
export function planAggregates(
  shardId: string,
  batchMaxSeq: string,
  lines: readonly { seq: string; line: EnrichedLine }[],
): AggregateUpdate[] {
  const updates = new Map<string, AggregateUpdate>();
  for (const { seq, line } of lines) {
    const delta = lineDelta(line);
    let u = updates.get(line.country);
    if (!u) {
      u = { target: { kind: 'country', line }, shardId, batchMaxSeq, entries: [] };
      updates.set(line.country, u);
    }
    u.entries.push({ seq, delta });
  }
  return [...updates.values()];
}
