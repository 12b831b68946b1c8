/**
 * THE fixed list of the totesys source tables (../shared/data/totesys/SCHEMA.md), in SCHEMA.md order,
 * each with `created_at` and `last_updated` last. Every table or column name that reaches SQL comes from
 * here, never from input, so no identifier can be injected; every value is a bind parameter.
 *
 * The column order is the CSV header order of the ingestion zone (docs/totesys.md, the CDC contract).
 */

/** How a value is read from PostgreSQL and written to CSV. */
export type ColumnKind = 'int' | 'text' | 'numeric' | 'boolean' | 'timestamp';

export interface SourceColumn {
  readonly name: string;
  /** The SQL type in the source DDL. */
  readonly sqlType: string;
  readonly kind: ColumnKind;
  readonly nullable: boolean;
  /** Foreign key: the referenced table (its primary key). */
  readonly references?: TotesysTableName;
}

export interface SourceTable {
  readonly name: TotesysTableName;
  /** A single-column integer key in every totesys table. */
  readonly primaryKey: string;
  readonly columns: readonly SourceColumn[];
}

export const TOTESYS_TABLE_NAMES = [
  'address',
  'counterparty',
  'currency',
  'department',
  'design',
  'staff',
  'sales_order',
  'purchase_order',
  'payment_type',
  'payment',
  'transaction',
] as const;

export type TotesysTableName = (typeof TOTESYS_TABLE_NAMES)[number];

const int = (name: string, references?: TotesysTableName): SourceColumn =>
  references
    ? { name, sqlType: 'int', kind: 'int', nullable: false, references }
    : { name, sqlType: 'int', kind: 'int', nullable: false };
const text = (name: string, sqlType = 'varchar'): SourceColumn => ({
  name,
  sqlType,
  kind: 'text',
  nullable: false,
});
const numeric = (name: string, sqlType = 'numeric'): SourceColumn => ({
  name,
  sqlType,
  kind: 'numeric',
  nullable: false,
});
const nullable = (column: SourceColumn): SourceColumn => ({ ...column, nullable: true });

const TIMESTAMPS: readonly SourceColumn[] = [
  { name: 'created_at', sqlType: 'timestamp', kind: 'timestamp', nullable: false },
  { name: 'last_updated', sqlType: 'timestamp', kind: 'timestamp', nullable: false },
];

function table(name: TotesysTableName, columns: SourceColumn[]): SourceTable {
  const pk = columns[0];
  if (!pk) throw new Error(`table ${name} has no columns`);
  return { name, primaryKey: pk.name, columns: [...columns, ...TIMESTAMPS] };
}

export const TOTESYS_TABLES: readonly SourceTable[] = [
  table('address', [
    int('address_id'),
    text('address_line_1'),
    nullable(text('address_line_2')),
    nullable(text('district')),
    text('city'),
    text('postal_code'),
    text('country'),
    text('phone'),
  ]),
  table('counterparty', [
    int('counterparty_id'),
    text('counterparty_legal_name'),
    int('legal_address_id', 'address'),
    nullable(text('commercial_contact')),
    nullable(text('delivery_contact')),
  ]),
  table('currency', [int('currency_id'), text('currency_code', 'varchar(3)')]),
  table('department', [
    int('department_id'),
    text('department_name'),
    nullable(text('location')),
    nullable(text('manager')),
  ]),
  table('design', [int('design_id'), text('design_name'), text('file_location'), text('file_name')]),
  table('staff', [
    int('staff_id'),
    text('first_name'),
    text('last_name'),
    int('department_id', 'department'),
    text('email_address'),
  ]),
  table('sales_order', [
    int('sales_order_id'),
    int('design_id', 'design'),
    int('staff_id', 'staff'),
    int('counterparty_id', 'counterparty'),
    int('units_sold'),
    numeric('unit_price', 'numeric(10,2)'),
    int('currency_id', 'currency'),
    text('agreed_delivery_date'),
    text('agreed_payment_date'),
    int('agreed_delivery_location_id', 'address'),
  ]),
  table('purchase_order', [
    int('purchase_order_id'),
    int('staff_id', 'staff'),
    int('counterparty_id', 'counterparty'),
    text('item_code'),
    int('item_quantity'),
    numeric('item_unit_price'),
    int('currency_id', 'currency'),
    text('agreed_delivery_date'),
    text('agreed_payment_date'),
    int('agreed_delivery_location_id', 'address'),
  ]),
  table('payment_type', [int('payment_type_id'), text('payment_type_name')]),
  table('payment', [
    int('payment_id'),
    int('transaction_id', 'transaction'),
    int('counterparty_id', 'counterparty'),
    numeric('payment_amount'),
    int('currency_id', 'currency'),
    int('payment_type_id', 'payment_type'),
    { name: 'paid', sqlType: 'boolean', kind: 'boolean', nullable: false },
    text('payment_date'),
    int('company_ac_number'),
    int('counterparty_ac_number'),
  ]),
  table('transaction', [
    int('transaction_id'),
    text('transaction_type'),
    nullable(int('sales_order_id', 'sales_order')),
    nullable(int('purchase_order_id', 'purchase_order')),
  ]),
];

const BY_NAME = new Map(TOTESYS_TABLES.map((t) => [t.name, t]));

export function totesysTable(name: TotesysTableName): SourceTable {
  const found = BY_NAME.get(name);
  if (!found) throw new Error(`unknown totesys table: ${name}`);
  return found;
}

export function isTotesysTableName(name: string): name is TotesysTableName {
  return BY_NAME.has(name as TotesysTableName);
}

/** The CSV header of a table's ingestion files: its column names in this file's order. */
export function columnNames(t: SourceTable): string[] {
  return t.columns.map((c) => c.name);
}

const IDENTIFIER = /^[a-z_][a-z0-9_]*$/;

/**
 * A double-quoted identifier for a name of this file (`transaction` is an SQL keyword). Throws on
 * anything that is not a plain lower-case identifier, so a future edit cannot slip input into SQL.
 */
export function quoteIdent(name: string): string {
  if (!IDENTIFIER.test(name)) throw new Error(`not a safe SQL identifier: ${JSON.stringify(name)}`);
  return `"${name}"`;
}
