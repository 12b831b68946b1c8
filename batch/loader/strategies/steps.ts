import { Readable } from 'node:stream';
import type { CopyStep, DeferredStep, Statement, Step } from '#adapters/warehouse';
import {
  COUNTS_COLUMNS,
  COUNTS_TABLE,
  countNewRowsSql,
  createCountsSql,
  dimensionSteps,
  duplicateFixStep,
  legacyStagingTable,
  mergeFactSteps,
  REJECTED_COLUMNS,
  TYPED_TABLE,
} from '../../sql.ts';
import { claimStep, type LoadCounts, loadedStep } from '../manifest.ts';
import type { TypedRows } from '../rows.ts';
import type { LoadJob } from './way.ts';

/** Steps the four ways share: the claim that opens a load, and the closings of the two families. */

export const REJECTED_TABLE = 'load_rejected_row';

/** The claim of the manifest row, and the drop of a staging table an older loader left. */
export function openingSteps(job: LoadJob): Statement[] {
  return [
    claimStep(job.warehouse.dialect, job.objectKey, job.etag),
    ...(job.status === 'staged' ? [{ sql: `DROP TABLE IF EXISTS ${legacyStagingTable(job.loadId)}` }] : []),
  ];
}

/** A COPY from a stream the loader feeds (PostgreSQL). */
export function streamCopy(
  table: string,
  columns: ReadonlyArray<string>,
  format: 'csv' | 'binary',
  stream: Readable,
  freeze = false,
): CopyStep {
  return {
    kind: 'copy',
    table,
    columns,
    format,
    encoding: 'UTF8',
    ...(freeze ? { freeze } : {}),
    stream: () => stream,
  };
}

/** The rejected rows into load_rejected_row from the spool (PostgreSQL), none when there are none. */
export async function streamedRejects(rows: TypedRows): Promise<Step[]> {
  if (rows.lines.rejects.count === 0) return [];
  return [streamCopy(REJECTED_TABLE, REJECTED_COLUMNS, 'csv', await rows.lines.rejects.readable())];
}

/** Runs `build` inside the transaction once the steps before it (the COPY) are done: the rows are staged. */
export function afterStaging(job: LoadJob, build: () => Promise<Step[]>): DeferredStep {
  return {
    kind: 'defer',
    async build() {
      await job.staged();
      return build();
    },
  };
}

function counts(rows: TypedRows, rowsNew?: number): LoadCounts {
  return {
    rowsRead: rows.lines.rowsRead,
    rowsLoaded: rows.lines.rowsLoaded,
    rowsRejected: rows.lines.rejects.count,
    ...(rowsNew !== undefined ? { rowsNew } : {}),
    encoding: rows.encoding,
    header: rows.header ? JSON.stringify(rows.header) : null,
    extraColumns: rows.extra.length > 0 ? JSON.stringify(rows.extra) : null,
  };
}

/**
 * After rows went straight into the fact (direct, bulk): the dimension counts the typer kept, the
 * dimensions, duplicates of invoices that came back later in the file, the manifest.
 */
export function directClosing(job: LoadJob, rows: TypedRows, rejects: Step[]): Step[] {
  const { dialect } = job.warehouse;
  return [
    ...rejects,
    { sql: createCountsSql() },
    streamCopy(COUNTS_TABLE, COUNTS_COLUMNS, 'csv', Readable.from([rows.lines.countsCsv()])),
    ...dimensionSteps(),
    ...(rows.lines.reopened.size > 0 ? [duplicateFixStep([...rows.lines.reopened])] : []),
    // Every row went in (a key already there fails the COPY): all are new.
    loadedStep(dialect, job.objectKey, job.etag, counts(rows, rows.lines.rowsLoaded)),
    { sql: `DROP TABLE ${COUNTS_TABLE}` },
  ];
}

/**
 * After rows went into load_typed (merge ways): the dimension counts of the new rows in SQL, the
 * dimensions, the new keys into the fact (archive lines lend lineage to keys there), duplicates
 * over every invoice touched, the manifest.
 */
export function mergeClosing(job: LoadJob, rows: TypedRows, rejects: Step[]): Step[] {
  const { dialect } = job.warehouse;
  return [
    ...rejects,
    ...mergeSteps(job, false),
    loadedStep(dialect, job.objectKey, job.etag, counts(rows)),
    ...MERGE_DROPS,
  ];
}

/** The merge itself, after load_typed is marked: dimensions, new facts, duplicates. */
export function mergeSteps(job: LoadJob, keyPerRow: boolean): Statement[] {
  return [
    { sql: createCountsSql() },
    { sql: countNewRowsSql() },
    ...dimensionSteps(),
    ...mergeFactSteps(job.warehouse.dialect, job, keyPerRow),
    duplicateFixStep(),
  ];
}

export const MERGE_DROPS: Statement[] = [
  { sql: `DROP TABLE ${COUNTS_TABLE}` },
  { sql: `DROP TABLE ${TYPED_TABLE}` },
];

/** The manifest row of one object of a batch: loaded, with its counts and its own new rows. */
export function batchLoadedStep(job: LoadJob, rows: TypedRows, rowsNew: number): Statement {
  return loadedStep(job.warehouse.dialect, job.objectKey, job.etag, counts(rows, rowsNew));
}
