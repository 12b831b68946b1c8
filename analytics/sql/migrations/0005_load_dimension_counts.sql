-- The loader now types and validates rows before COPY (batch/typer.ts): the date and time lookups of
-- 0003 are no longer read.
DROP TABLE IF EXISTS load_date_text;
DROP TABLE IF EXISTS load_time_text;

-- Lines per (stock code, description) and per (customer, country) over the whole fact table, kept
-- up to date by every load, so choosing a product's description or a customer's country reads only
-- the members a load touched instead of every fact row of theirs. '' stands for no description
-- (a key column cannot be NULL).
CREATE TABLE IF NOT EXISTS load_product_description (
  stock_code varchar(32) NOT NULL,
  description varchar(255) NOT NULL,
  is_non_product boolean NOT NULL,
  line_count bigint NOT NULL,
  PRIMARY KEY (stock_code, description)
);

CREATE TABLE IF NOT EXISTS load_customer_country (
  customer_id varchar(12) NOT NULL,
  country_name varchar(64) NOT NULL,
  line_count bigint NOT NULL,
  PRIMARY KEY (customer_id, country_name)
);

INSERT INTO load_product_description (stock_code, description, is_non_product, line_count)
SELECT stock_code, COALESCE(description, ''), is_non_product, count(*)
FROM fact_sales_line
WHERE NOT EXISTS (SELECT 1 FROM load_product_description)
GROUP BY stock_code, COALESCE(description, ''), is_non_product;

INSERT INTO load_customer_country (customer_id, country_name, line_count)
SELECT customer_id, country_name, count(*)
FROM fact_sales_line
WHERE customer_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM load_customer_country)
GROUP BY customer_id, country_name;
