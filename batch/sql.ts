import { type Dialect, ident, type Statement } from '#adapters/warehouse';
import { UNKNOWN_ISO_CODE, UNKNOWN_REGION } from '#core/countries';
import { NON_PRODUCT_CODES } from '#core/non-product';
import { SOURCE_COLUMNS } from '#core/source-row';

/**
 * The set-based SQL of one file's load (ELT): the raw file sits in an all-text staging table; these
 * statements type and validate every row at once, keep the bad ones with their reason, and MERGE
 * dimensions then facts. Everything here is SQL both PostgreSQL and Redshift accept, except what
 * `dialectOf` isolates. Regexes use `[.]` rather than `\.` because the two treat backslashes in
 * literals differently.
 */

export type SourceFormat = 'csv' | 'ndjson';

/** The source columns a CSV must have, and the line fields an archive record must have. */
export const CSV_FIELDS = SOURCE_COLUMNS;
export type CsvField = (typeof CSV_FIELDS)[number];

/** First byte of a staging row the loader wrote in place of a record it could not stage as is. */
export const MARKER = '\u0001';
export const BLANK_MARKER = `${MARKER}blank`;
/** Followed by the field count found. */
export const MALFORMED_MARKER = `${MARKER}malformed:`;
export const NUL_MARKER = `${MARKER}nul`;
/** Followed by the name of the field holding the control character. */
export const CONTROL_MARKER = `${MARKER}control:`;

/**
 * The control characters the API refuses in text fields (core/invoice-line.ts), less U+0000 (no
 * PostgreSQL text holds it; the record guard and `NDJSON_NUL` catch it before SQL sees text).
 * chr() calls of constants are folded once when the statement is planned.
 */
const CONTROL_CHARS = [
  ...Array.from({ length: 8 }, (_, i) => i + 1),
  0x0b,
  0x0c,
  ...Array.from({ length: 0x20 - 0x0e }, (_, i) => i + 0x0e),
  0x7f,
]
  .map((c) => `chr(${c})`)
  .join(' || ');
/** A text holds one of CONTROL_CHARS (NULL stays NULL). */
const hasControl = (e: string) => `translate(${e}, ${CONTROL_CHARS}, '') <> ${e}`;
/** JSON's escape of U+0000, which json_extract_path_text refuses to turn into text (the statement fails). */
const NDJSON_NUL = "chr(92) || 'u0000'";

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
  CASE WHEN left(c1, 1) = chr(1) THEN CASE split_part(c1, ':', 1)
    WHEN chr(1) || 'nul' THEN 'contains a NUL byte'
    WHEN chr(1) || 'control' THEN split_part(c1, ':', 2) || ' contains control characters'
    ELSE 'expected ${plan.columnCount} fields, found ' || split_part(c1, ':', 2) END END AS malformed_reason,
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
  CASE WHEN has_nul THEN 'contains a NUL character' WHEN NOT doc_ok THEN 'not a JSON object' END AS malformed_reason,
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
FROM (
  SELECT row_no, doc, has_nul, NOT has_nul AND ${d.isJsonObject('doc')} AS doc_ok
  FROM (SELECT row_no, doc, position(${NDJSON_NUL} IN doc) > 0 AS has_nul FROM ${table} WHERE trim(doc) <> '') n
) j`;
}

/**
 * Format checks with translate/split_part rather than regexes: the same in both warehouses and an
 * order of magnitude cheaper than PostgreSQL's regex engine. Each piece a check needs is computed once
 * per row (the `parsed` level) and every check reads those pieces: a load's time is mostly the number
 * of function calls per row. `octet_length` (no character counting) is used once the text is known
 * to be ASCII digits, or as a sufficient bound before the exact `length`.
 */
const DIGITS = "'0123456789'";
const digits = (e: string, min: number, max: number) =>
  `COALESCE(length(${e}) BETWEEN ${min} AND ${max} AND translate(${e}, ${DIGITS}, '') = '', false)`;
/** Digits only (the translate already computed), between min and max of them. */
const allDigits = (e: string, rest: string, min: number, max: number) =>
  `(${rest} = '' AND octet_length(${e}) BETWEEN ${min} AND ${max})`;
/** At most `max` characters, counting them only when the byte length says it might be too long. */
const atMost = (e: string, max: number) => `(octet_length(${e}) <= ${max} OR length(${e}) <= ${max})`;

const ISO_INSTANT =
  "'^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):?[0-5][0-9])$'";
const instant = (col: string) => `CASE WHEN ${col} ~ ${ISO_INSTANT} THEN CAST(${col} AS timestamptz) END`;

/**
 * The API's rule for text fields, on archive lines (they passed the API, so this should never fire).
 * A CSV's rows are checked by the record guard on their bytes, which costs SQL nothing per row.
 */
const ndjsonControlChecks = `
      WHEN ${hasControl('p.stock_code')} THEN 'StockCode contains control characters'
      WHEN ${hasControl('p.description')} THEN 'Description contains control characters'
      WHEN ${hasControl('p.country')} THEN 'Country contains control characters'`;

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
 * The date part passes the old shape test (M/D/YYYY or YYYY-MM-DD, digit counts) though it is no
 * calendar day: only evaluated for a row whose date did not match `load_date_text`, to word its reason.
 */
const DATE_SHAPE = `((${digits("split_part(p.d_part, '/', 1)", 1, 2)} AND ${digits("split_part(p.d_part, '/', 2)", 1, 2)}
        AND ${digits("split_part(p.d_part, '/', 3)", 4, 4)} AND split_part(p.d_part, '/', 4) = '')
      OR (${digits("split_part(p.d_part, '-', 1)", 4, 4)} AND ${digits("split_part(p.d_part, '-', 2)", 2, 2)}
        AND ${digits("split_part(p.d_part, '-', 3)", 2, 2)} AND split_part(p.d_part, '-', 4) = ''))`;

/**
 * Types and validates every staged row into `load_typed`: `reason` is the first check a row fails
 * (NULL = good), `keep` marks the first row of each natural key, `is_new` a key not yet in the fact.
 * Dates and times are typed by joining their text to `load_date_text` / `load_time_text` (every
 * accepted form of every day and second), which also validates them.
 */
export function typeRowsSql(dialect: Dialect, plan: LoadPlan): string {
  const d = dialectOf(dialect);
  const csv = plan.format === 'csv';
  // CSV: line_no is the row's position among the valid rows of its invoice in file order, exactly
  // what the producer's replay assigns (it skips invalid rows too). Archive: the producer's lineNo.
  const lineNoSrc = csv
    ? 'CAST(1 AS integer)'
    : `CASE WHEN ${digits('line_no_raw', 1, 7)} THEN NULLIF(CAST(line_no_raw AS integer), 0) END`;
  const lineNo = csv
    ? 'CASE WHEN c.reason IS NULL THEN CAST(row_number() OVER (PARTITION BY c.reason IS NULL, c.invoice_no ORDER BY c.row_no) AS integer) END'
    : 'c.line_no_src';
  // A CSV's keys are unique by construction; the archive is at-least-once, so it repeats records.
  const firstOfKey = csv
    ? '(c.reason IS NULL)'
    : 'CASE WHEN c.reason IS NULL THEN row_number() OVER (PARTITION BY c.reason IS NULL, c.invoice_no, c.line_no ORDER BY c.row_no) = 1 ELSE false END';
  const ok = (expr: string) => `CASE WHEN c.reason IS NULL THEN ${expr} END`;
  const bad = (expr: string) => `CASE WHEN c.reason IS NOT NULL THEN left(${expr}, 256) END`;
  const lineage = (col: string) => (csv ? 'CAST(NULL AS timestamptz)' : ok(instant(col)));
  return `INSERT INTO ${TYPED_TABLE}
WITH raw AS (
${rawSelect(dialect, plan)}
), parsed AS (
  SELECT raw.*,
    ${lineNoSrc} AS line_no_src,
    translate(invoice_no, ${DIGITS}, '') AS inv_rest,
    CASE WHEN left(quantity, 1) IN ('-', '+') THEN substring(quantity, 2) ELSE quantity END AS q_unsigned,
    CASE WHEN left(unit_price, 1) IN ('-', '+') THEN substring(unit_price, 2) ELSE unit_price END AS p_unsigned,
    split_part(customer_id, '.', 1) AS cust,
    split_part(replace(invoice_date, 'T', ' '), ' ', 1) AS d_part,
    split_part(replace(invoice_date, 'T', ' '), ' ', 2) AS t_part
  FROM raw${d.fence}
), shaped AS (
  SELECT p.*,
    translate(p.q_unsigned, ${DIGITS}, '') AS q_rest,
    translate(p.p_unsigned, ${DIGITS}, '') AS p_rest,
    position('.' IN p.p_unsigned) AS p_dot,
    translate(p.customer_id, ${DIGITS}, '') AS c_rest
  FROM parsed p${d.fence}
), checked AS (
  SELECT p.*, dt.date_key, dt.full_date, tt.time_of_day,
    CASE WHEN ${allDigits('p.q_unsigned', 'p.q_rest', 1, 8)} THEN CAST(p.quantity AS integer) END AS q_int,
    CASE
      WHEN p.is_malformed THEN p.malformed_reason${csv ? '' : ndjsonControlChecks}
      WHEN p.invoice_no IS NULL THEN 'InvoiceNo is missing'
      WHEN NOT (${allDigits('p.invoice_no', 'p.inv_rest', 1, 10)}
        OR (p.inv_rest = left(p.invoice_no, 1) AND p.inv_rest BETWEEN 'A' AND 'Z' AND octet_length(p.invoice_no) BETWEEN 2 AND 11))
        THEN 'InvoiceNo must be digits, optionally after one capital letter'
      WHEN p.line_no_src IS NULL THEN 'lineNo is missing or not a positive whole number'
      WHEN p.stock_code IS NULL THEN 'StockCode is missing'
      WHEN NOT ${atMost('p.stock_code', 32)} THEN 'StockCode is longer than 32 characters'
      WHEN NOT ${atMost('p.description', 255)} THEN 'Description is longer than 255 characters'
      WHEN p.quantity IS NULL THEN 'Quantity is missing'
      WHEN NOT ${allDigits('p.q_unsigned', 'p.q_rest', 1, 8)} THEN 'Quantity must be a whole number'
      WHEN abs(CAST(p.quantity AS integer)) > 10000000 THEN 'Quantity is out of range (|q| <= 10,000,000)'
      WHEN p.invoice_date IS NULL THEN 'InvoiceDate is missing'
      WHEN tt.time_of_day IS NULL OR (dt.date_key IS NULL AND NOT ${DATE_SHAPE})
        THEN 'InvoiceDate must be M/D/YYYY H:MM or YYYY-MM-DD HH:MM[:SS]'
      WHEN dt.date_key IS NULL THEN 'InvoiceDate is not a calendar date in 2000-2040'
      WHEN p.unit_price IS NULL THEN 'UnitPrice is missing'
      WHEN NOT (${allDigits('p.p_unsigned', 'p.p_rest', 1, 9)}
        OR (p.p_rest = '.' AND p.p_dot BETWEEN 2 AND 10 AND octet_length(p.p_unsigned) - p.p_dot BETWEEN 1 AND 3))
        THEN 'UnitPrice must be a decimal with at most 3 decimal places'
      WHEN p.customer_id IS NOT NULL AND NOT (p.c_rest IN ('', '.') AND octet_length(p.cust) BETWEEN 1 AND 12
        AND (p.c_rest = '' OR (octet_length(p.customer_id) > octet_length(p.cust) + 1
          AND translate(substring(p.customer_id, octet_length(p.cust) + 2), '0', '') = '')))
        THEN 'CustomerID must be a whole number'
      WHEN p.country IS NULL THEN 'Country is missing'
      WHEN NOT ${atMost('p.country', 64)} THEN 'Country is longer than 64 characters'
    END AS reason
  FROM shaped p
  LEFT JOIN load_date_text dt ON dt.date_text = p.d_part
  LEFT JOIN load_time_text tt ON tt.time_text = p.t_part${d.fence}
), lined AS (
  SELECT c.*, ${lineNo} AS line_no, ${ok('CAST(c.unit_price AS numeric(12, 3))')} AS price,
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
  left(c.invoice_no, 256), c.line_no, ${ok('c.date_key')}, ${ok('c.full_date + c.time_of_day')},
  left(c.stock_code, 256), left(c.description, 1024), ${ok('c.cust')}, left(c.country, 256),
  ${ok('c.q_int')}, c.price, CAST(c.q_int * c.price AS numeric(18, 3)),
  ${ok("c.inv_rest = 'C'")}, ${ok("c.inv_rest = 'A'")}, ${ok(nonProductPredicate('c.stock_code'))},
  ${ok('c.dup')}, ${lineage('c.produced_at_raw')}, ${lineage('c.accepted_at_raw')},
  ${lineage('c.stream_visible_at_raw')},
  ${bad('c.quantity')}, ${bad('c.invoice_date')}, ${bad('c.unit_price')}, ${bad('c.customer_id')}
FROM keyed c
LEFT JOIN fact_sales_line f ON c.first_of_key AND f.invoice_no = c.invoice_no AND f.line_no = c.line_no`;
}

const NEW_ROWS = `FROM ${TYPED_TABLE} t WHERE t.reason IS NULL AND t.is_new`;

const FACT_COLUMNS = `invoice_no, line_no, date_key, invoice_date, stock_code, description, customer_id,
  country_name, quantity, unit_price, line_total, is_cancellation, is_adjustment, is_non_product, is_duplicate_row,
  produced_at, accepted_at, stream_visible_at, warehouse_visible_at, source, source_key`;

function factValues(d: DialectSql): string {
  return `s.invoice_no, s.line_no, s.date_key, s.invoice_date, s.stock_code, s.description, s.customer_id, s.country,
  s.quantity, s.unit_price, s.line_total, s.is_cancellation, s.is_adjustment, s.is_non_product, s.is_duplicate_row,
  s.produced_at, s.accepted_at, s.stream_visible_at, ${d.statementTime}, CAST($1 AS varchar(6)), CAST($2 AS varchar(1024))`;
}

/**
 * The fact write. PostgreSQL: `is_new` was decided against the primary key while typing, so new keys
 * are a plain INSERT (a MERGE joins every staged row to the fact again, ~40% of the old merge time),
 * and only an archive load, the one source that carries lineage, updates the keys that lack it.
 * Redshift: one MERGE, which it plans as a single pass over the fact.
 */
function factSteps(dialect: Dialect, plan: LoadPlan): Statement[] {
  const d = dialectOf(dialect);
  const params = [plan.source, plan.objectKey];
  if (dialect === 'redshift') {
    return [
      {
        sql: `MERGE INTO fact_sales_line f USING (SELECT * FROM ${TYPED_TABLE} WHERE reason IS NULL AND keep) s
ON f.invoice_no = s.invoice_no AND f.line_no = s.line_no
WHEN MATCHED${d.matchedCondition} THEN UPDATE SET produced_at = COALESCE(f.produced_at, s.produced_at),
  accepted_at = COALESCE(f.accepted_at, s.accepted_at), stream_visible_at = COALESCE(f.stream_visible_at, s.stream_visible_at)
WHEN NOT MATCHED THEN INSERT (${FACT_COLUMNS})
VALUES (${factValues(d)})`,
        params,
      },
    ];
  }
  const steps: Statement[] = [
    {
      sql: `INSERT INTO fact_sales_line (${FACT_COLUMNS})
SELECT ${factValues(d)}
FROM ${TYPED_TABLE} s WHERE s.reason IS NULL AND s.is_new`,
      params,
    },
  ];
  if (plan.format === 'ndjson') {
    steps.push({
      sql: `UPDATE fact_sales_line f SET produced_at = COALESCE(f.produced_at, s.produced_at),
  accepted_at = COALESCE(f.accepted_at, s.accepted_at), stream_visible_at = COALESCE(f.stream_visible_at, s.stream_visible_at)
FROM ${TYPED_TABLE} s
WHERE s.reason IS NULL AND s.keep AND NOT s.is_new AND f.invoice_no = s.invoice_no AND f.line_no = s.line_no${d.matchedCondition}`,
    });
  }
  return steps;
}

const REJECTED_VALUES: Record<CsvField, string> = {
  InvoiceNo: 'invoice_no',
  StockCode: 'stock_code',
  Description: 'description',
  Quantity: 'quantity_raw',
  InvoiceDate: 'invoice_date_raw',
  UnitPrice: 'unit_price_raw',
  CustomerID: 'customer_id_raw',
  Country: 'country',
};

/**
 * The source values of a rejected row. A CSV marker row holds the marker in its first column, not a
 * value: whichever field the header puts first shows NULL there instead of the marker.
 */
function rejectedValues(plan: LoadPlan): string {
  return CSV_FIELDS.map((f) => {
    const col = REJECTED_VALUES[f];
    return plan.format === 'csv' && plan.columnOf?.[f] === 1
      ? `CASE WHEN left(${col}, 1) = chr(1) THEN NULL ELSE ${col} END`
      : col;
  }).join(', ');
}

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
SELECT CAST($1 AS varchar(32)), CAST($2 AS varchar(1024)), line_number, reason, ${rejectedValues(plan)}, CURRENT_TIMESTAMP
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
    ...factSteps(dialect, plan),
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
