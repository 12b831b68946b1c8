import {
  type AttributeValue,
  BatchGetItemCommand,
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
import { errorMessage, pause, type RetryPolicy, retryPolicy } from '#core/resilience';
import { TABLE_KEYS } from './dynamo-table.ts';
import type { Logger } from './logger.ts';
import { isRetryable, mapLimit, unfiltered } from './retry.ts';

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

/**
 * A line as stored. Written by the consumer (archive, onVisible): `streamVisibleAt` is the time the
 * DynamoDB write was acknowledged. Read back from the table: the item holds `streamWriteSentAt`
 * (when the BatchWriteItem carrying it was sent) and no `streamVisibleAt`, because the
 * acknowledgement time is only known after the write (docs/dynamodb.md).
 */
export interface StoredLine extends LineToStore {
  streamVisibleAt?: string;
  streamWriteSentAt?: string;
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

/** The owners of a batch's lines could not be read, so none of them may be written. */
export class LineOwnerReadError extends Error {
  override name = 'LineOwnerReadError';
}

// ---------------------------------------------------------------------------------------------

export interface DynamoInvoiceStoreOptions {
  client: DynamoDBClient;
  tableName: string;
  retry?: Partial<RetryPolicy>;
  /** BatchWriteItem (and BatchGetItem) calls in flight per putLines. Default 16. */
  concurrency?: number;
  /** Upper bound of lines read to total one product's sales. */
  maxTotalsLines?: number;
  clock?: () => Date;
  logger?: Logger;
}

const BATCH_WRITE_MAX = 25;
const BATCH_GET_MAX = 100;

/** The owner identity stored on a line item: the stream record that first wrote it. */
const ownerOf = (l: { shardId: string; sequenceNumber: string }): string =>
  `${l.shardId}/${l.sequenceNumber}`;

const lineItemKey = (l: { invoiceNo: string; lineNo: number }): string => {
  const k = keys.line(l.invoiceNo, l.lineNo);
  return `${k.pk}|${k.sk}`;
};

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
   * Stores each line the stream record that carries it owns, and its invoice's header (a
   * deterministic overwrite: every line of an invoice carries the same header fields).
   *
   * A line is owned by the first stream record that wrote it (`shardId` + `sequenceNumber` on the
   * item). A record carrying a line that another record owns is a producer re-send: it is not
   * written and reported as `duplicate`, so the caller gives it no aggregate contribution. The
   * owner's own redelivery passes (same record, same sequence number) and rewrites identical
   * content. Within one call the first copy of a key owns it. This relies on the stream's ordering:
   * partition key = invoiceNo, so every copy of a line is on one shard, processed in order with one
   * batch in flight (docs/dynamodb.md).
   *
   * Writes go in BatchWriteItem calls of 25, in parallel. A line counts as written only when its
   * own item and its invoice's header are; `visibleAt` is the time the BatchWriteItem that carried
   * it was acknowledged.
   */
  async putLines(lines: readonly LineToStore[]): Promise<PutLinesOutcome> {
    const visibleAt = new Array<string | undefined>(lines.length);
    const duplicate = new Array<boolean>(lines.length).fill(false);
    const candidates: number[] = [];
    const firstCopy = new Map<string, number>();
    lines.forEach((line, k) => {
      const key = lineItemKey(line);
      if (firstCopy.has(key)) duplicate[k] = true;
      else {
        firstCopy.set(key, k);
        candidates.push(k);
      }
    });
    let owners: Map<string, string>;
    try {
      owners = await this.lineOwners(candidates.map((k) => lines[k] as LineToStore));
    } catch (err) {
      // Without knowing the owners no line may be written: a re-send would be counted twice.
      return { visibleAt, duplicate: duplicate.map(() => false), reason: errorMessage(err) };
    }
    const items: Record<string, AttributeValue>[] = [];
    const isLine: boolean[] = [];
    const lineItemIndex = new Map<number, number>();
    const headerItemIndex = new Map<number, number>();
    const headers = new Map<string, number>();
    for (const k of candidates) {
      const line = lines[k] as LineToStore;
      const owner = owners.get(lineItemKey(line));
      if (owner !== undefined && owner !== ownerOf(line)) {
        duplicate[k] = true;
        continue;
      }
      lineItemIndex.set(k, items.push(lineItem(line)) - 1);
      isLine.push(true);
      let h = headers.get(line.invoiceNo);
      if (h === undefined) {
        h = items.push(headerItem(line)) - 1;
        isLine.push(false);
        headers.set(line.invoiceNo, h);
      }
      headerItemIndex.set(k, h);
    }
    const written = new Array<string | undefined>(items.length);
    const chunks: number[][] = [];
    for (let i = 0; i < items.length; i += BATCH_WRITE_MAX) {
      chunks.push(Array.from({ length: Math.min(BATCH_WRITE_MAX, items.length - i) }, (_, j) => i + j));
    }
    const reasons = await mapLimit(chunks, this.options.concurrency ?? 16, (chunk) =>
      this.writeChunk(items, isLine, chunk, written),
    );
    for (const [k, li] of lineItemIndex) {
      const headerAck = written[headerItemIndex.get(k) as number];
      const lineAck = written[li];
      // Visible once both are: the later of the two acknowledgements.
      if (headerAck !== undefined && lineAck !== undefined)
        visibleAt[k] = lineAck > headerAck ? lineAck : headerAck;
    }
    const reason = reasons.find((r) => r !== undefined);
    return reason ? { visibleAt, duplicate, reason } : { visibleAt, duplicate };
  }

  /**
   * The owner (`<shardId>/<sequenceNumber>`) of each line that is already stored. Headers first: a
   * line item is only ever written together with its invoice's header, so an invoice without a
   * header has no owned line (a line item whose header write failed belongs to a record that failed
   * too, and that record comes back before anything after it). That is one read per invoice
   * instead of one per line, and only invoices seen before (re-sends, redeliveries, invoices spread
   * over batches) have their lines read.
   */
  private async lineOwners(lines: readonly LineToStore[]): Promise<Map<string, string>> {
    const owners = new Map<string, string>();
    const invoices = [...new Set(lines.map((l) => l.invoiceNo))];
    const known = new Set<string>();
    await this.batchGet(
      invoices.map((no) => keys.invoice(no)),
      ['pk'],
      (item) => known.add(item.pk?.S ?? ''),
    );
    const maybeOwned = lines.filter((l) => known.has(keys.invoice(l.invoiceNo).pk));
    await this.batchGet(
      maybeOwned.map((l) => keys.line(l.invoiceNo, l.lineNo)),
      ['pk', 'sk', 'shardId', 'sequenceNumber'],
      (item) => owners.set(itemKey(item), `${item.shardId?.S}/${item.sequenceNumber?.S}`),
    );
    return owners;
  }

  /**
   * Consistent BatchGetItem calls of 100 keys, in parallel; UnprocessedKeys and throttling are
   * retried with backoff. Throws when keys remain unread after the retry bound.
   */
  private async batchGet(
    keyList: readonly { pk: string; sk: string }[],
    attributes: readonly string[],
    onItem: (item: Record<string, AttributeValue>) => void,
  ): Promise<void> {
    const chunks: Record<string, AttributeValue>[][] = [];
    for (let i = 0; i < keyList.length; i += BATCH_GET_MAX) {
      chunks.push(keyList.slice(i, i + BATCH_GET_MAX).map((k) => ({ pk: { S: k.pk }, sk: { S: k.sk } })));
    }
    const names = Object.fromEntries(attributes.map((a, i) => [`#a${i}`, a]));
    await mapLimit(chunks, this.options.concurrency ?? 16, async (chunk) => {
      let pending = chunk;
      let reason = '';
      for (let attempt = 0; attempt < this.policy.maxAttempts; attempt++) {
        if (attempt > 0) await pause(attempt, this.policy);
        try {
          const out = await this.client.send(
            unfiltered(
              new BatchGetItemCommand({
                RequestItems: {
                  [this.table]: {
                    Keys: pending,
                    ConsistentRead: true,
                    ProjectionExpression: Object.keys(names).join(', '),
                    ExpressionAttributeNames: names,
                  },
                },
              }),
            ),
          );
          for (const item of out.Responses?.[this.table] ?? []) onItem(item);
          pending = out.UnprocessedKeys?.[this.table]?.Keys ?? [];
          if (pending.length === 0) return;
          reason = `${pending.length} UnprocessedKeys`;
        } catch (err) {
          reason = errorMessage(err);
          if (!isRetryable(err)) break;
        }
        this.options.logger?.debug({ attempt, reason }, 'BatchGetItem retry');
      }
      throw new LineOwnerReadError(`BatchGetItem: ${reason}`);
    });
  }

  /**
   * Writes one chunk, retrying throttling and UnprocessedItems; returns the reason when items remain.
   * `ackAt[i]` is set to the time the response that confirmed item i arrived.
   */
  private async writeChunk(
    items: Record<string, AttributeValue>[],
    isLine: boolean[],
    chunk: number[],
    ackAt: (string | undefined)[],
  ): Promise<string | undefined> {
    let pending = chunk;
    let reason = '';
    for (let attempt = 0; attempt < this.policy.maxAttempts; attempt++) {
      if (attempt > 0) await pause(attempt, this.policy);
      // The item can only hold what is known before the write: when the request carrying it left.
      const sentAt = this.clock().toISOString();
      for (const i of pending)
        if (isLine[i]) (items[i] as Record<string, AttributeValue>).streamWriteSentAt = { S: sentAt };
      let unprocessed: WriteRequest[];
      try {
        const out = await this.client.send(
          unfiltered(
            new BatchWriteItemCommand({
              RequestItems: { [this.table]: pending.map((i) => ({ PutRequest: { Item: items[i] } })) },
            }),
          ),
        );
        unprocessed = out.UnprocessedItems?.[this.table] ?? [];
      } catch (err) {
        reason = errorMessage(err);
        if (!isRetryable(err)) break;
        this.options.logger?.debug({ attempt, reason, items: pending.length }, 'BatchWriteItem retry');
        continue;
      }
      const ack = this.clock().toISOString();
      if (unprocessed.length === 0) {
        for (const i of pending) ackAt[i] = ack;
        return undefined;
      }
      const left = new Set(unprocessed.map((r) => itemKey(r.PutRequest?.Item ?? {})));
      const still: number[] = [];
      for (const i of pending) {
        if (left.has(itemKey(items[i] as Record<string, AttributeValue>))) still.push(i);
        else ackAt[i] = ack;
      }
      pending = still;
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
