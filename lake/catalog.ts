import type { LakeObjects } from './catalog-objects.ts';

/**
 * The local lake catalog, in the Glue Data Catalog's shape (the fields `aws glue get-table` and
 * `get-partitions` print, same names and casing), so what `lake tables` shows locally reads like
 * what the Glue crawler records on AWS. One JSON object in the bucket (CATALOG_KEY): it survives
 * restarts with the rest of the local S3, and every process that reaches the bucket sees it.
 */

/** The Glue database name, locally and in the CDK app (infra/pipeline-stack.ts). */
export const LAKE_DATABASE = 'retail_pipeline';
export const CATALOG_KEY = `catalog/${LAKE_DATABASE}.json`;

export interface GlueColumn {
  Name: string;
  /** Hive spelling: string, int, bigint, double, decimal(p,s), timestamp, date, boolean, ... */
  Type: string;
}

export interface StorageDescriptor {
  Columns: GlueColumn[];
  Location: string;
  InputFormat: string;
  OutputFormat: string;
  Compressed: boolean;
  SerdeInfo: { SerializationLibrary: string; Parameters: Record<string, string> };
}

export interface GlueTable {
  Name: string;
  DatabaseName: string;
  TableType: 'EXTERNAL_TABLE';
  CreateTime: string;
  UpdateTime: string;
  StorageDescriptor: StorageDescriptor;
  PartitionKeys: GlueColumn[];
  /** classification, compressionType, objectCount, sizeKey, ... (Glue writes its values as text). */
  Parameters: Record<string, string>;
}

export interface GluePartition {
  Values: string[];
  DatabaseName: string;
  TableName: string;
  CreationTime: string;
  StorageDescriptor: Pick<StorageDescriptor, 'Columns' | 'Location'>;
  /** objectCount, sizeKey and the crawler's fingerprint of the objects it sampled. */
  Parameters: Record<string, string>;
}

export interface LakeCatalog {
  Database: { Name: string; Description: string };
  Tables: GlueTable[];
  /** Per table name, sorted by Values. */
  Partitions: Record<string, GluePartition[]>;
}

export type Classification = 'parquet' | 'json';

/** The formats Glue records for the two kinds of objects in the lake. */
export const FORMATS: Record<
  Classification,
  Pick<StorageDescriptor, 'InputFormat' | 'OutputFormat' | 'SerdeInfo'> & { compressionType: string }
> = {
  parquet: {
    InputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat',
    OutputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat',
    SerdeInfo: {
      SerializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe',
      Parameters: { 'serialization.format': '1' },
    },
    compressionType: 'none',
  },
  json: {
    InputFormat: 'org.apache.hadoop.mapred.TextInputFormat',
    OutputFormat: 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat',
    SerdeInfo: { SerializationLibrary: 'org.openx.data.jsonserde.JsonSerDe', Parameters: {} },
    compressionType: 'gzip',
  },
};

export class CatalogError extends Error {
  override name = 'CatalogError';
}

export function emptyCatalog(): LakeCatalog {
  return {
    Database: { Name: LAKE_DATABASE, Description: 'retail-pipeline lake: processed/ and archive/' },
    Tables: [],
    Partitions: {},
  };
}

/** The catalog as stored, or an empty one before the first crawl. */
export async function readCatalog(objects: LakeObjects): Promise<LakeCatalog> {
  const bytes = await objects.get(CATALOG_KEY);
  if (!bytes) return emptyCatalog();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw new CatalogError(`the lake catalog ${CATALOG_KEY} is not JSON; run retail-pipeline lake crawl`, {
      cause: err,
    });
  }
  const c = parsed as Partial<LakeCatalog>;
  if (!c.Database || !Array.isArray(c.Tables) || typeof c.Partitions !== 'object' || c.Partitions === null)
    throw new CatalogError(`the lake catalog ${CATALOG_KEY} is not a catalog (Database, Tables, Partitions)`);
  return c as LakeCatalog;
}

export async function writeCatalog(objects: LakeObjects, catalog: LakeCatalog): Promise<void> {
  await objects.put(CATALOG_KEY, `${JSON.stringify(catalog, null, 2)}\n`, 'application/json');
}

export function findTable(catalog: LakeCatalog, name: string): GlueTable | undefined {
  const wanted = name.toLowerCase();
  return catalog.Tables.find((t) => t.Name === wanted);
}

/** `s3://bucket/prefix/` -> `prefix/`. */
export function keyPrefixOf(location: string): string {
  const m = /^s3:\/\/[^/]+\/(.*)$/.exec(location);
  if (!m) throw new CatalogError(`not an S3 location: ${location}`);
  return m[1] ?? '';
}
