import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
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
 * Rebuilds every mart (customer by month, product by month, country by day, cancellations by
 * month) from the fact table in one transaction. The loader calls it after each committed load;
 * a full rebuild keeps the marts exactly equal to the facts whatever a load changed.
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
  /** Waits for the refresh in flight, if any. */
  idle(): Promise<void>;
}

/**
 * Coalesces refresh requests: a full rebuild takes seconds on a large warehouse, while the stream
 * path's archive files arrive every few seconds. While one refresh runs, any number of requests
 * share the single next one, so the marts lag by at most one rebuild and never queue up.
 */
export function createMartRefresher(
  db: TransactionPort,
  opts: { onError?: (err: unknown) => void; onRefreshed?: (ms: number) => void } = {},
): MartRefresher {
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
    running = run().finally(() => {
      running = undefined;
    });
    return running;
  };
  return {
    request() {
      if (!running) return start();
      next ??= running.then(() => {
        next = undefined;
        return start();
      });
      return next;
    },
    async idle() {
      await next;
      await running;
    },
  };
}
