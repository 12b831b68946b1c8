-- Lines accepted by the API per $2-second bucket since $1, as the warehouse knows them (it lags
-- the stream by the archive buffer and the load interval).
SELECT
  CAST(FLOOR(EXTRACT(EPOCH FROM accepted_at) / $2) * $2 AS bigint) AS bucket_s,
  COUNT(*) AS n
FROM fact_sales_line
WHERE accepted_at >= CAST($1 AS timestamptz)
GROUP BY CAST(FLOOR(EXTRACT(EPOCH FROM accepted_at) / $2) * $2 AS bigint)
ORDER BY 1
