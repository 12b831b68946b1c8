import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { logger } from './logger.ts';

/**
 * Calls to one worker thread, answered in any order: a message `{ id, ...input }` in, `{ id, value }`
 * or `{ id, error }` back. The worker starts on the first call; it is referenced only while a call
 * is pending (an idle worker never keeps the process alive); a worker that dies rejects the calls
 * pending and the next call starts a new one. The Parquet encoders' threads (adapters/parquet-writer.ts,
 * lake/invoice-lines-files.ts) share it. Their callers do a failed call's work on their own thread,
 * so a worker's death costs speed, never a result: `died` is told (by default a warning in the log),
 * once per worker.
 */
export interface WorkerCalls<T> {
  call(input: Record<string, unknown>, transfer?: ArrayBuffer[]): Promise<T>;
  /** Starts the worker now (its start-up off the first call's time); it stays unreferenced. */
  start(): void;
}

interface Running<T> {
  worker: Worker;
  pending: Map<number, { resolve: (value: T) => void; reject: (err: Error) => void }>;
  next: number;
}

export function workerCalls<T>(
  start: () => Worker,
  failure: (message: string) => Error,
  died: (err: Error) => void = (err) =>
    logger().warn({ err }, 'worker thread died: its work is done on the calling thread'),
): WorkerCalls<T> {
  let running: Running<T> | undefined;
  const launch = (): Running<T> => {
    const worker = start();
    const state: Running<T> = { worker, pending: new Map(), next: 0 };
    let dead = false;
    worker.unref();
    worker.on('message', (m: { id: number; value?: T; error?: string }) => {
      const p = state.pending.get(m.id);
      if (!p) return;
      state.pending.delete(m.id);
      if (state.pending.size === 0) worker.unref();
      if (m.error === undefined) p.resolve(m.value as T);
      else p.reject(failure(m.error));
    });
    const fail = (err: Error) => {
      if (!dead) died(err);
      dead = true;
      if (running === state) running = undefined;
      for (const p of state.pending.values()) p.reject(err);
      state.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(failure(`the worker thread exited with ${code}`)));
    return state;
  };
  return {
    start() {
      running ??= launch();
    },
    call(input, transfer = []) {
      return new Promise<T>((resolve, reject) => {
        running ??= launch();
        const state = running;
        const id = state.next++;
        state.pending.set(id, { resolve, reject });
        state.worker.ref();
        try {
          state.worker.postMessage({ ...input, id }, transfer);
        } catch (err) {
          state.pending.delete(id);
          if (state.pending.size === 0) state.worker.unref();
          reject(err);
        }
      });
    },
  };
}

/**
 * A worker running a module of this repository, TypeScript included: the thread registers tsx (as
 * bin/retail-pipeline.js does) before importing a `.ts` entry. Undefined where the entry is not on
 * disk or tsx is not installed (a Lambda bundle copies the entry's source, having read its URL, but
 * carries no TypeScript loader): the caller does the work on its own thread.
 */
export function moduleWorker(entry: URL): (() => Worker) | undefined {
  const imports: string[] = [];
  try {
    if (!existsSync(fileURLToPath(entry))) return undefined;
    if (entry.pathname.endsWith('.ts')) {
      // tsx's ESM API by path: an eval'd thread resolves bare names from the working directory.
      const tsx = createRequire(import.meta.url).resolve('tsx');
      const api = new URL('esm/api/index.mjs', pathToFileURL(tsx));
      if (!existsSync(fileURLToPath(api))) return undefined;
      imports.push(`(await import(${JSON.stringify(api.href)})).register();`);
    }
  } catch {
    // No tsx where this runs (a bundle carries the entry's source but no TypeScript loader).
    return undefined;
  }
  imports.push(`await import(${JSON.stringify(entry.href)});`);
  // A failed import rejects unhandled: the thread dies and its 'error' rejects the calls pending.
  const source = `(async () => { ${imports.join(' ')} })();`;
  return () => new Worker(source, { eval: true });
}
