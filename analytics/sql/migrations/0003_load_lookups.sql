-- Lookups that let the loader type a row's date and time with one hash join each instead of a dozen
-- string functions per row (the per-row function calls were most of a load's time). Every text form
-- the loader accepts is listed; a form not found is an invalid or out-of-calendar value.

-- 'M/D/YYYY' with or without leading zeros (US order, as the source writes it) and 'YYYY-MM-DD', for
-- every day of dim_date.
CREATE TABLE IF NOT EXISTS load_date_text (
  date_text varchar(10) NOT NULL PRIMARY KEY,
  date_key integer NOT NULL,
  full_date date NOT NULL
);

INSERT INTO load_date_text (date_text, date_key, full_date)
SELECT DISTINCT
  CASE f.form
    WHEN 0 THEN to_char(d.full_date, 'YYYY-MM-DD')
    WHEN 1 THEN CAST(d.month AS varchar(2)) || '/' || CAST(d.day_of_month AS varchar(2)) || '/' || CAST(d.year AS varchar(4))
    WHEN 2 THEN to_char(d.full_date, 'MM') || '/' || CAST(d.day_of_month AS varchar(2)) || '/' || CAST(d.year AS varchar(4))
    WHEN 3 THEN CAST(d.month AS varchar(2)) || '/' || to_char(d.full_date, 'DD') || '/' || CAST(d.year AS varchar(4))
    ELSE to_char(d.full_date, 'MM/DD/YYYY')
  END,
  d.date_key, d.full_date
FROM dim_date d
CROSS JOIN (SELECT 0 AS form UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4) f
WHERE NOT EXISTS (SELECT 1 FROM load_date_text);

-- 'H:MM', 'HH:MM', 'H:MM:SS', 'HH:MM:SS' for every second of a day (hour 0-23).
CREATE TABLE IF NOT EXISTS load_time_text (
  time_text varchar(8) NOT NULL PRIMARY KEY,
  time_of_day time NOT NULL
);

-- Numbers 0..1439 from dim_date's rows (no generate_series on Redshift).
INSERT INTO load_time_text (time_text, time_of_day)
WITH n AS (
  SELECT CAST(row_number() OVER (ORDER BY date_key) AS integer) - 1 AS i FROM dim_date
), hm AS (
  SELECT i / 60 AS hh, i - (i / 60) * 60 AS mi FROM n WHERE i < 1440
), sec AS (
  SELECT CAST(NULL AS integer) AS ss
  UNION ALL
  SELECT i FROM n WHERE i < 60
), parts AS (
  SELECT DISTINCT
    CASE p.pad WHEN 0 THEN CAST(hm.hh AS varchar(2)) ELSE lpad(CAST(hm.hh AS varchar(2)), 2, '0') END AS h_text,
    lpad(CAST(hm.hh AS varchar(2)), 2, '0') AS hh_text,
    lpad(CAST(hm.mi AS varchar(2)), 2, '0') AS mi_text,
    lpad(CAST(sec.ss AS varchar(2)), 2, '0') AS ss_text
  FROM hm CROSS JOIN sec CROSS JOIN (SELECT 0 AS pad UNION ALL SELECT 1) p
)
SELECT h_text || ':' || mi_text || COALESCE(':' || ss_text, ''),
  CAST(hh_text || ':' || mi_text || ':' || COALESCE(ss_text, '00') AS time)
FROM parts
WHERE NOT EXISTS (SELECT 1 FROM load_time_text);
