import type { AttributeValue, CreateTableCommandInput } from '@aws-sdk/client-dynamodb';

/**
 * The single table behind the serving store (see docs/dynamodb.md for the item types).
 * pk/sk: the item's identity; gsi1: customer -> invoices (invoice headers);
 * gsi2: product -> lines, only for the one-item-per-line layout of earlier versions (new writes
 * keep a product's sales in `PROD#` items of the table itself and never enter gsi2).
 */
export const TABLE_KEYS = {
  pk: 'pk',
  sk: 'sk',
  gsi1: {
    name: 'gsi1',
    pk: 'gsi1pk',
    sk: 'gsi1sk',
    // What GET /customers/:id/invoices shows (api/views.ts invoiceSummaryView).
    project: [
      'invoiceNo',
      'invoiceDate',
      'invoiceTs',
      'customerId',
      'country',
      'countryCode',
      'isCancellation',
      'isAdjustment',
    ],
  },
  gsi2: {
    name: 'gsi2',
    pk: 'gsi2pk',
    sk: 'gsi2sk',
    // What GET /products/:code/sales shows of a line (api/views.ts productSalesView).
    project: [
      'invoiceNo',
      'invoiceDate',
      'invoiceTs',
      'customerId',
      'country',
      'lineNo',
      'stockCode',
      'description',
      'quantity',
      'unitPrice',
      'lineTotal',
      'isNonProduct',
      'producedAt',
      'acceptedAt',
      'streamWriteSentAt',
      'streamVisibleAt',
    ],
  },
} as const;

export type IndexKeys = (typeof TABLE_KEYS)['gsi1' | 'gsi2'];
export const INDEXES: readonly IndexKeys[] = [TABLE_KEYS.gsi1, TABLE_KEYS.gsi2];

export function tableDefinition(tableName: string): CreateTableCommandInput {
  const gsi = (g: IndexKeys) => ({
    IndexName: g.name,
    KeySchema: [
      { AttributeName: g.pk, KeyType: 'HASH' as const },
      { AttributeName: g.sk, KeyType: 'RANGE' as const },
    ],
    Projection: { ProjectionType: 'INCLUDE' as const, NonKeyAttributes: [...g.project] },
  });
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [
      TABLE_KEYS.pk,
      TABLE_KEYS.sk,
      TABLE_KEYS.gsi1.pk,
      TABLE_KEYS.gsi1.sk,
      TABLE_KEYS.gsi2.pk,
      TABLE_KEYS.gsi2.sk,
    ].map((AttributeName) => ({ AttributeName, AttributeType: 'S' as const })),
    KeySchema: [
      { AttributeName: TABLE_KEYS.pk, KeyType: 'HASH' },
      { AttributeName: TABLE_KEYS.sk, KeyType: 'RANGE' },
    ],
    GlobalSecondaryIndexes: INDEXES.map(gsi),
  };
}

// ----- sizes and write units, by AWS's published rules ---------------------------------------
// https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html
// and .../read-write-operations.html#write-operation-consumption.

/** DynamoDB refuses an item larger than this (names and values together). */
export const MAX_ITEM_BYTES = 400 * 1024;

const utf8 = (s: string): number => Buffer.byteLength(s, 'utf8');

/** Numbers: 1 byte per two significant digits (leading and trailing zeros trimmed), plus 1. */
function numberBytes(n: string): number {
  const digits = n
    .replace(/^[-+]/, '')
    .replace(/[eE].*$/, '')
    .replace('.', '');
  const significant = digits.replace(/^0+/, '').replace(/0+$/, '');
  return Math.ceil(Math.max(significant.length, 1) / 2) + 1;
}

/** The size of one attribute value (without its name). */
export function valueBytes(v: AttributeValue): number {
  if (v.S !== undefined) return utf8(v.S);
  if (v.N !== undefined) return numberBytes(v.N);
  if (v.B !== undefined) return v.B.byteLength;
  if (v.BOOL !== undefined || v.NULL !== undefined) return 1;
  if (v.SS !== undefined) return v.SS.reduce((s, x) => s + utf8(x), 0);
  if (v.NS !== undefined) return v.NS.reduce((s, x) => s + numberBytes(x), 0);
  if (v.BS !== undefined) return v.BS.reduce((s, x) => s + x.byteLength, 0);
  // List and Map: 3 bytes of overhead, and 1 byte per element.
  if (v.L !== undefined) return 3 + v.L.reduce((s, x) => s + 1 + valueBytes(x), 0);
  if (v.M !== undefined)
    return 3 + Object.entries(v.M).reduce((s, [k, x]) => s + 1 + utf8(k) + valueBytes(x), 0);
  return 0;
}

/** An item's size as DynamoDB bills and limits it: attribute names plus values. */
export function itemBytes(item: Record<string, AttributeValue>): number {
  let size = 0;
  for (const [name, value] of Object.entries(item)) size += utf8(name) + valueBytes(value);
  return size;
}

/** Write request units of one item write: 1 per started KB (a 0-byte write still costs 1). */
export const writeUnits = (bytes: number): number => Math.max(1, Math.ceil(bytes / 1024));

/**
 * The part of an item a global secondary index stores: table keys, index keys and the projected
 * attributes; undefined when the item does not carry the index's keys (a sparse index skips it).
 */
export function indexEntry(
  item: Record<string, AttributeValue>,
  index: IndexKeys,
): Record<string, AttributeValue> | undefined {
  if (item[index.pk] === undefined || item[index.sk] === undefined) return undefined;
  const out: Record<string, AttributeValue> = {};
  for (const name of [TABLE_KEYS.pk, TABLE_KEYS.sk, index.pk, index.sk, ...index.project]) {
    const v = item[name];
    if (v !== undefined) out[name] = v;
  }
  return out;
}

/**
 * Write units of putting `item` (a deterministic overwrite keeps the same index keys): the table
 * write plus one write per index that holds the item.
 */
export function putWriteUnits(item: Record<string, AttributeValue>): { table: number; indexes: number } {
  let indexes = 0;
  for (const index of INDEXES) {
    const entry = indexEntry(item, index);
    if (entry) indexes += writeUnits(itemBytes(entry));
  }
  return { table: writeUnits(itemBytes(item)), indexes };
}
