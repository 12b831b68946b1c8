import type { S3Client } from '@aws-sdk/client-s3';
import type { Logger } from '#adapters/logger';
import { type Warehouse, WarehouseError } from '#adapters/warehouse';
import type { Manifest } from './manifest.ts';
import { loadIdOf, type ObjectKind, type ObjectRef, openObject, stageObject } from './objects.ts';
import { findCause } from './quarantine.ts';
import { type TypedRows, typedRows } from './rows.ts';
import { type BatchWay, FactFilledError, type LoadJob, type LoadWay, pickWay } from './strategies/index.ts';

export interface AttemptDeps {
  s3: S3Client;
  bucket: string;
  warehouse: Warehouse;
  manifest: Manifest;
  logger: Logger;
  afterStage?: ((key: string) => Promise<void>) | undefined;
}

/** SQLSTATE 23505, as the port reports it (`WarehouseError.details`) or as a driver's error carries it. */
const isUniqueViolation = (e: unknown) =>
  (e instanceof WarehouseError ? e.details.code : (e as { code?: unknown }).code) === '23505';

const causedBy = (err: unknown, test: (e: unknown) => boolean) => findCause(err, test) !== undefined;

/**
 * Loads one object version in one transaction, the way its warehouse and the fact call for, and
 * starts over when what it met decides another way: a fact that filled before the bulk way locked
 * it, a key already in the fact (merge). False: another loader has the object. (A file's encoding
 * never restarts it: the typer settles it in its one pass, rows.ts.)
 */
export async function loadObject(
  deps: AttemptDeps,
  ref: ObjectRef,
  kind: ObjectKind,
  status: string,
): Promise<boolean> {
  let mergeOnly = false;
  for (;;) {
    const started = performance.now();
    const way = await pickWay(deps.warehouse, { format: kind.format, mergeOnly });
    try {
      return await attempt(deps, { ref, kind, status, way, started });
    } catch (err) {
      if (causedBy(err, (e) => e instanceof FactFilledError)) continue;
      // A key already in the fact (the same lines came by the stream, or in another file).
      if (way.intoFact && causedBy(err, isUniqueViolation)) {
        deps.logger.info(
          { key: ref.key },
          'keys already loaded: merging instead of copying straight into the fact',
        );
        mergeOnly = true;
        continue;
      }
      throw err;
    }
  }
}

interface Attempt {
  ref: ObjectRef;
  kind: ObjectKind;
  status: string;
  way: LoadWay;
  started: number;
}

/** What a way knows of one object; `staged` runs once its rows are staged. */
function jobOf(
  deps: AttemptDeps,
  ref: ObjectRef,
  kind: ObjectKind,
  status: string,
  staged: () => void,
): LoadJob {
  const { s3, bucket, warehouse } = deps;
  return {
    loadId: loadIdOf(ref.key, ref.etag),
    objectKey: ref.key,
    etag: ref.etag,
    ...kind,
    status,
    warehouse,
    stage: (stagingKey, body) => stageObject(s3, bucket, stagingKey, body),
    async staged() {
      staged();
      await deps.afterStage?.(ref.key);
    },
  };
}

async function attempt(deps: AttemptDeps, a: Attempt): Promise<boolean> {
  let stagedAt = a.started;
  const job = jobOf(deps, a.ref, a.kind, a.status, () => {
    stagedAt = performance.now();
  });
  const encoder = a.way.encoder(job);
  const source = await openObject(deps.s3, deps.bucket, a.ref);
  const rows = await typedRows(source, { ...job, encoder });
  try {
    if (!(await a.way.load(job, rows))) return false;
  } finally {
    await rows.close();
  }
  const end = performance.now();
  await deps.manifest.timings(a.ref.key, a.ref.etag, stagedAt - a.started, end - stagedAt);
  return true;
}

/**
 * Loads pending objects of one kind together, in one transaction (`way`: the warehouse's batch
 * way). Each object is opened as its COPY comes and every one is closed at the end. Each manifest
 * row gets the batch's time split. False: another loader has one of them (nothing written).
 */
export async function loadBatch(
  deps: AttemptDeps,
  way: BatchWay,
  refs: readonly ObjectRef[],
  kind: ObjectKind,
): Promise<boolean> {
  const started = performance.now();
  let stagedAt = started;
  const opened: TypedRows[] = [];
  const jobs = refs.map((ref) =>
    jobOf(deps, ref, kind, 'pending', () => {
      stagedAt = performance.now();
    }),
  );
  const refOf = new Map(jobs.map((job, i) => [job, refs[i] as ObjectRef]));
  try {
    const loaded = await way.load(jobs, async (job) => {
      const source = await openObject(deps.s3, deps.bucket, refOf.get(job) as ObjectRef);
      const rows = await typedRows(source, { ...job, encoder: way.encoder() });
      opened.push(rows);
      return rows;
    });
    if (!loaded) return false;
  } finally {
    await Promise.all(opened.map((rows) => rows.close()));
  }
  const end = performance.now();
  for (const ref of refs) await deps.manifest.timings(ref.key, ref.etag, stagedAt - started, end - stagedAt);
  return true;
}
