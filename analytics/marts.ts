import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sleep } from '#core/resilience';
import type { TransactionPort } from './db.ts';

const REFRESH_FILE = fileURLToPath(new URL('./sql/refresh/marts.sql', import.meta.url));

export class MartRefreshError extends Error {
  override name = 'MartRefreshError';
}

/** `;` at the end of a line ends a statement; `--` comments go (the files keep both simple). */
export function splitSql(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.replace(/--.*$/, ''))
    .join('\n')
    .split(/;\s*(?:\n|$)/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

let statements: string[] | undefined;

/**
 * Refreshes every mart (customer by month, product by month, country by day, cancellations by
 * month) from the fact table in one transaction, rebuilding only the months whose facts or
 * dimensions moved since the last refresh (refresh/marts.sql says how it knows; the first refresh
 * rebuilds every month). The loader calls it after each committed load; the marts stay exactly
 * equal to the facts whatever a load changed.
 */
export async function refreshMarts(db: TransactionPort): Promise<{ ms: number }> {
  const started = performance.now();
  statements ??= splitSql(fs.readFileSync(REFRESH_FILE, 'utf8'));
  try {
    const result = await db.transaction(statements.map((sql) => ({ sql })));
    if (!result.committed) throw new MartRefreshError('mart refresh was rolled back');
  } catch (cause) {
    if (cause instanceof MartRefreshError) throw cause;
    throw new MartRefreshError(`mart refresh failed: ${(cause as Error)?.message ?? cause}`, { cause });
  }
  return { ms: Math.round(performance.now() - started) };
}

export interface MartRefresher {
  /** Asks for a refresh; resolves when one that started after this call has finished. */
  request(): Promise<void>;
  /** Waits for the refresh in flight and the one asked for, if any, without their gap (for stopping). */
  idle(): Promise<void>;
}

export interface MartRefresherOptions {
  onError?: (err: unknown) => void;
  onRefreshed?: (ms: number) => void;
  /**
   * Least time between the starts of two rebuilds. A rebuild is seconds of CPU (npm start runs it
   * at background priority, on one core: cli/pipeline.ts); run back to back while the stream's
   * archive objects load every few seconds, it takes the CPU the loader needs and the warehouse
   * falls behind the stream. 0 (the default) rebuilds back to back.
   */
  minGapMs?: number;
  /** Injected by tests (no wall clock there). */
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/**
 * Coalesces refresh requests: a full rebuild takes seconds on a large warehouse, while the stream
 * path's archive files arrive every few seconds. While one refresh runs or waits for its gap, any
 * number of requests share the single next one, so the marts lag by at most one rebuild plus the gap
 * and never queue up. `idle()` (called on stop) skips the gap still to wait, and any later one: stopping must not wait.
 */
export function createMartRefresher(db: TransactionPort, opts: MartRefresherOptions = {}): MartRefresher {
  const { minGapMs = 0, now = Date.now, sleep: wait = sleep } = opts;
  const hurry = new AbortController();
  let lastStart = Number.NEGATIVE_INFINITY;
  let running: Promise<void> | undefined;
  let next: Promise<void> | undefined;
  const run = async () => {
    try {
      const { ms } = await refreshMarts(db);
      opts.onRefreshed?.(ms);
    } catch (err) {
      opts.onError?.(err);
    }
  };
  const start = (): Promise<void> => {
    lastStart = now();
    running = run().finally(() => {
      running = undefined;
    });
    return running;
  };
  const gap = () => lastStart + minGapMs - now();
  return {
    request() {
      if (!running && !next && (gap() <= 0 || hurry.signal.aborted)) return start();
      next ??= (running ?? Promise.resolve())
        .then(() => (gap() > 0 ? wait(gap(), hurry.signal) : undefined))
        .then(() => {
          next = undefined;
          return start();
        });
      return next;
    },
    async idle() {
      hurry.abort();
      await next;
      await running;
    },
  };
}
