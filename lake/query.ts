import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { type GlueTable, LAKE_DATABASE, type LakeCatalog, readCatalog } from './catalog.ts';
import type { LakeObjects } from './catalog-objects.ts';
import { type CachedTable, syncTable } from './query-cache.ts';
import { LakeQueryError, UnknownTableError } from './query-errors.ts';

/**
 * SQL over the lake on an embedded DuckDB, the local stand-in for Athena: the catalogued tables
 * become views (in `main` and in the `retail_pipeline` schema, so `retail_pipeline.invoice_lines`
 * as written for Athena resolves too) over local copies of their objects. Only the CLI and benches
 * import this module: DuckDB's native binary must never reach a Lambda bundle.
 */

export { LakeQueryError, UnknownTableError };

export interface LakeQueryDeps {
  objects: LakeObjects;
  bucket: string;
  /** Where downloaded objects are kept between queries (the data dir's lake-cache/). */
  cacheDir: string;
}

export type LakeValue = string | number | boolean | null;

export interface LakeQueryResult {
  columns: Array<{ name: string; type: string }>;
  /** Exact: decimals, bigints, dates and timestamps as DuckDB's text, never through a float. */
  rows: LakeValue[][];
  /** The catalog tables the query read, with what had to be downloaded for it. */
  tables: Array<{ name: string; files: number; downloadedObjects: number; downloadedBytes: number }>;
  /** Where the time went: the catalog, listing and cache (`prepareMs`), DuckDB's run (`engineMs`). */
  timings: { prepareMs: number; engineMs: number };
}

/**
 * Athena (Trino) functions DuckDB spells differently, defined under Athena's name so a query runs
 * unchanged; docs/lake.md lists these and the differences left.
 */
const ATHENA_MACROS = [
  'CREATE MACRO approx_distinct(x) AS approx_count_distinct(x)',
  'CREATE MACRO approx_percentile(x, p) AS approx_quantile(x, p)',
  'CREATE MACRO regexp_like(s, pattern) AS regexp_matches(s, pattern)',
  // Trino's MySQL-style specifiers: %Y %m %d %H %T agree with strftime's; %i (minutes) and %s do not.
  'CREATE MACRO date_format(t, f) AS strftime(t, f)',
  'CREATE MACRO date_parse(s, f) AS strptime(s, f)',
];

/** A Glue/Hive type in DuckDB's spelling (nested types included). */
export function duckType(glue: string): string {
  const t = glue.trim().toLowerCase();
  const simple: Record<string, string> = {
    string: 'VARCHAR',
    varchar: 'VARCHAR',
    char: 'VARCHAR',
    tinyint: 'TINYINT',
    smallint: 'SMALLINT',
    int: 'INTEGER',
    integer: 'INTEGER',
    bigint: 'BIGINT',
    float: 'FLOAT',
    double: 'DOUBLE',
    boolean: 'BOOLEAN',
    date: 'DATE',
    timestamp: 'TIMESTAMP',
    binary: 'BLOB',
  };
  if (simple[t]) return simple[t];
  const decimal = /^decimal\((\d+),\s*(\d+)\)$/.exec(t);
  if (decimal) return `DECIMAL(${decimal[1]},${decimal[2]})`;
  if (/^(var)?char\(\d+\)$/.test(t)) return 'VARCHAR';
  const inner = (prefix: string) => t.slice(prefix.length, -1);
  if (t.startsWith('array<')) return `${duckType(inner('array<'))}[]`;
  if (t.startsWith('map<')) return `MAP(${splitTop(inner('map<')).map(duckType).join(', ')})`;
  if (t.startsWith('struct<')) {
    const fields = splitTop(inner('struct<')).map((f) => {
      const at = f.indexOf(':');
      return `${quoteIdent(f.slice(0, at))} ${duckType(f.slice(at + 1))}`;
    });
    return `STRUCT(${fields.join(', ')})`;
  }
  throw new LakeQueryError(`the catalog has a type the local engine does not know: ${glue}`);
}

/** Splits `a,b<c,d>,e` at its top-level commas. */
function splitTop(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '<' || ch === '(') depth++;
    else if (ch === '>' || ch === ')') depth--;
    else if (ch === ',' && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;
const quoteText = (text: string) => `'${text.replaceAll("'", "''")}'`;
const fileList = (files: string[]) => `[${files.map(quoteText).join(', ')}]`;

function hiveOptions(table: GlueTable): string {
  if (table.PartitionKeys.length === 0) return 'hive_partitioning = false';
  const types = table.PartitionKeys.map((k) => `${quoteText(k.Name)}: ${quoteText(duckType(k.Type))}`);
  return `hive_partitioning = true, hive_types = {${types.join(', ')}}, hive_types_autocast = false`;
}

/** The SELECT a table's view runs over its cached files. */
export function viewSelect(cached: CachedTable): string {
  const { table, files } = cached;
  const columns = table.StorageDescriptor.Columns;
  if (files.length === 0) {
    // No object yet: an empty relation with the catalog's columns, so queries still bind.
    const all = [...columns, ...table.PartitionKeys];
    return `SELECT ${all.map((c) => `CAST(NULL AS ${duckType(c.Type)}) AS ${quoteIdent(c.Name)}`).join(', ')} WHERE false`;
  }
  if (table.Parameters.classification === 'parquet')
    // union_by_name reads every file's footer when the view binds: only where the columns differ.
    return `SELECT * FROM read_parquet(${fileList(files)}, union_by_name = ${!cached.uniform}, ${hiveOptions(table)})`;
  // JSON: the catalog's columns and types, read by each field's key as the data spells it.
  const serde = table.StorageDescriptor.SerdeInfo.Parameters;
  const keyOf = (name: string) => serde[`mapping.${name}`] ?? name;
  const spec = columns.map((c) => `${quoteText(keyOf(c.Name))}: ${quoteText(duckType(c.Type))}`).join(', ');
  const select = [
    ...columns.map((c) => `${quoteIdent(keyOf(c.Name))} AS ${quoteIdent(c.Name)}`),
    ...table.PartitionKeys.map((k) => quoteIdent(k.Name)),
  ];
  return (
    `SELECT ${select.join(', ')} FROM read_json(${fileList(files)}, format = 'newline_delimited', ` +
    `compression = 'gzip', columns = {${spec}}, ${hiveOptions(table)})`
  );
}

/**
 * The catalog tables `sql` names: DuckDB's own parser says which relations a SELECT reads; for
 * other statements (DESCRIBE, CREATE TABLE AS, ...) and for SQL that does not parse (its run then
 * reports DuckDB's message), every catalog table whose name appears as a word.
 */
async function referencedTables(
  db: DuckDBConnection,
  catalog: LakeCatalog,
  sql: string,
): Promise<GlueTable[]> {
  const reader = await db.runAndReadAll(`SELECT json_serialize_sql(${quoteText(sql)}) AS ast`);
  const ast = JSON.parse(String(reader.getRowsJson()[0]?.[0] ?? '{}')) as { error?: boolean };
  const names = new Set<string>();
  if (ast.error) {
    const words = new Set(sql.toLowerCase().match(/[a-z_][a-z0-9_]*/g) ?? []);
    for (const t of catalog.Tables) if (words.has(t.Name)) names.add(t.Name);
  }
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) for (const n of node) walk(n);
    else if (node !== null && typeof node === 'object') {
      const n = node as Record<string, unknown>;
      if (n.type === 'BASE_TABLE' && typeof n.table_name === 'string') names.add(n.table_name.toLowerCase());
      for (const v of Object.values(n)) walk(v);
    }
  };
  walk(ast);
  return catalog.Tables.filter((t) => names.has(t.Name));
}

function describeError(err: unknown, catalog: LakeCatalog): LakeQueryError {
  const message = (err as Error).message ?? String(err);
  if (/Table with name .* does not exist/i.test(message)) {
    const first = message.split('\n')[0] ?? message;
    const known = catalog.Tables.map((t) => t.Name).join(', ');
    return new UnknownTableError(
      `${first.replace(/^Catalog Error: /, '')} The lake's tables: ${known} (also as ${LAKE_DATABASE}.<table>).`,
      { cause: err },
    );
  }
  return new LakeQueryError(`DuckDB: ${message}`, { cause: err });
}

/** Runs one SQL text over the catalogued tables it names. */
export async function queryLake(deps: LakeQueryDeps, sql: string): Promise<LakeQueryResult> {
  const started = performance.now();
  const catalog = await readCatalog(deps.objects);
  if (catalog.Tables.length === 0)
    throw new LakeQueryError('the lake catalog is empty: run retail-pipeline lake crawl first');
  const instance = await DuckDBInstance.create(':memory:');
  const db = await instance.connect();
  try {
    const needed = await referencedTables(db, catalog, sql);
    const cached = [];
    for (const table of needed)
      cached.push(
        await syncTable(deps.objects, table, catalog.Partitions[table.Name], deps.bucket, deps.cacheDir),
      );
    // One view per table, in the Glue database's schema, found unqualified through the search path.
    await db.run(`CREATE SCHEMA ${quoteIdent(LAKE_DATABASE)}`);
    await db.run(`SET search_path = ${quoteText(`${LAKE_DATABASE},main`)}`);
    for (const macro of ATHENA_MACROS) await db.run(macro);
    for (const c of cached) {
      await db.run(
        `CREATE VIEW ${quoteIdent(LAKE_DATABASE)}.${quoteIdent(c.table.Name)} AS ${viewSelect(c)}`,
      );
    }
    const prepared = performance.now();
    const reader = await db.runAndReadAll(sql).catch((err: unknown) => {
      throw describeError(err, catalog);
    });
    const names = reader.columnNames();
    const types = reader.columnTypes();
    return {
      columns: names.map((name, i) => ({ name, type: String(types[i]) })),
      rows: reader.getRowsJson() as LakeValue[][],
      tables: cached.map((c) => ({
        name: c.table.Name,
        files: c.files.length,
        downloadedObjects: c.downloaded.objects,
        downloadedBytes: c.downloaded.bytes,
      })),
      timings: {
        prepareMs: Math.round(prepared - started),
        engineMs: Math.round(performance.now() - prepared),
      },
    };
  } finally {
    db.closeSync();
    instance.closeSync();
  }
}
