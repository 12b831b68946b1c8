import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';
import { londonToUtcIso } from '#core/dates';
import { lineTotal } from '#core/money';
import { isNonProductCode } from '#core/non-product';
import {
  INVOICE_FIELDS,
  type InvoiceFields,
  type InvoiceHeader,
  type InvoiceSummary,
  invoiceFieldsOf,
  type LineToStore,
  type ProductSale,
  padSequence,
  type StoredLine,
} from '#core/serving';
import { itemBytes } from './dynamo-table.ts';

/**
 * The serving store's item layout (docs/dynamodb.md): keys, and how lines are packed into invoice
 * chunk items and product items and read back. Every key is a string; numbers inside keys are
 * zero-padded so that string order is numeric order.
 */

const padLineNo = (lineNo: number): string => String(lineNo).padStart(7, '0');

/** The partition key prefix of a shard's lease item (keys.shardLease). */
export const LEASE_PREFIX = 'LEASE#';

export const keys = {
  invoice: (invoiceNo: string) => ({ pk: `INV#${invoiceNo}`, sk: 'HEADER' }),
  /** A chunk of an invoice's lines, named by its first line. */
  chunk: (invoiceNo: string, firstLineNo: number) => ({
    pk: `INV#${invoiceNo}`,
    sk: `LINES#${padLineNo(firstLineNo)}`,
  }),
  /** One line per item: the layout of earlier versions, still read. */
  line: (invoiceNo: string, lineNo: number) => ({ pk: `INV#${invoiceNo}`, sk: `LINE#${padLineNo(lineNo)}` }),
  /** gsi1: a customer's invoices, newest first. */
  customerInvoice: (customerId: string, invoiceTs: string, invoiceNo: string) => ({
    gsi1pk: `CUST#${customerId}`,
    gsi1sk: `${invoiceTs}#${invoiceNo}`,
  }),
  /** gsi2 of the one-item-per-line layout: a product's lines, newest first. */
  productLine: (stockCode: string, invoiceTs: string, invoiceNo: string, lineNo: number) => ({
    gsi2pk: `PROD#${stockCode}`,
    gsi2sk: `${invoiceTs}#${invoiceNo}#${padLineNo(lineNo)}`,
  }),
  /**
   * A product's sales from one consumer batch, newest first by the item's newest sale; named by the
   * first of the batch's lines of that product (a redelivery of the same records: the same key).
   */
  productSales: (stockCode: string, newestTs: string, invoiceNo: string, lineNo: number, part: number) => ({
    pk: `PROD#${stockCode}`,
    sk: `${newestTs}#${invoiceNo}#${lineNo}#${part}`,
  }),
  country: (country: string) => ({ pk: 'AGG#COUNTRY', sk: country }),
  shardProgress: (shardId: string) => ({ pk: `PROGRESS#${shardId}`, sk: 'PROGRESS' }),
  /** Which consumer instance last wrote a shard's lines: its ownership cache is valid while it still does. */
  shardLease: (shardId: string) => ({ pk: `${LEASE_PREFIX}${shardId}`, sk: 'LEASE' }),
} as const;

/** The order of a product's sales, newest first: the old gsi2 sort key. */
export const saleOrder = (s: { invoiceTs: string; invoiceNo: string; lineNo: number }): string =>
  `${s.invoiceTs}#${s.invoiceNo}#${padLineNo(s.lineNo)}`;

/**
 * Chunk and product items stop growing at this size (names and values). Far below DynamoDB's
 * 400 KB, and small enough that rewriting one (a redelivery) costs at most 8 write units. A single
 * line is at most ~1.5 KB (core/rules.ts text limits, 3 bytes per character), so it always fits.
 */
export const ITEM_TARGET_BYTES = 8 * 1024;

/** Names of the attributes of the packed items (short: every byte of a name is billed on every write). */
const A = { data: 'd', owner: 'o', sentAt: 'w' } as const;

/** Room for the send time, set later: the same length whenever it is written. */
const SENT_AT_ROOM = '0000-00-00T00:00:00.000Z';

// ----- invoice header ------------------------------------------------------------------------

export function headerItem(h: InvoiceHeader): Record<string, AttributeValue> {
  return marshall({
    ...keys.invoice(h.invoiceNo),
    entity: 'invoice',
    invoiceNo: h.invoiceNo,
    invoiceDate: h.invoiceDate,
    invoiceTs: h.invoiceTs,
    dateKey: h.dateKey,
    customerId: h.customerId,
    country: h.country,
    countryCode: h.countryCode,
    region: h.region,
    isCancellation: h.isCancellation,
    isAdjustment: h.isAdjustment,
    // Sparse index: invoices without a customer stay out of gsi1.
    ...(h.customerId === null ? {} : keys.customerInvoice(h.customerId, h.invoiceTs, h.invoiceNo)),
  });
}

export function toHeader(raw: Record<string, AttributeValue>): InvoiceHeader {
  const h = unmarshall(raw);
  return {
    invoiceNo: h.invoiceNo,
    invoiceDate: h.invoiceDate,
    invoiceTs: h.invoiceTs,
    dateKey: h.dateKey,
    customerId: h.customerId ?? null,
    country: h.country,
    countryCode: h.countryCode,
    region: h.region,
    isCancellation: h.isCancellation,
    isAdjustment: h.isAdjustment,
  };
}

export function toSummary(raw: Record<string, AttributeValue>): InvoiceSummary {
  const h = unmarshall(raw);
  return {
    invoiceNo: h.invoiceNo,
    invoiceDate: h.invoiceDate,
    invoiceTs: h.invoiceTs,
    customerId: h.customerId ?? null,
    country: h.country,
    countryCode: h.countryCode,
    isCancellation: h.isCancellation,
    isAdjustment: h.isAdjustment,
  };
}

// ----- compact values -----------------------------------------------------------------------

/**
 * An ISO instant as its epoch milliseconds in base 36 (8 characters instead of 24) when
 * `toISOString` gives the same text back, else the text itself (an ISO instant always has a `-`,
 * a base-36 number never does), so every instant reads back exactly as it was written.
 */
export function packTime(iso: string): string {
  const ms = Date.parse(iso);
  return ms >= 0 && new Date(ms).toISOString() === iso ? ms.toString(36) : iso;
}

export const unpackTime = (s: string): string =>
  /^[0-9a-z]+$/.test(s) ? new Date(Number.parseInt(s, 36)).toISOString() : s;

/** The fields a reader derives from the others (core/enrich.ts), stored only when they differ. */
interface Derived {
  lineTotal: string;
  isNonProduct: boolean;
  invoiceTs: string;
}

/** What a reader would derive from a line's own fields. */
const derived = (l: { quantity: number; unitPrice: string; stockCode: string; invoiceDate: string }) => ({
  lineTotal: lineTotal(l.quantity, l.unitPrice),
  isNonProduct: isNonProductCode(l.stockCode),
  invoiceTs: londonToUtcIso(l.invoiceDate),
});

/** The fields of `line` that differ from `expected` (normally none). */
function differing<T extends object>(line: T, expected: Partial<T>): Partial<T> | undefined {
  let out: Partial<T> | undefined;
  for (const f of Object.keys(expected) as (keyof T)[]) {
    if (line[f] !== expected[f]) {
      out ??= {};
      out[f] = line[f];
    }
  }
  return out;
}

/** Drops a row's trailing empty places (the reader takes an absent place as null). */
function trimmed<R extends unknown[]>(row: R, keep: number): R {
  while (row.length > keep && (row[row.length - 1] === null || row[row.length - 1] === undefined)) row.pop();
  return row;
}

const shared = <T>(values: readonly T[]): { value: T } | undefined =>
  values.every((v) => v === values[0]) ? { value: values[0] as T } : undefined;

// ----- invoice line chunks -------------------------------------------------------------------

/**
 * One line in a chunk: [lineNo, stockCode, description, quantity, unitPrice, producedAt?,
 * acceptedAt?, exceptions?], trailing empty places left out. producedAt/acceptedAt (packTime) are
 * null when the chunk holds the one value all its lines share; `exceptions` holds the invoice fields
 * that differ from the header and a lineTotal or isNonProduct that differs from what the reader
 * derives (normally absent). At most 8 places: a row of 9 or 10 is the layout before (below).
 */
type ChunkRow = [
  number,
  string,
  string | null,
  number,
  string,
  (string | null)?,
  (string | null)?,
  Exceptions?,
];
type Exceptions = Partial<InvoiceFields & Derived>;

/**
 * The chunk rows of the layout before (still read): [lineNo, stockCode, description, quantity,
 * unitPrice, lineTotal, isNonProduct (0/1), producedAt, acceptedAt, invoice fields that differ?].
 */
type ChunkRowBefore = [
  number,
  string,
  string | null,
  number,
  string,
  string,
  0 | 1,
  string | null,
  string | null,
  Partial<InvoiceFields>?,
];
interface ChunkData {
  p?: string;
  a?: string;
  l: (ChunkRow | ChunkRowBefore)[];
}
const isRowBefore = (r: ChunkRow | ChunkRowBefore): r is ChunkRowBefore => r.length >= 9;

/** What differs in `line` from its header and from what a reader derives of it (normally nothing). */
function chunkExceptions(line: LineToStore, header: InvoiceHeader): Exceptions | undefined {
  const d = derived(line);
  const expected: Partial<LineToStore> = { lineTotal: d.lineTotal, isNonProduct: d.isNonProduct };
  for (const f of INVOICE_FIELDS) (expected as Record<string, unknown>)[f] = header[f];
  return differing(line, expected) as Exceptions | undefined;
}

/**
 * The chunk items of the lines one record stores of one invoice, split at ITEM_TARGET_BYTES, in
 * line order. Deterministic: the same lines give the same items (a redelivery rewrites the same
 * keys with the same content). Each item's `w` (send time) is set when it is sent.
 */
export function chunkItems(
  lines: readonly LineToStore[],
  header: InvoiceHeader,
): { item: Record<string, AttributeValue>; lines: LineToStore[] }[] {
  const sorted = [...lines].sort((a, b) => a.lineNo - b.lineNo);
  const first = sorted[0];
  if (!first) return [];
  const p = shared(sorted.map((l) => l.producedAt));
  const a = shared(sorted.map((l) => l.acceptedAt));
  const rows = sorted.map((l): ChunkRow => {
    const row: ChunkRow = [
      l.lineNo,
      l.stockCode,
      l.description,
      l.quantity,
      l.unitPrice,
      p ? null : packTime(l.producedAt),
      a ? null : packTime(l.acceptedAt),
      chunkExceptions(l, header),
    ];
    return trimmed(row, 5);
  });
  const build = (from: number, to: number) => {
    const data: ChunkData = {
      ...(p ? { p: packTime(p.value) } : {}),
      ...(a ? { a: packTime(a.value) } : {}),
      l: rows.slice(from, to),
    };
    return {
      ...marshall(keys.chunk(first.invoiceNo, (sorted[from] as LineToStore).lineNo)),
      [A.owner]: { S: `${first.shardId}/${first.sequenceNumber}` },
      [A.sentAt]: { S: SENT_AT_ROOM },
      [A.data]: { S: JSON.stringify(data) },
    };
  };
  return packed(rows, build).map(({ item, from, to }) => ({ item, lines: sorted.slice(from, to) }));
}

/**
 * Splits rows into consecutive runs whose built item stays within ITEM_TARGET_BYTES (a row alone
 * always makes an item). Grows a run by the rows' own JSON sizes and checks the built item.
 */
function packed<R>(
  rows: readonly R[],
  build: (from: number, to: number) => Record<string, AttributeValue>,
): { item: Record<string, AttributeValue>; from: number; to: number }[] {
  const out: { item: Record<string, AttributeValue>; from: number; to: number }[] = [];
  let from = 0;
  while (from < rows.length) {
    const base = itemBytes(build(from, from + 1));
    let to = from + 1;
    let size = base;
    while (to < rows.length) {
      const next = Buffer.byteLength(JSON.stringify(rows[to]), 'utf8') + 1;
      if (size + next > ITEM_TARGET_BYTES) break;
      size += next;
      to++;
    }
    out.push({ item: build(from, to), from, to });
    from = to;
  }
  return out;
}

const OWNER_SEPARATOR = '/';
function splitOwner(owner: string): { shardId: string; sequenceNumber: string } {
  const i = owner.lastIndexOf(OWNER_SEPARATOR);
  return { shardId: owner.slice(0, i), sequenceNumber: owner.slice(i + 1) };
}

/** The line numbers a chunk item holds and the record that owns them (ownership reads). */
export function chunkOwners(raw: Record<string, AttributeValue>): { lineNos: number[]; owner: string } {
  const data = JSON.parse(raw[A.data]?.S ?? '{"l":[]}') as ChunkData;
  return { lineNos: data.l.map((r) => r[0]), owner: raw[A.owner]?.S ?? '' };
}

export const isChunk = (raw: Record<string, AttributeValue>): boolean =>
  raw.sk?.S?.startsWith('LINES#') === true;
export const isOldLine = (raw: Record<string, AttributeValue>): boolean =>
  raw.sk?.S?.startsWith('LINE#') === true;

const invoiceNoOf = (raw: Record<string, AttributeValue>): string => (raw.pk?.S ?? '').slice('INV#'.length);

/** The lines of a chunk item, completed with the invoice fields of its header. */
export function chunkLines(raw: Record<string, AttributeValue>, header: InvoiceHeader): StoredLine[] {
  const data = JSON.parse(raw[A.data]?.S ?? '{"l":[]}') as ChunkData;
  const { shardId, sequenceNumber } = splitOwner(raw[A.owner]?.S ?? '');
  const sentAt = raw[A.sentAt]?.S;
  const invoiceNo = invoiceNoOf(raw);
  const p = data.p === undefined ? undefined : unpackTime(data.p);
  const a = data.a === undefined ? undefined : unpackTime(data.a);
  return data.l.map((r) => {
    const line = isRowBefore(r) ? rowBefore(r) : chunkRow(r, header);
    const fields = { ...header, ...line.exceptions };
    return {
      invoiceNo,
      lineNo: r[0],
      stockCode: r[1],
      description: r[2],
      quantity: r[3],
      invoiceDate: fields.invoiceDate,
      unitPrice: r[4],
      customerId: fields.customerId,
      country: fields.country,
      producedAt: line.producedAt ?? (p as string),
      acceptedAt: line.acceptedAt ?? (a as string),
      lineTotal: line.lineTotal,
      isCancellation: fields.isCancellation,
      isAdjustment: fields.isAdjustment,
      isNonProduct: line.isNonProduct,
      countryCode: fields.countryCode,
      region: fields.region,
      customerKnown: fields.customerId !== null,
      dateKey: fields.dateKey,
      invoiceTs: fields.invoiceTs,
      shardId,
      sequenceNumber,
      ...(sentAt ? { streamWriteSentAt: sentAt } : {}),
    };
  });
}

interface RowParts {
  lineTotal: string;
  isNonProduct: boolean;
  producedAt: string | undefined;
  acceptedAt: string | undefined;
  exceptions: Partial<InvoiceFields> | undefined;
}

function rowBefore(r: ChunkRowBefore): RowParts {
  return {
    lineTotal: r[5],
    isNonProduct: r[6] === 1,
    producedAt: r[7] ?? undefined,
    acceptedAt: r[8] ?? undefined,
    exceptions: r[9],
  };
}

function chunkRow(r: ChunkRow, header: InvoiceHeader): RowParts {
  const x = r[7];
  const invoiceDate = x?.invoiceDate ?? header.invoiceDate;
  const d = derived({ quantity: r[3], unitPrice: r[4], stockCode: r[1], invoiceDate });
  return {
    lineTotal: x?.lineTotal ?? d.lineTotal,
    isNonProduct: x?.isNonProduct ?? d.isNonProduct,
    producedAt: r[5] ? unpackTime(r[5]) : undefined,
    acceptedAt: r[6] ? unpackTime(r[6]) : undefined,
    exceptions: x,
  };
}

/** What reconciliation reads of an invoice item: each line's key and total (old line items too). */
export function lineTotalsOf(
  raw: Record<string, AttributeValue>,
): { invoiceNo: string; lineNo: number; lineTotal: string }[] {
  if (isChunk(raw)) {
    const data = JSON.parse(raw[A.data]?.S ?? '{"l":[]}') as ChunkData;
    const invoiceNo = invoiceNoOf(raw);
    return data.l.map((r) => ({
      invoiceNo,
      lineNo: r[0],
      lineTotal: isRowBefore(r) ? r[5] : (r[7]?.lineTotal ?? lineTotal(r[3], r[4])),
    }));
  }
  if (isOldLine(raw) && raw.invoiceNo?.S && raw.lineNo?.N && raw.lineTotal?.S)
    return [{ invoiceNo: raw.invoiceNo.S, lineNo: Number(raw.lineNo.N), lineTotal: raw.lineTotal.S }];
  return [];
}

/** The attributes lineTotalsOf needs: a projection for Query and Scan. */
export const LINE_TOTAL_ATTRIBUTES = ['pk', 'sk', A.data, 'invoiceNo', 'lineNo', 'lineTotal'];

const KEY_ATTRIBUTES = ['pk', 'sk', 'gsi1pk', 'gsi1sk', 'gsi2pk', 'gsi2sk', 'entity'];

/** A line item of the one-item-per-line layout. */
export function oldLine(raw: Record<string, AttributeValue>): StoredLine {
  const out = unmarshall(raw);
  for (const k of KEY_ATTRIBUTES) delete out[k];
  return out as StoredLine;
}

// ----- product sales -------------------------------------------------------------------------

/**
 * One sale in a product item: [invoiceNo, lineNo, invoiceDate, quantity, unitPrice, customerId,
 * description?, country?, producedAt?, acceptedAt?, exceptions?], trailing empty places left out.
 * description, country, producedAt and acceptedAt are null when the item holds the one value all
 * its sales share (`s`, `c`, `p`, `a`); `exceptions` holds an invoiceTs, lineTotal or isNonProduct
 * that differs from what the reader derives (normally absent).
 */
type SaleRow = [
  string,
  number,
  string,
  number,
  string,
  string | null,
  (string | null)?,
  (string | null)?,
  (string | null)?,
  (string | null)?,
  Partial<Derived>?,
];
interface SaleData {
  s?: string | null;
  c?: string;
  p?: string;
  a?: string;
  l: SaleRow[];
}

/**
 * A product item's sales in the layout before (still read): a list of [invoiceNo, lineNo, invoiceTs,
 * invoiceDate, quantity, unitPrice, lineTotal, description, customerId, country, isNonProduct (0/1),
 * producedAt, acceptedAt].
 */
type SaleRowBefore = [
  string,
  number,
  string,
  string,
  number,
  string,
  string,
  string | null,
  string | null,
  string,
  0 | 1,
  string,
  string,
];

/**
 * The product items of a batch's stored lines: per product, packed and split at ITEM_TARGET_BYTES,
 * keyed by the first of its lines in stream order, so a redelivery of the same records rewrites the
 * same keys (another batching writes other keys: readers de-duplicate).
 */
export function productItems(lines: readonly LineToStore[]): Record<string, AttributeValue>[] {
  const groups = new Map<string, LineToStore[]>();
  for (const l of lines) {
    const g = groups.get(l.stockCode);
    if (g) g.push(l);
    else groups.set(l.stockCode, [l]);
  }
  const items: Record<string, AttributeValue>[] = [];
  for (const group of groups.values()) items.push(...productGroupItems(group));
  return items;
}

function productGroupItems(group: readonly LineToStore[]): Record<string, AttributeValue>[] {
  // The first line in stream order names the group: lines of one record share a sequence number
  // and keep their order, so the smallest sequence number's first line.
  const first = group.reduce((m, l) =>
    padSequence(l.sequenceNumber) < padSequence(m.sequenceNumber) ? l : m,
  );
  const sorted = [...group].sort((a, b) => (saleOrder(a) < saleOrder(b) ? 1 : -1));
  const desc = shared(sorted.map((l) => l.description));
  const country = shared(sorted.map((l) => l.country));
  const p = shared(sorted.map((l) => l.producedAt));
  const a = shared(sorted.map((l) => l.acceptedAt));
  const rows = sorted.map((l): SaleRow => {
    const d = derived(l);
    const row: SaleRow = [
      l.invoiceNo,
      l.lineNo,
      l.invoiceDate,
      l.quantity,
      l.unitPrice,
      l.customerId,
      desc ? null : l.description,
      country ? null : l.country,
      p ? null : packTime(l.producedAt),
      a ? null : packTime(l.acceptedAt),
      differing(l, d),
    ];
    return trimmed(row, 6);
  });
  const data = (slice: SaleRow[]): SaleData => ({
    ...(desc ? { s: desc.value } : {}),
    ...(country ? { c: country.value } : {}),
    ...(p ? { p: packTime(p.value) } : {}),
    ...(a ? { a: packTime(a.value) } : {}),
    l: slice,
  });
  let part = 0;
  const build = (from: number, to: number) => ({
    ...marshall(
      keys.productSales(
        first.stockCode,
        (sorted[from] as LineToStore).invoiceTs,
        first.invoiceNo,
        first.lineNo,
        part,
      ),
    ),
    [A.sentAt]: { S: SENT_AT_ROOM },
    [A.data]: { S: JSON.stringify(data(rows.slice(from, to))) },
  });
  const items: Record<string, AttributeValue>[] = [];
  for (const { from, to } of packed(rows, build)) {
    items.push(build(from, to));
    part++;
  }
  return items;
}

/** The sales a product item holds (either layout). */
export function productSales(raw: Record<string, AttributeValue>): ProductSale[] {
  const stockCode = (raw.pk?.S ?? '').slice('PROD#'.length);
  const sentAt = raw[A.sentAt]?.S;
  const lineage = sentAt ? { streamWriteSentAt: sentAt } : {};
  const text = raw[A.data]?.S ?? '[]';
  if (text.startsWith('['))
    return (JSON.parse(text) as SaleRowBefore[]).map((r) => saleBefore(r, stockCode, lineage));
  const data = JSON.parse(text) as SaleData;
  const p = data.p === undefined ? undefined : unpackTime(data.p);
  const a = data.a === undefined ? undefined : unpackTime(data.a);
  return data.l.map((r) => {
    const x = r[10];
    const description = data.s !== undefined ? data.s : (r[6] ?? null);
    const d = derived({ quantity: r[3], unitPrice: r[4], stockCode, invoiceDate: r[2] });
    return {
      invoiceNo: r[0],
      lineNo: r[1],
      invoiceTs: x?.invoiceTs ?? d.invoiceTs,
      invoiceDate: r[2],
      quantity: r[3],
      unitPrice: r[4],
      lineTotal: x?.lineTotal ?? d.lineTotal,
      description,
      customerId: r[5],
      country: data.c ?? (r[7] as string),
      isNonProduct: x?.isNonProduct ?? d.isNonProduct,
      producedAt: p ?? unpackTime(r[8] as string),
      acceptedAt: a ?? unpackTime(r[9] as string),
      stockCode,
      ...lineage,
    };
  });
}

function saleBefore(
  r: SaleRowBefore,
  stockCode: string,
  lineage: { streamWriteSentAt?: string },
): ProductSale {
  return {
    invoiceNo: r[0],
    lineNo: r[1],
    invoiceTs: r[2],
    invoiceDate: r[3],
    quantity: r[4],
    unitPrice: r[5],
    lineTotal: r[6],
    description: r[7],
    customerId: r[8],
    country: r[9],
    isNonProduct: r[10] === 1,
    producedAt: r[11],
    acceptedAt: r[12],
    stockCode,
    ...lineage,
  };
}

/** The invoice timestamp prefix of a product item's sort key (its newest sale). */
export const productItemTs = (raw: Record<string, AttributeValue>): string =>
  (raw.sk?.S ?? '').split('#')[0] ?? '';

/** Stamps the send time into an item built by chunkItems/productItems. */
export function stampSentAt(item: Record<string, AttributeValue>, at: string): void {
  if (item[A.sentAt]) item[A.sentAt] = { S: at };
}

export { invoiceFieldsOf };
