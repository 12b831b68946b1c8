-- Headline figures from the marts (duplicate rows excluded, see 0100_marts.sql).
SELECT
  t.purchases, t.cancellations, t.lines, t.sales_lines, t.items_sold, t.revenue, t.gross_sales,
  t.cancelled_value, t.countries,
  c.customers_buying, c.repeat_customers,
  r.refreshed_at, r.fact_rows
FROM (
  SELECT
    SUM(purchases) AS purchases,
    SUM(cancellations) AS cancellations,
    SUM(lines) AS lines,
    SUM(sales_lines) AS sales_lines,
    SUM(items_sold) AS items_sold,
    SUM(revenue) AS revenue,
    SUM(gross_sales) AS gross_sales,
    SUM(cancelled_value) AS cancelled_value,
    COUNT(DISTINCT country_name) AS countries
  FROM mart_country_day
) t
CROSS JOIN (
  SELECT
    COUNT(*) AS customers_buying,
    SUM(CASE WHEN purchases >= 2 THEN 1 ELSE 0 END) AS repeat_customers
  FROM (
    SELECT customer_id, SUM(purchases) AS purchases
    FROM mart_customer_month
    GROUP BY customer_id
    HAVING SUM(purchases) > 0
  ) pc
) c
CROSS JOIN (
  SELECT MAX(refreshed_at) AS refreshed_at, MAX(fact_rows) AS fact_rows FROM mart_refresh
) r
