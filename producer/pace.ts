import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Rate control. Either a fixed rate (line i is due at start + i/rate) or a multiple of the source timeline
 * (a line is due at start + (sourceTime - firstSourceTime)/speed). Due times come from the start, not the
 * previous line, so sleeps that overshoot do not accumulate into a slower rate.
 */
export interface Pacer {
  /** Resolves when the next line is due; rejects with an AbortError when the signal fires. */
  wait(sourceTime?: Date): Promise<void>;
}

export interface PacerOptions {
  /** Lines per second. */
  rate?: number;
  /** Multiple of the source timeline (3600: one source hour per second). */
  speed?: number;
  signal?: AbortSignal;
  now?: () => number;
  /** Waits `ms`, rejecting with an AbortError when the signal fires; tests pass one that records the waits. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

// Sleeping for less than this costs more in timer overhead than it gains in accuracy.
const MIN_SLEEP_MS = 4;

export function createPacer(opts: PacerOptions): Pacer {
  const now = opts.now ?? (() => performance.now());
  const pause =
    opts.sleep ?? ((ms: number, signal?: AbortSignal) => sleep(ms, undefined, signal ? { signal } : {}));
  if (opts.rate !== undefined && !(opts.rate > 0)) throw new RangeError('rate must be > 0');
  if (opts.speed !== undefined && !(opts.speed > 0)) throw new RangeError('speed must be > 0');
  let start: number | undefined;
  let firstSource: number | undefined;
  let count = 0;
  return {
    async wait(sourceTime) {
      opts.signal?.throwIfAborted();
      start ??= now();
      let due: number;
      if (opts.rate !== undefined) {
        due = start + (count * 1000) / opts.rate;
      } else if (opts.speed !== undefined && sourceTime) {
        firstSource ??= sourceTime.getTime();
        due = start + (sourceTime.getTime() - firstSource) / opts.speed;
      } else {
        due = start;
      }
      count++;
      const ahead = due - now();
      if (ahead >= MIN_SLEEP_MS) await pause(ahead, opts.signal);
    },
  };
}
