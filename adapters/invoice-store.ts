import { randomUUID } from 'node:crypto';
import {
  type AttributeValue,
  BatchGetItemCommand,
  BatchWriteItemCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  type QueryCommandInput,
  UpdateItemCommand,
  type UpdateItemCommandInput,
} from '@aws-sdk/client-dynamodb';
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';
import { sumMoney } from '#core/money';
import { errorMessage, type RetryPolicy, retryCall, retryPartial, retryPolicy } from '#core/resilience';
import {
  type AggregateOutcome,
  type AggregateTarget,
  type AggregateUpdate,
  type CountryAggregate,
  decideOwnership,
  InvalidCursorError,
  type InvoiceHeader,
  type InvoiceOwnership,
  type InvoiceReader,
  type InvoiceSummary,
  invoiceFieldsOf,
  LineOwnerReadError,
  type LineSink,
  type LineToStore,
  OwnershipCache,
  ownerOf,
  type Page,
  type ProductLines,
  type ProductSale,
  type PutLinesOutcome,
  type StoredLine,
  sumDeltas,
  type WriteBilling,
} from '#core/serving';
import { itemBytes, putWriteUnits, TABLE_KEYS, writeUnits } from './dynamo-table.ts';
import {
  chunkItems,
  chunkLines,
  chunkOwners,
  headerItem,
  isChunk,
  isOldLine,
  keys,
  LEASE_PREFIX,
  oldLine,
  productItems,
  productItemTs,
  productSales,
  saleOrder,
  stampSentAt,
  toHeader,
  toSummary,
} from './invoice-items.ts';
import type { Logger } from './logger.ts';
import { isRetryable, mapLimit, unfiltered } from './retry.ts';

export { keys } from './invoice-items.ts';

/** Attribute holding a shard's high-water mark in an aggregate item (one per shard that wrote to it). */
export const hwmAttribute = (shardId: string): string => `hwm_${shardId}`;

export interface DynamoInvoiceStoreOptions {
  client: DynamoDBClient;
  tableName: string;
  retry?: Partial<RetryPolicy>;
  /** BatchWriteItem (and BatchGetItem, Query) calls in flight per putLines. Default 16. */
  concurrency?: number;
  /** Upper bound of lines read to total one product's sales. */
  maxTotalsLines?: number;
  /** Invoices whose stored lines the consumer remembers per shard (docs/dynamodb.md). Default 20,000. */
  ownershipCacheInvoices?: number;
  /** Names this instance in shard leases (default: a random UUID per store). */
  instanceId?: string;
  clock?: () => Date;
  logger?: Logger;
}

const BATCH_WRITE_MAX = 25;
const BATCH_GET_MAX = 100;

const invoiceKey = (l: { shardId: string; invoiceNo: string }) => `${l.shardId}\u0000${l.invoiceNo}`;

/** An item to write and what it stands for, with the time its write was acknowledged. */
interface Write {
  item: Record<string, AttributeValue>;
  lines: number;
  ackAt?: string;
}

export class DynamoInvoiceStore implements InvoiceReader, LineSink {
  private readonly policy: RetryPolicy;
  private readonly table: string;
  private readonly client: DynamoDBClient;
  private readonly clock: () => Date;
  private readonly cache: OwnershipCache;
  /** This consumer instance, as named in the shard leases it holds. */
  private readonly instanceId: string;
  private readonly billed: WriteBilling = { writeUnits: 0, indexWriteUnits: 0, items: 0, lines: 0 };
  /** The last size seen of each aggregate item: a refused conditional update is billed on it. */
  private readonly aggregateBytes = new Map<string, number>();

  constructor(private readonly options: DynamoInvoiceStoreOptions) {
    this.policy = retryPolicy(options.retry);
    this.table = options.tableName;
    this.client = options.client;
    this.clock = options.clock ?? (() => new Date());
    this.cache = new OwnershipCache(options.ownershipCacheInvoices);
    this.instanceId = options.instanceId ?? randomUUID();
  }

  /** Write request units consumed so far, by AWS's rules from the sizes of the items written. */
  billing(): WriteBilling {
    const byKind = this.billed.byKind;
    return {
      ...this.billed,
      ...(byKind
        ? { byKind: Object.fromEntries(Object.entries(byKind).map(([k, v]) => [k, { ...v }])) }
        : {}),
    };
  }

  // ----- write side ---------------------------------------------------------------------------

  /**
   * Stores the lines each record owns (core/serving.ts decideOwnership) as invoice chunk items,
   * the header of each invoice not stored yet, then the product items of the stored lines.
   *
   * What is stored is known from the per-shard ownership cache; only invoices it does not know
   * (cold start, eviction, a write that failed) are read, and when they cannot be read nothing is
   * written. `visibleAt` is when the line's chunk (and its header, when written now) was
   * acknowledged; a line counts as stored only once its product item is written too.
   */
  async putLines(lines: readonly LineToStore[]): Promise<PutLinesOutcome> {
    const visibleAt = new Array<string | undefined>(lines.length);
    const known = new Map<string, InvoiceOwnership>();
    try {
      await this.knowOwnershipHoldingShards(lines, known);
    } catch (err) {
      // Without knowing the owners no line may be written: a re-send would be counted twice.
      return { visibleAt, duplicate: lines.map(() => false), reason: errorMessage(err) };
    }
    const decisions = decideOwnership(lines, (l) => known.get(invoiceKey(l)));
    const duplicate = decisions.map((d) => d === 'duplicate');

    // Per invoice: its header (when not stored yet) and one run of chunks per owning record.
    const headers = new Map<string, Write>();
    const chunks: { write: Write; at: number[]; invoice: string }[] = [];
    const groups = new Map<string, number[]>();
    lines.forEach((l, k) => {
      if (decisions[k] !== 'write') return;
      const g = `${invoiceKey(l)}\u0000${l.sequenceNumber}`;
      const list = groups.get(g);
      if (list) list.push(k);
      else groups.set(g, [k]);
    });
    for (const at of groups.values()) {
      const first = lines[at[0] as number] as LineToStore;
      const inv = invoiceKey(first);
      const state = known.get(inv) as InvoiceOwnership;
      const header = state.header ?? invoiceFieldsOf(first);
      if (!state.header && !headers.has(inv)) headers.set(inv, { item: headerItem(header), lines: 0 });
      const byLineNo = new Map(at.map((k) => [(lines[k] as LineToStore).lineNo, k]));
      for (const c of chunkItems(
        at.map((k) => lines[k] as LineToStore),
        header,
      )) {
        chunks.push({
          write: { item: c.item, lines: c.lines.length },
          at: c.lines.map((l) => byLineNo.get(l.lineNo) as number),
          invoice: inv,
        });
      }
    }
    const firstRound = [...headers.values(), ...chunks.map((c) => c.write)];
    const reasons = [await this.writeAll(firstRound)];

    const failedInvoices = new Set<string>();
    for (const c of chunks) {
      const header = headers.get(c.invoice);
      const ack = c.write.ackAt;
      const headerAck = header ? header.ackAt : '';
      if (ack === undefined || headerAck === undefined) {
        failedInvoices.add(c.invoice);
        continue;
      }
      for (const k of c.at) visibleAt[k] = ack > headerAck ? ack : headerAck;
    }
    this.remember(lines, decisions, known, headers, failedInvoices);

    // The product index only ever names lines whose chunk is stored.
    const stored = lines.filter((_, k) => visibleAt[k] !== undefined);
    const products = productItems(stored).map((item): Write => ({ item, lines: 0 }));
    reasons.push(await this.writeAll(products));
    if (products.some((p) => p.ackAt === undefined)) {
      const missing = new Set<string>();
      for (const p of products)
        if (p.ackAt === undefined)
          for (const s of productSales(p.item)) missing.add(`${s.invoiceNo}#${s.lineNo}`);
      lines.forEach((l, k) => {
        if (missing.has(`${l.invoiceNo}#${l.lineNo}`) && decisions[k] === 'write') visibleAt[k] = undefined;
      });
    }
    const reason = reasons.find((r) => r !== undefined);
    return reason ? { visibleAt, duplicate, reason } : { visibleAt, duplicate };
  }

  /**
   * Fills `known` with what is stored of each invoice of `lines`, from a cache that is trustworthy.
   * The cache only knows what this instance wrote; if another instance (a second Lambda environment,
   * a restarted consumer) wrote to the shard since, lines it stored are missing here, and a producer
   * re-send of them would be stored and counted again. So every batch reads the shard's lease (a
   * consistent read, 0.5 RCU) in the same BatchGetItem as the headers of the invoices the cache does
   * not know: when this instance still holds the lease, the cache's answers stand; when it does not,
   * it forgets the shard, takes the lease and reads the invoices the cache answered. Nothing is
   * written before both are known. Lambda runs one batch per shard at a time, so the lease changes
   * hands only between batches, and reads made during this batch are current.
   */
  private async knowOwnershipHoldingShards(
    lines: readonly LineToStore[],
    known: Map<string, InvoiceOwnership>,
  ): Promise<void> {
    const shards = [...new Set(lines.map((l) => l.shardId))];
    const cached = new Set<string>();
    const holders = new Map<string, string | undefined>(shards.map((s) => [s, undefined]));
    await this.knowOwnership(lines, known, { fromCache: cached, leases: holders });
    const lost = shards.filter((s) => holders.get(s) !== this.instanceId);
    if (lost.length === 0) return;
    for (const shardId of lost) this.cache.forgetShard(shardId);
    await Promise.all(lost.map((shardId) => this.takeLease(shardId)));
    // What the store answered is current; what the cache answered for those shards is not.
    const again = lines.filter((l) => lost.includes(l.shardId) && cached.has(invoiceKey(l)));
    for (const l of again) known.delete(invoiceKey(l));
    await this.knowOwnership(again, known);
  }

  private async takeLease(shardId: string): Promise<void> {
    const item = { ...marshall(keys.shardLease(shardId)), holder: { S: this.instanceId } };
    await this.ownerRead('PutItem lease', () =>
      this.client.send(new PutItemCommand({ TableName: this.table, Item: item })),
    );
    this.bill({ item, lines: 0 });
  }

  /** A call the ownership decision needs, under the store's retry policy; failing, a LineOwnerReadError. */
  private async ownerRead<O>(what: string, call: () => Promise<O>): Promise<O> {
    try {
      return await this.withRetry(what, call);
    } catch (err) {
      throw new LineOwnerReadError(`${what}: ${errorMessage(err)}`, { cause: err });
    }
  }

  private logRetry(what: string) {
    return (e: { retry: number; reason: string; pending?: number }) =>
      this.options.logger?.debug({ ...e, call: what }, 'DynamoDB retry');
  }

  /**
   * Fills `known` with what is stored of each invoice of `lines`: from the cache (noting those in
   * `fromCache`), else read; with `leases`, reads the holder of each of its shards' leases in the
   * same calls.
   */
  private async knowOwnership(
    lines: readonly LineToStore[],
    known: Map<string, InvoiceOwnership>,
    also: { fromCache?: Set<string>; leases?: Map<string, string | undefined> } = {},
  ) {
    const unknown = new Map<string, LineToStore>();
    for (const l of lines) {
      const k = invoiceKey(l);
      if (known.has(k) || unknown.has(k)) continue;
      const cached = this.cache.get(l.shardId, l.invoiceNo);
      if (cached) {
        known.set(k, cached);
        also.fromCache?.add(k);
      } else unknown.set(k, l);
    }
    const leaseKeys = [...(also.leases?.keys() ?? [])].map((shardId) => keys.shardLease(shardId));
    if (unknown.size === 0 && leaseKeys.length === 0) return;
    // Headers first: chunks are only ever written together with their header (an invoice without
    // a header has no owned line: a chunk whose header write failed belongs to a record that failed
    // too and comes back before anything after it), so new invoices cost one key each.
    const invoices = [...new Set([...unknown.values()].map((l) => l.invoiceNo))];
    const headers = new Map<string, InvoiceHeader>();
    await this.batchGet([...leaseKeys, ...invoices.map((no) => keys.invoice(no))], (item) => {
      const pk = item.pk?.S ?? '';
      if (pk.startsWith(LEASE_PREFIX)) also.leases?.set(pk.slice(LEASE_PREFIX.length), item.holder?.S);
      else headers.set(item.invoiceNo?.S ?? '', toHeader(item));
    });
    const owners = new Map<string, Map<number, string>>();
    await mapLimit([...headers.keys()], this.options.concurrency ?? 16, async (invoiceNo) => {
      const map = new Map<number, string>();
      owners.set(invoiceNo, map);
      const items = await this.ownerRead('Query', () =>
        this.queryAll({
          TableName: this.table,
          ConsistentRead: true,
          KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :line)',
          ExpressionAttributeNames: { '#pk': 'pk', '#sk': 'sk' },
          ExpressionAttributeValues: { ':pk': { S: keys.invoice(invoiceNo).pk }, ':line': { S: 'LINE' } },
        }),
      );
      for (const item of items) {
        if (isChunk(item)) {
          const c = chunkOwners(item);
          for (const n of c.lineNos) if (!map.has(n)) map.set(n, c.owner);
        } else if (isOldLine(item)) {
          map.set(Number(item.lineNo?.N), `${item.shardId?.S}/${item.sequenceNumber?.S}`);
        }
      }
    });
    for (const [k, l] of unknown) {
      known.set(k, { header: headers.get(l.invoiceNo), owners: owners.get(l.invoiceNo) ?? new Map() });
    }
  }

  /** Records in the cache what was acknowledged; forgets invoices whose writes failed. */
  private remember(
    lines: readonly LineToStore[],
    decisions: readonly string[],
    known: Map<string, InvoiceOwnership>,
    headers: Map<string, Write>,
    failed: ReadonlySet<string>,
  ) {
    lines.forEach((l, k) => {
      const inv = invoiceKey(l);
      const state = known.get(inv) as InvoiceOwnership;
      if (failed.has(inv)) return;
      if (decisions[k] === 'write') {
        state.owners.set(l.lineNo, ownerOf(l));
        if (!state.header && headers.get(inv)?.ackAt !== undefined) state.header = invoiceFieldsOf(l);
      }
    });
    for (const [inv, state] of known) {
      const [shardId, invoiceNo] = inv.split('\u0000') as [string, string];
      if (failed.has(inv)) this.cache.forget(shardId, invoiceNo);
      else this.cache.set(shardId, invoiceNo, state);
    }
  }

  /**
   * Consistent BatchGetItem calls of 100 keys, in parallel; UnprocessedKeys and throttling are
   * retried under the store's policy. Throws when keys remain unread after it.
   */
  private async batchGet(
    keyList: readonly { pk: string; sk: string }[],
    onItem: (item: Record<string, AttributeValue>) => void,
  ): Promise<void> {
    const chunks: Record<string, AttributeValue>[][] = [];
    for (let i = 0; i < keyList.length; i += BATCH_GET_MAX) {
      chunks.push(keyList.slice(i, i + BATCH_GET_MAX).map((k) => ({ pk: { S: k.pk }, sk: { S: k.sk } })));
    }
    await mapLimit(chunks, this.options.concurrency ?? 16, async (chunk) => {
      const out = await retryPartial(
        chunk,
        async (pending) => {
          const res = await this.client.send(
            unfiltered(
              new BatchGetItemCommand({
                RequestItems: { [this.table]: { Keys: [...pending], ConsistentRead: true } },
              }),
            ),
          );
          for (const item of res.Responses?.[this.table] ?? []) onItem(item);
          const failed = res.UnprocessedKeys?.[this.table]?.Keys ?? [];
          return { failed, reason: `${failed.length} UnprocessedKeys` };
        },
        this.policy,
        { retryable: isRetryable, onRetry: this.logRetry('BatchGetItem') },
      );
      if (out.failed.length > 0)
        throw new LineOwnerReadError(`BatchGetItem: ${out.reason ?? 'unknown'}`, { cause: out.cause });
    });
  }

  /** Writes items in BatchWriteItem calls of 25, in parallel; returns a reason when some failed. */
  private async writeAll(writes: Write[]): Promise<string | undefined> {
    const calls: Write[][] = [];
    for (let i = 0; i < writes.length; i += BATCH_WRITE_MAX) calls.push(writes.slice(i, i + BATCH_WRITE_MAX));
    const reasons = await mapLimit(calls, this.options.concurrency ?? 16, (call) => this.writeCall(call));
    return reasons.find((r) => r !== undefined);
  }

  /**
   * Writes one BatchWriteItem call, retrying throttling and UnprocessedItems under the store's
   * policy; returns the reason when items remain. Each write's `ackAt` is set when the response that
   * confirmed it arrived, and its write units are counted then (AWS bills what it processed, not
   * what it handed back).
   */
  private async writeCall(call: Write[]): Promise<string | undefined> {
    const out = await retryPartial(
      call,
      async (pending) => {
        // The item can only hold what is known before the write: when the request carrying it left.
        const sentAt = this.clock().toISOString();
        for (const w of pending) stampSentAt(w.item, sentAt);
        const res = await this.client.send(
          unfiltered(
            new BatchWriteItemCommand({
              RequestItems: { [this.table]: pending.map((w) => ({ PutRequest: { Item: w.item } })) },
            }),
          ),
        );
        const ack = this.clock().toISOString();
        const left = new Set(
          (res.UnprocessedItems?.[this.table] ?? []).map((r) => itemKey(r.PutRequest?.Item ?? {})),
        );
        const failed: Write[] = [];
        for (const w of pending) {
          if (left.has(itemKey(w.item))) failed.push(w);
          else {
            w.ackAt = ack;
            this.bill(w);
          }
        }
        return { failed, reason: `${failed.length} UnprocessedItems` };
      },
      this.policy,
      { retryable: isRetryable, onRetry: this.logRetry('BatchWriteItem') },
    );
    return out.failed.length > 0 ? `BatchWriteItem: ${out.reason ?? 'unknown'}` : undefined;
  }

  private bill(w: Write) {
    const units = putWriteUnits(w.item);
    this.billed.writeUnits += units.table + units.indexes;
    this.billed.indexWriteUnits += units.indexes;
    this.billed.items++;
    this.billed.lines += w.lines;
    this.billKind(itemKind(w.item), units.table + units.indexes, itemBytes(w.item));
  }

  /** An UpdateItem is billed on the larger of the item before and after (AWS), also when refused. */
  private billUpdate(key: Record<string, AttributeValue>, bytes: number | undefined) {
    const name = itemKey(key);
    const size = Math.max(bytes ?? 0, this.aggregateBytes.get(name) ?? 0);
    if (bytes !== undefined) this.aggregateBytes.set(name, bytes);
    this.billed.writeUnits += writeUnits(size);
    this.billed.items++;
    this.billKind(itemKind(key), writeUnits(size), size);
  }

  private billKind(kind: string, units: number, bytes: number) {
    this.billed.byKind ??= {};
    const k = this.billed.byKind[kind] ?? { writeUnits: 0, items: 0, bytes: 0 };
    this.billed.byKind[kind] = k;
    k.writeUnits += units;
    k.items++;
    k.bytes += bytes;
  }

  /**
   * Adds a batch's contributions to one aggregate item, once: the update is conditional on the
   * shard's high-water mark (docs/dynamodb.md). When the condition fails (a redelivery), the mark is
   * read, only the contributions above it are kept, and the update is tried again on that mark
   * (optimistic lock; at most the policy's attempts in all). Throttling and server errors of each
   * call are retried under the store's policy.
   */
  async applyAggregate(update: AggregateUpdate): Promise<AggregateOutcome> {
    const key = marshall(aggregateKey(update.target));
    const hwm = hwmAttribute(update.shardId);
    let entries = update.entries;
    // First try assumes no record of this batch was applied yet (the common case, no read needed).
    let mark: { known: false } | { known: true; value: string | undefined } = { known: false };
    for (let round = 0; round < this.policy.maxAttempts; round++) {
      if (entries.length === 0) return { status: 'already-applied' };
      const input = aggregateUpdateInput(this.table, key, hwm, update, entries, mark);
      try {
        const out = await this.withRetry('UpdateItem', () => this.client.send(new UpdateItemCommand(input)));
        this.billUpdate(key, out?.Attributes ? itemBytes(out.Attributes) : undefined);
        return { status: 'applied' };
      } catch (err) {
        if ((err as Error).name !== 'ConditionalCheckFailedException')
          return { status: 'failed', reason: `UpdateItem: ${errorMessage(err)}` };
      }
      // A refused conditional write is billed too, on the item as it is.
      this.billUpdate(key, undefined);
      // Some record of this batch may be applied already (redelivery): read the mark, keep what is newer.
      let value: string | undefined;
      try {
        const out = await this.withRetry('GetItem', () =>
          this.client.send(
            new GetItemCommand({
              TableName: this.table,
              Key: key,
              ConsistentRead: true,
              ProjectionExpression: '#h',
              ExpressionAttributeNames: { '#h': hwm },
            }),
          ),
        );
        value = out.Item?.[hwm]?.S;
      } catch (err) {
        return { status: 'failed', reason: `UpdateItem: ${errorMessage(err)}` };
      }
      if (value !== undefined && value >= update.batchMaxSeq) return { status: 'already-applied' };
      entries = value === undefined ? entries : entries.filter((e) => e.seq > value);
      mark = { known: true, value };
    }
    return { status: 'failed', reason: 'UpdateItem: condition kept failing' };
  }

  /** One call under the store's retry policy (throttling, 5xx, network); the last error is thrown. */
  private withRetry<O>(what: string, call: () => Promise<O>): Promise<O> {
    return retryCall(call, this.policy, { retryable: isRetryable, onRetry: this.logRetry(what) });
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
    const key = marshall(keys.shardProgress(shardId));
    const updatedAt = this.clock().toISOString();
    // The item holds exactly these attributes, so its size is known without asking.
    const bytes = itemBytes({ ...key, seq: { S: paddedSeq }, updatedAt: { S: updatedAt } });
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key: key,
          UpdateExpression: 'SET #s = :s, #u = :u',
          ConditionExpression: 'attribute_not_exists(#s) OR #s < :s',
          ExpressionAttributeNames: { '#s': 'seq', '#u': 'updatedAt' },
          ExpressionAttributeValues: { ':s': { S: paddedSeq }, ':u': { S: updatedAt } },
        }),
      );
      this.billUpdate(key, bytes);
    } catch (err) {
      // Another delivery already went further: progress only moves forward.
      if ((err as Error).name !== 'ConditionalCheckFailedException') throw err;
      this.billUpdate(key, bytes);
    }
  }

  // ----- read side ----------------------------------------------------------------------------

  /**
   * Header, chunks and the line items of the one-item-per-line layout (an upgraded table holds
   * both) in one consistent Query; a line is listed once whichever items hold it.
   */
  async getInvoice(invoiceNo: string) {
    const items = await this.queryAll({
      TableName: this.table,
      KeyConditionExpression: '#pk = :pk',
      ExpressionAttributeNames: { '#pk': TABLE_KEYS.pk },
      ExpressionAttributeValues: { ':pk': { S: keys.invoice(invoiceNo).pk } },
      ConsistentRead: true,
    });
    if (items.length === 0) return undefined;
    const headerItem = items.find((raw) => raw.sk?.S === 'HEADER');
    const header = headerItem ? toHeader(headerItem) : undefined;
    const byLineNo = new Map<number, StoredLine>();
    for (const raw of items) {
      if (isOldLine(raw)) {
        const line = oldLine(raw);
        if (!byLineNo.has(line.lineNo)) byLineNo.set(line.lineNo, line);
      }
    }
    for (const raw of items) {
      // A chunk is only written with its header, so a chunk without one is a write in progress.
      if (!isChunk(raw) || !header) continue;
      for (const line of chunkLines(raw, header))
        if (!byLineNo.has(line.lineNo)) byLineNo.set(line.lineNo, line);
    }
    if (!header && byLineNo.size === 0) return undefined;
    return { header, lines: [...byLineNo.values()] };
  }

  async listCustomerInvoices(
    customerId: string,
    page: { limit: number; cursor?: string },
  ): Promise<Page<InvoiceSummary>> {
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
    const items = (out.Items ?? []).map(toSummary);
    return out.LastEvaluatedKey ? { items, nextCursor: encodeCursor(out.LastEvaluatedKey) } : { items };
  }

  /**
   * A product's sales newest first and its totals over the newest `maxTotalsLines`, from the
   * `PROD#` items (one per product per consumer batch; a redelivery may have written a line twice,
   * so sales are de-duplicated by (invoiceNo, lineNo)) merged with the gsi2 entries of the
   * one-item-per-line layout.
   */
  async getProductLines(stockCode: string, opts: { limit: number }): Promise<ProductLines | undefined> {
    const cap = this.options.maxTotalsLines ?? 20_000;
    const [packed, old] = await Promise.all([
      this.packedSales(stockCode, cap + 1),
      this.oldSales(stockCode, cap + 1),
    ]);
    const sales = new Map<string, ProductSale>();
    for (const s of [...old, ...packed]) {
      const k = `${s.invoiceNo}#${s.lineNo}`;
      if (!sales.has(k)) sales.set(k, s);
    }
    if (sales.size === 0) return undefined;
    const newest = [...sales.values()]
      .map((s) => ({ s, order: saleOrder(s) }))
      .sort((a, b) => (a.order < b.order ? 1 : a.order > b.order ? -1 : 0))
      .map((x) => x.s);
    const counted = newest.slice(0, cap);
    return {
      recent: newest.slice(0, opts.limit),
      totals: {
        lines: counted.length,
        quantity: counted.reduce((s, l) => s + l.quantity, 0),
        amount: sumMoney(counted.map((l) => l.lineTotal)),
      },
      totalsComplete: newest.length <= cap,
    };
  }

  /**
   * Sales from `PROD#` items, newest item first, until `enough` distinct sales are certainly among
   * the newest: an item's sort key starts with its newest sale's time, so every unread sale is no
   * newer than the last item read, and sales strictly newer than that are final.
   */
  private async packedSales(stockCode: string, enough: number): Promise<ProductSale[]> {
    const seen = new Map<string, ProductSale>();
    let start: Record<string, AttributeValue> | undefined;
    do {
      const out = await this.client.send(
        new QueryCommand({
          TableName: this.table,
          KeyConditionExpression: '#pk = :pk',
          ExpressionAttributeNames: { '#pk': TABLE_KEYS.pk },
          ExpressionAttributeValues: { ':pk': { S: `PROD#${stockCode}` } },
          ScanIndexForward: false,
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      const items = out.Items ?? [];
      for (const raw of items)
        for (const s of productSales(raw)) {
          const k = `${s.invoiceNo}#${s.lineNo}`;
          if (!seen.has(k)) seen.set(k, s);
        }
      start = out.LastEvaluatedKey;
      const last = items[items.length - 1];
      if (start && last) {
        const bound = productItemTs(last);
        let certain = 0;
        for (const s of seen.values()) if (s.invoiceTs > bound) certain++;
        if (certain >= enough) break;
      }
    } while (start);
    return [...seen.values()];
  }

  /** The newest `max` line items of the one-item-per-line layout (gsi2), when the table has any. */
  private async oldSales(stockCode: string, max: number): Promise<ProductSale[]> {
    const items = await this.queryAll(
      {
        TableName: this.table,
        IndexName: TABLE_KEYS.gsi2.name,
        KeyConditionExpression: '#pk = :pk',
        ExpressionAttributeNames: { '#pk': TABLE_KEYS.gsi2.pk },
        ExpressionAttributeValues: { ':pk': { S: `PROD#${stockCode}` } },
        ScanIndexForward: false,
      },
      max,
    );
    return items.slice(0, max).map(oldLine);
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

/** What an item is, for the billing by kind. */
function itemKind(item: Record<string, AttributeValue>): string {
  const pk = item.pk?.S ?? '';
  const sk = item.sk?.S ?? '';
  if (pk.startsWith('INV#')) return sk === 'HEADER' ? 'header' : 'chunk';
  const prefix = pk.slice(0, pk.indexOf('#'));
  return { PROD: 'product', AGG: 'aggregate', PROGRESS: 'progress', LEASE: 'lease' }[prefix] ?? 'other';
}

function aggregateKey(target: AggregateTarget) {
  return keys.country(target.line.country);
}

/**
 * The conditional UpdateItem of one aggregate item: `ADD` the entries' sum, `SET` the shard's mark
 * to the batch's highest sequence number. Unless the mark is known, the condition is that no entry
 * was counted (the mark is below the smallest); once read, that the mark is still what was read.
 */
function aggregateUpdateInput(
  table: string,
  key: Record<string, AttributeValue>,
  hwm: string,
  update: AggregateUpdate,
  entries: AggregateUpdate['entries'],
  mark: { known: false } | { known: true; value: string | undefined },
): UpdateItemCommandInput {
  const names: Record<string, string> = {
    '#h': hwm,
    '#lc': 'lineCount',
    '#q': 'quantity',
    '#a': 'amount',
    '#ic': 'invoiceCount',
  };
  const delta = sumDeltas(entries.map((e) => e.delta));
  const values: Record<string, AttributeValue> = {
    ':max': { S: update.batchMaxSeq },
    ':lc': { N: String(delta.lines) },
    ':q': { N: String(delta.quantity) },
    ':a': { N: delta.amount },
    ':ic': { N: String(delta.invoices) },
  };
  const sets = ['#h = :max'];
  Object.entries(aggregateStatic(update.target)).forEach(([name, value], i) => {
    names[`#s${i}`] = name;
    values[`:s${i}`] = marshall({ v: value }).v as AttributeValue;
    sets.push(`#s${i} = :s${i}`);
  });
  let condition: string;
  if (!mark.known) {
    condition = 'attribute_not_exists(#h) OR #h < :min';
    values[':min'] = { S: entries.reduce((m, e) => (e.seq < m ? e.seq : m), entries[0]?.seq as string) };
  } else if (mark.value === undefined) {
    condition = 'attribute_not_exists(#h)';
  } else {
    condition = '#h = :prev';
    values[':prev'] = { S: mark.value };
  }
  return {
    TableName: table,
    Key: key,
    UpdateExpression: `SET ${sets.join(', ')} ADD #lc :lc, #q :q, #a :a, #ic :ic`,
    ConditionExpression: condition,
    ExpressionAttributeNames: names,
    ExpressionAttributeValues: values,
    // The item after the update: its size is what the write is billed on.
    ReturnValues: 'ALL_NEW',
  };
}

/** Attributes that are the same for every line of the item, so setting them again changes nothing. */
function aggregateStatic(target: AggregateTarget): Record<string, unknown> {
  const l = target.line;
  return { entity: 'country', country: l.country, countryCode: l.countryCode, region: l.region };
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
