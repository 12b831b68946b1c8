import type { S3Client } from '@aws-sdk/client-s3';
import type { Logger } from '#adapters/logger';
import type { Warehouse } from '#adapters/warehouse';
import { type LineTap, loadObject } from './attempt.ts';
import { batchLoads } from './batches.ts';
import { createManifest, type ManifestRow } from './manifest.ts';
import {
  ARCHIVE_PREFIX,
  formatOf,
  headObject,
  LANDING_PREFIX,
  listObjects,
  type ObjectRef,
} from './objects.ts';
import { asQuarantine, moveToQuarantine, rejectedReportKey, writeRejectedReport } from './quarantine.ts';
import { type LoadResult, type LoadStatus, resultOf } from './result.ts';
import { createScheduler, DEFAULT_RETRY_RULE, type Loader, whyNotNow } from './scheduler.ts';
import { batchWayOf } from './strategies/index.ts';

export interface LoaderHooks {
  /**
   * Called inside the load's transaction once its rows are COPYed, before the dimensions, facts
   * (merge way) and manifest: a test makes the loader die here, between staging and MERGE.
   */
  afterStage?: (key: string) => Promise<void>;
  /** Called after each object that loaded (e.g. to refresh marts); errors are logged, not thrown. */
  afterLoad?: (result: LoadResult) => void | Promise<void>;
}

export interface LoaderOptions {
  s3: S3Client;
  bucket: string;
  warehouse: Warehouse;
  logger: Logger;
  prefixes?: string[];
  /** A failed object is retried by every sweep (and on notify) until it has made this many attempts. */
  maxAttempts?: number;
  /** Then by a sweep after a cool-down since its last attempt (default 30 s doubling, at most 10 min). */
  coolDown?: { baseMs?: number; maxMs?: number };
  hooks?: LoaderHooks;
  /**
   * Pending archive objects found together (a sweep, or notifications that came while a load ran)
   * load in one transaction, at most this many objects and bytes (stored size) at once, where the
   * warehouse has a batch way (PostgreSQL). Default 20 objects, 64 MiB; 1 object: one by one.
   */
  batch?: { maxObjects?: number; maxBytes?: number };
  /** A second reader of the lines each load types, told after the commit (the lake: docs/lake.md). */
  lines?: LineTap;
}

const DEFAULT_BATCH = { maxObjects: 20, maxBytes: 64 * 1024 * 1024 };

/**
 * The batch loader: finds objects under archive/ and landing/ and loads them into the star schema,
 * tracked by load_manifest: each object in one transaction, or archive objects waiting together in
 * one transaction for all (`loadMany`). Per object: record it, skip it if done or resting, load it
 * (./attempt.ts), then report its rejected rows, or quarantine it, or record the failure.
 */
export function createLoader(options: LoaderOptions): Loader {
  const { s3, bucket, warehouse, logger, hooks } = options;
  const prefixes = options.prefixes ?? [ARCHIVE_PREFIX, LANDING_PREFIX];
  const manifest = createManifest(warehouse);
  const rule = {
    maxAttempts: options.maxAttempts ?? DEFAULT_RETRY_RULE.maxAttempts,
    coolDown: {
      baseMs: options.coolDown?.baseMs ?? DEFAULT_RETRY_RULE.coolDown.baseMs,
      maxMs: options.coolDown?.maxMs ?? DEFAULT_RETRY_RULE.coolDown.maxMs,
    },
  };
  const deps = {
    s3,
    bucket,
    warehouse,
    manifest,
    logger,
    afterStage: hooks?.afterStage,
    lines: options.lines,
  };

  async function load(ref: ObjectRef): Promise<LoadResult> {
    const started = performance.now();
    const result = (status: LoadStatus, detail?: string, row?: ManifestRow) =>
      resultOf(ref, status, started, row, detail);
    const kind = formatOf(ref.key);
    if (!kind) return result('skipped', 'not under archive/ or landing/');
    try {
      await manifest.register(ref, kind);
      const row = await manifest.row(ref.key, ref.etag);
      if (!row) return result('skipped', 'not in the manifest');
      const notNow = whyNotNow(row, rule);
      if (notNow) return result('skipped', notNow, row);
      if (!(await loadObject(deps, ref, kind, row.status))) return result('skipped', 'another loader has it');
      return await loaded(ref, started);
    } catch (err) {
      return failed(ref, err, started);
    }
  }

  async function loaded(ref: ObjectRef, started: number): Promise<LoadResult> {
    const row = await manifest.row(ref.key, ref.etag);
    // The rejected-rows file is a copy of load_rejected_row for people: failing to write it must
    // not report the load failed; the result says so instead.
    let problem: string | undefined;
    if (Number(row?.rows_rejected ?? 0) > 0)
      await writeRejectedReport(s3, bucket, warehouse, ref).catch((err: unknown) => {
        logger.error({ err, key: ref.key }, 'could not write the rejected rows file');
        problem = `loaded; its rejected rows are in load_rejected_row, but writing ${rejectedReportKey(ref.key)} failed: ${err instanceof Error ? err.message : String(err)}`;
      });
    const out = resultOf(ref, 'loaded', started, row, problem);
    logger.debug({ ...out }, 'object loaded'); // routine, one per object: the pipeline logs a summary
    try {
      await hooks?.afterLoad?.(out);
    } catch (err) {
      logger.error({ err, key: ref.key }, 'afterLoad hook failed');
    }
    return out;
  }

  async function failed(ref: ObjectRef, err: unknown, started: number): Promise<LoadResult> {
    const quarantine = asQuarantine(err);
    if (quarantine) {
      await moveToQuarantine(s3, bucket, ref, quarantine);
      await manifest.quarantined(ref.key, ref.etag, quarantine.message);
      logger.warn({ key: ref.key, reason: quarantine.message }, 'object quarantined');
      return resultOf(ref, 'quarantined', started, undefined, quarantine.message);
    }
    const message = err instanceof Error ? err.message : String(err);
    logger.error({ err, key: ref.key }, 'object load failed');
    await manifest
      .failed(ref.key, ref.etag, message)
      .catch((e: unknown) => logger.error({ err: e, key: ref.key }, 'could not record the failure'));
    return resultOf(ref, 'failed', started, undefined, message);
  }

  return createScheduler({
    rule,
    logger,
    list: () => listObjects(s3, bucket, prefixes),
    states: () => manifest.states(),
    head: (key) => headObject(s3, bucket, key),
    load,
    loadMany: batchLoads({
      deps,
      way: batchWayOf(warehouse),
      maxObjects: options.batch?.maxObjects ?? DEFAULT_BATCH.maxObjects,
      maxBytes: options.batch?.maxBytes ?? DEFAULT_BATCH.maxBytes,
      load,
      loaded,
    }),
    accepts: (key) => formatOf(key) !== undefined && prefixes.some((p) => key.startsWith(p)),
  });
}
