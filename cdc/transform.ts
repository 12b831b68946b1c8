import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { parse } from 'csv-parse';
import type { Logger } from '#adapters/logger';
import { writeParquetSliced } from '#adapters/parquet-writer';
import { TOTESYS_PROCESSED_PREFIX } from '#core/bucket-layout';
import { errorMessage } from '#core/resilience';
import { TimeSlicer } from '#core/time-slice';
import { INGESTION_RUNS_PREFIX, PROCESSED_RUNS_PREFIX } from './totesys/layout.ts';
import { columnNames, isTotesysTableName, type TotesysTableName, totesysTable } from './totesys/tables.ts';
import {
  type CurrentState,
  latestByKey,
  remodel,
  type SourceRow,
  TransformError,
  type WarehouseTable,
  type WarehouseTableName,
  warehouseTable,
} from './transform-model.ts';

/**
 * Transform: one completed extraction run (its marker in the ingestion zone) into Parquet in the
 * processed zone, one object per warehouse table the run touches, then a processed marker. Runs are
 * transformed in runId order, each once: the dimensions that join (counterparty + address, staff +
 * department) read a current-state snapshot of those source tables kept in the processed zone and
 * advanced by each run, so a run that changed only one side still finds the other.
 */

export const PROCESSED_PREFIX = TOTESYS_PROCESSED_PREFIX;
const STATE_PREFIX = `${PROCESSED_PREFIX}_state/`;
/** The source tables a dimension joins, or is joined by: their current rows are kept. */
export const STATE_TABLES = ['address', 'counterparty', 'department', 'staff'] as const;

const RUN_ID = /^(\d{4})(\d{2})(\d{2})T\d{9}Z-[0-9a-f]{6}$/;

/** `YYYY/MM/DD` of a run (its UTC start date, the first 8 digits of its id). */
export function runDatePath(runId: string): string {
  const m = RUN_ID.exec(runId);
  if (!m) throw new TransformError(`not a run id: ${JSON.stringify(runId)}`);
  return `${m[1]}/${m[2]}/${m[3]}`;
}

export const processedObjectKey = (table: string, runId: string): string =>
  `${PROCESSED_PREFIX}${table}/${runDatePath(runId)}/${runId}.parquet`;
export const processedMarkerKey = (runId: string): string =>
  `${PROCESSED_RUNS_PREFIX}${runDatePath(runId)}/${runId}.json`;
export const stateKey = (table: string): string => `${STATE_PREFIX}${table}.json`;
/** The run id of a marker or processed object key (its file name). */
export const runIdOfKey = (key: string): string =>
  (key.split('/').pop() ?? '').replace(/\.(json|parquet)$/, '');

/** The extraction's completion marker (docs/totesys.md, the CDC contract). */
export interface IngestionMarker {
  runId: string;
  source: 'totesys';
  tables: Record<string, { key: string; rows: number }>;
}

export interface ProcessedMarker {
  runId: string;
  source: 'totesys';
  ingestionMarker: string;
  /** Per warehouse table: its Parquet object and row count. */
  objects: Record<string, { key: string; rows: number }>;
  /** Source rows read per table. */
  sourceRows: Record<string, number>;
  unresolved: string[];
}

export interface TransformDeps {
  s3: S3Client;
  bucket: string;
  logger: Logger;
}

async function getText(deps: TransformDeps, key: string): Promise<string | undefined> {
  try {
    const out = await deps.s3.send(new GetObjectCommand({ Bucket: deps.bucket, Key: key }));
    return await (out.Body as { transformToString(): Promise<string> }).transformToString();
  } catch (err) {
    if ((err as { name?: string }).name === 'NoSuchKey') return undefined;
    throw err;
  }
}

async function put(deps: TransformDeps, key: string, body: string | Uint8Array, type: string): Promise<void> {
  await deps.s3.send(new PutObjectCommand({ Bucket: deps.bucket, Key: key, Body: body, ContentType: type }));
}

export async function listKeys(
  deps: Pick<TransformDeps, 's3' | 'bucket'>,
  prefix: string,
): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await deps.s3.send(
      new ListObjectsV2Command({
        Bucket: deps.bucket,
        Prefix: prefix,
        ...(token ? { ContinuationToken: token } : {}),
      }),
    );
    for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

/** Bytes handed to the CSV parser at a time: about 15 ms of parsing (csv-parse read these rows at ~1 MB/s). */
const CSV_SLICE_BYTES = 16 * 1024;

/**
 * An ingestion CSV to source rows: the header must be the table's columns in `tables.ts` order; an
 * empty unquoted field is NULL, `""` the empty string. Parsed a slice of bytes at a time with a turn
 * of the event loop between slices (a first run's payment CSV, 1.8 MB, is 1.5 s of parsing); the
 * records are the same wherever the slices fall.
 */
export async function parseIngestionCsv(
  table: TotesysTableName,
  text: string,
  slicer = new TimeSlicer(),
  sliceBytes = CSV_SLICE_BYTES,
): Promise<SourceRow[]> {
  const expected = columnNames(totesysTable(table));
  const records = await parseCsvInSlices(Buffer.from(text), slicer, sliceBytes);
  const [header, ...rows] = records;
  if (!header || header.join(',') !== expected.join(','))
    throw new TransformError(
      `${table}: header is ${JSON.stringify(header)}, expected ${JSON.stringify(expected)}`,
    );
  return slicer.map(rows, (r) => Object.fromEntries(expected.map((c, i) => [c, r[i] ?? null])));
}

async function parseCsvInSlices(
  bytes: Buffer,
  slicer: TimeSlicer,
  sliceBytes: number,
): Promise<Array<Array<string | null>>> {
  const records: Array<Array<string | null>> = [];
  let failure: unknown;
  const parser = parse({
    cast: (value, context) => (value === '' && !context.quoting ? null : value),
    relax_column_count: false,
  });
  parser.on('data', (record: Array<string | null>) => records.push(record));
  // Kept for the parser's whole life: a later error after the first must not go unhandled.
  parser.on('error', (err) => {
    failure ??= err;
  });
  const ended = new Promise<void>((resolve) => parser.on('end', resolve).on('close', resolve));
  for (let at = 0; at < bytes.length && failure === undefined; at += sliceBytes) {
    parser.write(bytes.subarray(at, at + sliceBytes));
    // Every slice ends its turn: the stream delivers a slice's records on the next tick, and a
    // slice left queued would be parsed later outside the slicer's count.
    await slicer.turn();
  }
  if (failure === undefined) {
    parser.end();
    await ended;
  }
  if (failure !== undefined) throw failure;
  return records;
}

type StateSnapshot = { runId: string; rows: Record<string, SourceRow> };

/** The current rows of the dimensions' source tables, per table, by primary key. */
export type TransformState = Map<TotesysTableName, Map<string, SourceRow>>;

/** Reads the state objects, all at once. */
async function readState(deps: TransformDeps): Promise<TransformState> {
  const texts = await Promise.all(STATE_TABLES.map((t) => getText(deps, stateKey(t))));
  const state: TransformState = new Map();
  STATE_TABLES.forEach((t, i) => {
    const text = texts[i];
    const snapshot = text ? (JSON.parse(text) as StateSnapshot) : { rows: {} };
    state.set(t, new Map(Object.entries(snapshot.rows)));
  });
  return state;
}

/** Applies a run's rows; a version older than the one kept never replaces it (a rerun is harmless). */
function advanceState(
  state: TransformState,
  run: ReadonlyMap<TotesysTableName, ReadonlyArray<SourceRow>>,
): Set<TotesysTableName> {
  const touched = new Set<TotesysTableName>();
  for (const t of STATE_TABLES) {
    const rows = run.get(t);
    if (!rows?.length) continue;
    const current = state.get(t) as Map<string, SourceRow>;
    for (const [id, row] of latestByKey(rows, totesysTable(t).primaryKey)) {
      const kept = current.get(id);
      if (!kept || (kept.last_updated ?? '') <= (row.last_updated ?? '')) current.set(id, row);
    }
    touched.add(t);
  }
  return touched;
}

/** Snapshot JSON with keys in numeric order, so the same state is the same bytes. */
function stateJson(runId: string, rows: Map<string, SourceRow>): string {
  const sorted = [...rows.entries()].sort((a, b) => Number(a[0]) - Number(b[0]));
  return `${JSON.stringify({ runId, rows: Object.fromEntries(sorted) })}\n`;
}

/**
 * Transforms one extraction run; answers its processed marker. `given` is what the state objects
 * hold (they are read when it is absent); the run advances it and writes what it touched. After a
 * failure it may hold what was not written: read the objects again.
 */
export async function transformRun(
  deps: TransformDeps,
  ingestionMarkerKey: string,
  given?: TransformState,
): Promise<ProcessedMarker> {
  const text = await getText(deps, ingestionMarkerKey);
  if (text === undefined) throw new TransformError(`no ingestion marker at ${ingestionMarkerKey}`);
  const marker = JSON.parse(text) as IngestionMarker;
  const runId = marker.runId;
  const slicer = new TimeSlicer();
  const run = new Map<TotesysTableName, SourceRow[]>();
  const sourceRows: Record<string, number> = {};
  for (const [table, entry] of Object.entries(marker.tables).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (!isTotesysTableName(table))
      throw new TransformError(`run ${runId}: unknown table ${JSON.stringify(table)}`);
    const csv = await getText(deps, entry.key);
    if (csv === undefined) throw new TransformError(`run ${runId}: ${entry.key} is missing`);
    const rows = await parseIngestionCsv(table, csv, slicer);
    if (rows.length !== entry.rows)
      throw new TransformError(
        `run ${runId}: ${entry.key} has ${rows.length} rows, the marker says ${entry.rows}`,
      );
    run.set(table, rows);
    sourceRows[table] = rows.length;
  }

  const state = given ?? (await readState(deps));
  const touched = advanceState(state, run);
  const { tables, unresolved } = await remodel(run, state as CurrentState, slicer);

  const objects: ProcessedMarker['objects'] = {};
  for (const [name, rows] of [...tables.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const table = warehouseTable(name) as WarehouseTable;
    let bytes: Uint8Array;
    try {
      bytes = await writeParquetSliced(table.columns, rows, slicer);
    } catch (err) {
      throw new TransformError(`run ${runId}: ${name}: ${errorMessage(err)}`, { cause: err });
    }
    const key = processedObjectKey(name, runId);
    await put(deps, key, bytes, 'application/vnd.apache.parquet');
    objects[name satisfies WarehouseTableName] = { key, rows: rows.length };
  }
  for (const t of touched)
    await put(
      deps,
      stateKey(t),
      stateJson(runId, state.get(t) as Map<string, SourceRow>),
      'application/json',
    );

  const processed: ProcessedMarker = {
    runId,
    source: 'totesys',
    ingestionMarker: ingestionMarkerKey,
    objects,
    sourceRows,
    unresolved,
  };
  // Last: the marker says every object of the run is durable (the loader and `totesys status` read it).
  await put(deps, processedMarkerKey(runId), `${JSON.stringify(processed, null, 2)}\n`, 'application/json');
  if (unresolved.length > 0)
    deps.logger.warn({ runId, unresolved }, 'totesys dimension rows wait for their joined rows');
  return processed;
}

export interface TransformSweep {
  transformed: ProcessedMarker[];
  /** The first run that failed (later runs wait for it: the snapshot advances in run order). */
  failed?: { runId: string; error: string };
}

/** Every extraction run without a processed marker, oldest first; stops at the first failure. */
export async function transformPending(deps: TransformDeps): Promise<TransformSweep> {
  const done = new Set((await listKeys(deps, PROCESSED_RUNS_PREFIX)).map(runIdOfKey));
  const pending = (await listKeys(deps, INGESTION_RUNS_PREFIX))
    .filter((k) => k.endsWith('.json') && !done.has(runIdOfKey(k)))
    .sort((a, b) => (runIdOfKey(a) < runIdOfKey(b) ? -1 : 1));
  const transformed: ProcessedMarker[] = [];
  // Read once a sweep: each run leaves it as it wrote it, and the sweep stops at a failure.
  let state: TransformState | undefined;
  for (const key of pending) {
    try {
      state ??= await readState(deps);
      const marker = await transformRun(deps, key, state);
      deps.logger.debug(
        { runId: marker.runId, objects: Object.keys(marker.objects).length },
        'totesys run transformed',
      );
      transformed.push(marker);
    } catch (err) {
      const runId = runIdOfKey(key);
      // The episode's one warning is cdc/transform-load.ts's; this is the detail of each attempt.
      deps.logger.debug({ runId, err: errorMessage(err) }, 'totesys transform failed');
      return { transformed, failed: { runId, error: errorMessage(err) } };
    }
  }
  return { transformed };
}
