-- totesys warehouse (../shared/data/totesys/SCHEMA.md): three stars, sales, purchases, payments.
-- Columns as cdc/transform-model.ts writes them to Parquet (test/unit/cdc-transform-load.test.ts checks the two agree).
-- The dimensions, the same SQL on both warehouses: upserted on their key by the load.
-- The facts are in 0201_totesys_facts.<dialect>.sql: only their identity syntax differs.
CREATE SCHEMA IF NOT EXISTS totesys;

CREATE TABLE IF NOT EXISTS totesys.dim_date (
  date_id date NOT NULL,
  year integer NOT NULL,
  month integer NOT NULL,
  day integer NOT NULL,
  day_of_week integer NOT NULL,
  day_name varchar(1024) NOT NULL,
  month_name varchar(1024) NOT NULL,
  quarter integer NOT NULL,
  PRIMARY KEY (date_id)
);

CREATE TABLE IF NOT EXISTS totesys.dim_staff (
  staff_id integer NOT NULL,
  first_name varchar(1024) NOT NULL,
  last_name varchar(1024) NOT NULL,
  department_name varchar(1024) NOT NULL,
  location varchar(1024),
  email_address varchar(1024) NOT NULL,
  PRIMARY KEY (staff_id)
);

CREATE TABLE IF NOT EXISTS totesys.dim_location (
  location_id integer NOT NULL,
  address_line_1 varchar(1024) NOT NULL,
  address_line_2 varchar(1024),
  district varchar(1024),
  city varchar(1024) NOT NULL,
  postal_code varchar(1024) NOT NULL,
  country varchar(1024) NOT NULL,
  phone varchar(1024) NOT NULL,
  PRIMARY KEY (location_id)
);

CREATE TABLE IF NOT EXISTS totesys.dim_currency (
  currency_id integer NOT NULL,
  currency_code varchar(1024) NOT NULL,
  currency_name varchar(1024) NOT NULL,
  PRIMARY KEY (currency_id)
);

CREATE TABLE IF NOT EXISTS totesys.dim_design (
  design_id integer NOT NULL,
  design_name varchar(1024) NOT NULL,
  file_location varchar(1024) NOT NULL,
  file_name varchar(1024) NOT NULL,
  PRIMARY KEY (design_id)
);

CREATE TABLE IF NOT EXISTS totesys.dim_counterparty (
  counterparty_id integer NOT NULL,
  counterparty_legal_name varchar(1024) NOT NULL,
  counterparty_legal_address_line_1 varchar(1024) NOT NULL,
  counterparty_legal_address_line_2 varchar(1024),
  counterparty_legal_district varchar(1024),
  counterparty_legal_city varchar(1024) NOT NULL,
  counterparty_legal_postal_code varchar(1024) NOT NULL,
  counterparty_legal_country varchar(1024) NOT NULL,
  counterparty_legal_phone_number varchar(1024) NOT NULL,
  PRIMARY KEY (counterparty_id)
);

CREATE TABLE IF NOT EXISTS totesys.dim_payment_type (
  payment_type_id integer NOT NULL,
  payment_type_name varchar(1024) NOT NULL,
  PRIMARY KEY (payment_type_id)
);

CREATE TABLE IF NOT EXISTS totesys.dim_transaction (
  transaction_id integer NOT NULL,
  transaction_type varchar(1024) NOT NULL,
  sales_order_id integer,
  purchase_order_id integer,
  PRIMARY KEY (transaction_id)
);
