import type { ColumnMetadata, Field } from '@aws-sdk/client-redshift-data';
import type pg from 'pg';

/**
 * PostgreSQL rows as the Data API's typed fields. pg hands every value over as PostgreSQL's text
 * (no parsing: numerics and timestamps keep their exact text, as the Data API's stringValue does);
 * the type decides the field: integers longValue, floats doubleValue, booleans booleanValue, the
 * rest stringValue, NULL isNull.
 */

const BOOL = 16;
const INTEGERS = new Set([20, 21, 23, 26]);
const FLOATS = new Set([700, 701]);
const NUMERIC = 1700;
const VARCHAR = 1043;
const BPCHAR = 1042;

/** Redshift's type names for the PostgreSQL types the project's SQL returns. */
const TYPE_NAMES: Record<number, string> = {
  16: 'bool',
  20: 'int8',
  21: 'int2',
  23: 'int4',
  25: 'text',
  26: 'oid',
  700: 'float4',
  701: 'float8',
  1042: 'bpchar',
  1043: 'varchar',
  1082: 'date',
  1083: 'time',
  1114: 'timestamp',
  1184: 'timestamptz',
  1186: 'interval',
  1700: 'numeric',
  19: 'name',
  114: 'json',
  3802: 'jsonb',
};

/** Every type as its text: the conversion to fields is ours. */
export const RAW_TYPES: pg.CustomTypesConfig = {
  getTypeParser: () => (value: string | Buffer) =>
    typeof value === 'string' ? value : value.toString('utf8'),
} as pg.CustomTypesConfig;

export function toField(value: unknown, typeId: number): Field {
  if (value === null || value === undefined) return { isNull: true };
  const text = String(value);
  if (typeId === BOOL) return { booleanValue: text === 't' || text === 'true' };
  if (INTEGERS.has(typeId)) return { longValue: Number(text) };
  if (FLOATS.has(typeId) && Number.isFinite(Number(text))) return { doubleValue: Number(text) };
  return { stringValue: text };
}

export function columnMetadata(f: pg.FieldDef): ColumnMetadata {
  const typeName = TYPE_NAMES[f.dataTypeID] ?? 'unknown';
  const mod = f.dataTypeModifier;
  let precision = 0;
  let scale = 0;
  if (f.dataTypeID === NUMERIC && mod >= 4) {
    precision = ((mod - 4) >> 16) & 0xffff;
    scale = (mod - 4) & 0xffff;
  } else if ((f.dataTypeID === VARCHAR || f.dataTypeID === BPCHAR) && mod >= 4) {
    precision = mod - 4;
  } else if (f.dataTypeSize > 0) {
    precision = f.dataTypeSize;
  }
  const numeric = INTEGERS.has(f.dataTypeID) || FLOATS.has(f.dataTypeID) || f.dataTypeID === NUMERIC;
  return {
    name: f.name,
    label: f.name,
    typeName,
    precision,
    scale,
    length: 0,
    nullable: 1,
    isSigned: numeric,
    isCaseSensitive: typeName === 'varchar' || typeName === 'bpchar' || typeName === 'text',
    isCurrency: false,
    schemaName: '',
    tableName: '',
    columnDefault: undefined,
  };
}

export interface ResultSet {
  columns: ColumnMetadata[];
  records: Field[][];
  /** Bytes of the records as JSON: DescribeStatement's ResultSize. */
  bytes: number;
}

export function resultSet(fields: pg.FieldDef[], rows: unknown[][]): ResultSet {
  const records = rows.map((r) => r.map((v, i) => toField(v, (fields[i] as pg.FieldDef).dataTypeID)));
  return {
    columns: fields.map(columnMetadata),
    records,
    bytes: Buffer.byteLength(JSON.stringify(records)),
  };
}
