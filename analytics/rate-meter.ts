/**
 * Lines per second as the API accepts them, kept in memory: the cheapest live figure there is (the
 * warehouse lags by the archive buffer and the load interval). The API calls `record(n)` for each
 * accepted batch; the dashboard reads `series()`.
 */
export interface RateMeter {
  record(lines: number, atMs?: number): void;
  /** One point per bucket over the window, oldest first: [bucket start ms, lines per second]. */
  series(nowMs?: number): Array<[number, number]>;
  /** Lines per second over the last `seconds` (default 10). */
  current(seconds?: number, nowMs?: number): number;
  readonly bucketMs: number;
}

export function createRateMeter(opts: { bucketMs?: number; windowMs?: number } = {}): RateMeter {
  const bucketMs = opts.bucketMs ?? 1000;
  const windowMs = opts.windowMs ?? 300_000;
  const size = Math.ceil(windowMs / bucketMs);
  const counts = new Float64Array(size);
  const starts = new Float64Array(size).fill(-1);

  const slot = (t: number) => {
    const start = Math.floor(t / bucketMs) * bucketMs;
    const i = Math.floor(start / bucketMs) % size;
    if (starts[i] !== start) {
      starts[i] = start;
      counts[i] = 0;
    }
    return i;
  };
  const countAt = (start: number) => {
    const i = Math.floor(start / bucketMs) % size;
    return starts[i] === start ? (counts[i] as number) : 0;
  };

  return {
    bucketMs,
    record(lines, atMs = Date.now()) {
      if (!(lines > 0)) return;
      const i = slot(atMs);
      counts[i] = (counts[i] as number) + lines;
    },
    series(nowMs = Date.now()) {
      const last = Math.floor(nowMs / bucketMs) * bucketMs;
      const out: Array<[number, number]> = [];
      for (let start = last - (size - 1) * bucketMs; start <= last; start += bucketMs) {
        out.push([start, (countAt(start) * 1000) / bucketMs]);
      }
      return out;
    },
    current(seconds = 10, nowMs = Date.now()) {
      let total = 0;
      const first = Math.floor((nowMs - seconds * 1000) / bucketMs) * bucketMs + bucketMs;
      for (let start = first; start <= nowMs; start += bucketMs) total += countAt(start);
      return total / seconds;
    },
  };
}

/** The API's line writer, counting what it accepts onto the stream: how the lead wires the live rate. */
export function withRateMeter<W extends { putLines(lines: readonly unknown[]): Promise<{ lines: number }> }>(
  writer: W,
  meter: RateMeter,
): W {
  return Object.assign(Object.create(writer) as W, {
    async putLines(lines: readonly unknown[]) {
      const result = await writer.putLines(lines);
      meter.record(result.lines);
      return result;
    },
  });
}
