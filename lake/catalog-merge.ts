import {
  type Classification,
  FORMATS,
  type GlueColumn,
  type GluePartition,
  type GlueTable,
  type LakeCatalog,
} from './catalog.ts';

/**
 * How one crawl's findings enter the catalog, the way a Glue crawler with "add new columns only"
 * and the LOG delete behaviour does: tables, columns and partitions are added, a column's type only
 * widens (int -> bigint -> double, a decimal to one that holds both), nothing is ever removed. Every
 * difference is a change in the crawl's report, so a schema change is seen, not silently absorbed.
 */

export interface FoundPartition {
  values: string[];
  location: string;
  columns: GlueColumn[];
  objectCount: number;
  size: number;
  /** Identifies the objects the columns were read from; unchanged means not read again. */
  fingerprint: string;
  /** JSON only: a column's key as the data spells it, where that is not the column's (lower-case) name. */
  keys?: Record<string, string>;
}

export interface FoundTable {
  name: string;
  location: string;
  classification: Classification;
  partitionKeys: GlueColumn[];
  partitions: FoundPartition[];
}

export type ChangeKind =
  | 'table added'
  | 'column added'
  | 'column type widened'
  | 'column type conflict'
  | 'partition keys changed'
  | 'partitions added'
  | 'partition schema changed'
  | 'partitions gone (kept)'
  | 'table gone (kept)';

export interface CatalogChange {
  table: string;
  kind: ChangeKind;
  detail: string;
}

const INTEGERS = ['tinyint', 'smallint', 'int', 'bigint'];
const DECIMAL = /^decimal\((\d+),\s*(\d+)\)$/;

function decimalOf(type: string): { p: number; s: number } | undefined {
  const m = DECIMAL.exec(type);
  if (m) return { p: Number(m[1]), s: Number(m[2]) };
  const i = INTEGERS.indexOf(type);
  return i < 0 ? undefined : { p: [3, 5, 10, 19][i] as number, s: 0 };
}

/** The narrowest type holding both, or undefined when neither holds the other (a conflict). */
export function widenType(a: string, b: string, classification: Classification): string | undefined {
  if (a === b) return a;
  const ia = INTEGERS.indexOf(a);
  const ib = INTEGERS.indexOf(b);
  if (ia >= 0 && ib >= 0) return INTEGERS[Math.max(ia, ib)];
  if ((ia >= 0 || a === 'float') && b === 'double') return 'double';
  if ((ib >= 0 || b === 'float') && a === 'double') return 'double';
  const da = decimalOf(a);
  const db = decimalOf(b);
  if (da && db && (DECIMAL.test(a) || DECIMAL.test(b))) {
    const s = Math.max(da.s, db.s);
    const p = Math.max(da.p - da.s, db.p - db.s) + s;
    return p <= 38 ? `decimal(${p},${s})` : undefined;
  }
  // JSON carries no declared types: a field seen as text and as a number is text, as Glue's JSON classifier says.
  if (classification === 'json' && (a === 'string' || b === 'string')) return 'string';
  return undefined;
}

/** The columns of `found` appended to `columns` (first-seen order), widened, with what changed. */
function mergeColumns(
  table: string,
  columns: GlueColumn[],
  found: GlueColumn[],
  classification: Classification,
  changes: CatalogChange[],
): GlueColumn[] {
  const out = columns.map((c) => ({ ...c }));
  for (const f of found) {
    const existing = out.find((c) => c.Name === f.Name);
    if (!existing) {
      out.push({ ...f });
      changes.push({ table, kind: 'column added', detail: `${f.Name} ${f.Type}` });
      continue;
    }
    if (existing.Type === f.Type) continue;
    const wide = widenType(existing.Type, f.Type, classification);
    if (wide === undefined) {
      changes.push({
        table,
        kind: 'column type conflict',
        detail: `${f.Name} is ${existing.Type} in the catalog, ${f.Type} in new data (kept ${existing.Type})`,
      });
    } else if (wide !== existing.Type) {
      changes.push({ table, kind: 'column type widened', detail: `${f.Name} ${existing.Type} -> ${wide}` });
      existing.Type = wide;
    }
  }
  return out;
}

const sameKeys = (a: GlueColumn[], b: GlueColumn[]) =>
  a.length === b.length && a.every((c, i) => c.Name === b[i]?.Name && c.Type === b[i]?.Type);
const valuesId = (values: string[]) => values.join('\u0000');
const compareValues = (a: GluePartition, b: GluePartition) => {
  const x = valuesId(a.Values);
  const y = valuesId(b.Values);
  return x < y ? -1 : x > y ? 1 : 0;
};

function partitionOf(t: FoundTable, p: FoundPartition, database: string, now: string): GluePartition {
  return {
    Values: p.values,
    DatabaseName: database,
    TableName: t.name,
    CreationTime: now,
    StorageDescriptor: { Columns: p.columns, Location: p.location },
    Parameters: { objectCount: String(p.objectCount), sizeKey: String(p.size), fingerprint: p.fingerprint },
  };
}

function newTable(t: FoundTable, database: string, now: string): GlueTable {
  const format = FORMATS[t.classification];
  return {
    Name: t.name,
    DatabaseName: database,
    TableType: 'EXTERNAL_TABLE',
    CreateTime: now,
    UpdateTime: now,
    StorageDescriptor: {
      Columns: [],
      Location: t.location,
      InputFormat: format.InputFormat,
      OutputFormat: format.OutputFormat,
      Compressed: t.classification === 'json',
      SerdeInfo: structuredClone(format.SerdeInfo),
    },
    PartitionKeys: t.partitionKeys,
    Parameters: {
      classification: t.classification,
      compressionType: format.compressionType,
      typeOfData: 'file',
      EXTERNAL: 'TRUE',
    },
  };
}

/** One found table into the catalog (mutated): its columns, partitions and parameters. */
function mergeTable(catalog: LakeCatalog, t: FoundTable, now: string, changes: CatalogChange[]): void {
  const database = catalog.Database.Name;
  let table = catalog.Tables.find((x) => x.Name === t.name);
  const isNew = !table;
  if (!table) {
    table = newTable(t, database, now);
    catalog.Tables.push(table);
    changes.push({ table: t.name, kind: 'table added', detail: t.location });
  }
  let partitions = catalog.Partitions[t.name] ?? [];
  if (!sameKeys(table.PartitionKeys, t.partitionKeys)) {
    const show = (keys: GlueColumn[]) => `(${keys.map((k) => k.Name).join(', ')})`;
    changes.push({
      table: t.name,
      kind: 'partition keys changed',
      detail: `${show(table.PartitionKeys)} -> ${show(t.partitionKeys)}; the old partitions no longer apply`,
    });
    table.PartitionKeys = t.partitionKeys;
    partitions = [];
  }
  const byValues = new Map(partitions.map((p) => [valuesId(p.Values), p]));
  const columnChanges: CatalogChange[] = [];
  let columns = table.StorageDescriptor.Columns;
  let added = 0;
  for (const p of t.partitions) {
    columns = mergeColumns(t.name, columns, p.columns, t.classification, columnChanges);
    const known = byValues.get(valuesId(p.values));
    if (!known) {
      byValues.set(valuesId(p.values), partitionOf(t, p, database, now));
      added++;
    } else if (known.Parameters.fingerprint !== p.fingerprint) {
      if (!sameKeys(known.StorageDescriptor.Columns, p.columns))
        changes.push({ table: t.name, kind: 'partition schema changed', detail: p.values.join('/') });
      byValues.set(valuesId(p.values), {
        ...partitionOf(t, p, database, now),
        CreationTime: known.CreationTime,
      });
    }
  }
  // A new table's columns are all new: the 'table added' line says it.
  if (!isNew) changes.push(...columnChanges);
  if (added > 0) changes.push({ table: t.name, kind: 'partitions added', detail: String(added) });
  const seen = new Set(t.partitions.map((p) => valuesId(p.values)));
  const gone = [...byValues.keys()].filter((v) => !seen.has(v));
  if (gone.length > 0)
    changes.push({
      table: t.name,
      kind: 'partitions gone (kept)',
      detail: gone.map((v) => v.replaceAll('\u0000', '/')).join(', '),
    });
  catalog.Partitions[t.name] = [...byValues.values()].sort(compareValues);
  const size = t.partitions.reduce((a, p) => a + p.size, 0);
  const count = t.partitions.reduce((a, p) => a + p.objectCount, 0);
  const changed = changes.some((c) => c.table === t.name) || columnChanges.length > 0;
  table.StorageDescriptor.Columns = columns;
  if (t.classification === 'json') {
    const serde = table.StorageDescriptor.SerdeInfo.Parameters;
    serde.paths = columns.map((c) => c.Name).join(',');
    for (const p of t.partitions)
      for (const [column, key] of Object.entries(p.keys ?? {}))
        if (key !== column) serde[`mapping.${column}`] = key;
  }
  table.Parameters = { ...table.Parameters, objectCount: String(count), sizeKey: String(size) };
  if (changed) table.UpdateTime = now;
}

/**
 * `found` into a copy of `catalog`. `covered`: the key prefixes this crawl looked at; a catalogued
 * table under one of them that the crawl did not find is reported (and kept), others are left alone.
 */
export function mergeCrawl(
  catalog: LakeCatalog,
  found: FoundTable[],
  covered: string[],
  now: string,
): { catalog: LakeCatalog; changes: CatalogChange[] } {
  const next = structuredClone(catalog);
  const changes: CatalogChange[] = [];
  for (const t of found) mergeTable(next, t, now, changes);
  const foundNames = new Set(found.map((t) => t.name));
  for (const table of next.Tables) {
    const inScope = covered.some((prefix) => table.StorageDescriptor.Location.includes(`/${prefix}`));
    if (inScope && !foundNames.has(table.Name))
      changes.push({
        table: table.Name,
        kind: 'table gone (kept)',
        detail: table.StorageDescriptor.Location,
      });
  }
  next.Tables.sort((a, b) => (a.Name < b.Name ? -1 : a.Name > b.Name ? 1 : 0));
  return { catalog: next, changes };
}
