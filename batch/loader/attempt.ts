import type { S3Client } from '@aws-sdk/client-s3';
import type { Logger } from '#adapters/logger';
import { type Warehouse, WarehouseError } from '#adapters/warehouse';
import { markLoadPhase } from '#core/load-phases';
import type { RowEncoder, TypedLine } from '../typer.ts';
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
  lines?: LineTap | undefined;
}

/**
 * A second reader of the lines a load types (the lake, lake/invoice-lines-sink.ts): it sees each
 * accepted line as the typer hands it to the load's encoder, and hears which objects committed.
 * Its failures are its own: logged, the load stays loaded (the lake catches up from the manifest).
 */
export interface LineTap {
  /** A collector for one attempt at one object version (a restarted attempt gets a fresh one). */
  open(ref: ObjectRef, kind: ObjectKind): { write(line: TypedLine): void };
  /**
   * Every line of this attempt's object has been handed over; the load has not committed yet (it
   * may still fail). The tap may start work that shows nothing before `committed` (the lake merges
   * and encodes its files while the warehouse finishes the load).
   */
  typed?(ref: ObjectRef): void;
  /** The loads of these objects committed: their collected lines are final. */
  committed(refs: readonly ObjectRef[]): Promise<void>;
  /** These attempts did not commit: their collected lines go. */
  abandoned(refs: readonly ObjectRef[]): void;
}

/** The way's encoder, its lines also handed to the tap's collector. */
function tapped(encoder: RowEncoder, collector: { write(line: TypedLine): void } | undefined): RowEncoder {
  if (!collector) return encoder;
  return {
    columns: encoder.columns,
    header: encoder.header,
    trailer: encoder.trailer,
    write(line) {
      encoder.write(line);
      collector.write(line);
    },
    take: () => encoder.take(),
  };
}

/** Tells the tap how the attempt ended; a tap that fails never fails the load. */
async function tell(deps: AttemptDeps, refs: readonly ObjectRef[], committed: boolean): Promise<void> {
  if (!deps.lines) return;
  if (!committed) return deps.lines.abandoned(refs);
  await deps.lines
    .committed(refs)
    .catch((err: unknown) =>
      deps.logger.error(
        { err, keys: refs.map((r) => r.key) },
        'the line tap failed after the load committed',
      ),
    );
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
  const encoder = tapped(a.way.encoder(job), deps.lines?.open(a.ref, a.kind));
  let committed = false;
  try {
    const source = await openObject(deps.s3, deps.bucket, a.ref);
    const rows = await typedRows(source, { ...job, encoder });
    // Read to its end: every line went through the encoder, so the tap has them all.
    rows.rows.once('end', () => {
      markLoadPhase('typed', a.ref.key);
      deps.lines?.typed?.(a.ref);
    });
    try {
      committed = await a.way.load(job, rows);
      if (committed) markLoadPhase('committed', a.ref.key);
    } finally {
      await rows.close();
    }
  } finally {
    await tell(deps, [a.ref], committed);
  }
  if (!committed) return false;
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
  let committed = false;
  try {
    committed = await way.load(jobs, async (job) => {
      const ref = refOf.get(job) as ObjectRef;
      const source = await openObject(deps.s3, deps.bucket, ref);
      const encoder = tapped(way.encoder(), deps.lines?.open(ref, kind));
      const rows = await typedRows(source, { ...job, encoder });
      rows.rows.once('end', () => markLoadPhase('typed', ref.key));
      opened.push(rows);
      return rows;
    });
    if (committed) for (const ref of refs) markLoadPhase('committed', ref.key);
  } finally {
    await Promise.all(opened.map((rows) => rows.close()));
    await tell(deps, refs, committed);
  }
  if (!committed) return false;
  const end = performance.now();
  for (const ref of refs) await deps.manifest.timings(ref.key, ref.etag, stagedAt - started, end - stagedAt);
  return true;
}
