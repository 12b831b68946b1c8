-- What the marts were last rebuilt from, a row per month of fact_sales_line (refresh/marts.sql):
-- a refresh rebuilds only the months whose facts no longer match (rows added or gone, duplicate
-- flags moved, a later load) and the months a changed customer country or product description
-- reaches, instead of every mart from every fact. Empty (a new or upgraded warehouse): every month.
CREATE TABLE IF NOT EXISTS mart_month_state (
  month_start date NOT NULL PRIMARY KEY,
  fact_rows bigint NOT NULL,
  duplicate_lines bigint NOT NULL,
  last_visible_at timestamptz NOT NULL
);
