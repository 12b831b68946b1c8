import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';
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
  /** A product's sales from one consumer batch, newest first by the batch's latest invoice. */
  productSales: (
    stockCode: string,
    maxInvoiceTs: string,
    shardId: string,
    firstSeq: string,
    part: number,
  ) => ({
    pk: `PROD#${stockCode}`,
    sk: `${maxInvoiceTs}#${shardId}#${firstSeq}#${String(part).padStart(3, '0')}`,
  }),
  country: (country: string) => ({ pk: 'AGG#COUNTRY', sk: country }),
  shardProgress: (shardId: string) => ({ pk: `PROGRESS#${shardId}`, sk: 'PROGRESS' }),
  /** Which consumer instance last wrote a shard's lines: its ownership cache is valid while it still does. */
  shardLease: (shardId: string) => ({ pk: `LEASE#${shardId}`, sk: 'LEASE' }),
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
const A = { data: 'd', owner: 'o', sentAt: 'w', entity: 'entity' } as const;

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

// ----- invoice line chunks -------------------------------------------------------------------

/**
 * One line in a chunk: [lineNo, stockCode, description, quantity, unitPrice, lineTotal,
 * isNonProduct (0/1), producedAt, acceptedAt, invoice fields that differ from the header?].
 * producedAt/acceptedAt are null when the chunk holds the one value all its lines share.
 */
type ChunkRow = [
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
  l: ChunkRow[];
}

/** The invoice fields of `line` that differ from the header's (normally none). */
function differences(line: LineToStore, header: InvoiceHeader): Partial<InvoiceFields> | undefined {
  let out: Record<string, unknown> | undefined;
  for (const f of INVOICE_FIELDS) {
    if (line[f] !== header[f]) {
      out ??= {};
      out[f] = line[f];
    }
  }
  return out as Partial<InvoiceFields> | undefined;
}

const shared = (values: readonly string[]): string | undefined =>
  values.every((v) => v === values[0]) ? values[0] : undefined;

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
      l.lineTotal,
      l.isNonProduct ? 1 : 0,
      p === undefined ? l.producedAt : null,
      a === undefined ? l.acceptedAt : null,
    ];
    const diff = differences(l, header);
    if (diff) row.push(diff);
    return row;
  });
  const build = (from: number, to: number) => {
    const data: ChunkData = { ...(p ? { p } : {}), ...(a ? { a } : {}), l: rows.slice(from, to) };
    return {
      ...marshall(keys.chunk(first.invoiceNo, (sorted[from] as LineToStore).lineNo)),
      [A.entity]: { S: 'lines' },
      [A.owner]: { S: `${first.shardId}/${first.sequenceNumber}` },
      // Room for the send time, set later: same length whenever it is written.
      [A.sentAt]: { S: '0000-00-00T00:00:00.000Z' },
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
  return data.l.map((r) => {
    const fields = { ...header, ...(r[9] ?? {}) };
    return {
      invoiceNo: invoiceNoOf(raw),
      lineNo: r[0],
      stockCode: r[1],
      description: r[2],
      quantity: r[3],
      invoiceDate: fields.invoiceDate,
      unitPrice: r[4],
      customerId: fields.customerId,
      country: fields.country,
      producedAt: r[7] ?? (data.p as string),
      acceptedAt: r[8] ?? (data.a as string),
      lineTotal: r[5],
      isCancellation: fields.isCancellation,
      isAdjustment: fields.isAdjustment,
      isNonProduct: r[6] === 1,
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

/** What reconciliation reads of an invoice item: each line's key and total (old line items too). */
export function lineTotalsOf(
  raw: Record<string, AttributeValue>,
): { invoiceNo: string; lineNo: number; lineTotal: string }[] {
  if (isChunk(raw)) {
    const data = JSON.parse(raw[A.data]?.S ?? '{"l":[]}') as ChunkData;
    const invoiceNo = invoiceNoOf(raw);
    return data.l.map((r) => ({ invoiceNo, lineNo: r[0], lineTotal: r[5] }));
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
 * One sale in a product item: [invoiceNo, lineNo, invoiceTs, invoiceDate, quantity, unitPrice,
 * lineTotal, description, customerId, country, isNonProduct (0/1), producedAt, acceptedAt].
 */
type SaleRow = [
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
 * The product items of a batch's stored lines: per product and shard, packed and split at
 * ITEM_TARGET_BYTES, keyed by the batch's first sequence number so a redelivery of the same batch
 * rewrites the same keys (another batching writes other keys: readers de-duplicate).
 */
export function productItems(lines: readonly LineToStore[]): Record<string, AttributeValue>[] {
  const groups = new Map<string, LineToStore[]>();
  for (const l of lines) {
    const k = `${l.stockCode}\u0000${l.shardId}`;
    const g = groups.get(k);
    if (g) g.push(l);
    else groups.set(k, [l]);
  }
  const items: Record<string, AttributeValue>[] = [];
  for (const group of groups.values()) {
    const sorted = [...group].sort((a, b) => (saleOrder(a) < saleOrder(b) ? 1 : -1));
    const first = sorted[0] as LineToStore;
    const firstSeq = group.reduce(
      (m, l) => (padSequence(l.sequenceNumber) < padSequence(m) ? l.sequenceNumber : m),
      first.sequenceNumber,
    );
    const rows = sorted.map(
      (l): SaleRow => [
        l.invoiceNo,
        l.lineNo,
        l.invoiceTs,
        l.invoiceDate,
        l.quantity,
        l.unitPrice,
        l.lineTotal,
        l.description,
        l.customerId,
        l.country,
        l.isNonProduct ? 1 : 0,
        l.producedAt,
        l.acceptedAt,
      ],
    );
    let part = 0;
    const build = (from: number, to: number) => {
      const slice = rows.slice(from, to);
      return {
        ...marshall(
          keys.productSales(first.stockCode, (slice[0] as SaleRow)[2], first.shardId, firstSeq, part),
        ),
        [A.entity]: { S: 'sales' },
        [A.sentAt]: { S: '0000-00-00T00:00:00.000Z' },
        [A.data]: { S: JSON.stringify(slice) },
      };
    };
    for (const { from, to } of packed(rows, build)) {
      items.push(build(from, to));
      part++;
    }
  }
  return items;
}

/** The sales a product item holds. */
export function productSales(raw: Record<string, AttributeValue>): ProductSale[] {
  const stockCode = (raw.pk?.S ?? '').slice('PROD#'.length);
  const sentAt = raw[A.sentAt]?.S;
  return (JSON.parse(raw[A.data]?.S ?? '[]') as SaleRow[]).map((r) => ({
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
    ...(sentAt ? { streamWriteSentAt: sentAt } : {}),
  }));
}

/** The invoice timestamp prefix of a product item's sort key (its newest sale). */
export const productItemTs = (raw: Record<string, AttributeValue>): string =>
  (raw.sk?.S ?? '').split('#')[0] ?? '';

/** Stamps the send time into an item built by chunkItems/productItems. */
export function stampSentAt(item: Record<string, AttributeValue>, at: string): void {
  if (item[A.sentAt]) item[A.sentAt] = { S: at };
}

export { invoiceFieldsOf };
