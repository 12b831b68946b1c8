-- Marts: small pre-aggregated tables for reports, the dashboard and Power BI Import mode.
-- Rebuilt from fact_sales_line by analytics/sql/refresh/marts.sql (refreshMarts) after each load.
--
-- Measures, the same in every mart:
--   sales lines      = not a cancellation, not an adjustment, not a duplicate row
--   revenue          = net: sum of line_total over every line except duplicate rows and
--                      adjustments (bad-debt bookkeeping), so cancellations reduce it
--   gross_sales      = sum of line_total over sales lines
--   cancelled_value  = minus the sum of line_total over cancellation lines (a positive amount)
--   purchases        = distinct sales invoices; cancellations = distinct cancellation invoices

CREATE TABLE IF NOT EXISTS mart_customer_month (
  customer_id varchar(12) NOT NULL,
  month_start date NOT NULL,
  year_month char(7) NOT NULL,
  country_name varchar(64) NOT NULL,
  invoices integer NOT NULL,
  purchases integer NOT NULL,
  cancellations integer NOT NULL,
  lines integer NOT NULL,
  items_bought bigint NOT NULL,
  revenue numeric(18, 3) NOT NULL,
  gross_sales numeric(18, 3) NOT NULL,
  cancelled_value numeric(18, 3) NOT NULL,
  first_purchase_at timestamp,
  last_purchase_at timestamp,
  PRIMARY KEY (customer_id, month_start)
);

CREATE TABLE IF NOT EXISTS mart_product_month (
  stock_code varchar(32) NOT NULL,
  month_start date NOT NULL,
  year_month char(7) NOT NULL,
  description varchar(255),
  is_non_product boolean NOT NULL,
  lines integer NOT NULL,
  purchases integer NOT NULL,
  customers integer NOT NULL,
  quantity_sold bigint NOT NULL,
  quantity_returned bigint NOT NULL,
  revenue numeric(18, 3) NOT NULL,
  gross_sales numeric(18, 3) NOT NULL,
  cancelled_value numeric(18, 3) NOT NULL,
  PRIMARY KEY (stock_code, month_start)
);

CREATE TABLE IF NOT EXISTS mart_country_day (
  country_name varchar(64) NOT NULL,
  date_key integer NOT NULL,
  full_date date NOT NULL,
  year_month char(7) NOT NULL,
  invoices integer NOT NULL,
  purchases integer NOT NULL,
  cancellations integer NOT NULL,
  lines integer NOT NULL,
  sales_lines integer NOT NULL,
  customers integer NOT NULL,
  items_sold bigint NOT NULL,
  revenue numeric(18, 3) NOT NULL,
  gross_sales numeric(18, 3) NOT NULL,
  cancelled_value numeric(18, 3) NOT NULL,
  PRIMARY KEY (country_name, date_key)
);

CREATE TABLE IF NOT EXISTS mart_cancellation_month (
  month_start date NOT NULL,
  year_month char(7) NOT NULL,
  country_name varchar(64) NOT NULL,
  purchases integer NOT NULL,
  cancellations integer NOT NULL,
  cancelled_lines integer NOT NULL,
  cancelled_quantity bigint NOT NULL,
  cancelled_value numeric(18, 3) NOT NULL,
  gross_sales numeric(18, 3) NOT NULL,
  PRIMARY KEY (month_start, country_name)
);

-- When the marts were last rebuilt and from how many fact rows (the dashboard shows it).
CREATE TABLE IF NOT EXISTS mart_refresh (
  mart_name varchar(64) NOT NULL PRIMARY KEY,
  refreshed_at timestamptz NOT NULL,
  fact_rows bigint NOT NULL
);
