-- Net revenue per country and month.
SELECT
  country_name,
  year_month,
  SUM(revenue) AS revenue,
  SUM(purchases) AS purchases,
  SUM(cancellations) AS cancellations
FROM mart_country_day
GROUP BY country_name, year_month
ORDER BY year_month, SUM(revenue) DESC, country_name
