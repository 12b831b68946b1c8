-- Net revenue per country over everything loaded; $1 = how many countries.
SELECT
  m.country_name,
  MAX(c.iso_code) AS iso_code,
  MAX(c.region) AS region,
  SUM(m.revenue) AS revenue,
  SUM(m.purchases) AS purchases,
  SUM(m.lines) AS lines
FROM mart_country_day m
LEFT JOIN dim_country c ON c.country_name = m.country_name
GROUP BY m.country_name
ORDER BY SUM(m.revenue) DESC, m.country_name
LIMIT $1
