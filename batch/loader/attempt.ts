import type { S3Client } from '@aws-sdk/client-s3';
import type { Logger } from '#adapters/logger';
import { type Warehouse, WarehouseError } from '#adapters/warehouse';
import type { Manifest } from './manifest.ts';
import { loadIdOf, type ObjectKind, type ObjectRef, openObject, stageObject } from './objects.ts';
import { findCause } from './quarantine.ts';
import { typedRows } from './rows.ts';
import { FactFilledError, type LoadJob, type LoadWay, pickWay } from './strategies/index.ts';

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

async function attempt(deps: AttemptDeps, a: Attempt): Promise<boolean> {
  const { s3, bucket, warehouse } = deps;
  const { key, etag } = a.ref;
  let stagedAt = a.started;
  const job: LoadJob = {
    loadId: loadIdOf(key, etag),
    objectKey: key,
    etag,
    ...a.kind,
    status: a.status,
    warehouse,
    stage: (stagingKey, body) => stageObject(s3, bucket, stagingKey, body),
    async staged() {
      stagedAt = performance.now();
      await deps.afterStage?.(key);
    },
  };
  const encoder = a.way.encoder(job);
  const source = await openObject(s3, bucket, a.ref);
  const rows = await typedRows(source, { ...job, encoder });
  try {
    if (!(await a.way.load(job, rows))) return false;
  } finally {
    await rows.close();
  }
  const end = performance.now();
  await deps.manifest.timings(key, etag, stagedAt - a.started, end - stagedAt);
  return true;
}
