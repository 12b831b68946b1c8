import type { Logger } from '#adapters/logger';
import { LakeLineCollector, LakeLines, type LakeSource, type LakeStore } from './invoice-lines.ts';
import { lakeWrites, type Serial, writeObjects } from './invoice-lines-stage.ts';

/**
 * The lake as the loader's line tap (batch/loader/attempt.ts, LineTap): the lines each load types
 * are kept per object attempt and written once the warehouse committed them, so the file is typed
 * once for both. A write that fails is thrown to the loader, which logs it and keeps the load; the
 * object has no marker, so the catch-up stage (`onFailure` nudges it) reads it again later.
 */
export function createLakeSink(deps: {
  store: LakeStore;
  logger?: Logger;
  onFailure?: () => void;
  serial?: Serial;
  /**
   * Queue the write and answer at once (a long-running process: the next load does not wait for
   * the lake; `idle()` waits for the queue). Default false: the caller waits (a Lambda invocation
   * must not end before its writes).
   */
  background?: boolean;
}) {
  const open = new Map<string, { lines: LakeLines; source: LakeSource }>();
  const id = (ref: { key: string; etag: string }) => `${ref.key}\n${ref.etag}`;
  const serial = deps.serial ?? lakeWrites();
  let last: Promise<unknown> = Promise.resolve();
  return {
    open(ref: { key: string; etag: string }, kind: { source: 'stream' | 'file' }) {
      const source: LakeSource = { key: ref.key, etag: ref.etag, source: kind.source };
      const lines = new LakeLines();
      open.set(id(ref), { lines, source });
      return new LakeLineCollector(lines, source);
    },
    abandoned(refs: ReadonlyArray<{ key: string; etag: string }>) {
      for (const ref of refs) open.delete(id(ref));
    },
    async committed(refs: ReadonlyArray<{ key: string; etag: string }>) {
      const taken = refs.flatMap((ref) => {
        const entry = open.get(id(ref));
        open.delete(id(ref));
        return entry ? [entry] : [];
      });
      if (taken.length === 0) return;
      const lines =
        taken.length === 1 ? (taken[0] as { lines: LakeLines }).lines : concat(taken.map((t) => t.lines));
      const objects = taken.map((t) => ({ object: t.source, lines: t.lines.length }));
      const write = serial(() => writeObjects(deps.store, lines, objects)).catch((err: unknown) => {
        deps.onFailure?.();
        throw err;
      });
      if (!deps.background) return void (await write);
      last = write.catch((err: unknown) =>
        deps.logger?.error({ err, keys: refs.map((r) => r.key) }, 'lake: lines not written; caught up later'),
      );
    },
    /** Waits for the writes queued so far. */
    async idle(): Promise<void> {
      await last;
    },
  };
}

function concat(parts: readonly LakeLines[]): LakeLines {
  const out = new LakeLines();
  for (const p of parts) for (let i = 0; i < p.length; i++) out.copyRow(p, i);
  return out;
}
