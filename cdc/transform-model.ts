import {
  boolean,
  date,
  decimal,
  int32,
  type ParquetColumn,
  type ParquetRow,
  string,
  time,
} from '#adapters/parquet-writer';
import { TimeSlicer } from '#core/time-slice';
import { currencyName } from './currencies.ts';
import { type TotesysTableName, totesysTable } from './totesys/tables.ts';

/**
 * The totesys warehouse model (../shared/data/totesys/SCHEMA.md, the three stars) and the remodel of
 * source rows into it. Pure: the transform feeds it a run's rows and the current state of the tables
 * the dimensions join; the same input gives the same rows, in key order.
 */

/** A source row as the ingestion CSV holds it: the exact text of each column, NULL as null. */
export type SourceRow = Readonly<Record<string, string | null>>;

export class TransformError extends Error {
  override name = 'TransformError';
}

export interface WarehouseTable {
  name: string;
  kind: 'fact' | 'dim';
  /** The Parquet columns, which are also the warehouse columns (a fact adds its record id). */
  columns: ReadonlyArray<ParquetColumn>;
  /** Facts: the natural key plus last updated (one row per version); dimensions: the id. */
  key: ReadonlyArray<string>;
  /** A fact's surrogate record id (identity column in the warehouse, not in the Parquet). */
  recordId?: string;
}

const col = (name: string, type: ParquetColumn['type'], nullable = false): ParquetColumn => ({
  name,
  type,
  nullable,
});
const ints = (...names: string[]) => names.map((n) => col(n, int32));
const strings = (...names: string[]) => names.map((n) => col(n, string));
const STAMPS = [
  col('created_date', date),
  col('created_time', time),
  col('last_updated_date', date),
  col('last_updated_time', time),
];
/** SCHEMA.md's `numeric` without a scale: money to the cent (the course's data has two decimals). */
const MONEY = decimal(18, 2);

function fact(name: string, id: string, recordId: string, rest: ParquetColumn[]): WarehouseTable {
  return {
    name,
    kind: 'fact',
    columns: [col(id, int32), ...STAMPS, ...rest],
    key: [id, 'last_updated_date', 'last_updated_time'],
    recordId,
  };
}
const dim = (name: string, columns: ParquetColumn[]): WarehouseTable => ({
  name,
  kind: 'dim',
  columns,
  key: [(columns[0] as ParquetColumn).name],
});

export const WAREHOUSE_TABLES = [
  fact('fact_sales_order', 'sales_order_id', 'sales_record_id', [
    ...ints('sales_staff_id', 'counterparty_id', 'units_sold'),
    col('unit_price', decimal(10, 2)),
    ...ints('currency_id', 'design_id'),
    col('agreed_payment_date', date),
    col('agreed_delivery_date', date),
    col('agreed_delivery_location_id', int32),
  ]),
  fact('fact_purchase_orders', 'purchase_order_id', 'purchase_record_id', [
    ...ints('staff_id', 'counterparty_id'),
    col('item_code', string),
    col('item_quantity', int32),
    col('item_unit_price', MONEY),
    col('currency_id', int32),
    col('agreed_delivery_date', date),
    col('agreed_payment_date', date),
    col('agreed_delivery_location_id', int32),
  ]),
  fact('fact_payment', 'payment_id', 'payment_record_id', [
    ...ints('transaction_id', 'counterparty_id'),
    col('payment_amount', MONEY),
    ...ints('currency_id', 'payment_type_id'),
    col('paid', boolean),
    col('payment_date', date),
  ]),
  dim('dim_date', [
    col('date_id', date),
    ...ints('year', 'month', 'day', 'day_of_week'),
    ...strings('day_name', 'month_name'),
    col('quarter', int32),
  ]),
  dim('dim_staff', [
    col('staff_id', int32),
    ...strings('first_name', 'last_name', 'department_name'),
    col('location', string, true),
    col('email_address', string),
  ]),
  dim('dim_location', [
    col('location_id', int32),
    col('address_line_1', string),
    col('address_line_2', string, true),
    col('district', string, true),
    ...strings('city', 'postal_code', 'country', 'phone'),
  ]),
  dim('dim_currency', [col('currency_id', int32), ...strings('currency_code', 'currency_name')]),
  dim('dim_design', [col('design_id', int32), ...strings('design_name', 'file_location', 'file_name')]),
  dim('dim_counterparty', [
    col('counterparty_id', int32),
    ...strings('counterparty_legal_name', 'counterparty_legal_address_line_1'),
    col('counterparty_legal_address_line_2', string, true),
    col('counterparty_legal_district', string, true),
    ...strings(
      'counterparty_legal_city',
      'counterparty_legal_postal_code',
      'counterparty_legal_country',
      'counterparty_legal_phone_number',
    ),
  ]),
  dim('dim_payment_type', [col('payment_type_id', int32), col('payment_type_name', string)]),
  dim('dim_transaction', [
    col('transaction_id', int32),
    col('transaction_type', string),
    col('sales_order_id', int32, true),
    col('purchase_order_id', int32, true),
  ]),
] as const satisfies ReadonlyArray<WarehouseTable>;

export type WarehouseTableName = (typeof WAREHOUSE_TABLES)[number]['name'];
const BY_NAME = new Map<string, WarehouseTable>(WAREHOUSE_TABLES.map((t) => [t.name, t]));

export function warehouseTable(name: string): WarehouseTable | undefined {
  return BY_NAME.get(name);
}

// ---- values ----

const TIMESTAMP = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)$/;

/** A source timestamp (no zone) split into its date and its time of day, exactly as written. */
export function splitTimestamp(text: string): { date: string; time: string } {
  const m = TIMESTAMP.exec(text);
  if (!m) throw new TransformError(`${JSON.stringify(text)} is not a timestamp YYYY-MM-DDTHH:MM:SS[.ffffff]`);
  return { date: m[1] as string, time: m[2] as string };
}

const DAY_NAMES = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];
const MONTH_NAMES = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];

/** A dim_date row; day_of_week is ISO 8601 (1 = Monday .. 7 = Sunday). */
export function dateRow(isoDate: string): ParquetRow {
  const d = new Date(`${isoDate}T00:00:00Z`);
  if (Number.isNaN(d.getTime()) || d.toISOString().slice(0, 10) !== isoDate)
    throw new TransformError(`${JSON.stringify(isoDate)} is not a date YYYY-MM-DD`);
  const isoDay = ((d.getUTCDay() + 6) % 7) + 1;
  const month = d.getUTCMonth() + 1;
  return {
    date_id: isoDate,
    year: d.getUTCFullYear(),
    month,
    day: d.getUTCDate(),
    day_of_week: isoDay,
    day_name: DAY_NAMES[isoDay - 1] as string,
    month_name: MONTH_NAMES[month - 1] as string,
    quarter: Math.ceil(month / 3),
  };
}

/** The value of a column that SCHEMA.md says is never NULL. */
function req(table: string, row: SourceRow, column: string): string {
  const v = row[column];
  if (v === null || v === undefined)
    throw new TransformError(`${table} row ${JSON.stringify(row)}: ${column} is missing`);
  return v;
}

function int(table: string, row: SourceRow, column: string): number {
  const text = req(table, row, column);
  if (!/^-?\d{1,10}$/.test(text) || Math.abs(Number(text)) >= 2 ** 31)
    throw new TransformError(`${table}.${column}: ${JSON.stringify(text)} is not an integer`);
  return Number(text);
}

function optInt(table: string, row: SourceRow, column: string): number | null {
  return row[column] === null || row[column] === undefined ? null : int(table, row, column);
}

function bool(table: string, row: SourceRow, column: string): boolean {
  const text = req(table, row, column);
  if (text !== 'true' && text !== 'false')
    throw new TransformError(`${table}.${column}: ${JSON.stringify(text)} is not true or false`);
  return text === 'true';
}

function stamps(table: string, row: SourceRow): ParquetRow {
  const created = splitTimestamp(req(table, row, 'created_at'));
  const updated = splitTimestamp(req(table, row, 'last_updated'));
  return {
    created_date: created.date,
    created_time: created.time,
    last_updated_date: updated.date,
    last_updated_time: updated.time,
  };
}

// ---- rows ----

export function salesOrderFact(r: SourceRow): ParquetRow {
  const t = 'sales_order';
  return {
    sales_order_id: int(t, r, 'sales_order_id'),
    ...stamps(t, r),
    sales_staff_id: int(t, r, 'staff_id'),
    counterparty_id: int(t, r, 'counterparty_id'),
    units_sold: int(t, r, 'units_sold'),
    unit_price: req(t, r, 'unit_price'),
    currency_id: int(t, r, 'currency_id'),
    design_id: int(t, r, 'design_id'),
    agreed_payment_date: req(t, r, 'agreed_payment_date'),
    agreed_delivery_date: req(t, r, 'agreed_delivery_date'),
    agreed_delivery_location_id: int(t, r, 'agreed_delivery_location_id'),
  };
}

export function purchaseOrderFact(r: SourceRow): ParquetRow {
  const t = 'purchase_order';
  return {
    purchase_order_id: int(t, r, 'purchase_order_id'),
    ...stamps(t, r),
    staff_id: int(t, r, 'staff_id'),
    counterparty_id: int(t, r, 'counterparty_id'),
    item_code: req(t, r, 'item_code'),
    item_quantity: int(t, r, 'item_quantity'),
    item_unit_price: req(t, r, 'item_unit_price'),
    currency_id: int(t, r, 'currency_id'),
    agreed_delivery_date: req(t, r, 'agreed_delivery_date'),
    agreed_payment_date: req(t, r, 'agreed_payment_date'),
    agreed_delivery_location_id: int(t, r, 'agreed_delivery_location_id'),
  };
}

export function paymentFact(r: SourceRow): ParquetRow {
  const t = 'payment';
  return {
    payment_id: int(t, r, 'payment_id'),
    ...stamps(t, r),
    transaction_id: int(t, r, 'transaction_id'),
    counterparty_id: int(t, r, 'counterparty_id'),
    payment_amount: req(t, r, 'payment_amount'),
    currency_id: int(t, r, 'currency_id'),
    payment_type_id: int(t, r, 'payment_type_id'),
    paid: bool(t, r, 'paid'),
    payment_date: req(t, r, 'payment_date'),
  };
}

export function locationDim(r: SourceRow): ParquetRow {
  const t = 'address';
  return {
    location_id: int(t, r, 'address_id'),
    address_line_1: req(t, r, 'address_line_1'),
    address_line_2: r.address_line_2 ?? null,
    district: r.district ?? null,
    city: req(t, r, 'city'),
    postal_code: req(t, r, 'postal_code'),
    country: req(t, r, 'country'),
    phone: req(t, r, 'phone'),
  };
}

export function counterpartyDim(r: SourceRow, address: SourceRow): ParquetRow {
  const t = 'counterparty';
  const a = locationDim(address);
  return {
    counterparty_id: int(t, r, 'counterparty_id'),
    counterparty_legal_name: req(t, r, 'counterparty_legal_name'),
    counterparty_legal_address_line_1: a.address_line_1 ?? null,
    counterparty_legal_address_line_2: a.address_line_2 ?? null,
    counterparty_legal_district: a.district ?? null,
    counterparty_legal_city: a.city ?? null,
    counterparty_legal_postal_code: a.postal_code ?? null,
    counterparty_legal_country: a.country ?? null,
    counterparty_legal_phone_number: a.phone ?? null,
  };
}

export function staffDim(r: SourceRow, department: SourceRow): ParquetRow {
  const t = 'staff';
  return {
    staff_id: int(t, r, 'staff_id'),
    first_name: req(t, r, 'first_name'),
    last_name: req(t, r, 'last_name'),
    department_name: req('department', department, 'department_name'),
    location: department.location ?? null,
    email_address: req(t, r, 'email_address'),
  };
}

export function currencyDim(r: SourceRow): ParquetRow {
  const code = req('currency', r, 'currency_code');
  return {
    currency_id: int('currency', r, 'currency_id'),
    currency_code: code,
    currency_name: currencyName(code),
  };
}

export function designDim(r: SourceRow): ParquetRow {
  const t = 'design';
  return {
    design_id: int(t, r, 'design_id'),
    design_name: req(t, r, 'design_name'),
    file_location: req(t, r, 'file_location'),
    file_name: req(t, r, 'file_name'),
  };
}

export function paymentTypeDim(r: SourceRow): ParquetRow {
  return {
    payment_type_id: int('payment_type', r, 'payment_type_id'),
    payment_type_name: req('payment_type', r, 'payment_type_name'),
  };
}

export function transactionDim(r: SourceRow): ParquetRow {
  const t = 'transaction';
  return {
    transaction_id: int(t, r, 'transaction_id'),
    transaction_type: req(t, r, 'transaction_type'),
    sales_order_id: optInt(t, r, 'sales_order_id'),
    purchase_order_id: optInt(t, r, 'purchase_order_id'),
  };
}

// ---- a run ----

/** Current rows by table, by primary key (as text): the state the dimensions join. */
export type CurrentState = ReadonlyMap<TotesysTableName, ReadonlyMap<string, SourceRow>>;

export interface RemodelResult {
  tables: Map<WarehouseTableName, ParquetRow[]>;
  /** Dimension rows that could not be built yet: the row they join has not been captured. */
  unresolved: string[];
}

/** The latest version of each key in `rows` (a run may carry several versions of a row). */
export function latestByKey(rows: ReadonlyArray<SourceRow>, key: string): Map<string, SourceRow> {
  const out = new Map<string, SourceRow>();
  for (const r of rows) {
    const id = req('source', r, key);
    const seen = out.get(id);
    if (!seen || (seen.last_updated ?? '') <= (r.last_updated ?? '')) out.set(id, r);
  }
  return out;
}

const byNumericKey = (a: string, b: string) => Number(a) - Number(b);

/** Sorts by the key columns (numbers, then text), so the output never depends on input order. */
function sortRows(rows: ParquetRow[], key: ReadonlyArray<string>): ParquetRow[] {
  return rows.sort((a, b) => {
    for (const k of key) {
      const x = a[k];
      const y = b[k];
      if (x === y) continue;
      if (typeof x === 'number' && typeof y === 'number') return x - y;
      return String(x) < String(y) ? -1 : 1;
    }
    return 0;
  });
}

/**
 * One run's warehouse rows: every version of every fact row in the run; each dimension member the
 * run changed, or whose joined row it changed (a counterparty whose legal address moved), built
 * from `state` (the current rows, this run included); dim_date for every date the facts name.
 * The row-by-row steps run in the slicer's time slices (a first run is 48k rows); the result does
 * not depend on them.
 */
export async function remodel(
  run: ReadonlyMap<TotesysTableName, ReadonlyArray<SourceRow>>,
  state: CurrentState,
  slicer = new TimeSlicer(),
): Promise<RemodelResult> {
  const tables = new Map<WarehouseTableName, ParquetRow[]>();
  const unresolved: string[] = [];
  const rowsOf = (t: TotesysTableName) => run.get(t) ?? [];
  const current = (t: TotesysTableName) => state.get(t) ?? new Map<string, SourceRow>();
  const put = (name: WarehouseTableName, rows: ParquetRow[]) => {
    if (rows.length === 0) return;
    const table = warehouseTable(name) as WarehouseTable;
    tables.set(name, sortRows(rows, table.key));
  };

  const each = <T>(rows: readonly T[], build: (r: T) => ParquetRow) => slicer.map(rows, (r) => build(r));
  put('fact_sales_order', await each(rowsOf('sales_order'), salesOrderFact));
  put('fact_purchase_orders', await each(rowsOf('purchase_order'), purchaseOrderFact));
  put('fact_payment', await each(rowsOf('payment'), paymentFact));

  const changed = (t: TotesysTableName, key: string) => latestByKey(rowsOf(t), key);
  const dimension = (t: TotesysTableName, key: string, build: (r: SourceRow) => ParquetRow) =>
    each([...changed(t, key).values()], build);
  put('dim_location', await dimension('address', 'address_id', locationDim));
  put('dim_currency', await dimension('currency', 'currency_id', currencyDim));
  put('dim_design', await dimension('design', 'design_id', designDim));
  put('dim_payment_type', await dimension('payment_type', 'payment_type_id', paymentTypeDim));
  put('dim_transaction', await dimension('transaction', 'transaction_id', transactionDim));

  // A joined dimension changes with either side: the member's own row or the row it references.
  const joined = (
    table: TotesysTableName,
    key: string,
    ref: TotesysTableName,
    refKey: string,
    build: (r: SourceRow, joinedRow: SourceRow) => ParquetRow,
  ): ParquetRow[] => {
    const ids = new Set(changed(table, key).keys());
    const refsChanged = new Set(changed(ref, totesysTable(ref).primaryKey).keys());
    for (const [id, r] of current(table)) if (refsChanged.has(r[refKey] ?? '')) ids.add(id);
    const out: ParquetRow[] = [];
    for (const id of [...ids].sort(byNumericKey)) {
      const r = current(table).get(id) ?? changed(table, key).get(id);
      if (!r) continue;
      const other = current(ref).get(r[refKey] ?? '');
      if (other) out.push(build(r, other));
      else unresolved.push(`${table} ${id}: ${ref} ${r[refKey]} not captured yet`);
    }
    return out;
  };
  put(
    'dim_counterparty',
    joined('counterparty', 'counterparty_id', 'address', 'legal_address_id', counterpartyDim),
  );
  put('dim_staff', joined('staff', 'staff_id', 'department', 'department_id', staffDim));
  if (slicer.due) await slicer.turn();

  const dates = new Set<string>();
  for (const name of ['fact_sales_order', 'fact_purchase_orders', 'fact_payment'] as const) {
    const table = warehouseTable(name) as WarehouseTable;
    const dateColumns = table.columns.filter((c) => c.type.kind === 'date').map((c) => c.name);
    for (const row of tables.get(name) ?? []) for (const c of dateColumns) dates.add(String(row[c]));
  }
  put('dim_date', [...dates].map(dateRow));
  return { tables, unresolved };
}
