import { type Dialect, ident, type Statement } from '#adapters/warehouse';
import { UNKNOWN_ISO_CODE, UNKNOWN_REGION } from '#core/countries';
import { NON_PRODUCT_CODES } from '#core/non-product';

/**
 * The set-based SQL of one file's load (ELT): the raw file sits in an all-text staging table; these
 * statements type and validate every row at once, keep the bad ones with their reason, and MERGE
 * dimensions then facts. Everything here is SQL both PostgreSQL and Redshift accept, except what
 * `dialectOf` isolates. Regexes use `[.]` rather than `\.` because the two treat backslashes in
 * literals differently.
 */

export type SourceFormat = 'csv' | 'ndjson';

/** The source columns a CSV must have, and the line fields an archive record must have. */
export const CSV_FIELDS = [
  'InvoiceNo',
  'StockCode',
  'Description',
  'Quantity',
  'InvoiceDate',
  'UnitPrice',
  'CustomerID',
  'Country',
] as const;
export type CsvField = (typeof CSV_FIELDS)[number];

/** First byte of a staging row the loader wrote in place of a record it could not stage as is. */
export const MARKER = '\u0001';
export const BLANK_MARKER = `${MARKER}blank`;

export interface LoadPlan {
  loadId: string;
  objectKey: string;
  source: 'stream' | 'file';
  format: SourceFormat;
  /** CSV: the 1-based staging column (c1..cN) of each field, from the file's header. */
  columnOf?: Record<CsvField, number>;
  /** CSV: how many columns the header has (= staging columns). */
  columnCount?: number;
}

interface DialectSql {
  stagingTable: (name: string, columns: string) => string;
  identity: string;
  isJsonObject: (col: string) => string;
  jsonField: (col: string, key: string) => string;
  statementTime: string;
  /** Keeps PostgreSQL from inlining `reason` (a dozen regexes) into every column that tests it. */
  fence: string;
  /** PostgreSQL can skip no-op updates of matched facts; Redshift's MERGE takes no condition there. */
  matchedCondition: string;
}

export function dialectOf(dialect: Dialect): DialectSql {
  if (dialect === 'postgres') {
    return {
      // UNLOGGED: staging is re-creatable from S3, so it skips the WAL.
      stagingTable: (name, columns) => `CREATE UNLOGGED TABLE ${ident(name)} (${columns})`,
      identity: 'GENERATED ALWAYS AS IDENTITY',
      isJsonObject: (col) => `(${col} IS JSON OBJECT)`,
      jsonField: (col, key) => `json_extract_path_text(CAST(${col} AS json), '${key}')`,
      statementTime: 'statement_timestamp()',
      fence: '\n  OFFSET 0',
      matchedCondition:
        ' AND ((f.stream_visible_at IS NULL AND s.stream_visible_at IS NOT NULL) OR (f.produced_at IS NULL AND s.produced_at IS NOT NULL))',
    };
  }
  return {
    stagingTable: (name, columns) => `CREATE TABLE ${ident(name)} (${columns})`,
    identity: 'IDENTITY(1, 1)',
    isJsonObject: (col) => `(IS_VALID_JSON(${col}) AND left(trim(${col}), 1) = '{')`,
    jsonField: (col, key) => `json_extract_path_text(${col}, '${key}', true)`,
    statementTime: 'GETDATE()',
    fence: '',
    matchedCondition: '',
  };
}

/** Staging table of a load: a name derived from the load id, so a resumed load finds it. */
export function stagingTableName(loadId: string): string {
  return ident(`stg_load_${loadId}`);
}

/**
 * The columns COPY fills. A CSV's rows arrive numbered by the loader's record guard (`row_no`, file
 * order; cheaper than a sequence and kept on Redshift, whose IDENTITY does not follow file order).
 */
export function stagingColumns(plan: Pick<LoadPlan, 'format' | 'columnCount'>): string[] {
  if (plan.format === 'ndjson') return ['doc'];
  return ['row_no', ...Array.from({ length: plan.columnCount ?? 0 }, (_, i) => `c${i + 1}`)];
}

export function createStagingSql(dialect: Dialect, plan: LoadPlan): string[] {
  const table = stagingTableName(plan.loadId);
  const d = dialectOf(dialect);
  const type = dialect === 'postgres' ? 'text' : 'varchar(65535)';
  const columns =
    plan.format === 'ndjson'
      ? `row_no bigint ${d.identity}, doc ${type}`
      : stagingColumns(plan)
          .map((c) => (c === 'row_no' ? 'row_no bigint' : `${c} ${type}`))
          .join(', ');
  return [`DROP TABLE IF EXISTS ${table}`, d.stagingTable(table, columns)];
}

/** The raw relation every format is reduced to: text columns with one name per field. */
function rawSelect(dialect: Dialect, plan: LoadPlan): string {
  const table = stagingTableName(plan.loadId);
  if (plan.format === 'csv') {
    const col = (f: CsvField) => {
      const n = plan.columnOf?.[f];
      if (!n) throw new Error(`no column for ${f}`);
      return `c${n}`;
    };
    const trimmed = (f: CsvField) => `NULLIF(trim(${col(f)}), '')`;
    return `SELECT row_no, row_no + 1 AS line_number,
  COALESCE(left(c1, 1) = chr(1), false) AS is_malformed,
  CASE WHEN left(c1, 1) = chr(1) THEN 'expected ${plan.columnCount} fields, found ' || split_part(c1, ':', 2) END AS malformed_reason,
  ${trimmed('InvoiceNo')} AS invoice_no,
  ${trimmed('StockCode')} AS stock_code,
  NULLIF(trim(${col('Description')}), '') AS description,
  ${trimmed('Quantity')} AS quantity,
  ${trimmed('InvoiceDate')} AS invoice_date,
  ${trimmed('UnitPrice')} AS unit_price,
  ${trimmed('CustomerID')} AS customer_id,
  ${trimmed('Country')} AS country,
  CAST(NULL AS varchar(32)) AS line_no_raw,
  CAST(NULL AS varchar(64)) AS produced_at_raw,
  CAST(NULL AS varchar(64)) AS accepted_at_raw,
  CAST(NULL AS varchar(64)) AS stream_visible_at_raw
FROM ${table}
WHERE COALESCE(c1, '') <> chr(1) || 'blank'`;
  }
  const d = dialectOf(dialect);
  const field = (key: string) => `CASE WHEN doc_ok THEN ${d.jsonField('doc', key)} END`;
  const trimmed = (key: string) => `NULLIF(trim(${field(key)}), '')`;
  return `SELECT row_no, row_no AS line_number,
  NOT doc_ok AS is_malformed,
  CASE WHEN NOT doc_ok THEN 'not a JSON object' END AS malformed_reason,
  ${trimmed('invoiceNo')} AS invoice_no,
  ${trimmed('stockCode')} AS stock_code,
  ${trimmed('description')} AS description,
  ${trimmed('quantity')} AS quantity,
  ${trimmed('invoiceDate')} AS invoice_date,
  ${trimmed('unitPrice')} AS unit_price,
  ${trimmed('customerId')} AS customer_id,
  ${trimmed('country')} AS country,
  ${trimmed('lineNo')} AS line_no_raw,
  ${trimmed('producedAt')} AS produced_at_raw,
  ${trimmed('acceptedAt')} AS accepted_at_raw,
  ${trimmed('streamVisibleAt')} AS stream_visible_at_raw
FROM (SELECT row_no, doc, ${d.isJsonObject('doc')} AS doc_ok FROM ${table} WHERE trim(doc) <> '') j`;
}

/**
 * Format checks with translate/split_part rather than regexes: the same in both warehouses and an
 * order of magnitude cheaper than PostgreSQL's regex engine, which dominated the load's CPU time.
 */
const digits = (e: string, min: number, max: number) =>
  `COALESCE(length(${e}) BETWEEN ${min} AND ${max} AND translate(${e}, '0123456789', '') = '', false)`;
/** Digits after an optional first character matching `prefix` (a sign, a capital letter). */
const signed = (e: string, prefix: string, max: number) =>
  `(CASE WHEN left(${e}, 1) ${prefix} THEN ${digits(`substring(${e}, 2)`, 1, max)} ELSE ${digits(e, 1, max)} END)`;
const decimal3 = (e: string) => {
  const u = `(CASE WHEN left(${e}, 1) IN ('-', '+') THEN substring(${e}, 2) ELSE ${e} END)`;
  return `(${digits(`split_part(${u}, '.', 1)`, 1, 9)} AND (position('.' IN ${u}) = 0 OR ${digits(`split_part(${u}, '.', 2)`, 1, 3)}) AND split_part(${u}, '.', 3) = '')`;
};

const ISO_INSTANT =
  "'^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):?[0-5][0-9])$'";
const instant = (col: string) => `CASE WHEN ${col} ~ ${ISO_INSTANT} THEN CAST(${col} AS timestamptz) END`;

export const TYPED_TABLE = 'load_typed';

const TYPED_COLUMNS = `row_no bigint, line_number bigint, reason varchar(512), keep boolean, is_new boolean,
  invoice_no varchar(256), line_no integer, date_key integer, invoice_date timestamp, stock_code varchar(256),
  description varchar(1024), customer_id varchar(256), country varchar(256), quantity integer,
  unit_price numeric(12, 3), line_total numeric(18, 3), is_cancellation boolean, is_adjustment boolean,
  is_non_product boolean, is_duplicate_row boolean, produced_at timestamptz, accepted_at timestamptz,
  stream_visible_at timestamptz, quantity_raw varchar(256), invoice_date_raw varchar(256),
  unit_price_raw varchar(256), customer_id_raw varchar(256)`;

/** Non-product stock codes, from core: listed literally (constants, quoted) so the statement stays portable. */
function nonProductPredicate(col: string): string {
  const list = [...NON_PRODUCT_CODES].map((c) => `'${c.replaceAll("'", "''")}'`).join(', ');
  return `(upper(${col}) IN (${list}) OR (upper(left(${col}, 5)) = 'GIFT_' AND upper(${col}) ~ '^GIFT_[0-9]{4}_[0-9]+$'))`;
}

/**
 * Types and validates every staged row into `load_typed`: `reason` is the first check a row fails
 * (NULL = good), `keep` marks the first row of each natural key, `is_new` a key not yet in the fact.
 */
export function typeRowsSql(dialect: Dialect, plan: LoadPlan): string {
  const d = dialectOf(dialect);
  // CSV: line_no is the row's position among the valid rows of its invoice in file order, exactly
  // what the producer's replay assigns (it skips invalid rows too). Archive: the producer's lineNo.
  const lineNoSrc =
    plan.format === 'csv'
      ? 'CAST(1 AS integer)'
      : `CASE WHEN ${digits('line_no_raw', 1, 7)} THEN NULLIF(CAST(line_no_raw AS integer), 0) END`;
  const lineNo =
    plan.format === 'csv'
      ? 'CASE WHEN c.reason IS NULL THEN CAST(row_number() OVER (PARTITION BY c.reason IS NULL, c.invoice_no ORDER BY c.row_no) AS integer) END'
      : 'c.line_no_src';
  // A CSV's keys are unique by construction; the archive is at-least-once, so it repeats records.
  const firstOfKey =
    plan.format === 'csv'
      ? '(c.reason IS NULL)'
      : 'CASE WHEN c.reason IS NULL THEN row_number() OVER (PARTITION BY c.reason IS NULL, c.invoice_no, c.line_no ORDER BY c.row_no) = 1 ELSE false END';
  const time = `CAST(lpad(split_part(t_part, ':', 1), 2, '0') || ':' || split_part(t_part, ':', 2) || ':' || COALESCE(NULLIF(split_part(t_part, ':', 3), ''), '00') AS time)`;
  const ok = (expr: string) => `CASE WHEN c.reason IS NULL THEN ${expr} END`;
  const bad = (expr: string) => `CASE WHEN c.reason IS NOT NULL THEN left(${expr}, 256) END`;
  return `INSERT INTO ${TYPED_TABLE}
WITH raw AS (
${rawSelect(dialect, plan)}
), numbered AS (
  SELECT raw.*,
    ${lineNoSrc} AS line_no_src,
    split_part(replace(invoice_date, 'T', ' '), ' ', 1) AS d_part,
    split_part(replace(invoice_date, 'T', ' '), ' ', 2) AS t_part
  FROM raw${d.fence}
), dated AS (
  SELECT n.*,
    CASE
      WHEN ${digits("split_part(d_part, '/', 1)", 1, 2)} AND ${digits("split_part(d_part, '/', 2)", 1, 2)}
        AND ${digits("split_part(d_part, '/', 3)", 4, 4)} AND split_part(d_part, '/', 4) = ''
        THEN CAST(split_part(d_part, '/', 3) AS integer) * 10000 + CAST(split_part(d_part, '/', 1) AS integer) * 100
          + CAST(split_part(d_part, '/', 2) AS integer)
      WHEN ${digits("split_part(d_part, '-', 1)", 4, 4)} AND ${digits("split_part(d_part, '-', 2)", 2, 2)}
        AND ${digits("split_part(d_part, '-', 3)", 2, 2)} AND split_part(d_part, '-', 4) = ''
        THEN CAST(replace(d_part, '-', '') AS integer)
    END AS parsed_date_key,
    CASE
      WHEN ${digits("split_part(t_part, ':', 1)", 1, 2)} AND ${digits("split_part(t_part, ':', 2)", 2, 2)}
        AND (split_part(t_part, ':', 3) = '' OR ${digits("split_part(t_part, ':', 3)", 2, 2)})
        AND split_part(t_part, ':', 4) = ''
        THEN CAST(split_part(t_part, ':', 1) AS integer) < 24 AND CAST(split_part(t_part, ':', 2) AS integer) < 60
          AND CAST(COALESCE(NULLIF(split_part(t_part, ':', 3), ''), '0') AS integer) < 60
      ELSE false
    END AS time_ok
  FROM numbered n${d.fence}
), checked AS (
  SELECT d.*, dd.full_date,
    CASE
      WHEN d.is_malformed THEN d.malformed_reason
      WHEN d.invoice_no IS NULL THEN 'InvoiceNo is missing'
      WHEN NOT ${signed('d.invoice_no', "BETWEEN 'A' AND 'Z'", 10)} THEN 'InvoiceNo must be digits, optionally after one capital letter'
      WHEN d.line_no_src IS NULL THEN 'lineNo is missing or not a positive whole number'
      WHEN d.stock_code IS NULL THEN 'StockCode is missing'
      WHEN length(d.stock_code) > 32 THEN 'StockCode is longer than 32 characters'
      WHEN length(d.description) > 255 THEN 'Description is longer than 255 characters'
      WHEN d.quantity IS NULL THEN 'Quantity is missing'
      WHEN NOT ${signed('d.quantity', "IN ('-', '+')", 8)} THEN 'Quantity must be a whole number'
      WHEN abs(CAST(d.quantity AS integer)) > 10000000 THEN 'Quantity is out of range (|q| <= 10,000,000)'
      WHEN d.invoice_date IS NULL THEN 'InvoiceDate is missing'
      WHEN d.parsed_date_key IS NULL OR NOT d.time_ok THEN 'InvoiceDate must be M/D/YYYY H:MM or YYYY-MM-DD HH:MM[:SS]'
      WHEN dd.date_key IS NULL THEN 'InvoiceDate is not a calendar date in 2000-2040'
      WHEN d.unit_price IS NULL THEN 'UnitPrice is missing'
      WHEN NOT ${decimal3('d.unit_price')} THEN 'UnitPrice must be a decimal with at most 3 decimal places'
      WHEN d.customer_id IS NOT NULL AND NOT (${digits("split_part(d.customer_id, '.', 1)", 1, 12)}
        AND (position('.' IN d.customer_id) = 0
          OR (split_part(d.customer_id, '.', 2) <> '' AND translate(split_part(d.customer_id, '.', 2), '0', '') = ''))
        AND split_part(d.customer_id, '.', 3) = '') THEN 'CustomerID must be a whole number'
      WHEN d.country IS NULL THEN 'Country is missing'
      WHEN length(d.country) > 64 THEN 'Country is longer than 64 characters'
    END AS reason
  FROM dated d LEFT JOIN dim_date dd ON dd.date_key = d.parsed_date_key${d.fence}
), lined AS (
  SELECT c.*, ${lineNo} AS line_no,
    CASE WHEN c.reason IS NULL THEN row_number() OVER (
      PARTITION BY c.reason IS NULL, c.invoice_no, c.stock_code, c.description, c.quantity, c.invoice_date,
        c.unit_price, c.customer_id, c.country
      ORDER BY c.row_no) > 1 END AS dup
  FROM checked c
), keyed AS (
  SELECT c.*, ${firstOfKey} AS first_of_key
  FROM lined c
)
SELECT c.row_no, c.line_number, c.reason, c.first_of_key, c.first_of_key AND f.invoice_no IS NULL,
  left(c.invoice_no, 256), c.line_no, ${ok('c.parsed_date_key')}, ${ok(`c.full_date + ${time}`)},
  left(c.stock_code, 256), left(c.description, 1024), ${ok("split_part(c.customer_id, '.', 1)")}, left(c.country, 256),
  ${ok('CAST(c.quantity AS integer)')}, ${ok('CAST(c.unit_price AS numeric(12, 3))')},
  ${ok('CAST(CAST(c.quantity AS integer) * CAST(c.unit_price AS numeric(12, 3)) AS numeric(18, 3))')},
  ${ok("left(c.invoice_no, 1) = 'C'")}, ${ok("left(c.invoice_no, 1) = 'A'")}, ${ok(nonProductPredicate('c.stock_code'))},
  ${ok('c.dup')}, ${ok(instant('c.produced_at_raw'))}, ${ok(instant('c.accepted_at_raw'))},
  ${ok(instant('c.stream_visible_at_raw'))},
  ${bad('c.quantity')}, ${bad('c.invoice_date')}, ${bad('c.unit_price')}, ${bad('c.customer_id')}
FROM keyed c
LEFT JOIN fact_sales_line f ON c.first_of_key AND f.invoice_no = c.invoice_no AND f.line_no = c.line_no`;
}

const NEW_ROWS = `FROM ${TYPED_TABLE} t WHERE t.reason IS NULL AND t.is_new`;

/** The statements of the merge transaction, in order; the manifest row ends up 'loaded'. */
export function mergeSteps(dialect: Dialect, plan: LoadPlan, etag: string): Statement[] {
  const d = dialectOf(dialect);
  const staging = stagingTableName(plan.loadId);
  const manifestKey = 'object_key = $1 AND etag = $2';
  const steps: Statement[] = [
    // The claim: only a staged load is merged, and the row lock keeps a second loader out.
    {
      sql: `UPDATE load_manifest SET attempts = attempts + 1 WHERE ${manifestKey} AND status = 'staged'`,
      params: [plan.objectKey, etag],
      requireRows: true,
    },
    ...(dialect === 'postgres' ? [{ sql: "SET LOCAL work_mem = '256MB'" }] : []),
    { sql: `DROP TABLE IF EXISTS ${TYPED_TABLE}` },
    { sql: `CREATE TEMP TABLE ${TYPED_TABLE} (${TYPED_COLUMNS})` },
    { sql: typeRowsSql(dialect, plan) },
    // The planner knows nothing of a fresh temp table; without statistics it picks nested loops.
    { sql: `ANALYZE ${TYPED_TABLE}` },
    {
      sql: `INSERT INTO load_rejected_row (load_id, object_key, line_number, reason, invoice_no, stock_code, description,
  quantity, invoice_date, unit_price, customer_id, country, rejected_at)
SELECT CAST($1 AS varchar(32)), CAST($2 AS varchar(1024)), line_number, reason, invoice_no, stock_code, description,
  quantity_raw, invoice_date_raw, unit_price_raw, customer_id_raw, country, CURRENT_TIMESTAMP
FROM ${TYPED_TABLE} WHERE reason IS NOT NULL`,
      params: [plan.loadId, plan.objectKey],
    },
    // Dimensions first. Countries outside core/countries.ts are kept, as unknown.
    {
      sql: `INSERT INTO dim_country (country_name, iso_code, region, is_known)
SELECT DISTINCT t.country, CAST($1 AS char(2)), CAST($2 AS varchar(32)), false ${NEW_ROWS}
  AND NOT EXISTS (SELECT 1 FROM dim_country c WHERE c.country_name = t.country)`,
      params: [UNKNOWN_ISO_CODE, UNKNOWN_REGION],
    },
    // A product's description is the most frequent over all its lines (this file's new ones and
    // those already loaded), ties -> lexicographically smallest: the same whatever the load order.
    {
      sql: `MERGE INTO dim_product USING (
  SELECT stock_code, description, is_non_product FROM (
    SELECT stock_code, description, is_non_product,
      row_number() OVER (PARTITION BY stock_code
        ORDER BY CASE WHEN description IS NULL THEN 1 ELSE 0 END, count(*) DESC, description) AS rank
    FROM (
      SELECT f.stock_code, f.description, f.is_non_product FROM fact_sales_line f
      WHERE f.stock_code IN (SELECT t.stock_code ${NEW_ROWS})
      UNION ALL
      SELECT t.stock_code, t.description, t.is_non_product ${NEW_ROWS}
    ) lines
    GROUP BY stock_code, description, is_non_product
  ) ranked WHERE rank = 1
) s ON dim_product.stock_code = s.stock_code
WHEN MATCHED THEN UPDATE SET description = s.description, is_non_product = s.is_non_product
WHEN NOT MATCHED THEN INSERT (stock_code, description, is_non_product) VALUES (s.stock_code, s.description, s.is_non_product)`,
    },
    {
      sql: `MERGE INTO dim_customer USING (
  SELECT customer_id, country_name FROM (
    SELECT customer_id, country_name,
      row_number() OVER (PARTITION BY customer_id ORDER BY count(*) DESC, country_name) AS rank
    FROM (
      SELECT f.customer_id, f.country_name FROM fact_sales_line f
      WHERE f.customer_id IN (SELECT t.customer_id ${NEW_ROWS} AND t.customer_id IS NOT NULL)
      UNION ALL
      SELECT t.customer_id, t.country ${NEW_ROWS} AND t.customer_id IS NOT NULL
    ) lines
    GROUP BY customer_id, country_name
  ) ranked WHERE rank = 1
) s ON dim_customer.customer_id = s.customer_id
WHEN MATCHED THEN UPDATE SET country_name = s.country_name
WHEN NOT MATCHED THEN INSERT (customer_id, country_name) VALUES (s.customer_id, s.country_name)`,
    },
    // Facts: new keys are inserted; a key already there keeps its values (the first arrival wins,
    // and file and stream agree by construction) and only gains stream lineage it lacked.
    {
      sql: `MERGE INTO fact_sales_line f USING (SELECT * FROM ${TYPED_TABLE} WHERE reason IS NULL AND keep) s
ON f.invoice_no = s.invoice_no AND f.line_no = s.line_no
WHEN MATCHED${d.matchedCondition} THEN UPDATE SET produced_at = COALESCE(f.produced_at, s.produced_at),
  accepted_at = COALESCE(f.accepted_at, s.accepted_at), stream_visible_at = COALESCE(f.stream_visible_at, s.stream_visible_at)
WHEN NOT MATCHED THEN INSERT (invoice_no, line_no, date_key, invoice_date, stock_code, description, customer_id,
  country_name, quantity, unit_price, line_total, is_cancellation, is_adjustment, is_non_product, is_duplicate_row,
  produced_at, accepted_at, stream_visible_at, warehouse_visible_at, source, source_key)
VALUES (s.invoice_no, s.line_no, s.date_key, s.invoice_date, s.stock_code, s.description, s.customer_id, s.country,
  s.quantity, s.unit_price, s.line_total, s.is_cancellation, s.is_adjustment, s.is_non_product, s.is_duplicate_row,
  s.produced_at, s.accepted_at, s.stream_visible_at, ${d.statementTime}, CAST($1 AS varchar(6)), CAST($2 AS varchar(1024)))`,
      params: [plan.source, plan.objectKey],
    },
  ];
  if (plan.format === 'ndjson') {
    // An invoice's lines can arrive in several archive objects: duplicates are decided over the
    // invoice as loaded so far, in lineNo order (the source order).
    steps.push({
      sql: `UPDATE fact_sales_line SET is_duplicate_row = x.dup FROM (
  SELECT invoice_no, line_no, row_number() OVER (
      PARTITION BY invoice_no, stock_code, description, quantity, invoice_date, unit_price, customer_id, country_name
      ORDER BY line_no) > 1 AS dup
  FROM fact_sales_line WHERE invoice_no IN (SELECT t.invoice_no ${NEW_ROWS})
) x
WHERE fact_sales_line.invoice_no = x.invoice_no AND fact_sales_line.line_no = x.line_no
  AND fact_sales_line.is_duplicate_row <> x.dup`,
    });
  }
  steps.push(
    {
      sql: `UPDATE load_manifest SET status = 'loaded', error = NULL,
  rows_read = (SELECT count(*) FROM ${TYPED_TABLE}),
  rows_loaded = (SELECT count(*) FROM ${TYPED_TABLE} WHERE reason IS NULL AND keep),
  rows_new = (SELECT count(*) FROM ${TYPED_TABLE} WHERE reason IS NULL AND is_new),
  rows_rejected = (SELECT count(*) FROM ${TYPED_TABLE} WHERE reason IS NOT NULL),
  finished_at = ${d.statementTime}
WHERE ${manifestKey}`,
      params: [plan.objectKey, etag],
    },
    { sql: `DROP TABLE ${staging}` },
    { sql: `DROP TABLE ${TYPED_TABLE}` },
  );
  return steps;
}
