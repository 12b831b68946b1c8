-- Best-selling products (non-product codes such as postage left out) by net revenue; $1 = how many.
SELECT
  stock_code,
  MAX(description) AS description,
  SUM(quantity_sold) AS quantity_sold,
  SUM(quantity_returned) AS quantity_returned,
  SUM(purchases) AS purchases,
  SUM(gross_sales) AS gross_sales,
  SUM(revenue) AS revenue
FROM mart_product_month
WHERE NOT is_non_product
GROUP BY stock_code
ORDER BY SUM(revenue) DESC, stock_code
LIMIT $1
