-- Net revenue per invoice day, the latest $1 days that have sales, oldest first.
SELECT full_date, revenue, purchases, lines
FROM (
  SELECT
    full_date,
    SUM(revenue) AS revenue,
    SUM(purchases) AS purchases,
    SUM(lines) AS lines
  FROM mart_country_day
  GROUP BY full_date
  ORDER BY full_date DESC
  LIMIT $1
) d
ORDER BY full_date
