import type { Readable } from 'node:stream';

/** The warehouse's SQL flavour: the loader keeps to what both accept and asks for the rest here. */
export type Dialect = 'postgres' | 'redshift';

/** One parameterised statement (`$1`, `$2`, ...). */
export interface Statement {
  sql: string;
  params?: ReadonlyArray<unknown>;
  /**
   * Roll the whole transaction back (result `committed: false`) when this statement affects no
   * row: how a loader claims a manifest row so two loaders never merge one file. Honoured where the
   * adapter runs statements interactively (PostgreSQL). A Redshift batch cannot stop half-way: it runs
   * on and is reported not committed, so the steps after this one must change nothing when it matched
   * nothing (they check the same condition: batch/loader/manifest.ts `stillClaimed`).
   */
  requireRows?: boolean;
}

/** Bulk load into a table: a byte stream (COPY FROM STDIN) or an S3 object (COPY FROM S3). */
export interface CopyStep {
  kind: 'copy';
  table: string;
  columns: ReadonlyArray<string>;
  /**
   * `csv`: RFC 4180 records; `lines`: one whole line per row into a single text column; `binary`:
   * PostgreSQL's binary COPY tuples (stream-fed PostgreSQL only).
   */
  format: 'csv' | 'lines' | 'binary';
  encoding: 'UTF8' | 'LATIN1';
  /** COPY ... FREEZE: the table was truncated in this transaction (PostgreSQL). */
  freeze?: boolean;
  /** For stream-fed warehouses: the decompressed bytes, header already removed. */
  stream?: () => Readable;
  /** For S3-fed warehouses: the original object. */
  s3?: { uri: string; gzip: boolean; skipHeader: boolean };
}

/**
 * Steps decided inside the transaction, once the steps before them ran: from what a query in the
 * transaction answers, or from what a COPY's stream saw. Needs an interactive transaction
 * (PostgreSQL); a Redshift batch is submitted whole.
 */
export interface DeferredStep {
  kind: 'defer';
  build: (tx: TransactionQuery) => Promise<ReadonlyArray<Step>>;
}

/** A query inside a running transaction. */
export interface TransactionQuery {
  query<R = Record<string, unknown>>(
    sql: string,
    params?: ReadonlyArray<unknown>,
  ): Promise<StatementResult<R>>;
}

export type Step = Statement | CopyStep | DeferredStep;

export interface StatementResult<R = Record<string, unknown>> {
  rows: R[];
  rowCount: number;
}

export interface TransactionResult {
  committed: boolean;
  /** Rows affected per step (COPY: rows copied). */
  rowCounts: number[];
}

/** The outbound port to the warehouse (PostgreSQL locally, Redshift on AWS). */
export interface Warehouse {
  readonly dialect: Dialect;
  /** Whether COPY reads a stream the loader provides or the S3 object itself. */
  readonly copySource: 'stream' | 's3';
  query<R = Record<string, unknown>>(
    sql: string,
    params?: ReadonlyArray<unknown>,
  ): Promise<StatementResult<R>>;
  /** Runs the steps in one transaction: all or nothing. */
  transaction(steps: ReadonlyArray<Step>): Promise<TransactionResult>;
  close(): Promise<void>;
}

/** A failed statement, with the warehouse's own message and SQLSTATE when it gives one. */
export class WarehouseError extends Error {
  override name = 'WarehouseError';
  constructor(
    message: string,
    readonly details: { code?: string; statement?: string } = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isCopyStep(step: Step): step is CopyStep {
  return (step as CopyStep).kind === 'copy';
}

export function isDeferredStep(step: Step): step is DeferredStep {
  return (step as DeferredStep).kind === 'defer';
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/** Table and column names are never user input, but they are checked before going into SQL. */
export function ident(name: string): string {
  if (!IDENTIFIER.test(name)) throw new WarehouseError(`not a safe SQL identifier: ${JSON.stringify(name)}`);
  return name;
}
