-- A full calendar, 2000-01-01 .. 2040-12-31: the data set (2010-2011), the simulator's "now" and
-- far beyond. Dates outside it are rejected by the loader, not silently dropped.
INSERT INTO dim_date
WITH RECURSIVE days (d) AS (
  SELECT CAST('2000-01-01' AS date)
  UNION ALL
  SELECT CAST(d + 1 AS date) FROM days WHERE d < CAST('2040-12-31' AS date)
)
SELECT
  CAST(EXTRACT(year FROM d) AS integer) * 10000 + CAST(EXTRACT(month FROM d) AS integer) * 100
    + CAST(EXTRACT(day FROM d) AS integer),
  d,
  EXTRACT(year FROM d),
  EXTRACT(quarter FROM d),
  EXTRACT(month FROM d),
  trim(to_char(d, 'Month')),
  EXTRACT(day FROM d),
  EXTRACT(dow FROM d),
  trim(to_char(d, 'Day')),
  EXTRACT(week FROM d),
  to_char(d, 'YYYY-MM'),
  EXTRACT(dow FROM d) IN (0, 6)
FROM days
WHERE NOT EXISTS (SELECT 1 FROM dim_date);
