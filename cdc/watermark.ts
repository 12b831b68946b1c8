/**
 * Change capture by `last_updated` watermark, as pure functions over the stored state.
 *
 * A run reads every row with `last_updated >= watermark - overlap` and drops the (primary key,
 * last_updated) pairs an earlier run already took. The overlap catches rows committed late with a
 * stamp below the watermark (PostgreSQL's `now()` is the transaction's start, so a transaction that
 * commits after a run read stamps its rows in the past); the pairs keep the overlap from taking a row
 * version twice. A row version is missed only if it commits more than `overlap` after its stamp.
 */

/** A source timestamp without zone as the zone writes it: `YYYY-MM-DDTHH:MM:SS.ffffff`. */
export type SourceTimestamp = string;

/** One table's capture position. */
export interface TableWatermark {
  /** The highest `last_updated` taken so far; null before the first run. */
  watermark: SourceTimestamp | null;
  /** `[primary key, last_updated]` of the versions taken within `overlap` below the watermark. */
  seen: Array<[string, SourceTimestamp]>;
}

/** A changed row as read from the source: its identity and its fields. */
export interface ChangedRow<F> {
  pk: string;
  lastUpdated: SourceTimestamp;
  fields: F;
}

const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/;

export class TimestampError extends Error {
  override name = 'TimestampError';
}

/** A source timestamp as microseconds since 1970 (a bigint: a double cannot hold microseconds). */
export function toMicros(ts: string): bigint {
  const m = TIMESTAMP.exec(ts);
  if (!m) throw new TimestampError(`not a source timestamp: ${JSON.stringify(ts)}`);
  const [, y, mo, d, h, mi, s, frac = ''] = m;
  const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  return BigInt(ms) * 1000n + BigInt(frac.padEnd(6, '0'));
}

export function fromMicros(micros: bigint): SourceTimestamp {
  const ms = micros / 1000n - (micros % 1000n < 0n ? 1n : 0n);
  const rest = micros - ms * 1000n;
  const iso = new Date(Number(ms)).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  return `${iso.slice(0, 23)}${String(rest).padStart(3, '0')}`;
}

/** PostgreSQL's text form (`2024-11-03 14:20:52.18`) in the zone's form, microseconds spelt out. */
export function normaliseTimestamp(ts: string): SourceTimestamp {
  return fromMicros(toMicros(ts));
}

/** The lower bound of the next read: null (take everything) on the first run. */
export function readFrom(w: TableWatermark | undefined, overlapMicros: bigint): SourceTimestamp | null {
  if (!w?.watermark) return null;
  return fromMicros(toMicros(w.watermark) - overlapMicros);
}

const pairKey = (pk: string, lastUpdated: string) => `${pk}\u0000${lastUpdated}`;

/** The rows of a read that no earlier run took. */
export function unseen<F>(
  w: TableWatermark | undefined,
  rows: ReadonlyArray<ChangedRow<F>>,
): ChangedRow<F>[] {
  if (!w || w.seen.length === 0) return [...rows];
  const taken = new Set(w.seen.map(([pk, lu]) => pairKey(pk, lu)));
  return rows.filter((r) => !taken.has(pairKey(r.pk, r.lastUpdated)));
}

/** The position after taking `rows`: the highest stamp, and the pairs still inside the overlap. */
export function advance<F>(
  w: TableWatermark | undefined,
  rows: ReadonlyArray<ChangedRow<F>>,
  overlapMicros: bigint,
): TableWatermark {
  let high = w?.watermark ? toMicros(w.watermark) : undefined;
  for (const r of rows) {
    const t = toMicros(r.lastUpdated);
    if (high === undefined || t > high) high = t;
  }
  if (high === undefined) return { watermark: null, seen: [] };
  const floor = high - overlapMicros;
  const pairs = new Map<string, [string, SourceTimestamp]>();
  for (const pair of [...(w?.seen ?? []), ...rows.map((r): [string, string] => [r.pk, r.lastUpdated])]) {
    if (toMicros(pair[1]) >= floor) pairs.set(pairKey(pair[0], pair[1]), pair);
  }
  return { watermark: fromMicros(high), seen: [...pairs.values()] };
}
