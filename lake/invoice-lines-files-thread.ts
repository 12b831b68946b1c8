import { parentPort } from 'node:worker_threads';
import { lowerThreadPriority } from '#adapters/priority';
import { encodeLakeFileJob, type LakeFileJob } from './invoice-lines-files.ts';

/** The lake's encoder thread (./invoice-lines-files.ts, encodeLakeFile): a job in, the file's bytes back (moved, not copied). */
lowerThreadPriority();
parentPort?.on('message', (m: LakeFileJob & { id: number }) => {
  try {
    const value = encodeLakeFileJob(m);
    parentPort?.postMessage({ id: m.id, value }, [value.buffer as ArrayBuffer]);
  } catch (err) {
    parentPort?.postMessage({ id: m.id, error: err instanceof Error ? err.message : String(err) });
  }
});
