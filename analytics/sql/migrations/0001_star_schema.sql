-- Star schema, manifest and quarantine tables. Redshift-compatible SQL: no SERIAL, no arrays,
-- no ON CONFLICT; keys are natural (dimension members are identified by their source codes) and
-- constraints are declared for documentation (Redshift does not enforce them; PostgreSQL does
-- for primary keys, which is what makes the fact MERGE's natural key unique locally).

CREATE TABLE IF NOT EXISTS dim_date (
  date_key integer NOT NULL PRIMARY KEY, -- YYYYMMDD
  full_date date NOT NULL,
  year smallint NOT NULL,
  quarter smallint NOT NULL,
  month smallint NOT NULL,
  month_name varchar(9) NOT NULL,
  day_of_month smallint NOT NULL,
  day_of_week smallint NOT NULL, -- 0 = Sunday .. 6 = Saturday
  day_name varchar(9) NOT NULL,
  week_of_year smallint NOT NULL, -- ISO week
  year_month char(7) NOT NULL, -- YYYY-MM
  is_weekend boolean NOT NULL
);

CREATE TABLE IF NOT EXISTS dim_country (
  country_name varchar(64) NOT NULL PRIMARY KEY, -- as the source spells it
  iso_code char(2) NOT NULL,
  region varchar(32) NOT NULL,
  is_known boolean NOT NULL
);

CREATE TABLE IF NOT EXISTS dim_customer (
  customer_id varchar(12) NOT NULL PRIMARY KEY,
  -- Most frequent country over the customer's lines; ties -> alphabetically first.
  country_name varchar(64) NOT NULL
);

CREATE TABLE IF NOT EXISTS dim_product (
  stock_code varchar(32) NOT NULL PRIMARY KEY,
  -- Most frequent non-empty description over the code's lines; ties -> lexicographically smallest.
  description varchar(255),
  is_non_product boolean NOT NULL
);

CREATE TABLE IF NOT EXISTS fact_sales_line (
  invoice_no varchar(16) NOT NULL,
  line_no integer NOT NULL,
  date_key integer NOT NULL,
  invoice_date timestamp NOT NULL, -- Europe/London wall-clock time, as in the source
  stock_code varchar(32) NOT NULL,
  description varchar(255), -- the line's own description (the product's may differ)
  customer_id varchar(12),
  country_name varchar(64) NOT NULL,
  quantity integer NOT NULL,
  unit_price numeric(12, 3) NOT NULL,
  line_total numeric(18, 3) NOT NULL,
  is_cancellation boolean NOT NULL,
  is_adjustment boolean NOT NULL,
  is_non_product boolean NOT NULL,
  is_duplicate_row boolean NOT NULL,
  produced_at timestamptz,
  accepted_at timestamptz,
  stream_visible_at timestamptz,
  warehouse_visible_at timestamptz NOT NULL,
  source varchar(6) NOT NULL, -- 'stream' | 'file'
  source_key varchar(1024) NOT NULL,
  PRIMARY KEY (invoice_no, line_no)
);

CREATE TABLE IF NOT EXISTS load_manifest (
  object_key varchar(1024) NOT NULL,
  etag varchar(128) NOT NULL,
  load_id varchar(32) NOT NULL,
  source varchar(6) NOT NULL,
  format varchar(8) NOT NULL, -- 'csv' | 'ndjson'
  -- pending -> staged -> loaded | quarantined | failed (failed is retried by the next sweep)
  status varchar(12) NOT NULL,
  attempts integer NOT NULL,
  size_bytes bigint,
  encoding varchar(8),
  header varchar(4096), -- the CSV header as read (JSON array), so a resumed load maps columns again
  extra_columns varchar(1024),
  rows_read bigint,
  rows_loaded bigint,
  rows_new bigint,
  rows_rejected bigint,
  error varchar(4096),
  discovered_at timestamptz NOT NULL,
  started_at timestamptz,
  staged_at timestamptz,
  finished_at timestamptz,
  stage_ms integer,
  merge_ms integer,
  PRIMARY KEY (object_key, etag)
);

CREATE TABLE IF NOT EXISTS load_rejected_row (
  load_id varchar(32) NOT NULL,
  object_key varchar(1024) NOT NULL,
  line_number bigint NOT NULL, -- 1 = the header for CSV; the line for NDJSON
  reason varchar(512) NOT NULL,
  invoice_no varchar(256),
  stock_code varchar(256),
  description varchar(1024),
  quantity varchar(256),
  invoice_date varchar(256),
  unit_price varchar(256),
  customer_id varchar(256),
  country varchar(256),
  rejected_at timestamptz NOT NULL,
  PRIMARY KEY (load_id, line_number)
);
