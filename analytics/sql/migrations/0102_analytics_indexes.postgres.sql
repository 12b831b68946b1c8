-- PostgreSQL only (Redshift has no indexes; its sort keys play this part): the latency report and
-- the dashboard's line rate read recent lines by their lineage time, not the whole fact table.
CREATE INDEX IF NOT EXISTS fact_sales_line_produced_at ON fact_sales_line (produced_at);
CREATE INDEX IF NOT EXISTS fact_sales_line_accepted_at ON fact_sales_line (accepted_at);
