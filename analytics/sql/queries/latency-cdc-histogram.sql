-- The cdc path (totesys change data capture) as millisecond histograms per hop, one row per distinct
-- delay, over fact versions whose source last_updated is at or after $1 and after the warehouse first
-- saw a totesys object (what the first extraction takes is a backlog, not freshness). Lineage columns
-- from migration 0210: source_key (the processed object), ingested_at (its run's extraction marker
-- finishedAt), warehouse_visible_at. "Processed" is when the run's processed objects reached the loader
-- (load_manifest.discovered_at, first object of the run), as "archived" is for the batch path. The
-- source's last_updated has no zone: it is read as UTC, the source database's clock.
WITH cdc_objects AS (
  SELECT object_key, discovered_at
  FROM load_manifest
  WHERE source = 'cdc'
),
first_seen AS (
  SELECT MIN(EXTRACT(EPOCH FROM discovered_at)) AS s FROM cdc_objects
),
processed AS (
  -- processed/totesys/<table>/YYYY/MM/DD/<runId>.parquet: part 7 names the run
  SELECT SPLIT_PART(object_key, '/', 7) AS run_file, MIN(discovered_at) AS processed_at
  FROM cdc_objects
  GROUP BY SPLIT_PART(object_key, '/', 7)
),
versions AS (
  SELECT last_updated_date + last_updated_time AS updated_at, source_key, ingested_at, warehouse_visible_at
  FROM totesys.fact_sales_order WHERE source_key IS NOT NULL
  UNION ALL
  SELECT last_updated_date + last_updated_time, source_key, ingested_at, warehouse_visible_at
  FROM totesys.fact_purchase_orders WHERE source_key IS NOT NULL
  UNION ALL
  SELECT last_updated_date + last_updated_time, source_key, ingested_at, warehouse_visible_at
  FROM totesys.fact_payment WHERE source_key IS NOT NULL
),
stamps AS (
  SELECT
    EXTRACT(EPOCH FROM v.updated_at) AS updated_s,
    EXTRACT(EPOCH FROM v.ingested_at) AS ingested_s,
    EXTRACT(EPOCH FROM p.processed_at) AS processed_s,
    EXTRACT(EPOCH FROM v.warehouse_visible_at) AS warehouse_s
  FROM versions v
  CROSS JOIN first_seen f
  LEFT JOIN processed p ON p.run_file = SPLIT_PART(v.source_key, '/', 7)
  WHERE EXTRACT(EPOCH FROM v.updated_at) >= EXTRACT(EPOCH FROM CAST($1 AS timestamptz))
    AND EXTRACT(EPOCH FROM v.updated_at) >= f.s
),
delays AS (
  SELECT 'cdc' AS path, 'updated_ingested' AS hop, ingested_s - updated_s AS s FROM stamps
  UNION ALL SELECT 'cdc', 'ingested_processed', processed_s - ingested_s FROM stamps
  UNION ALL SELECT 'cdc', 'processed_warehouse_visible', warehouse_s - processed_s FROM stamps
  UNION ALL SELECT 'cdc', 'total', warehouse_s - updated_s FROM stamps
)
SELECT path, hop, CAST(ROUND(s * 1000) AS bigint) AS ms, COUNT(*) AS n
FROM delays
WHERE s IS NOT NULL
GROUP BY path, hop, CAST(ROUND(s * 1000) AS bigint)
