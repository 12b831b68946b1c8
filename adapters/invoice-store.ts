import {
  type AttributeValue,
  BatchWriteItemCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  GetItemCommand,
  QueryCommand,
  type QueryCommandInput,
  UpdateItemCommand,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';
import type { EnrichedLine } from '#core/enrich';
import { sumMoney } from '#core/money';
import { TABLE_KEYS } from './dynamo-table.ts';
import type { Logger } from './logger.ts';
import { errorMessage, isRetryable, mapLimit, pause, type RetryPolicy, retryPolicy } from './retry.ts';

// ---------------------------------------------------------------------------------------------
// Item design (docs/dynamodb.md). Every key is a string; numbers inside keys are zero-padded so
// that string order is numeric order.

/** Kinesis sequence numbers have up to 129 digits; padded to this width they compare as strings. */
export const SEQUENCE_WIDTH = 129;
export const padSequence = (seq: string): string => seq.padStart(SEQUENCE_WIDTH, '0');
const padLineNo = (lineNo: number): string => String(lineNo).padStart(7, '0');

export const keys = {
  invoice: (invoiceNo: string) => ({ pk: `INV#${invoiceNo}`, sk: 'HEADER' }),
  line: (invoiceNo: string, lineNo: number) => ({ pk: `INV#${invoiceNo}`, sk: `LINE#${padLineNo(lineNo)}` }),
  /** gsi1: a customer's invoices, newest first. */
  customerInvoice: (customerId: string, invoiceTs: string, invoiceNo: string) => ({
    gsi1pk: `CUST#${customerId}`,
    gsi1sk: `${invoiceTs}#${invoiceNo}`,
  }),
  /** gsi2: a product's lines, newest first. */
  productLine: (stockCode: string, invoiceTs: string, invoiceNo: string, lineNo: number) => ({
    gsi2pk: `PROD#${stockCode}`,
    gsi2sk: `${invoiceTs}#${invoiceNo}#${padLineNo(lineNo)}`,
  }),
  country: (country: string) => ({ pk: 'AGG#COUNTRY', sk: country }),
  shardProgress: (shardId: string) => ({ pk: `PROGRESS#${shardId}`, sk: 'PROGRESS' }),
} as const;

/** Attribute holding a shard's high-water mark in an aggregate item (one per shard that wrote to it). */
export const hwmAttribute = (shardId: string): string => `hwm_${shardId}`;

// ---------------------------------------------------------------------------------------------
// Types of the two ports.

/** A line as the consumer hands it to the store. */
export interface LineToStore extends EnrichedLine {
  shardId: string;
  sequenceNumber: string;
}

/** A line as stored: lineage complete up to the serving store. */
export interface StoredLine extends LineToStore {
  streamVisibleAt: string;
}

export interface InvoiceHeader {
  invoiceNo: string;
  invoiceDate: string;
  invoiceTs: string;
  dateKey: number;
  customerId: string | null;
  country: string;
  countryCode: string;
  region: string;
  isCancellation: boolean;
  isAdjustment: boolean;
}

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
  recent: StoredLine[];
  totals: { lines: number; quantity: number; amount: string };
  /** False when the product has more lines than the totals scan reads (see maxTotalsLines). */
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
  ): Promise<Page<InvoiceHeader>>;
  getProductLines(stockCode: string, opts: { limit: number }): Promise<ProductLines | undefined>;
  getCountryStats(): Promise<CountryAggregate[]>;
  ping(): Promise<void>;
}

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

export interface PutLinesOutcome {
  /** Per input line: the streamVisibleAt stored with it, or undefined when it still failed after retries. */
  visibleAt: (string | undefined)[];
  reason?: string;
}

/** What the consumer writes. */
export interface LineSink {
  putLines(lines: readonly LineToStore[]): Promise<PutLinesOutcome>;
  applyAggregate(update: AggregateUpdate): Promise<AggregateOutcome>;
  getShardProgress(shardId: string): Promise<string | undefined>;
  setShardProgress(shardId: string, paddedSeq: string): Promise<void>;
}

export class InvalidCursorError extends Error {
  override name = 'InvalidCursorError';
}

export class StoreReadError extends Error {
  override name = 'StoreReadError';
}

// ---------------------------------------------------------------------------------------------

export interface DynamoInvoiceStoreOptions {
  client: DynamoDBClient;
  tableName: string;
  retry?: Partial<RetryPolicy>;
  /** BatchWriteItem calls in flight per putLines. */
  concurrency?: number;
  /** Upper bound of lines read to total one product's sales. */
  maxTotalsLines?: number;
  clock?: () => Date;
  logger?: Logger;
}

const BATCH_WRITE_MAX = 25;

export class DynamoInvoiceStore implements InvoiceReader, LineSink {
  private readonly policy: RetryPolicy;
  private readonly table: string;
  private readonly client: DynamoDBClient;
  private readonly clock: () => Date;

  constructor(private readonly options: DynamoInvoiceStoreOptions) {
    this.policy = retryPolicy(options.retry);
    this.table = options.tableName;
    this.client = options.client;
    this.clock = options.clock ?? (() => new Date());
  }

  // ----- write side ---------------------------------------------------------------------------

  /**
   * Writes each line and its invoice's header (a deterministic overwrite: every line of an invoice
   * carries the same header fields) in BatchWriteItem calls of 25, in parallel. A line counts as
   * written only when its own item and its invoice's header are.
   */
  async putLines(lines: readonly LineToStore[]): Promise<PutLinesOutcome> {
    const items: Record<string, AttributeValue>[] = [];
    const stamped: boolean[] = [];
    const lineItemIndex: number[] = [];
    const headerItemIndex: number[] = [];
    // Duplicate keys in one BatchWriteItem are refused: the last copy of a line, one header per invoice.
    const byKey = new Map<string, number>();
    const add = (item: Record<string, AttributeValue>, stamp: boolean) => {
      const key = itemKey(item);
      const existing = byKey.get(key);
      if (existing !== undefined) {
        items[existing] = item;
        return existing;
      }
      byKey.set(key, items.length);
      stamped.push(stamp);
      return items.push(item) - 1;
    };
    for (const line of lines) {
      lineItemIndex.push(add(lineItem(line), true));
      const h = keys.invoice(line.invoiceNo);
      const known = byKey.get(`${h.pk}|${h.sk}`);
      headerItemIndex.push(known ?? add(headerItem(line), false));
    }
    const written = new Array<string | undefined>(items.length);
    const all = items.map((_, i) => i);
    const chunks: number[][] = [];
    for (let i = 0; i < all.length; i += BATCH_WRITE_MAX) chunks.push(all.slice(i, i + BATCH_WRITE_MAX));
    const reasons = await mapLimit(chunks, this.options.concurrency ?? 8, (chunk) =>
      this.writeChunk(items, stamped, chunk, written),
    );
    const visibleAt = lines.map((_, k) =>
      written[headerItemIndex[k] as number] === undefined ? undefined : written[lineItemIndex[k] as number],
    );
    const reason = reasons.find((r) => r !== undefined);
    return reason ? { visibleAt, reason } : { visibleAt };
  }

  /** Writes one chunk, retrying throttling and UnprocessedItems; returns the reason when items remain. */
  private async writeChunk(
    items: Record<string, AttributeValue>[],
    stamped: boolean[],
    chunk: number[],
    visibleAt: (string | undefined)[],
  ): Promise<string | undefined> {
    let pending = chunk;
    let reason = '';
    for (let attempt = 0; attempt < this.policy.maxAttempts; attempt++) {
      if (attempt > 0) await pause(attempt, this.policy);
      // Stamped as the request leaves: the item carries its own visibility time in one write.
      const stamp = this.clock().toISOString();
      for (const i of pending)
        if (stamped[i]) (items[i] as Record<string, AttributeValue>).streamVisibleAt = { S: stamp };
      let unprocessed: WriteRequest[];
      try {
        const out = await this.client.send(
          new BatchWriteItemCommand({
            RequestItems: { [this.table]: pending.map((i) => ({ PutRequest: { Item: items[i] } })) },
          }),
        );
        unprocessed = out.UnprocessedItems?.[this.table] ?? [];
      } catch (err) {
        reason = errorMessage(err);
        if (!isRetryable(err)) break;
        this.options.logger?.debug({ attempt, reason, items: pending.length }, 'BatchWriteItem retry');
        continue;
      }
      const left = new Set(unprocessed.map((r) => itemKey(r.PutRequest?.Item ?? {})));
      const still: number[] = [];
      for (const i of pending) {
        if (left.has(itemKey(items[i] as Record<string, AttributeValue>))) still.push(i);
        else visibleAt[i] = stamp;
      }
      pending = still;
      if (pending.length === 0) return undefined;
      reason = `${pending.length} UnprocessedItems`;
      this.options.logger?.debug({ attempt, unprocessed: pending.length }, 'BatchWriteItem UnprocessedItems');
    }
    return `BatchWriteItem: ${reason}`;
  }

  async applyAggregate(update: AggregateUpdate): Promise<AggregateOutcome> {
    const key = marshall(aggregateKey(update.target));
    const static_ = aggregateStatic(update.target);
    const names: Record<string, string> = { '#h': hwmAttribute(update.shardId) };
    const values: Record<string, AttributeValue> = { ':max': { S: update.batchMaxSeq } };
    const sets = ['#h = :max'];
    Object.entries(static_).forEach(([name, value], i) => {
      names[`#s${i}`] = name;
      values[`:s${i}`] = marshall({ v: value }).v as AttributeValue;
      sets.push(`#s${i} = :s${i}`);
    });
    let entries = update.entries;
    // First try assumes no record of this batch was applied yet (the common case, no read needed).
    let condition = 'attribute_not_exists(#h) OR #h < :min';
    let prev: string | undefined;
    let reason = '';
    for (let attempt = 0; attempt < this.policy.maxAttempts; attempt++) {
      if (entries.length === 0) return { status: 'already-applied' };
      const delta = sumDeltas(entries.map((e) => e.delta));
      const minSeq = entries.reduce((m, e) => (e.seq < m ? e.seq : m), entries[0]?.seq as string);
      const adds = ['#lc :lc', '#q :q', '#a :a'];
      const addNames: Record<string, string> = { '#lc': 'lineCount', '#q': 'quantity', '#a': 'amount' };
      const addValues: Record<string, AttributeValue> = {
        ':lc': { N: String(delta.lines) },
        ':q': { N: String(delta.quantity) },
        ':a': { N: delta.amount },
      };
      adds.push('#ic :ic');
      addNames['#ic'] = 'invoiceCount';
      addValues[':ic'] = { N: String(delta.invoices) };
      const condValues: Record<string, AttributeValue> =
        prev === undefined
          ? condition.includes(':min')
            ? { ':min': { S: minSeq } }
            : {}
          : { ':prev': { S: prev } };
      try {
        await this.client.send(
          new UpdateItemCommand({
            TableName: this.table,
            Key: key,
            UpdateExpression: `SET ${sets.join(', ')} ADD ${adds.join(', ')}`,
            ConditionExpression: condition,
            ExpressionAttributeNames: { ...names, ...addNames },
            ExpressionAttributeValues: { ...values, ...addValues, ...condValues },
          }),
        );
        return { status: 'applied' };
      } catch (err) {
        if ((err as Error).name === 'ConditionalCheckFailedException') {
          // Some record of this batch may be applied already (redelivery): read the mark, keep what is newer.
          let hwm: string | undefined;
          try {
            const out = await this.client.send(
              new GetItemCommand({
                TableName: this.table,
                Key: key,
                ConsistentRead: true,
                ProjectionExpression: '#h',
                ExpressionAttributeNames: { '#h': names['#h'] as string },
              }),
            );
            hwm = out.Item?.[names['#h'] as string]?.S;
          } catch (readErr) {
            reason = errorMessage(readErr);
            if (!isRetryable(readErr)) break;
            await pause(attempt + 1, this.policy);
            continue;
          }
          if (hwm !== undefined && hwm >= update.batchMaxSeq) return { status: 'already-applied' };
          const mark = hwm;
          entries = mark === undefined ? entries : entries.filter((e) => e.seq > mark);
          prev = mark;
          condition = mark === undefined ? 'attribute_not_exists(#h)' : '#h = :prev';
          continue;
        }
        reason = errorMessage(err);
        if (!isRetryable(err)) break;
        await pause(attempt + 1, this.policy);
      }
    }
    return { status: 'failed', reason: `UpdateItem: ${reason || 'condition kept failing'}` };
  }

  async getShardProgress(shardId: string): Promise<string | undefined> {
    const out = await this.client.send(
      new GetItemCommand({
        TableName: this.table,
        Key: marshall(keys.shardProgress(shardId)),
        ConsistentRead: true,
      }),
    );
    return out.Item?.seq?.S;
  }

  async setShardProgress(shardId: string, paddedSeq: string): Promise<void> {
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key: marshall(keys.shardProgress(shardId)),
          UpdateExpression: 'SET #s = :s, #u = :u',
          ConditionExpression: 'attribute_not_exists(#s) OR #s < :s',
          ExpressionAttributeNames: { '#s': 'seq', '#u': 'updatedAt' },
          ExpressionAttributeValues: { ':s': { S: paddedSeq }, ':u': { S: this.clock().toISOString() } },
        }),
      );
    } catch (err) {
      // Another delivery already went further: progress only moves forward.
      if ((err as Error).name !== 'ConditionalCheckFailedException') throw err;
    }
  }

  // ----- read side ----------------------------------------------------------------------------

  async getInvoice(invoiceNo: string) {
    const items = await this.queryAll({
      TableName: this.table,
      KeyConditionExpression: '#pk = :pk',
      ExpressionAttributeNames: { '#pk': TABLE_KEYS.pk },
      ExpressionAttributeValues: { ':pk': { S: keys.invoice(invoiceNo).pk } },
      ConsistentRead: true,
    });
    if (items.length === 0) return undefined;
    let header: InvoiceHeader | undefined;
    const lines: StoredLine[] = [];
    for (const raw of items) {
      if (raw.sk?.S === 'HEADER') header = toHeader(raw);
      else lines.push(toLine(raw));
    }
    return { header, lines };
  }

  async listCustomerInvoices(customerId: string, page: { limit: number; cursor?: string }) {
    const gsi1pk = keys.customerInvoice(customerId, '', '').gsi1pk;
    const start =
      page.cursor === undefined ? undefined : decodeCursor(page.cursor, TABLE_KEYS.gsi1.pk, gsi1pk);
    const out = await this.client.send(
      new QueryCommand({
        TableName: this.table,
        IndexName: TABLE_KEYS.gsi1.name,
        KeyConditionExpression: '#pk = :pk',
        ExpressionAttributeNames: { '#pk': TABLE_KEYS.gsi1.pk },
        ExpressionAttributeValues: { ':pk': { S: gsi1pk } },
        ScanIndexForward: false,
        Limit: page.limit,
        ...(start ? { ExclusiveStartKey: start } : {}),
      }),
    );
    const items = (out.Items ?? []).map(toHeader);
    return out.LastEvaluatedKey ? { items, nextCursor: encodeCursor(out.LastEvaluatedKey) } : { items };
  }

  async getProductLines(stockCode: string, opts: { limit: number }): Promise<ProductLines | undefined> {
    const gsi2pk = `PROD#${stockCode}`;
    const base = {
      TableName: this.table,
      IndexName: TABLE_KEYS.gsi2.name,
      KeyConditionExpression: '#pk = :pk',
      ExpressionAttributeValues: { ':pk': { S: gsi2pk } },
      ScanIndexForward: false,
    };
    const recent = await this.client.send(
      new QueryCommand({
        ...base,
        ExpressionAttributeNames: { '#pk': TABLE_KEYS.gsi2.pk },
        Limit: opts.limit,
      }),
    );
    if (!recent.Items || recent.Items.length === 0) return undefined;
    const cap = this.options.maxTotalsLines ?? 20_000;
    const totalsItems = await this.queryAll(
      {
        ...base,
        ExpressionAttributeNames: { '#pk': TABLE_KEYS.gsi2.pk, '#q': 'quantity', '#t': 'lineTotal' },
        ProjectionExpression: '#q, #t',
      },
      cap + 1,
    );
    const counted = totalsItems.slice(0, cap);
    return {
      recent: recent.Items.map(toLine),
      totals: {
        lines: counted.length,
        quantity: counted.reduce((s, it) => s + Number(it.quantity?.N ?? 0), 0),
        amount: sumMoney(counted.map((it) => it.lineTotal?.S ?? '0')),
      },
      totalsComplete: totalsItems.length <= cap,
    };
  }

  async getCountryStats(): Promise<CountryAggregate[]> {
    const items = await this.queryAll({
      TableName: this.table,
      KeyConditionExpression: '#pk = :pk',
      ExpressionAttributeNames: { '#pk': TABLE_KEYS.pk },
      ExpressionAttributeValues: { ':pk': { S: keys.country('').pk } },
    });
    return items.map((it) => ({
      country: it.country?.S ?? it.sk?.S ?? '',
      countryCode: it.countryCode?.S ?? 'XX',
      region: it.region?.S ?? 'Unknown',
      lineCount: Number(it.lineCount?.N ?? 0),
      invoiceCount: Number(it.invoiceCount?.N ?? 0),
      quantity: Number(it.quantity?.N ?? 0),
      amount: sumMoney([it.amount?.N ?? '0']),
    }));
  }

  async ping(): Promise<void> {
    await this.client.send(new DescribeTableCommand({ TableName: this.table }));
  }

  private async queryAll(input: QueryCommandInput, max = Number.POSITIVE_INFINITY) {
    const items: Record<string, AttributeValue>[] = [];
    let start: Record<string, AttributeValue> | undefined;
    do {
      const out = await this.client.send(
        new QueryCommand({ ...input, ...(start ? { ExclusiveStartKey: start } : {}) }),
      );
      items.push(...(out.Items ?? []));
      start = out.LastEvaluatedKey;
    } while (start && items.length < max);
    return items;
  }
}

// ---------------------------------------------------------------------------------------------

function itemKey(item: Record<string, AttributeValue>): string {
  return `${item.pk?.S}|${item.sk?.S}`;
}

function lineItem(line: LineToStore): Record<string, AttributeValue> {
  return marshall(
    {
      ...keys.line(line.invoiceNo, line.lineNo),
      ...keys.productLine(line.stockCode, line.invoiceTs, line.invoiceNo, line.lineNo),
      entity: 'line',
      ...line,
    },
    { removeUndefinedValues: true },
  );
}

function aggregateKey(target: AggregateTarget) {
  return keys.country(target.line.country);
}

/** Attributes that are the same for every line of the item, so setting them again changes nothing. */
function aggregateStatic(target: AggregateTarget): Record<string, unknown> {
  const l = target.line;
  return { entity: 'country', country: l.country, countryCode: l.countryCode, region: l.region };
}

function headerItem(l: EnrichedLine): Record<string, AttributeValue> {
  return marshall({
    ...keys.invoice(l.invoiceNo),
    entity: 'invoice',
    invoiceNo: l.invoiceNo,
    invoiceDate: l.invoiceDate,
    invoiceTs: l.invoiceTs,
    dateKey: l.dateKey,
    customerId: l.customerId,
    country: l.country,
    countryCode: l.countryCode,
    region: l.region,
    isCancellation: l.isCancellation,
    isAdjustment: l.isAdjustment,
    // Sparse index: invoices without a customer stay out of gsi1.
    ...(l.customerId === null ? {} : keys.customerInvoice(l.customerId, l.invoiceTs, l.invoiceNo)),
  });
}

export function sumDeltas(deltas: readonly Delta[]): Delta {
  return {
    lines: deltas.reduce((s, d) => s + d.lines, 0),
    quantity: deltas.reduce((s, d) => s + d.quantity, 0),
    amount: sumMoney(deltas.map((d) => d.amount)),
    invoices: deltas.reduce((s, d) => s + d.invoices, 0),
  };
}

const KEY_ATTRIBUTES = ['pk', 'sk', 'gsi1pk', 'gsi1sk', 'gsi2pk', 'gsi2sk', 'entity'];

function strip(raw: Record<string, AttributeValue>): Record<string, unknown> {
  const out = unmarshall(raw);
  for (const k of KEY_ATTRIBUTES) delete out[k];
  for (const k of Object.keys(out)) if (k.startsWith('hwm_')) delete out[k];
  return out;
}

function toLine(raw: Record<string, AttributeValue>): StoredLine {
  return strip(raw) as unknown as StoredLine;
}

function toHeader(raw: Record<string, AttributeValue>): InvoiceHeader {
  const h = strip(raw) as Record<string, unknown>;
  return {
    ...(h as unknown as InvoiceHeader),
    customerId: (h.customerId as string | null | undefined) ?? null,
  };
}

export function encodeCursor(key: Record<string, AttributeValue>): string {
  return Buffer.from(JSON.stringify(unmarshall(key))).toString('base64url');
}

/** Cursors are opaque to clients; a forged or foreign one is a 400, never a scan elsewhere. */
export function decodeCursor(
  cursor: string,
  partitionAttr: string,
  expected: string,
): Record<string, AttributeValue> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch (cause) {
    throw new InvalidCursorError('cursor is not valid', { cause });
  }
  if (
    typeof parsed !== 'object' ||
    parsed === null ||
    Array.isArray(parsed) ||
    Object.values(parsed).some((v) => typeof v !== 'string') ||
    (parsed as Record<string, string>)[partitionAttr] !== expected
  ) {
    throw new InvalidCursorError('cursor is not valid for this list');
  }
  return marshall(parsed);
}
