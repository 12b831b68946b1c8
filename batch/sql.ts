import { type Dialect, ident, type Statement } from '#adapters/warehouse';
import { UNKNOWN_ISO_CODE, UNKNOWN_REGION } from '#core/countries';
import { SOURCE_COLUMNS } from '#core/source-row';
import { STAMP_COLUMNS, TYPED_COLUMNS } from './typer.ts';

/**
 * The SQL of one object's load (the manifest's own statements are in loader/manifest.ts). Rows arrive typed and validated (batch/typer.ts), so SQL only
 * writes them: facts, the rejected rows, the dimension counts, then the dimensions. Everything
 * here is SQL both PostgreSQL and Redshift accept, except what `dialectOf` isolates.
 */

export type SourceFormat = 'csv' | 'ndjson';

/** The source columns a CSV must have, and the line fields an archive record must have. */
export const CSV_FIELDS = SOURCE_COLUMNS;
export type CsvField = (typeof CSV_FIELDS)[number];

export interface LoadPlan {
  loadId: string;
  objectKey: string;
  source: 'stream' | 'file';
  format: SourceFormat;
}

interface DialectSql {
  statementTime: string;
  /** The current time in manifest bookkeeping (Redshift: GETDATE(), which every node evaluates). */
  now: string;
  /** PostgreSQL can skip no-op updates of matched facts. */
  lineageCondition: string;
}

export function dialectOf(dialect: Dialect): DialectSql {
  if (dialect === 'postgres') {
    return {
      statementTime: 'statement_timestamp()',
      now: 'CURRENT_TIMESTAMP',
      lineageCondition:
        ' AND ((f.stream_visible_at IS NULL AND s.stream_visible_at IS NOT NULL) OR (f.produced_at IS NULL AND s.produced_at IS NOT NULL))',
    };
  }
  return { statementTime: 'GETDATE()', now: 'GETDATE()', lineageCondition: '' };
}

/** A load's typed rows (the merge path): TYPED_COLUMNS plus whether the key is new to the fact. */
export const TYPED_TABLE = 'load_typed';
/** A load's dimension counts (kind = product | customer | country | invoice). */
export const COUNTS_TABLE = 'load_counts';
/** The source of one MERGE (Redshift's MERGE reads a table, not a subquery). */
export const MERGE_SOURCE = 'load_merge_source';

const TYPED_TYPES: Record<(typeof TYPED_COLUMNS)[number], string> = {
  invoice_no: 'varchar(16)',
  line_no: 'integer',
  date_key: 'integer',
  invoice_date: 'timestamp',
  stock_code: 'varchar(32)',
  description: 'varchar(255)',
  customer_id: 'varchar(12)',
  country_name: 'varchar(64)',
  quantity: 'integer',
  unit_price: 'numeric(12, 3)',
  line_total: 'numeric(18, 3)',
  is_cancellation: 'boolean',
  is_adjustment: 'boolean',
  is_non_product: 'boolean',
  is_duplicate_row: 'boolean',
  produced_at: 'timestamptz',
  accepted_at: 'timestamptz',
  stream_visible_at: 'timestamptz',
};

/** Columns of a CSV of rejected rows, as COPY reads it into load_rejected_row. */
export const REJECTED_COLUMNS = [
  'load_id',
  'object_key',
  'line_number',
  'reason',
  'invoice_no',
  'stock_code',
  'description',
  'quantity',
  'invoice_date',
  'unit_price',
  'customer_id',
  'country',
  'rejected_at',
] as const;

export const COUNTS_COLUMNS = ['kind', 'member', 'attribute', 'flag', 'line_count'] as const;

/** The fact's columns a direct COPY fills: the typed ones and the load's stamp. */
export const FACT_COPY_COLUMNS = [...TYPED_COLUMNS, ...STAMP_COLUMNS];

export function createCountsSql(): string {
  return `CREATE TEMP TABLE ${COUNTS_TABLE} (kind varchar(8), member varchar(255), attribute varchar(255), flag boolean, line_count bigint)`;
}

export function createTypedSql(): string {
  const columns = TYPED_COLUMNS.map((c) => `${c} ${TYPED_TYPES[c]}`).join(', ');
  return `CREATE TEMP TABLE ${TYPED_TABLE} (${columns}, is_new boolean DEFAULT true)`;
}

/**
 * PostgreSQL's bulk path into an empty fact table (the caller holds an ACCESS EXCLUSIVE lock and
 * checked it is empty): TRUNCATE lets COPY write frozen rows and skip the WAL (wal_level=minimal;
 * the table is synced at commit instead), and the primary key is built once from sorted keys
 * afterwards instead of by half a million single inserts (rebuilding it also checks the keys). The
 * stamp comes from column defaults set for the COPY and dropped after it, inside the transaction.
 * They are literals (the visible time as the load starts its COPY, as the direct way's rows carry
 * it): a constant default costs the server nothing per row, `statement_timestamp()` is a call per
 * row (~15% of the COPY's server time for the real file).
 */
const literal = (v: string) => `'${v.replaceAll("'", "''")}'`;

export function bulkBefore(source: 'stream' | 'file', key: string, visibleAtMs: number): string[] {
  return [
    'TRUNCATE fact_sales_line',
    'ALTER TABLE fact_sales_line DROP CONSTRAINT fact_sales_line_pkey',
    `ALTER TABLE fact_sales_line ALTER COLUMN warehouse_visible_at SET DEFAULT ${literal(new Date(visibleAtMs).toISOString())},
  ALTER COLUMN source SET DEFAULT ${literal(source)}, ALTER COLUMN source_key SET DEFAULT ${literal(key)}`,
  ];
}
export const BULK_AFTER = [
  `ALTER TABLE fact_sales_line ALTER COLUMN warehouse_visible_at DROP DEFAULT, ALTER COLUMN source DROP DEFAULT,
  ALTER COLUMN source_key DROP DEFAULT`,
  "SET LOCAL maintenance_work_mem = '512MB'",
  'ALTER TABLE fact_sales_line ADD CONSTRAINT fact_sales_line_pkey PRIMARY KEY (invoice_no, line_no)',
];

/**
 * Merge path: which typed rows are new keys. `dropLoaded`: the rows of keys already loaded are of no
 * further use (a CSV's: only archive lines lend lineage), so they are deleted instead of marked; a
 * DELETE only marks each row, where the UPDATE wrote a new version of every one (a file dropped
 * again: 2 s of its 5.6 s load).
 */
export function markNewSql(dropLoaded = false): string {
  const match = `f.invoice_no = ${TYPED_TABLE}.invoice_no AND f.line_no = ${TYPED_TABLE}.line_no`;
  return dropLoaded
    ? `DELETE FROM ${TYPED_TABLE} USING fact_sales_line f WHERE ${match}`
    : `UPDATE ${TYPED_TABLE} SET is_new = false FROM fact_sales_line f
WHERE ${match}`;
}

/**
 * A batch of archive objects merged in one transaction (PostgreSQL): load_typed also says which
 * object each row came from. Before each object's COPY its key and place in the batch become the
 * columns' defaults: constants cost the server nothing per row (see `bulkBefore`).
 */
export const BATCH_TYPED_SQL = `ALTER TABLE ${TYPED_TABLE} ADD COLUMN source_key varchar(1024), ADD COLUMN obj integer`;
export function batchObjectSql(obj: number, key: string): string {
  return `ALTER TABLE ${TYPED_TABLE} ALTER COLUMN source_key SET DEFAULT ${literal(key)}, ALTER COLUMN obj SET DEFAULT ${Math.trunc(obj)}`;
}
/**
 * A key in several objects of one batch (the archive is at-least-once) is the first object's, as if
 * they had loaded one after the other: its later copies go. (Each object already kept only its own
 * first copy of a key.)
 */
export const DROP_BATCH_REPEATS_SQL = `DELETE FROM ${TYPED_TABLE} t USING ${TYPED_TABLE} e
WHERE e.invoice_no = t.invoice_no AND e.line_no = t.line_no AND e.obj < t.obj`;
/** Each object's new keys, for its manifest row. */
export const NEW_ROWS_PER_OBJECT_SQL = `SELECT obj, count(*) AS n FROM ${TYPED_TABLE} WHERE is_new GROUP BY obj`;

/** Merge path: the dimension counts of the new rows, computed in SQL. */
export function countNewRowsSql(): string {
  return `INSERT INTO ${COUNTS_TABLE} (kind, member, attribute, flag, line_count)
SELECT 'product', stock_code, COALESCE(description, ''), is_non_product, count(*) FROM ${TYPED_TABLE} WHERE is_new
GROUP BY stock_code, COALESCE(description, ''), is_non_product
UNION ALL
SELECT 'customer', customer_id, country_name, false, count(*) FROM ${TYPED_TABLE} WHERE is_new AND customer_id IS NOT NULL
GROUP BY customer_id, country_name
UNION ALL
SELECT 'country', country_name, '', false, 0 FROM ${TYPED_TABLE} WHERE is_new GROUP BY country_name
UNION ALL
SELECT 'invoice', invoice_no, '', false, 0 FROM ${TYPED_TABLE} WHERE is_new GROUP BY invoice_no`;
}

/**
 * Merge path: the new keys into the fact; archive lines also lend lineage to keys that lack it.
 * `keyPerRow`: a batch's rows carry their own object's key (`BATCH_TYPED_SQL`), not the plan's.
 */
export function mergeFactSteps(dialect: Dialect, plan: LoadPlan, keyPerRow = false): Statement[] {
  const d = dialectOf(dialect);
  const typed = TYPED_COLUMNS.map((c) => `s.${c}`).join(', ');
  const steps: Statement[] = [
    {
      sql: `INSERT INTO fact_sales_line (${FACT_COPY_COLUMNS.join(', ')})
SELECT ${typed}, ${d.statementTime}, CAST($1 AS varchar(6)), ${keyPerRow ? 's.source_key' : 'CAST($2 AS varchar(1024))'}
FROM ${TYPED_TABLE} s WHERE s.is_new`,
      params: keyPerRow ? [plan.source] : [plan.source, plan.objectKey],
    },
  ];
  if (plan.format === 'ndjson') {
    steps.push({
      sql: `UPDATE fact_sales_line f SET produced_at = COALESCE(f.produced_at, s.produced_at),
  accepted_at = COALESCE(f.accepted_at, s.accepted_at), stream_visible_at = COALESCE(f.stream_visible_at, s.stream_visible_at)
FROM ${TYPED_TABLE} s
WHERE NOT s.is_new AND f.invoice_no = s.invoice_no AND f.line_no = s.line_no${d.lineageCondition}`,
    });
  }
  return steps;
}

/**
 * Dimensions from the load's counts. Countries outside core/countries.ts are kept, as unknown. A
 * product's description is the most frequent over all its lines, ties -> lexicographically
 * smallest, none last; a customer's country likewise: the same whatever the load order. The
 * per-member line counts live in load_product_description / load_customer_country, so a load reads
 * only the members it touched, never the fact.
 */
export function dimensionSteps(): Statement[] {
  // Redshift's MERGE takes a table as its source, not a subquery: each source is a temp table.
  const merge = (source: string, merge: string): Statement[] => [
    { sql: `CREATE TEMP TABLE ${MERGE_SOURCE} AS ${source}` },
    { sql: merge },
    { sql: `DROP TABLE ${MERGE_SOURCE}` },
  ];
  const counts = (kind: string) =>
    `SELECT member, attribute, flag, line_count FROM ${COUNTS_TABLE} WHERE kind = '${kind}'`;
  return [
    {
      sql: `INSERT INTO dim_country (country_name, iso_code, region, is_known)
SELECT DISTINCT k.member, CAST($1 AS char(2)), CAST($2 AS varchar(32)), false FROM ${COUNTS_TABLE} k
WHERE k.kind = 'country' AND NOT EXISTS (SELECT 1 FROM dim_country c WHERE c.country_name = k.member)`,
      params: [UNKNOWN_ISO_CODE, UNKNOWN_REGION],
    },
    ...merge(
      counts('product'),
      `MERGE INTO load_product_description USING ${MERGE_SOURCE} s
ON load_product_description.stock_code = s.member AND load_product_description.description = s.attribute
WHEN MATCHED THEN UPDATE SET line_count = load_product_description.line_count + s.line_count
WHEN NOT MATCHED THEN INSERT (stock_code, description, is_non_product, line_count)
VALUES (s.member, s.attribute, s.flag, s.line_count)`,
    ),
    ...merge(
      `SELECT stock_code, CASE WHEN description = '' THEN NULL ELSE description END AS description, is_non_product
FROM (
  SELECT stock_code, description, is_non_product, row_number() OVER (PARTITION BY stock_code
    ORDER BY CASE WHEN description = '' THEN 1 ELSE 0 END, line_count DESC, description) AS rank
  FROM load_product_description
  WHERE stock_code IN (SELECT member FROM ${COUNTS_TABLE} WHERE kind = 'product')
) ranked WHERE rank = 1`,
      `MERGE INTO dim_product USING ${MERGE_SOURCE} s ON dim_product.stock_code = s.stock_code
WHEN MATCHED THEN UPDATE SET description = s.description, is_non_product = s.is_non_product
WHEN NOT MATCHED THEN INSERT (stock_code, description, is_non_product) VALUES (s.stock_code, s.description, s.is_non_product)`,
    ),
    ...merge(
      counts('customer'),
      `MERGE INTO load_customer_country USING ${MERGE_SOURCE} s
ON load_customer_country.customer_id = s.member AND load_customer_country.country_name = s.attribute
WHEN MATCHED THEN UPDATE SET line_count = load_customer_country.line_count + s.line_count
WHEN NOT MATCHED THEN INSERT (customer_id, country_name, line_count) VALUES (s.member, s.attribute, s.line_count)`,
    ),
    ...merge(
      `SELECT customer_id, country_name FROM (
  SELECT customer_id, country_name,
    row_number() OVER (PARTITION BY customer_id ORDER BY line_count DESC, country_name) AS rank
  FROM load_customer_country
  WHERE customer_id IN (SELECT member FROM ${COUNTS_TABLE} WHERE kind = 'customer')
) ranked WHERE rank = 1`,
      `MERGE INTO dim_customer USING ${MERGE_SOURCE} s ON dim_customer.customer_id = s.customer_id
WHEN MATCHED THEN UPDATE SET country_name = s.country_name
WHEN NOT MATCHED THEN INSERT (customer_id, country_name) VALUES (s.customer_id, s.country_name)`,
    ),
  ];
}

/**
 * Duplicate rows decided over each listed invoice as loaded so far, in line_no order (the source
 * order): for archive lines (an invoice's lines arrive in several objects) and for a file's
 * invoices whose rows were not contiguous (the typer only compares rows of the current invoice).
 */
export function duplicateFixStep(invoices?: ReadonlyArray<string>): Statement {
  // A short list goes in as values: the planner then reads those invoices by the primary key even
  // on a fact table it has no statistics for yet (right after the bulk path built it).
  const listed = invoices !== undefined && invoices.length <= 1000;
  const which = listed
    ? invoices.map((_, i) => `CAST($${i + 1} AS varchar(16))`).join(', ')
    : `SELECT member FROM ${COUNTS_TABLE} WHERE kind = 'invoice'`;
  return {
    sql: `UPDATE fact_sales_line SET is_duplicate_row = x.dup FROM (
  SELECT invoice_no, line_no, row_number() OVER (
      PARTITION BY invoice_no, stock_code, description, quantity, invoice_date, unit_price, customer_id, country_name
      ORDER BY line_no) > 1 AS dup
  FROM fact_sales_line WHERE invoice_no IN (${which})
) x
WHERE fact_sales_line.invoice_no = x.invoice_no AND fact_sales_line.line_no = x.line_no
  AND fact_sales_line.is_duplicate_row <> x.dup AND fact_sales_line.invoice_no IN (${which})`,
    ...(listed ? { params: invoices } : {}),
  };
}

/** The rejected rows of one load, in file order, as the quarantine's report lists them. */
export function rejectedRowsOfLoad(loadId: string): Statement {
  return {
    sql: `SELECT line_number, reason, invoice_no, stock_code, description, quantity, invoice_date, unit_price,
         customer_id, country FROM load_rejected_row WHERE load_id = $1 ORDER BY line_number`,
    params: [loadId],
  };
}

/** A staging table the loader before this one left for a load it had staged but not merged. */
export function legacyStagingTable(loadId: string): string {
  return ident(`stg_load_${loadId}`);
}

/** Whether the fact has a row: the bulk way needs it empty (asked outside its transaction, then under its lock). */
export const FACT_HAS_ROWS_SQL = 'SELECT 1 FROM fact_sales_line LIMIT 1';
