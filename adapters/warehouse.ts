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
   * adapter runs statements interactively (PostgreSQL); a Redshift batch cannot stop half-way.
   */
  requireRows?: boolean;
}

/** Bulk load into a table: a byte stream (COPY FROM STDIN) or an S3 object (COPY FROM S3). */
export interface CopyStep {
  kind: 'copy';
  table: string;
  columns: ReadonlyArray<string>;
  /** `csv`: RFC 4180 records; `lines`: one whole line per row into a single text column. */
  format: 'csv' | 'lines';
  encoding: 'UTF8' | 'LATIN1';
  /** For stream-fed warehouses: the decompressed bytes, header already removed. */
  stream?: () => Readable;
  /** For S3-fed warehouses: the original object. */
  s3?: { uri: string; gzip: boolean; skipHeader: boolean };
}

export type Step = Statement | CopyStep;

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

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/** Table and column names are never user input, but they are checked before going into SQL. */
export function ident(name: string): string {
  if (!IDENTIFIER.test(name)) throw new WarehouseError(`not a safe SQL identifier: ${JSON.stringify(name)}`);
  return name;
}
