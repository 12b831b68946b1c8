-- Lineage of every totesys fact version, for the cdc path of the latency report (analytics/latency.ts):
-- source last_updated -> ingested (the extraction run's marker finishedAt) -> processed (the run's
-- processed objects reached the loader: load_manifest.discovered_at) -> warehouse-visible (loaded).
-- Added columns only (nothing renamed). The load (cdc/load-sql.ts) sets source_key, the processed object
-- the version came from, and ingested_at; warehouse_visible_at is the column default: GETDATE() is the statement's start, inside the load's one transaction per object.
-- Versions loaded before this migration keep source_key NULL: the report leaves them out.
ALTER TABLE totesys.fact_sales_order ADD COLUMN source_key varchar(1024);
ALTER TABLE totesys.fact_sales_order ADD COLUMN ingested_at timestamptz;
ALTER TABLE totesys.fact_sales_order ADD COLUMN warehouse_visible_at timestamptz DEFAULT GETDATE();

ALTER TABLE totesys.fact_purchase_orders ADD COLUMN source_key varchar(1024);
ALTER TABLE totesys.fact_purchase_orders ADD COLUMN ingested_at timestamptz;
ALTER TABLE totesys.fact_purchase_orders ADD COLUMN warehouse_visible_at timestamptz DEFAULT GETDATE();

ALTER TABLE totesys.fact_payment ADD COLUMN source_key varchar(1024);
ALTER TABLE totesys.fact_payment ADD COLUMN ingested_at timestamptz;
ALTER TABLE totesys.fact_payment ADD COLUMN warehouse_visible_at timestamptz DEFAULT GETDATE();
