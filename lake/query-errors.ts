/**
 * The lake query's errors, apart from lake/query.ts so the CLI can recognise them without loading
 * DuckDB's native module for every command.
 */

/** Bad SQL, or DuckDB refusing it: the message is DuckDB's. */
export class LakeQueryError extends Error {
  override name = 'LakeQueryError';
}

/** A table the catalog does not have: the message lists the ones it has. */
export class UnknownTableError extends LakeQueryError {
  override name = 'UnknownTableError';
}
