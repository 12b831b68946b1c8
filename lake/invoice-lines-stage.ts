import type { Logger } from '#adapters/logger';
import { errorMessage } from '#core/resilience';
import {
  LakeLineCollector,
  LakeLines,
  type LakeSource,
  type LakeStore,
  type LakeWriteResult,
  writeLakeLinesWhen,
} from './invoice-lines.ts';
import { type LoadedObject, markedVersions, markerKey, writeMarker } from './lake-manifest.ts';

/**
 * The lake's stage: the source objects the warehouse loaded and the lake does not hold yet (no
 * marker), read again with the loader's typer, written in batches. It runs after loads and on its
 * own, so a lake that failed or was behind (or emptied) catches up from the warehouse's manifest;
 * the warehouse load never waits for the lake or fails with it. docs/lake.md says why it re-reads.
 */

export interface LakeStageDeps {
  store: LakeStore;
  /** The loaded object versions in the order the warehouse committed them. */
  loaded(): Promise<LoadedObject[]>;
  /** Types an object's lines with the loader's typer into `collector` (its accepted lines only). */
  readLines(object: LoadedObject, collector: LakeLineCollector): Promise<void>;
  logger?: Logger;
  /** Lines gathered from several objects before one write (small archive objects share files). */
  batchLines?: number;
  /** Runs each write after the others of the process (shared with the loader's sink: lakeWrites()). */
  serial?: Serial;
  /** Called after each write that succeeded (the crawl: cli/lake-stage.ts). */
  onWritten?: (written: LakeWriteResult) => void;
}

/** Runs `write` once every write queued before it has ended. */
export type Serial = <T>(write: () => Promise<T>) => Promise<T>;

/**
 * One queue for a process's lake writes: two merges of one partition at once would each keep a
 * file (no line lost, a key in two files until the next merge), so they go one after the other.
 */
export function lakeWrites(): Serial {
  let queue: Promise<unknown> = Promise.resolve();
  return <T>(write: () => Promise<T>) => {
    const run = queue.then(write);
    queue = run.catch(() => undefined);
    return run;
  };
}

export interface LakeStageResult {
  objects: number;
  lines: number;
  added: number;
  already: number;
  files: number;
  failed: Array<{ key: string; error: string }>;
}

const BATCH_LINES = 200_000;

/**
 * Writes the lines of whole source objects, then a marker per object: the one write both the
 * catch-up and the loader's tap (./invoice-lines-sink.ts) make. With a `gate` (the tap, before the
 * load committed) nothing is written until it says yes; no: undefined, nothing written.
 */
export async function writeObjects(
  store: LakeStore,
  lines: LakeLines,
  objects: ReadonlyArray<{ object: LakeSource; lines: number }>,
  gate: Promise<boolean> = Promise.resolve(true),
): Promise<LakeWriteResult | undefined> {
  const written = await writeLakeLinesWhen(store, lines, gate);
  if (!written) return undefined;
  const partitions = written.partitions.map((p) => p.partition);
  const writtenAt = new Date().toISOString();
  for (const o of objects)
    await writeMarker(store, {
      key: o.object.key,
      etag: o.object.etag,
      source: o.object.source,
      lines: o.lines,
      added: written.added,
      partitions,
      writtenAt,
    });
  return written;
}

/** Writes every loaded object not yet in the lake; an object that cannot be read is reported and tried next time. */
export async function catchUpLake(deps: LakeStageDeps): Promise<LakeStageResult> {
  const marked = await markedVersions(deps.store);
  const waiting = (await deps.loaded()).filter((o) => !marked.has(markerKey(o)));
  const result: LakeStageResult = { objects: 0, lines: 0, added: 0, already: 0, files: 0, failed: [] };
  let lines = new LakeLines();
  let batch: Array<{ object: LoadedObject; lines: number }> = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const serial = deps.serial ?? (<T>(write: () => Promise<T>) => write());
    const written = (await serial(() => writeObjects(deps.store, lines, batch))) as LakeWriteResult;
    deps.onWritten?.(written);
    result.objects += batch.length;
    result.lines += written.lines;
    result.added += written.added;
    result.already += written.already;
    result.files += written.partitions.filter((p) => p.file).length;
    lines.release();
    lines = new LakeLines();
    batch = [];
  };
  for (const object of waiting) {
    const before = lines.length;
    try {
      await deps.readLines(object, new LakeLineCollector(lines, object));
    } catch (err) {
      // Its half-read lines go: the batch keeps only whole objects.
      lines.truncate(before);
      result.failed.push({ key: object.key, error: errorMessage(err) });
      deps.logger?.warn({ key: object.key, err }, 'lake: object not written, tried again next time');
      continue;
    }
    batch.push({ object, lines: lines.length - before });
    if (lines.length >= (deps.batchLines ?? BATCH_LINES)) await flush();
  }
  await flush();
  return result;
}

/**
 * The stage for a long-running process: `nudge()` after loads runs a catch-up (one at a time; a
 * nudge during a run runs one more after it), failures logged once per run.
 */
export function createLakeStage(deps: LakeStageDeps) {
  let running: Promise<void> | undefined;
  let again = false;
  const run = async (): Promise<void> => {
    do {
      again = false;
      try {
        const r = await catchUpLake(deps);
        if (r.objects > 0 || r.failed.length > 0)
          deps.logger?.info({ ...r, failed: r.failed.length }, 'lake: invoice lines written');
      } catch (err) {
        deps.logger?.error({ err }, 'lake: catch-up failed; tried again after the next load');
      }
    } while (again);
  };
  return {
    nudge(): void {
      if (running) {
        again = true;
        return;
      }
      running = run().finally(() => {
        running = undefined;
      });
    },
    /** Waits for the run in flight (stop, tests). */
    async idle(): Promise<void> {
      while (running) await running;
    },
  };
}
