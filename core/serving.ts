import type { EnrichedLine } from './enrich.ts';
import { sumMoney } from './money.ts';

/**
 * The serving store as the domain sees it: the two ports (what the API reads, what the consumer
 * writes) and the rules that make the writes exactly-once without transactions (line ownership,
 * per-shard high-water marks). The DynamoDB adapter (adapters/invoice-store.ts) implements the
 * ports; docs/dynamodb.md explains the item layout behind them.
 */

// ----- lines ---------------------------------------------------------------------------------

/**
 * A line as the consumer hands it to the store: the stream record that carries it is named by
 * `shardId` + `sequenceNumber`. Many lines share one record (one record carries many lines of one
 * invoice), so they share its sequence number.
 */
export interface LineToStore extends EnrichedLine {
  shardId: string;
  sequenceNumber: string;
}

/**
 * A line as stored. Written by the consumer (archive, onVisible): `streamVisibleAt` is the time the
 * DynamoDB write was acknowledged. Read back from the table: the item holds `streamWriteSentAt`
 * (when the request carrying it was sent) and no `streamVisibleAt`, because the acknowledgement
 * time is only known after the write (docs/dynamodb.md).
 */
export interface StoredLine extends LineToStore {
  streamVisibleAt?: string;
  streamWriteSentAt?: string;
}

/**
 * The fields every line of one invoice shares: the invoice header holds them once (a line's
 * `customerKnown` is `customerId !== null`).
 */
export const INVOICE_FIELDS = [
  'invoiceDate',
  'invoiceTs',
  'dateKey',
  'customerId',
  'country',
  'countryCode',
  'region',
  'isCancellation',
  'isAdjustment',
] as const satisfies readonly (keyof EnrichedLine)[];
export type InvoiceFields = Pick<EnrichedLine, (typeof INVOICE_FIELDS)[number]>;

export interface InvoiceHeader extends InvoiceFields {
  invoiceNo: string;
}

/** What the customer route shows of an invoice (the customer index projects only these). */
export type InvoiceSummary = Pick<
  InvoiceHeader,
  | 'invoiceNo'
  | 'invoiceDate'
  | 'invoiceTs'
  | 'customerId'
  | 'country'
  | 'countryCode'
  | 'isCancellation'
  | 'isAdjustment'
>;

/** What the product route shows of one sale (a line of that product). */
export type ProductSale = Pick<
  StoredLine,
  | 'invoiceNo'
  | 'invoiceDate'
  | 'invoiceTs'
  | 'customerId'
  | 'country'
  | 'lineNo'
  | 'stockCode'
  | 'description'
  | 'quantity'
  | 'unitPrice'
  | 'lineTotal'
  | 'isNonProduct'
  | 'producedAt'
  | 'acceptedAt'
  | 'streamWriteSentAt'
  | 'streamVisibleAt'
>;

export interface CountryAggregate {
  country: string;
  countryCode: string;
  region: string;
  lineCount: number;
  invoiceCount: number;
  quantity: number;
  amount: string;
}

export interface Page<T> {
  items: T[];
  nextCursor?: string;
}

export interface ProductLines {
  /** Newest first (invoiceTs, then invoiceNo and lineNo, descending), at most the asked limit. */
  recent: ProductSale[];
  totals: { lines: number; quantity: number; amount: string };
  /** False when the product has more lines than the totals read (the newest ones are totalled). */
  totalsComplete: boolean;
}

/** What the API reads. */
export interface InvoiceReader {
  getInvoice(
    invoiceNo: string,
  ): Promise<{ header: InvoiceHeader | undefined; lines: StoredLine[] } | undefined>;
  listCustomerInvoices(
    customerId: string,
    page: { limit: number; cursor?: string },
  ): Promise<Page<InvoiceSummary>>;
  getProductLines(stockCode: string, opts: { limit: number }): Promise<ProductLines | undefined>;
  getCountryStats(): Promise<CountryAggregate[]>;
  ping(): Promise<void>;
}

// ----- aggregates ----------------------------------------------------------------------------

export interface Delta {
  lines: number;
  quantity: number;
  amount: string;
  invoices: number;
}

export type AggregateTarget = { kind: 'country'; line: EnrichedLine };

/** One aggregate item's share of a batch: per-record contributions, so a redelivery can be filtered. */
export interface AggregateUpdate {
  target: AggregateTarget;
  shardId: string;
  /** The highest sequence number (padded) of the records this batch accounts for. */
  batchMaxSeq: string;
  entries: { seq: string; delta: Delta }[];
}

export type AggregateOutcome =
  | { status: 'applied' | 'already-applied' }
  | { status: 'failed'; reason: string };

export function sumDeltas(deltas: readonly Delta[]): Delta {
  return {
    lines: deltas.reduce((s, d) => s + d.lines, 0),
    quantity: deltas.reduce((s, d) => s + d.quantity, 0),
    amount: sumMoney(deltas.map((d) => d.amount)),
    invoices: deltas.reduce((s, d) => s + d.invoices, 0),
  };
}

// ----- the consumer's port -------------------------------------------------------------------

export interface PutLinesOutcome {
  /**
   * Per input line: when the write that stored it was acknowledged (its streamVisibleAt); undefined
   * when it still failed after retries, or when it is a duplicate.
   */
  visibleAt: (string | undefined)[];
  /**
   * Per input line: true when another stream record owns the line (a producer re-send, or a second
   * copy in the same call): not written, and it must not count in the aggregates. Absent = none.
   */
  duplicate?: boolean[];
  reason?: string;
}

/** DynamoDB write request units a store has consumed, by AWS's rules (docs/dynamodb.md). */
export interface WriteBilling {
  /** Write request units, table and index writes together. */
  writeUnits: number;
  /** The part of writeUnits spent on global secondary indexes. */
  indexWriteUnits: number;
  /** Items written (table writes, each billed separately). */
  items: number;
  /** Lines stored (each counted once per write of its chunk). */
  lines: number;
  /**
   * The same by item kind (`header`, `chunk`, `product`, `aggregate`, `progress`, `lease`): write
   * units (index writes included), item writes and bytes written (the larger of before and after
   * for an update), so a bench can say where the units go.
   */
  byKind?: Record<string, KindBilling>;
}

export interface KindBilling {
  writeUnits: number;
  items: number;
  bytes: number;
}

/**
 * What the consumer writes.
 *
 * `putLines(lines)`: each line names the stream record carrying it (`shardId`, `sequenceNumber`;
 * many lines share one record). Call it with the lines of one shard in stream order; a line owned
 * by another record (a producer re-send) is reported `duplicate` and neither written nor to be
 * counted. `billing()` reports the write units consumed so far (the bench divides by lines).
 */
export interface LineSink {
  putLines(lines: readonly LineToStore[]): Promise<PutLinesOutcome>;
  applyAggregate(update: AggregateUpdate): Promise<AggregateOutcome>;
  getShardProgress(shardId: string): Promise<string | undefined>;
  setShardProgress(shardId: string, paddedSeq: string): Promise<void>;
  billing?(): WriteBilling;
}

export class InvalidCursorError extends Error {
  override name = 'InvalidCursorError';
}

export class StoreReadError extends Error {
  override name = 'StoreReadError';
}

/** The owners of a batch's lines could not be read, so none of them may be written. */
export class LineOwnerReadError extends Error {
  override name = 'LineOwnerReadError';
}

// ----- rules: sequence numbers and high-water marks ------------------------------------------

/** Kinesis sequence numbers have up to 129 digits; padded to this width they compare as strings. */
export const SEQUENCE_WIDTH = 129;
export const padSequence = (seq: string): string => seq.padStart(SEQUENCE_WIDTH, '0');

/**
 * Whether a record's contribution is not yet in an aggregate whose high-water mark for the shard is
 * `mark` (padded sequence numbers; no mark = nothing counted yet).
 */
export const aboveMark = (paddedSeq: string, mark: string | undefined): boolean =>
  mark === undefined || paddedSeq > mark;

// ----- rules: line ownership -----------------------------------------------------------------

/** The owner identity of a stored line: the stream record that first wrote it. */
export const ownerOf = (l: { shardId: string; sequenceNumber: string }): string =>
  `${l.shardId}/${l.sequenceNumber}`;

/** What is known to be stored of one invoice: its header, and the owner of each stored line. */
export interface InvoiceOwnership {
  header: InvoiceHeader | undefined;
  owners: Map<number, string>;
}

export type LineDecision = 'write' | 'duplicate';

/**
 * The ownership rule. A line is written when no record owns it yet or when this record does (its
 * redelivery rewrites the same content); it is a duplicate when another record owns it (a producer
 * re-send) or when an earlier line of the same call has the same key (the first copy owns it).
 */
export function decideOwnership(
  lines: readonly LineToStore[],
  stored: (line: LineToStore) => InvoiceOwnership | undefined,
): LineDecision[] {
  const firstCopy = new Set<string>();
  return lines.map((line) => {
    const key = `${line.invoiceNo}\u0000${line.lineNo}`;
    if (firstCopy.has(key)) return 'duplicate';
    firstCopy.add(key);
    const owner = stored(line)?.owners.get(line.lineNo);
    return owner === undefined || owner === ownerOf(line) ? 'write' : 'duplicate';
  });
}

/**
 * Per shard, what the store knows of recently written invoices, bounded by invoice count (least
 * recently used first out). Sound because the partition key is the invoice number: one shard, so
 * one consumer at a time, writes an invoice; the store only records what DynamoDB acknowledged and
 * forgets an invoice whose write failed (its state is then unknown until read again).
 */
export class OwnershipCache {
  private readonly shards = new Map<string, Map<string, InvoiceOwnership>>();

  constructor(private readonly maxInvoicesPerShard = 20_000) {}

  get(shardId: string, invoiceNo: string): InvoiceOwnership | undefined {
    const shard = this.shards.get(shardId);
    const entry = shard?.get(invoiceNo);
    if (shard && entry) {
      // Map order is insertion order: re-inserting makes this the most recently used.
      shard.delete(invoiceNo);
      shard.set(invoiceNo, entry);
    }
    return entry;
  }

  set(shardId: string, invoiceNo: string, entry: InvoiceOwnership): void {
    let shard = this.shards.get(shardId);
    if (!shard) {
      shard = new Map();
      this.shards.set(shardId, shard);
    }
    shard.delete(invoiceNo);
    shard.set(invoiceNo, entry);
    while (shard.size > this.maxInvoicesPerShard) {
      const oldest = shard.keys().next().value as string;
      shard.delete(oldest);
    }
  }

  forget(shardId: string, invoiceNo: string): void {
    this.shards.get(shardId)?.delete(invoiceNo);
  }

  /** Drops everything known of a shard: another consumer instance wrote to it in between. */
  forgetShard(shardId: string): void {
    this.shards.delete(shardId);
  }

  size(shardId: string): number {
    return this.shards.get(shardId)?.size ?? 0;
  }
}

/** The invoice-level fields of a line, as its invoice header holds them. */
export function invoiceFieldsOf(line: EnrichedLine): InvoiceHeader {
  return {
    invoiceNo: line.invoiceNo,
    invoiceDate: line.invoiceDate,
    invoiceTs: line.invoiceTs,
    dateKey: line.dateKey,
    customerId: line.customerId,
    country: line.country,
    countryCode: line.countryCode,
    region: line.region,
    isCancellation: line.isCancellation,
    isAdjustment: line.isAdjustment,
  };
}
