import type { ParquetType } from '#adapters/parquet-writer';
import { ident, type Statement } from '#adapters/warehouse';
import type { WarehouseTable } from './transform-model.ts';

/**
 * The SQL of one processed object's load into the totesys stars, the same on PostgreSQL and
 * Redshift except how the staging table is filled (a COPY of rows the loader streams, or Redshift's
 * `COPY ... FORMAT AS PARQUET` from the object itself). The manifest's statements are in
 * batch/loader/manifest.ts.
 */

export const WAREHOUSE_SCHEMA = 'totesys';
/** The object's rows as they are in the Parquet. */
export const STAGE_TABLE = 'load_cdc_stage';
/** The staged rows plus whether each is new to its warehouse table. */
export const TYPED_CDC_TABLE = 'load_cdc_typed';

export function sqlType(t: ParquetType): string {
  switch (t.kind) {
    case 'int32':
      return 'integer';
    case 'int64':
      return 'bigint';
    case 'string':
      return 'varchar(1024)';
    case 'decimal':
      return `numeric(${t.precision}, ${t.scale})`;
    default:
      return t.kind;
  }
}

const target = (t: WarehouseTable) => `${WAREHOUSE_SCHEMA}.${ident(t.name)}`;
const names = (t: WarehouseTable) => t.columns.map((c) => ident(c.name));

/** The staging table: exactly the Parquet's columns in its order (what COPY FORMAT AS PARQUET needs). */
export function createStageSql(t: WarehouseTable): string {
  return `CREATE TEMP TABLE ${STAGE_TABLE} (${t.columns.map((c) => `${ident(c.name)} ${sqlType(c.type)}`).join(', ')})`;
}

/** Redshift: the object straight from S3 into staging (COPY reads Parquet itself; the role reads the bucket). */
export function redshiftParquetCopy(uri: string, roleArn: string): Statement {
  return { sql: `COPY ${STAGE_TABLE} FROM $1 IAM_ROLE $2 FORMAT AS PARQUET`, params: [uri, roleArn] };
}

/** Marks each staged row new when its key (a fact's natural key + last updated, a member's id) is absent. */
export function markNewSql(t: WarehouseTable): string {
  const first = ident(t.key[0] as string);
  const on = t.key.map((k) => `w.${ident(k)} = s.${ident(k)}`).join(' AND ');
  return `CREATE TEMP TABLE ${TYPED_CDC_TABLE} AS SELECT ${names(t)
    .map((c) => `s.${c}`)
    .join(', ')}, CASE WHEN w.${first} IS NULL THEN true ELSE false END AS is_new
FROM ${STAGE_TABLE} s LEFT JOIN ${target(t)} w ON ${on}`;
}

/**
 * Facts: insert the versions not yet present (history kept, a rerun inserts nothing). Dimensions:
 * upsert each member to the values of the run.
 */
export function writeSql(t: WarehouseTable): string {
  const cols = names(t);
  // Lineage for the latency report's cdc path (migration 0210): $1 the processed object, $2 when its
  // run was ingested; warehouse_visible_at is the column's default.
  if (t.kind === 'fact')
    return `INSERT INTO ${target(t)} (${cols.join(', ')}, source_key, ingested_at) SELECT ${cols.join(', ')}, CAST($1 AS varchar(1024)), CAST($2 AS timestamptz) FROM ${TYPED_CDC_TABLE} WHERE is_new`;
  const id = ident(t.key[0] as string);
  const table = ident(t.name);
  const rest = cols.filter((c) => c !== id);
  return `MERGE INTO ${target(t)} USING ${TYPED_CDC_TABLE} s ON ${table}.${id} = s.${id}
WHEN MATCHED THEN UPDATE SET ${rest.map((c) => `${c} = s.${c}`).join(', ')}
WHEN NOT MATCHED THEN INSERT (${cols.join(', ')}) VALUES (${cols.map((c) => `s.${c}`).join(', ')})`;
}

export const dropSql = (): Statement[] => [
  { sql: `DROP TABLE ${TYPED_CDC_TABLE}` },
  { sql: `DROP TABLE ${STAGE_TABLE}` },
];
