import type { Dialect, Statement, Warehouse } from '#adapters/warehouse';
import { ident, WarehouseError } from '#adapters/warehouse';
import { dialectOf, TYPED_TABLE } from '../sql.ts';
import { loadIdOf, type ObjectKind, type ObjectRef } from './objects.ts';

/**
 * load_manifest, the loader's record of every object version (key + ETag): its status, attempts,
 * counts and last error. Every statement on it is here: the loader's bookkeeping, the two steps a
 * load's own transaction runs (claim, loaded), and what the CLI and the bench read.
 */

/** What a failed object's retry needs; `rested_ms` by the warehouse's clock, one clock for all loaders. */
export interface RetryState {
  status: string;
  attempts: number;
  /** Milliseconds since the last attempt finished (NULL: never finished). */
  rested_ms: string | number | null;
}

export interface ManifestRow extends RetryState {
  object_key: string;
  etag: string;
  header: string | null;
  rows_read: string | null;
  rows_loaded: string | null;
  rows_new: string | null;
  rows_rejected: string | null;
  extra_columns: string | null;
  error: string | null;
}

/** The `retail-pipeline load` view of one object: its counts and how long it took from discovery. */
export interface ManifestProgress {
  status: string;
  rows_read: string | null;
  rows_loaded: string | null;
  rows_new: string | null;
  rows_rejected: string | null;
  extra_columns: string | null;
  error: string | null;
  seconds: string | null;
}

/** A processed-zone object of change data capture (totesys Parquet), loaded by cdc/load.ts. */
export interface CdcObjectKind {
  source: 'cdc';
  format: 'parquet';
}

/** One cdc object's row as `totesys status` reads it (bigint columns arrive as text). */
export interface CdcManifestRow {
  object_key: string;
  status: string;
  attempts: number | string;
  rows_read: string | number | null;
  rows_new: string | number | null;
  error: string | null;
}

/** Statuses an object never leaves: it is not loaded again. */
const TERMINAL = new Set(['loaded', 'quarantined']);
export const isTerminal = (status: string): boolean => TERMINAL.has(status);

/** The longest error text the manifest keeps. */
const ERROR_CHARS = 4000;
const BY_KEY = 'object_key = $1 AND etag = $2';

const retryColumns = (now: string) => `status, attempts,
  CAST(EXTRACT(EPOCH FROM (${now} - finished_at)) * 1000 AS bigint) AS rested_ms`;

/** An object a load may still take: not loaded, not quarantined. A claim leaves the status as it is. */
const CLAIMABLE = "status IN ('pending', 'failed', 'staged')";

/**
 * Takes the object for this transaction: only one not loaded yet, and the row lock keeps a second
 * loader waiting until this one commits (then it finds the object loaded) or rolls back. A Redshift
 * batch runs on past a claim that matched nothing: its statements check `stillClaimed` instead.
 */
export function claimStep(dialect: Dialect, key: string, etag: string): Statement {
  return {
    sql: `UPDATE load_manifest SET attempts = attempts + 1, started_at = ${dialectOf(dialect).now}, error = NULL
WHERE ${BY_KEY} AND ${CLAIMABLE}`,
    params: [key, etag],
    requireRows: true,
  };
}

/**
 * The claim, checked again by a later statement of the same transaction: true exactly when the
 * claim matched. Nothing but the load's last statement (loaded) takes an object out of CLAIMABLE: a
 * claim that matched holds the row (PostgreSQL's row lock; Redshift's serializable isolation fails
 * one of two transactions that both wrote it), and a claim that matched nothing met a final status
 * that no later statement sees changed. So a claim token would add nothing: no column is needed.
 * `$first` and `$first + 1` are the key and ETag in the statement's params.
 */
export function stillClaimed(key: string, etag: string, first: number): { sql: string; params: unknown[] } {
  return {
    sql: `EXISTS (SELECT 1 FROM load_manifest WHERE object_key = $${first} AND etag = $${first + 1} AND ${CLAIMABLE})`,
    params: [key, etag],
  };
}

/**
 * Empties a table the transaction staged unless it still holds its claim: every statement after it
 * that reads the table then writes nothing (how a Redshift batch that lost its claim changes nothing).
 */
export function unlessClaimedStep(table: string, key: string, etag: string): Statement {
  const held = stillClaimed(key, etag, 1);
  return { sql: `DELETE FROM ${ident(table)} WHERE NOT ${held.sql}`, params: held.params };
}

export interface LoadCounts {
  rowsRead: number;
  rowsLoaded: number;
  rowsRejected: number;
  /** Undefined: count the typed rows marked new (merge way). */
  rowsNew?: number;
  encoding: string;
  header: string | null;
  extraColumns: string | null;
  /** The temporary table whose `is_new` rows count as new (default the invoice load's typed rows). */
  newRowsTable?: string;
}

/**
 * The last statement of a load: the manifest row says loaded, with its counts; only while the load
 * holds its claim (a Redshift batch that lost it must not rewrite the counts of the load that won).
 */
export function loadedStep(dialect: Dialect, key: string, etag: string, c: LoadCounts): Statement {
  const d = dialectOf(dialect);
  const params: unknown[] = [
    key,
    etag,
    c.rowsRead,
    c.rowsLoaded,
    c.rowsRejected,
    c.encoding,
    c.header,
    c.extraColumns,
  ];
  let rowsNew = `(SELECT count(*) FROM ${c.newRowsTable ?? TYPED_TABLE} WHERE is_new)`;
  if (c.rowsNew !== undefined) {
    params.push(c.rowsNew);
    rowsNew = 'CAST($9 AS bigint)';
  }
  return {
    sql: `UPDATE load_manifest SET status = 'loaded', error = NULL, rows_read = CAST($3 AS bigint),
  rows_loaded = CAST($4 AS bigint), rows_rejected = CAST($5 AS bigint), rows_new = ${rowsNew},
  encoding = CAST($6 AS varchar(8)), header = CAST($7 AS varchar(4096)), extra_columns = CAST($8 AS varchar(1024)),
  staged_at = ${d.statementTime}, finished_at = ${d.statementTime}
WHERE ${BY_KEY} AND ${CLAIMABLE}`,
    params,
  };
}

/** The manifest's statements over one warehouse (its dialect decides the clock). */
export function createManifest(warehouse: Pick<Warehouse, 'dialect' | 'query'>): Manifest {
  return new Manifest(warehouse);
}

export class Manifest {
  private readonly now: string;

  constructor(private readonly warehouse: Pick<Warehouse, 'dialect' | 'query'>) {
    this.now = dialectOf(warehouse.dialect).now;
  }

  private q<R = Record<string, unknown>>(sql: string, params?: ReadonlyArray<unknown>) {
    return this.warehouse.query<R>(sql, params);
  }

  /** Records a newly seen object as pending; a version already recorded is left as it is. */
  async register(ref: ObjectRef, kind: ObjectKind | CdcObjectKind): Promise<void> {
    try {
      await this.q(
        `INSERT INTO load_manifest (object_key, etag, load_id, source, format, status, attempts, size_bytes, discovered_at)
       SELECT CAST($1 AS varchar(1024)), CAST($2 AS varchar(128)), CAST($3 AS varchar(32)), CAST($4 AS varchar(6)),
         CAST($5 AS varchar(8)), 'pending', 0, CAST($6 AS bigint), ${this.now}
       WHERE NOT EXISTS (SELECT 1 FROM load_manifest WHERE ${BY_KEY})`,
        [ref.key, ref.etag, loadIdOf(ref.key, ref.etag), kind.source, kind.format, ref.size ?? null],
      );
    } catch (err) {
      // Two loaders registering the same object at once: the other insert won, which is fine.
      if (!(err instanceof WarehouseError && err.details.code === '23505')) throw err;
    }
  }

  async row(key: string, etag: string): Promise<ManifestRow | undefined> {
    const { rows } = await this.q<ManifestRow>(
      `SELECT object_key, etag, ${retryColumns(this.now)}, header, rows_read, rows_loaded, rows_new, rows_rejected,
       extra_columns, error FROM load_manifest WHERE ${BY_KEY}`,
      [key, etag],
    );
    return rows[0];
  }

  /** Every recorded version's retry state, by `key\netag` (a sweep's one read of the manifest). */
  async states(): Promise<Map<string, RetryState>> {
    const { rows } = await this.q<RetryState & { object_key: string; etag: string }>(
      `SELECT object_key, etag, ${retryColumns(this.now)} FROM load_manifest`,
    );
    return new Map(rows.map((r) => [`${r.object_key}\n${r.etag}`, r]));
  }

  async quarantined(key: string, etag: string, reason: string): Promise<void> {
    await this.q(
      `UPDATE load_manifest SET status = 'quarantined', error = $3, finished_at = ${this.now}, attempts = attempts + 1
     WHERE ${BY_KEY}`,
      [key, etag, reason.slice(0, ERROR_CHARS)],
    );
  }

  /** The attempt's own increment rolled back with its transaction: the failure counts it. */
  async failed(key: string, etag: string, error: string): Promise<void> {
    await this.q(
      `UPDATE load_manifest SET status = 'failed', error = $3, finished_at = ${this.now},
           attempts = attempts + 1
         WHERE ${BY_KEY} AND status NOT IN ('loaded', 'quarantined')`,
      [key, etag, error.slice(0, ERROR_CHARS)],
    );
  }

  /** How a committed load's time split: rows staged (read, typed, COPYed), then the rest. */
  async timings(key: string, etag: string, stageMs: number, mergeMs: number): Promise<void> {
    await this.q(`UPDATE load_manifest SET stage_ms = $3, merge_ms = $4 WHERE ${BY_KEY}`, [
      key,
      etag,
      Math.round(stageMs),
      Math.round(mergeMs),
    ]);
  }

  /** `retail-pipeline load`: where one dropped object is. */
  async progress(key: string, etag: string): Promise<ManifestProgress | undefined> {
    const { rows } = await this.q<ManifestProgress>(
      `SELECT status, rows_read, rows_loaded, rows_new, rows_rejected, extra_columns, error,
       round(CAST(EXTRACT(epoch FROM (finished_at - discovered_at)) AS numeric), 1) AS seconds
     FROM load_manifest WHERE ${BY_KEY}`,
      [key, etag],
    );
    return rows[0];
  }

  /** `retail-pipeline warehouse status`: objects and rows per source and status. */
  async summary(): Promise<Array<Record<string, string>>> {
    return (
      await this.q<Record<string, string>>(
        `SELECT source, status, count(*) AS objects, COALESCE(sum(rows_read), 0) AS read,
           COALESCE(sum(rows_loaded), 0) AS loaded, COALESCE(sum(rows_new), 0) AS new,
           COALESCE(sum(rows_rejected), 0) AS rejected, max(finished_at) AS last_finished
         FROM load_manifest GROUP BY source, status ORDER BY source, status`,
      )
    ).rows;
  }

  /** `retail-pipeline totesys status`: every change-data-capture object's status, counts and error. */
  async cdcObjects(): Promise<CdcManifestRow[]> {
    return (
      await this.q<CdcManifestRow>(
        `SELECT object_key, status, attempts, rows_read, rows_new, error FROM load_manifest
         WHERE source = 'cdc' ORDER BY object_key`,
      )
    ).rows;
  }

  /** `retail-pipeline warehouse status`: the latest objects discovered. */
  async recent(limit: number): Promise<Array<Record<string, string>>> {
    return (
      await this.q<Record<string, string>>(
        `SELECT object_key, status, rows_loaded, rows_rejected, stage_ms, merge_ms, error
         FROM load_manifest ORDER BY discovered_at DESC LIMIT $1`,
        [limit],
      )
    ).rows;
  }

  /** The bench: a load's time split as recorded (any version of the key). */
  async timingsOf(key: string): Promise<{ stage_ms: number; merge_ms: number } | undefined> {
    return (
      await this.q<{ stage_ms: number; merge_ms: number }>(
        'SELECT stage_ms, merge_ms FROM load_manifest WHERE object_key = $1',
        [key],
      )
    ).rows[0];
  }

  /**
   * The bench: the warehouse as a first load meets it. Everything loads wrote goes (the manifest,
   * facts, rejected rows, dimensions, the dimension counts, unknown countries); the calendar and
   * the known countries, which migrations write, stay.
   */
  async forgetAllLoads(): Promise<void> {
    await this.q(
      `TRUNCATE fact_sales_line, load_manifest, load_rejected_row, dim_customer, dim_product,
         load_product_description, load_customer_country`,
    );
    await this.q('DELETE FROM dim_country WHERE NOT is_known');
  }
}
