import type { Logger } from '#adapters/logger';
import { TimeSlicer } from '#core/time-slice';
import {
  LakeLineCollector,
  LakeLines,
  type LakeSource,
  type LakeStore,
  type LakeWriteResult,
  leanLakeEncoder,
} from './invoice-lines.ts';
import { startLeanEncoder } from './invoice-lines-files.ts';
import { lakeWrites, type Serial, writeObjects } from './invoice-lines-stage.ts';

/** When a background sink writes what it holds (docs/lake.md, "Coalescing"). */
export interface Coalesce {
  /** Longest a committed object's lines wait for a write. */
  maxWaitMs: number;
  /** Lines waiting that start a write at once. */
  maxLines: number;
}

/**
 * The lake as the loader's line tap (batch/loader/attempt.ts, LineTap): the lines each load types
 * are kept per object attempt and written once the warehouse committed them, so the file is typed
 * once for both. A caller that waits for the lake has the write merged and encoded as soon as the
 * lines are typed (typed()), while the warehouse finishes the load; only its PUTs wait for the
 * commit. A write that fails is thrown to the loader, which logs it and keeps the load; the object
 * has no marker, so the catch-up stage (`onFailure` nudges it) reads it again later.
 *
 * In the background (a long-running process) committed objects are coalesced: one write covers
 * every object committed within `coalesce.maxWaitMs` of the first waiting one (or as soon as
 * `maxLines` wait), so a busy stream month's file is rewritten once per write, not once per archive
 * object. Their markers are written after the files, as for any write: an object waiting when the
 * process dies has none, and the catch-up at the next start writes it.
 */
export function createLakeSink(deps: {
  store: LakeStore;
  logger?: Logger;
  onFailure?: () => void;
  /** Called after each write that succeeded (the crawl: cli/lake-stage.ts). */
  onWritten?: (written: LakeWriteResult) => void;
  serial?: Serial;
  /**
   * Queue the write and answer at once (a long-running process: the next load does not wait for
   * the lake; `idle()` waits for the queue). Default false: the caller waits (a Lambda invocation
   * must not end before its writes).
   */
  background?: boolean;
  /** Background only: how committed objects are gathered into writes (default: each written alone). */
  coalesce?: Coalesce;
}) {
  if (!deps.store.encoder || deps.store.encoder === leanLakeEncoder) startLeanEncoder();
  const open = new Map<string, Open>();
  const id = (ref: { key: string; etag: string }) => `${ref.key}\n${ref.etag}`;
  const serial = deps.serial ?? lakeWrites();
  let last: Promise<unknown> = Promise.resolve();
  let waiting: Open[] = [];
  let waitingLines = 0;
  let timer: NodeJS.Timeout | undefined;

  const settled = (done: Promise<LakeWriteResult | undefined>) =>
    done.then(
      (written) => {
        if (written) deps.onWritten?.(written);
        return written;
      },
      (err: unknown) => {
        deps.onFailure?.();
        throw err;
      },
    );
  const write = (taken: readonly Open[], gate?: Promise<boolean>) =>
    writeTaken(deps.store, serial, taken, gate);
  /** Starts the write of every object waiting (background). */
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (waiting.length === 0) return;
    const taken = waiting;
    waiting = [];
    waitingLines = 0;
    last = settled(write(taken)).catch((err: unknown) =>
      deps.logger?.error(
        { err, keys: taken.map((t) => t.source.key) },
        'lake: lines not written; caught up later',
      ),
    );
  };
  return {
    open(ref: { key: string; etag: string }, kind: { source: 'stream' | 'file' }) {
      const source: LakeSource = { key: ref.key, etag: ref.etag, source: kind.source };
      const lines = new LakeLines();
      open.set(id(ref), { lines, source });
      return new LakeLineCollector(lines, source);
    },
    /**
     * The object's lines are all here, its load not committed yet: a caller that waits for the lake
     * (not background) has the write merged and encoded now, while the warehouse finishes; its files
     * are PUT once committed() says so (abandoned(): dropped, nothing written).
     */
    typed(ref: { key: string; etag: string }) {
      const entry = open.get(id(ref));
      if (deps.background || !entry || entry.early) return;
      let decide: (yes: boolean) => void = () => {};
      const gate = new Promise<boolean>((resolve) => {
        decide = resolve;
      });
      const done = write([entry], gate);
      // Its failure is heard by committed() (a load that did not commit has nothing to report).
      done.catch(() => undefined);
      entry.early = { decide, done };
    },
    abandoned(refs: ReadonlyArray<{ key: string; etag: string }>) {
      for (const ref of refs) {
        open.get(id(ref))?.early?.decide(false);
        open.delete(id(ref));
      }
    },
    async committed(refs: ReadonlyArray<{ key: string; etag: string }>) {
      const taken = refs.flatMap((ref) => {
        const entry = open.get(id(ref));
        open.delete(id(ref));
        return entry ? [entry] : [];
      });
      if (taken.length === 0) return;
      const early = taken.filter((t) => t.early);
      for (const t of early) t.early?.decide(true);
      const rest = taken.filter((t) => !t.early);
      if (!deps.background) {
        // Each awaited even when one fails: a write started early holds the lake's queue until settled.
        const results = await Promise.allSettled([
          ...early.map((t) => settled((t.early as Early).done)),
          ...(rest.length > 0 ? [settled(write(rest))] : []),
        ]);
        const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failure) throw failure.reason;
        return;
      }
      waiting.push(...rest);
      for (const t of rest) waitingLines += t.lines.length;
      const coalesce = deps.coalesce;
      if (!coalesce || waitingLines >= coalesce.maxLines) return flush();
      // Unreferenced: a stop flushes through idle(), and a process that dies leaves no marker behind.
      timer ??= setTimeout(flush, coalesce.maxWaitMs).unref();
    },
    /** Writes what waits now and waits for every write queued so far (stop, tests). */
    async idle(): Promise<void> {
      flush();
      await last;
    },
  };
}
/** A write started before its load committed (typed()): `decide` opens or drops it. */
interface Early {
  decide(yes: boolean): void;
  done: Promise<LakeWriteResult | undefined>;
}

/** One object attempt's lines, from open() until committed or abandoned. */
interface Open {
  lines: LakeLines;
  source: LakeSource;
  early?: Early;
}

/** Committed objects' lines in one write (serial: a write merges what the last one left). */
function writeTaken(store: LakeStore, serial: Serial, taken: readonly Open[], gate?: Promise<boolean>) {
  const objects = taken.map((t) => ({ object: t.source, lines: t.lines.length }));
  let lines: LakeLines | undefined;
  return serial(async () => {
    lines = taken.length === 1 ? (taken[0] as Open).lines : await concat(taken.map((t) => t.lines));
    if (taken.length > 1) for (const t of taken) t.lines.release();
    return writeObjects(store, lines, objects, gate);
  }).finally(() => {
    // Once written (or not), nothing holds the lines: their memory goes to the next object's.
    if (lines) lines.release();
    else for (const t of taken) t.lines.release();
  });
}

/**
 * The objects' lines as one set, an object at a time: the event loop turns between objects when a
 * slice is due (30 s of archive objects are ~30,000 lines and tens of ms of copying and string
 * lookups, and under `npm start` the API shares this thread).
 */
async function concat(parts: readonly LakeLines[]): Promise<LakeLines> {
  const slicer = new TimeSlicer();
  const out = new LakeLines();
  for (const p of parts) {
    if (slicer.due) await slicer.turn();
    out.append(p);
  }
  return out;
}
