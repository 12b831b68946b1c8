import type { Logger } from '#adapters/logger';
import { backoffMs, sleep } from '#core/resilience';
import { isTerminal, type RetryState } from './manifest.ts';
import type { ObjectRef } from './objects.ts';
import { type LoadResult, resultOf } from './result.ts';

/**
 * When objects are tried: one load at a time, by a sweep (on an interval, or asked), by key, or on
 * an S3 notification; and when a failed object is tried again (the fast retries, then a cool-down).
 * What a sweep finds, and what was notified while a load ran, is loaded together (`loadMany`).
 */

export interface Loader {
  sweep(): Promise<LoadResult[]>;
  /** Loads one object now (or reports why not). */
  loadKey(key: string): Promise<LoadResult>;
  /** Loads these objects now, together where they may be (or reports why not), in key order. */
  loadKeys(keys: readonly string[]): Promise<LoadResult[]>;
  /** An object was created: load it soon (S3 event notification). */
  notify(key: string): void;
  start(intervalSeconds: number): void;
  stop(): Promise<void>;
}

export interface RetryRule {
  /** A failed object is retried by every sweep (and on notify) until it has made this many attempts. */
  maxAttempts: number;
  /** Then it rests `baseMs * 2^(attempts - maxAttempts)` since its last attempt, at most `maxMs`. */
  coolDown: { baseMs: number; maxMs: number };
}

/** The invoice loader's rule, and the totesys transform's and load's (cdc/transform-load.ts). */
export const DEFAULT_RETRY_RULE: RetryRule = { maxAttempts: 5, coolDown: { baseMs: 30_000, maxMs: 600_000 } };

/** How long an object that used up its fast retries rests before the next one. */
export function coolDownMs(attempts: number, rule: RetryRule): number {
  // The first rest comes after the maxAttempts-th failure: retry number 1 of the slow loop. Capped so
  // 2^n stays finite (a base of 0 must stay 0, not 0 * Infinity).
  const retry = Math.min(Math.max(0, attempts - rule.maxAttempts), 40) + 1;
  return backoffMs(retry, { ...rule.coolDown, jitter: 'none' });
}

/** Why the object is not tried now (loaded, quarantined, or resting), or undefined when it may be. */
export function whyNotNow(m: RetryState & { error?: string | null }, rule: RetryRule): string | undefined {
  if (isTerminal(m.status)) return `already ${m.status}`;
  if (m.status !== 'failed' || m.attempts < rule.maxAttempts) return undefined;
  const wait = coolDownMs(m.attempts, rule);
  const rested = m.rested_ms === null ? Number.POSITIVE_INFINITY : Number(m.rested_ms);
  if (rested >= wait) return undefined;
  return `failed ${m.attempts} times, next retry in ${Math.ceil((wait - rested) / 1000)} s: ${m.error ?? ''}`;
}

export interface SchedulerDeps {
  rule: RetryRule;
  logger: Logger;
  /** Every loadable object under the loader's prefixes. */
  list(): Promise<ObjectRef[]>;
  /** Every recorded object version's retry state, by `key\netag`. */
  states(): Promise<Map<string, RetryState>>;
  /** The object's current version (HEAD). */
  head(key: string): Promise<ObjectRef>;
  /** Loads one object version. */
  load(ref: ObjectRef): Promise<LoadResult>;
  /** Loads object versions, together where they may be, in key order. */
  loadMany(refs: readonly ObjectRef[]): Promise<LoadResult[]>;
  /** Whether a notified key is one this loader loads. */
  accepts(key: string): boolean;
}

/** Loads, oldest first, every listed object the manifest does not hold as done or resting. */
async function sweepOnce(deps: SchedulerDeps): Promise<LoadResult[]> {
  const objects = await deps.list();
  const known = await deps.states();
  // Oldest first by key (loadMany): archive keys sort by time, so the stream's order is kept.
  return deps.loadMany(
    objects.filter((o) => {
      const m = known.get(`${o.key}\n${o.etag}`);
      return !(m && whyNotNow(m, deps.rule));
    }),
  );
}

/** The key's current version, or why it cannot be read. */
async function headOf(deps: SchedulerDeps, key: string): Promise<ObjectRef | LoadResult> {
  const started = performance.now();
  try {
    return await deps.head(key);
  } catch (err) {
    const detail = `cannot read the object: ${(err as Error).message}`;
    return resultOf({ key, etag: '' }, 'skipped', started, undefined, detail);
  }
}

/** Loads the keys' current versions (together where they may be). */
async function loadKeysNow(deps: SchedulerDeps, keys: readonly string[]): Promise<LoadResult[]> {
  const heads = await Promise.all([...new Set(keys)].map((key) => headOf(deps, key)));
  const unreadable = heads.filter((h): h is LoadResult => 'status' in h);
  const refs = heads.filter((h): h is ObjectRef => !('status' in h));
  return [...unreadable, ...(await deps.loadMany(refs))];
}

export function createScheduler(deps: SchedulerDeps): Loader {
  const { logger } = deps;
  // One object at a time: a load is CPU- and I/O-bound in the database, parallel loads only contend.
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = chain.then(fn, fn);
    chain = next.catch(() => undefined);
    return next;
  };
  const inflight = new Set<Promise<unknown>>();
  const track = <T>(p: Promise<T>): Promise<T> => {
    inflight.add(p);
    p.finally(() => inflight.delete(p)).catch(() => undefined);
    return p;
  };

  let sweeping: Promise<LoadResult[]> | undefined;
  /** Notified keys whose load has not started yet. */
  const notified = new Set<string>();
  let notifiedQueued = false;
  let stopped = false;
  /** The periodic sweeps: their loop, and the signal that ends its wait at once on stop. */
  let periodic: { loop: Promise<void>; stop: AbortController } | undefined;

  const loader: Loader = {
    sweep() {
      // Overlapping sweeps (timer + caller) share one run.
      sweeping ??= track(serial(() => sweepOnce(deps))).finally(() => {
        sweeping = undefined;
      });
      return sweeping;
    },
    loadKey(key) {
      return track(
        serial(async () => {
          const ref = await headOf(deps, key);
          return 'status' in ref ? ref : deps.load(ref);
        }),
      );
    },
    loadKeys(keys) {
      return track(serial(() => loadKeysNow(deps, keys)));
    },
    notify(key) {
      if (stopped || !deps.accepts(key)) return;
      // Keys notified while a load runs wait for it, then load together: one batch, not a queue of
      // single loads that each pay a load's fixed cost (the loader fell behind Firehose that way).
      notified.add(key);
      if (notifiedQueued) return;
      notifiedQueued = true;
      track(
        serial(() => {
          const keys = [...notified];
          notified.clear();
          notifiedQueued = false;
          return loadKeysNow(deps, keys);
        }),
      ).catch((err: unknown) => logger.error({ err, key }, 'notified load failed'));
    },
    start(intervalSeconds) {
      if (periodic) return;
      stopped = false;
      const stop = new AbortController();
      const intervalMs = Math.max(100, intervalSeconds * 1000);
      const loop = (async () => {
        while (!stop.signal.aborted) {
          await loader.sweep().catch((err: unknown) => logger.error({ err }, 'loader sweep failed'));
          await sleep(intervalMs, stop.signal);
        }
      })();
      periodic = { loop, stop };
    },
    async stop() {
      stopped = true;
      const running = periodic;
      periodic = undefined;
      running?.stop.abort();
      await running?.loop;
      await Promise.allSettled([...inflight]);
    },
  };
  return loader;
}
