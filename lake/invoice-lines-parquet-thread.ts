import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import type { ParquetColumn } from '#core/parquet';
import { type LeanColumn, writeLeanParquet } from './invoice-lines-parquet.ts';

/**
 * Background work: the thread gives way to the loader's PostgreSQL and the API (Linux: the thread's
 * own nice value, its id from /proc/thread-self; elsewhere it runs at the process's priority).
 */
try {
  setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), 10);
} catch {
  // Not Linux, or not allowed: the same bytes at the usual priority.
}

/** The lean encoder's thread (writeLeanParquetOffThread): columns in, the file's bytes back (moved, not copied). */
parentPort?.on(
  'message',
  (m: { id: number; schema: ParquetColumn[]; columns: LeanColumn[]; rows: number }) => {
    try {
      const value = writeLeanParquet(m.schema, m.columns, m.rows);
      parentPort?.postMessage({ id: m.id, value }, [value.buffer as ArrayBuffer]);
    } catch (err) {
      parentPort?.postMessage({ id: m.id, error: err instanceof Error ? err.message : String(err) });
    }
  },
);
