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
