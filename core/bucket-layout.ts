/**
 * The data bucket's zones: one key prefix each, written once and used by every writer and reader
 * (the loader, the totesys capture, the lake and its crawler, the CDK app's grants and crawlers).
 * An added zone goes here first.
 */

/** The Firehose archive of the stream (gzipped JSON lines, hour folders). */
export const ARCHIVE_PREFIX = 'archive/';
/** Bulk CSV drops. */
export const LANDING_PREFIX = 'landing/';
/** Where the Redshift way puts the typed rows of an object for COPY FROM S3. */
export const STAGING_PREFIX = 'staging/';
/** Objects that can never load, with their reasons. */
export const QUARANTINE_PREFIX = 'quarantine/';
/** The totesys capture's ingestion zone (JSON change sets per run). */
export const TOTESYS_INGESTION_PREFIX = 'ingestion/totesys/';
/** The totesys warehouse model as Parquet (one folder per table). */
export const TOTESYS_PROCESSED_PREFIX = 'processed/totesys/';
/** The lake's invoice lines (Parquet, year=/month= partitions). */
export const INVOICE_LINES_PREFIX = 'processed/invoice_lines/';
/** The lake's own bookkeeping: hidden from crawlers and Athena by the leading underscore. */
export const LAKE_STATE_PREFIX = 'processed/_lake/invoice_lines/';
