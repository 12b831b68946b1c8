-- Views for Power BI in their own schema: friendly names, types Power BI maps well (whole
-- numbers, fixed decimals for money, dates as dates, Yes/No text for flags in slicers).
-- Redshift folds quoted identifiers to lower case unless enable_case_sensitive_identifier is on;
-- the names stay readable either way. Relationships to set in Power BI: docs/powerbi.md.
CREATE SCHEMA IF NOT EXISTS powerbi;

CREATE OR REPLACE VIEW powerbi."Sales" AS
SELECT
  f.invoice_no AS "Invoice",
  f.line_no AS "Line",
  d.full_date AS "Date",
  f.invoice_date AS "Invoice Time",
  f.stock_code AS "Stock Code",
  f.description AS "Line Description",
  f.customer_id AS "Customer ID",
  f.country_name AS "Country",
  f.quantity AS "Quantity",
  CAST(f.unit_price AS numeric(19, 4)) AS "Unit Price",
  CAST(f.line_total AS numeric(19, 4)) AS "Line Total",
  CAST(CASE WHEN f.is_cancellation THEN 'Yes' ELSE 'No' END AS varchar(3)) AS "Is Cancellation",
  CAST(CASE WHEN f.is_adjustment THEN 'Yes' ELSE 'No' END AS varchar(3)) AS "Is Adjustment",
  CAST(CASE WHEN f.is_non_product THEN 'Yes' ELSE 'No' END AS varchar(3)) AS "Is Non-Product",
  CAST(CASE WHEN f.is_duplicate_row THEN 'Yes' ELSE 'No' END AS varchar(3)) AS "Is Duplicate Row",
  CAST(
    CASE
      WHEN f.is_adjustment THEN 'Adjustment'
      WHEN f.is_cancellation THEN 'Cancellation'
      ELSE 'Sale'
    END AS varchar(12)
  ) AS "Line Type",
  f.source AS "Source"
FROM fact_sales_line f
JOIN dim_date d ON d.date_key = f.date_key;

CREATE OR REPLACE VIEW powerbi."Date" AS
SELECT
  full_date AS "Date",
  CAST(year AS integer) AS "Year",
  CAST(quarter AS integer) AS "Quarter Number",
  'Q' || CAST(quarter AS varchar(1)) AS "Quarter",
  CAST(month AS integer) AS "Month Number",
  month_name AS "Month",
  year_month AS "Year Month",
  CAST(day_of_month AS integer) AS "Day",
  CAST(day_of_week AS integer) AS "Weekday Number",
  day_name AS "Weekday",
  CAST(week_of_year AS integer) AS "ISO Week",
  CAST(CASE WHEN is_weekend THEN 'Yes' ELSE 'No' END AS varchar(3)) AS "Is Weekend"
FROM dim_date;

CREATE OR REPLACE VIEW powerbi."Customer" AS
SELECT
  c.customer_id AS "Customer ID",
  c.country_name AS "Home Country",
  r.segment AS "RFM Segment"
FROM dim_customer c
LEFT JOIN v_customer_rfm r ON r.customer_id = c.customer_id;

CREATE OR REPLACE VIEW powerbi."Product" AS
SELECT
  stock_code AS "Stock Code",
  description AS "Product",
  CAST(CASE WHEN is_non_product THEN 'Yes' ELSE 'No' END AS varchar(3)) AS "Is Non-Product"
FROM dim_product;

CREATE OR REPLACE VIEW powerbi."Country" AS
SELECT
  country_name AS "Country",
  iso_code AS "ISO Code",
  region AS "Region"
FROM dim_country;

CREATE OR REPLACE VIEW powerbi."Customer Month" AS
SELECT
  customer_id AS "Customer ID",
  month_start AS "Month Start",
  year_month AS "Year Month",
  country_name AS "Home Country",
  invoices AS "Invoices",
  purchases AS "Purchases",
  cancellations AS "Cancellations",
  CAST(items_bought AS integer) AS "Items Bought",
  CAST(revenue AS numeric(19, 4)) AS "Net Revenue",
  CAST(gross_sales AS numeric(19, 4)) AS "Gross Sales",
  CAST(cancelled_value AS numeric(19, 4)) AS "Cancelled Value"
FROM mart_customer_month;

CREATE OR REPLACE VIEW powerbi."Product Month" AS
SELECT
  stock_code AS "Stock Code",
  month_start AS "Month Start",
  year_month AS "Year Month",
  description AS "Product",
  CAST(CASE WHEN is_non_product THEN 'Yes' ELSE 'No' END AS varchar(3)) AS "Is Non-Product",
  purchases AS "Purchases",
  customers AS "Customers",
  CAST(quantity_sold AS integer) AS "Quantity Sold",
  CAST(quantity_returned AS integer) AS "Quantity Returned",
  CAST(revenue AS numeric(19, 4)) AS "Net Revenue",
  CAST(gross_sales AS numeric(19, 4)) AS "Gross Sales",
  CAST(cancelled_value AS numeric(19, 4)) AS "Cancelled Value"
FROM mart_product_month;

CREATE OR REPLACE VIEW powerbi."Country Day" AS
SELECT
  country_name AS "Country",
  full_date AS "Date",
  year_month AS "Year Month",
  invoices AS "Invoices",
  purchases AS "Purchases",
  cancellations AS "Cancellations",
  lines AS "Lines",
  customers AS "Customers",
  CAST(items_sold AS integer) AS "Items Sold",
  CAST(revenue AS numeric(19, 4)) AS "Net Revenue",
  CAST(gross_sales AS numeric(19, 4)) AS "Gross Sales",
  CAST(cancelled_value AS numeric(19, 4)) AS "Cancelled Value"
FROM mart_country_day;

CREATE OR REPLACE VIEW powerbi."Cancellations by Month" AS
SELECT
  month_start AS "Month Start",
  year_month AS "Year Month",
  country_name AS "Country",
  purchases AS "Purchases",
  cancellations AS "Cancellations",
  cancelled_lines AS "Cancelled Lines",
  CAST(cancelled_quantity AS integer) AS "Cancelled Quantity",
  CAST(cancelled_value AS numeric(19, 4)) AS "Cancelled Value",
  CAST(gross_sales AS numeric(19, 4)) AS "Gross Sales"
FROM mart_cancellation_month;

CREATE OR REPLACE VIEW powerbi."Customer RFM" AS
SELECT
  customer_id AS "Customer ID",
  CAST(last_purchase_at AS date) AS "Last Purchase",
  recency_days AS "Recency Days",
  frequency AS "Frequency",
  CAST(monetary AS numeric(19, 4)) AS "Monetary",
  r_score AS "R Score",
  f_score AS "F Score",
  m_score AS "M Score",
  rfm_cell AS "RFM Cell",
  segment AS "Segment"
FROM v_customer_rfm;

CREATE OR REPLACE VIEW powerbi."Line Latency" AS
SELECT
  f.invoice_no AS "Invoice",
  f.line_no AS "Line",
  f.produced_at AS "Produced At",
  CAST(ROUND((EXTRACT(EPOCH FROM f.stream_visible_at) - EXTRACT(EPOCH FROM f.produced_at)) * 1000) AS bigint)
    AS "Stream Delay ms",
  CAST(ROUND((EXTRACT(EPOCH FROM f.warehouse_visible_at) - EXTRACT(EPOCH FROM f.produced_at)) * 1000) AS bigint)
    AS "Batch Delay ms"
FROM fact_sales_line f
WHERE f.produced_at IS NOT NULL;
