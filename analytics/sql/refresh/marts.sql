-- Rebuilds the marts from fact_sales_line; run as one transaction by refreshMarts(), so readers
-- see either the old or the new marts, never a mix. Duplicate rows are left out of every mart.
-- A sale line: not a cancellation, not an adjustment. See 0100_marts.sql for the measures.
--
-- Only the months that changed are rebuilt (every mart row belongs to one month of facts):
-- - a month whose facts differ from what mart_month_state recorded at the last refresh: its row
--   count, the line numbers of its duplicate rows, or its latest load time (facts are only ever
--   added, re-flagged as duplicates, or removed with their whole load history);
-- - a month gone from the facts, or new to them;
-- - a month where a customer's mart country or a product's mart description is no longer the
--   dimension's (a later load elsewhere moved the most frequent one).
-- A first refresh (no state) rebuilds every month. A load that commits while this runs is seen by
-- the next refresh: the state kept is the one read first.

CREATE TEMP TABLE mart_month_now AS
SELECT
  CAST(DATE_TRUNC('month', invoice_date) AS date) AS month_start,
  COUNT(*) AS fact_rows,
  SUM(CASE WHEN is_duplicate_row THEN line_no ELSE 0 END) AS duplicate_lines,
  MAX(warehouse_visible_at) AS last_visible_at
FROM fact_sales_line
GROUP BY DATE_TRUNC('month', invoice_date);

CREATE TEMP TABLE mart_month_dirty AS
SELECT n.month_start FROM mart_month_now n
LEFT JOIN mart_month_state s ON s.month_start = n.month_start
WHERE s.month_start IS NULL OR s.fact_rows <> n.fact_rows OR s.duplicate_lines <> n.duplicate_lines
  OR s.last_visible_at <> n.last_visible_at
UNION
SELECT s.month_start FROM mart_month_state s
WHERE NOT EXISTS (SELECT 1 FROM mart_month_now n WHERE n.month_start = s.month_start)
UNION
SELECT m.month_start FROM mart_customer_month m
JOIN dim_customer c ON c.customer_id = m.customer_id
WHERE c.country_name IS NOT NULL AND c.country_name <> m.country_name
UNION
SELECT m.month_start FROM mart_product_month m
JOIN dim_product p ON p.stock_code = m.stock_code
WHERE p.description IS NOT NULL AND (m.description IS NULL OR p.description <> m.description);

-- The dirty months' facts (not duplicate rows), read once for the four marts.
CREATE TEMP TABLE mart_facts AS
SELECT f.invoice_no, f.stock_code, f.description, f.customer_id, f.country_name, f.date_key, f.invoice_date,
  f.quantity, f.line_total, f.is_cancellation, f.is_adjustment, f.is_non_product
FROM fact_sales_line f
WHERE NOT f.is_duplicate_row AND CAST(DATE_TRUNC('month', f.invoice_date) AS date) IN (SELECT month_start FROM mart_month_dirty);

DELETE FROM mart_customer_month WHERE month_start IN (SELECT month_start FROM mart_month_dirty);

INSERT INTO mart_customer_month (
  customer_id, month_start, year_month, country_name, invoices, purchases, cancellations, lines,
  items_bought, revenue, gross_sales, cancelled_value, first_purchase_at, last_purchase_at
)
SELECT
  f.customer_id,
  CAST(DATE_TRUNC('month', f.invoice_date) AS date),
  TO_CHAR(f.invoice_date, 'YYYY-MM'),
  MAX(COALESCE(c.country_name, f.country_name)),
  COUNT(DISTINCT f.invoice_no),
  COUNT(DISTINCT CASE WHEN NOT f.is_cancellation AND NOT f.is_adjustment THEN f.invoice_no END),
  COUNT(DISTINCT CASE WHEN f.is_cancellation THEN f.invoice_no END),
  COUNT(*),
  SUM(CASE WHEN NOT f.is_cancellation AND NOT f.is_adjustment THEN f.quantity ELSE 0 END),
  SUM(CASE WHEN NOT f.is_adjustment THEN f.line_total ELSE 0 END),
  SUM(CASE WHEN NOT f.is_cancellation AND NOT f.is_adjustment THEN f.line_total ELSE 0 END),
  -SUM(CASE WHEN f.is_cancellation THEN f.line_total ELSE 0 END),
  MIN(CASE WHEN NOT f.is_cancellation AND NOT f.is_adjustment THEN f.invoice_date END),
  MAX(CASE WHEN NOT f.is_cancellation AND NOT f.is_adjustment THEN f.invoice_date END)
FROM mart_facts f
LEFT JOIN dim_customer c ON c.customer_id = f.customer_id
WHERE f.customer_id IS NOT NULL
GROUP BY f.customer_id, DATE_TRUNC('month', f.invoice_date), TO_CHAR(f.invoice_date, 'YYYY-MM');

DELETE FROM mart_product_month WHERE month_start IN (SELECT month_start FROM mart_month_dirty);

INSERT INTO mart_product_month (
  stock_code, month_start, year_month, description, is_non_product, lines, purchases, customers,
  quantity_sold, quantity_returned, revenue, gross_sales, cancelled_value
)
SELECT
  f.stock_code,
  CAST(DATE_TRUNC('month', f.invoice_date) AS date),
  TO_CHAR(f.invoice_date, 'YYYY-MM'),
  MAX(COALESCE(p.description, f.description)),
  BOOL_OR(f.is_non_product),
  COUNT(*),
  COUNT(DISTINCT CASE WHEN NOT f.is_cancellation AND NOT f.is_adjustment THEN f.invoice_no END),
  COUNT(DISTINCT f.customer_id),
  SUM(CASE WHEN NOT f.is_cancellation AND NOT f.is_adjustment THEN f.quantity ELSE 0 END),
  -SUM(CASE WHEN f.is_cancellation THEN f.quantity ELSE 0 END),
  SUM(CASE WHEN NOT f.is_adjustment THEN f.line_total ELSE 0 END),
  SUM(CASE WHEN NOT f.is_cancellation AND NOT f.is_adjustment THEN f.line_total ELSE 0 END),
  -SUM(CASE WHEN f.is_cancellation THEN f.line_total ELSE 0 END)
FROM mart_facts f
LEFT JOIN dim_product p ON p.stock_code = f.stock_code
GROUP BY f.stock_code, DATE_TRUNC('month', f.invoice_date), TO_CHAR(f.invoice_date, 'YYYY-MM');

DELETE FROM mart_country_day
WHERE CAST(DATE_TRUNC('month', full_date) AS date) IN (SELECT month_start FROM mart_month_dirty);

INSERT INTO mart_country_day (
  country_name, date_key, full_date, year_month, invoices, purchases, cancellations, lines, sales_lines,
  customers, items_sold, revenue, gross_sales, cancelled_value
)
SELECT
  f.country_name,
  f.date_key,
  d.full_date,
  d.year_month,
  COUNT(DISTINCT f.invoice_no),
  COUNT(DISTINCT CASE WHEN NOT f.is_cancellation AND NOT f.is_adjustment THEN f.invoice_no END),
  COUNT(DISTINCT CASE WHEN f.is_cancellation THEN f.invoice_no END),
  COUNT(*),
  SUM(CASE WHEN NOT f.is_cancellation AND NOT f.is_adjustment THEN 1 ELSE 0 END),
  COUNT(DISTINCT f.customer_id),
  SUM(CASE WHEN NOT f.is_cancellation AND NOT f.is_adjustment THEN f.quantity ELSE 0 END),
  SUM(CASE WHEN NOT f.is_adjustment THEN f.line_total ELSE 0 END),
  SUM(CASE WHEN NOT f.is_cancellation AND NOT f.is_adjustment THEN f.line_total ELSE 0 END),
  -SUM(CASE WHEN f.is_cancellation THEN f.line_total ELSE 0 END)
FROM mart_facts f
JOIN dim_date d ON d.date_key = f.date_key
GROUP BY f.country_name, f.date_key, d.full_date, d.year_month;

DELETE FROM mart_cancellation_month WHERE month_start IN (SELECT month_start FROM mart_month_dirty);

INSERT INTO mart_cancellation_month (
  month_start, year_month, country_name, purchases, cancellations, cancelled_lines, cancelled_quantity,
  cancelled_value, gross_sales
)
SELECT
  CAST(DATE_TRUNC('month', f.invoice_date) AS date),
  TO_CHAR(f.invoice_date, 'YYYY-MM'),
  f.country_name,
  COUNT(DISTINCT CASE WHEN NOT f.is_cancellation AND NOT f.is_adjustment THEN f.invoice_no END),
  COUNT(DISTINCT CASE WHEN f.is_cancellation THEN f.invoice_no END),
  SUM(CASE WHEN f.is_cancellation THEN 1 ELSE 0 END),
  -SUM(CASE WHEN f.is_cancellation THEN f.quantity ELSE 0 END),
  -SUM(CASE WHEN f.is_cancellation THEN f.line_total ELSE 0 END),
  SUM(CASE WHEN NOT f.is_cancellation AND NOT f.is_adjustment THEN f.line_total ELSE 0 END)
FROM mart_facts f
GROUP BY DATE_TRUNC('month', f.invoice_date), TO_CHAR(f.invoice_date, 'YYYY-MM'), f.country_name;

DELETE FROM mart_month_state;

INSERT INTO mart_month_state (month_start, fact_rows, duplicate_lines, last_visible_at)
SELECT month_start, fact_rows, duplicate_lines, last_visible_at FROM mart_month_now;

DELETE FROM mart_refresh;

INSERT INTO mart_refresh (mart_name, refreshed_at, fact_rows)
SELECT m.mart_name, CURRENT_TIMESTAMP, (SELECT COALESCE(SUM(fact_rows), 0) FROM mart_month_now)
FROM (
  SELECT CAST('mart_customer_month' AS varchar(64)) AS mart_name
  UNION ALL SELECT 'mart_product_month'
  UNION ALL SELECT 'mart_country_day'
  UNION ALL SELECT 'mart_cancellation_month'
) m;

DROP TABLE mart_month_now;

DROP TABLE mart_month_dirty;

DROP TABLE mart_facts;
