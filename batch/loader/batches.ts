import { type AttemptDeps, loadBatch } from './attempt.ts';
import { formatOf, type ObjectRef } from './objects.ts';
import type { LoadResult } from './result.ts';
import type { BatchWay } from './strategies/index.ts';

/** What loading objects together needs from the loader (orchestrator.ts). */
export interface BatchLoadsDeps {
  deps: AttemptDeps;
  /** The warehouse's batch way; none: every object alone. */
  way: BatchWay | undefined;
  maxObjects: number;
  /** Stored bytes (S3 size) of a batch, at most; an object bigger than this is a batch of its own. */
  maxBytes: number;
  /** One object from discovery to its outcome. */
  load(ref: ObjectRef): Promise<LoadResult>;
  /** The outcome of an object its load committed: its rejected rows' report, the afterLoad hook. */
  loaded(ref: ObjectRef, started: number): Promise<LoadResult>;
}

const ARCHIVE_KIND = { format: 'ndjson', source: 'stream' } as const;

/**
 * `loadMany`: the objects in key order (the stream's order), each run of fresh archive objects in
 * batches of one transaction, every other object alone (a failed one is retried alone, so it cannot
 * hold a batch back again). A batch that fails, whatever the reason, is loaded again object by
 * object: each object then loads, is quarantined or fails on its own, as if there had been no batch
 * (its transaction rolled back every claim, so every object is as it was).
 */
export function batchLoads(b: BatchLoadsDeps): (refs: readonly ObjectRef[]) => Promise<LoadResult[]> {
  const { deps, way } = b;
  const { manifest, logger } = deps;

  /** Whether the object may join a batch: an archive object, recorded, never tried. */
  async function fresh(ref: ObjectRef): Promise<boolean> {
    if (formatOf(ref.key)?.format !== 'ndjson') return false;
    try {
      await manifest.register(ref, ARCHIVE_KIND);
      return (await manifest.row(ref.key, ref.etag))?.status === 'pending';
    } catch {
      return false; // load() meets the error again and records it
    }
  }

  async function together(refs: ObjectRef[]): Promise<LoadResult[]> {
    const [only] = refs;
    if (!only) return [];
    if (!way || refs.length === 1) return [await b.load(only)];
    const started = performance.now();
    try {
      if (await loadBatch(deps, way, refs, ARCHIVE_KIND)) {
        const out: LoadResult[] = [];
        for (const ref of refs) out.push(await b.loaded(ref, started));
        return out;
      }
      logger.info({ objects: refs.length }, 'another loader has an object of the batch: loading one by one');
    } catch (err) {
      logger.warn({ err, objects: refs.length }, 'batch load failed: loading its objects one by one');
    }
    const out: LoadResult[] = [];
    for (const ref of refs) out.push(await b.load(ref));
    return out;
  }

  return async (refs) => {
    const sorted = [...refs].sort((x, y) => x.key.localeCompare(y.key));
    const results: LoadResult[] = [];
    let run: ObjectRef[] = [];
    let runBytes = 0;
    const flush = async () => {
      const batch = run;
      run = [];
      runBytes = 0;
      results.push(...(await together(batch)));
    };
    for (const ref of sorted) {
      if (!way || b.maxObjects <= 1 || !(await fresh(ref))) {
        await flush();
        results.push(await b.load(ref));
        continue;
      }
      const size = ref.size ?? 0;
      if (run.length >= b.maxObjects || (run.length > 0 && runBytes + size > b.maxBytes)) await flush();
      run.push(ref);
      runBytes += size;
    }
    await flush();
    return results;
  };
}
