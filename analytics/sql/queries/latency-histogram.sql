-- Lineage delays per path and hop as millisecond histograms (one row per distinct delay), over
-- lines produced at or after $1. "Archived" is when the archive object reached the loader (its S3
-- notification or sweep: load_manifest.discovered_at, first etag seen).
WITH archive AS (
  SELECT object_key, MIN(discovered_at) AS archived_at
  FROM load_manifest
  GROUP BY object_key
),
lines AS (
  SELECT
    EXTRACT(EPOCH FROM f.produced_at) AS produced_s,
    EXTRACT(EPOCH FROM f.accepted_at) AS accepted_s,
    EXTRACT(EPOCH FROM f.stream_visible_at) AS stream_s,
    EXTRACT(EPOCH FROM a.archived_at) AS archived_s,
    EXTRACT(EPOCH FROM f.warehouse_visible_at) AS warehouse_s
  FROM fact_sales_line f
  LEFT JOIN archive a ON a.object_key = f.source_key
  WHERE f.produced_at >= CAST($1 AS timestamptz)
),
delays AS (
  SELECT 'stream' AS path, 'produced_accepted' AS hop, accepted_s - produced_s AS s FROM lines
  UNION ALL SELECT 'stream', 'accepted_stream_visible', stream_s - accepted_s FROM lines
  UNION ALL SELECT 'stream', 'total', stream_s - produced_s FROM lines
  UNION ALL SELECT 'batch', 'produced_archived', archived_s - produced_s FROM lines
  UNION ALL SELECT 'batch', 'archived_warehouse_visible', warehouse_s - archived_s FROM lines
  UNION ALL SELECT 'batch', 'total', warehouse_s - produced_s FROM lines
)
SELECT path, hop, CAST(ROUND(s * 1000) AS bigint) AS ms, COUNT(*) AS n
FROM delays
WHERE s IS NOT NULL
GROUP BY path, hop, CAST(ROUND(s * 1000) AS bigint)
