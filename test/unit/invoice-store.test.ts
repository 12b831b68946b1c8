import {
  type AttributeValue,
  BatchGetItemCommand,
  BatchWriteItemCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  type QueryCommandInput,
  UpdateItemCommand,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import { marshall } from '@aws-sdk/util-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { itemBytes, MAX_ITEM_BYTES, putWriteUnits, valueBytes, writeUnits } from '#adapters/dynamo-table';
import {
  chunkItems,
  chunkLines,
  headerItem,
  ITEM_TARGET_BYTES,
  keys,
  lineTotalsOf,
  packTime,
  productItems,
  productSales,
  unpackTime,
} from '#adapters/invoice-items';
import { DynamoInvoiceStore } from '#adapters/invoice-store';
import { enrich } from '#core/enrich';
import type { AcceptedLine } from '#core/invoice-line';
import { RULES } from '#core/rules';
import {
  decideOwnership,
  type InvoiceOwnership,
  invoiceFieldsOf,
  type LineToStore,
  OwnershipCache,
  ownerOf,
  type ProductSale,
} from '#core/serving';
import { acceptedLine } from '#test/helpers/lines';

const SHARD = 'shardId-000000000000';
const ddb = mockClient(DynamoDBClient);
const noWait = { baseMs: 1, maxMs: 1, sleep: async () => {} };

/** A line as the consumer stores it, carried by record `seq` of SHARD. */
function stored(lineNo: number, seq: string, over: Partial<AcceptedLine> = {}): LineToStore {
  return {
    ...enrich(acceptedLine({ lineNo, unitPrice: '2.550', ...over })),
    shardId: SHARD,
    sequenceNumber: seq,
  };
}

/** A line as long as core/rules.ts allows, in 3-byte UTF-8 characters (the most bytes per character). */
function widest(lineNo: number, seq: string): LineToStore {
  return stored(lineNo, seq, {
    invoiceNo: '581219',
    stockCode: '€'.repeat(RULES.stockCode.maxLength),
    description: '€'.repeat(RULES.description.maxLength),
    quantity: -99_999,
    unitPrice: '99999.999',
    producedAt: `2011-12-08T09:28:${String(lineNo % 60).padStart(2, '0')}.123Z`,
    acceptedAt: `2011-12-08T09:29:${String(lineNo % 60).padStart(2, '0')}.456Z`,
  });
}

const headerItemOf = (l: LineToStore) => headerItem(invoiceFieldsOf(l));

/** What the product route shows of a stored line. */
function saleOf(l: LineToStore): Omit<ProductSale, 'streamWriteSentAt' | 'streamVisibleAt'> {
  return {
    invoiceNo: l.invoiceNo,
    invoiceDate: l.invoiceDate,
    invoiceTs: l.invoiceTs,
    customerId: l.customerId,
    country: l.country,
    lineNo: l.lineNo,
    stockCode: l.stockCode,
    description: l.description,
    quantity: l.quantity,
    unitPrice: l.unitPrice,
    lineTotal: l.lineTotal,
    isNonProduct: l.isNonProduct,
    producedAt: l.producedAt,
    acceptedAt: l.acceptedAt,
  };
}

/**
 * An in-memory table behind the mocked client: BatchWriteItem puts, BatchGetItem gets, Query by pk
 * with an optional begins_with on sk, in sk order either way. Enough of DynamoDB's contract for
 * the store's own calls, typed from the SDK's shapes.
 */
function memoryTable() {
  const items = new Map<string, Record<string, AttributeValue>>();
  const keyOf = (i: Record<string, AttributeValue>) => `${i.pk?.S}|${i.sk?.S}`;
  // gets: BatchGetItem calls; headers: the keys they asked for other than shard leases.
  const calls = { writes: 0, gets: 0, headers: 0, queries: 0 };
  const writeBatch = (input: { RequestItems: Record<string, WriteRequest[]> }) => {
    calls.writes++;
    for (const r of input.RequestItems.t ?? []) {
      const item = r.PutRequest?.Item;
      if (item) items.set(keyOf(item), structuredClone(item));
    }
    return {};
  };
  ddb.on(BatchWriteItemCommand).callsFake(writeBatch);
  ddb
    .on(BatchGetItemCommand)
    .callsFake((input: { RequestItems: Record<string, { Keys: Record<string, AttributeValue>[] }> }) => {
      calls.gets++;
      calls.headers += (input.RequestItems.t?.Keys ?? []).filter(
        (k) => !k.pk?.S?.startsWith('LEASE#'),
      ).length;
      const found = (input.RequestItems.t?.Keys ?? [])
        .map((k) => items.get(keyOf(k)))
        .filter((i): i is Record<string, AttributeValue> => i !== undefined);
      return { Responses: { t: found } };
    });
  ddb.on(GetItemCommand).callsFake((input: { Key: Record<string, AttributeValue> }) => {
    const item = items.get(keyOf(input.Key));
    return item ? { Item: structuredClone(item) } : {};
  });
  ddb.on(PutItemCommand).callsFake((input: { Item: Record<string, AttributeValue> }) => {
    items.set(keyOf(input.Item), structuredClone(input.Item));
    return {};
  });
  ddb.on(QueryCommand).callsFake((input: QueryCommandInput) => {
    calls.queries++;
    if (input.IndexName) return { Items: [] };
    const pk = input.ExpressionAttributeValues?.[':pk']?.S;
    const prefix = input.ExpressionAttributeValues?.[':line']?.S ?? '';
    const found = [...items.values()]
      .filter((i) => i.pk?.S === pk && (i.sk?.S ?? '').startsWith(prefix))
      .sort((a, b) => ((a.sk?.S ?? '') < (b.sk?.S ?? '') ? -1 : 1));
    return { Items: input.ScanIndexForward === false ? found.reverse() : found };
  });
  return { items, calls, writeBatch };
}

const store = (over: Partial<ConstructorParameters<typeof DynamoInvoiceStore>[0]> = {}) =>
  new DynamoInvoiceStore({
    client: new DynamoDBClient({ region: 'us-east-1' }),
    tableName: 't',
    retry: { ...noWait, maxAttempts: 3 },
    ...over,
  });

const sks = (items: Map<string, Record<string, AttributeValue>>, prefix: string) =>
  [...items.values()].map((i) => i.sk?.S ?? '').filter((sk) => sk.startsWith(prefix));

beforeEach(() => {
  ddb.reset();
  ddb.on(UpdateItemCommand).resolves({});
});

describe('item size and write units, by AWS rules', () => {
  // The rules and examples of docs.aws.amazon.com/amazondynamodb/latest/developerguide/
  // CapacityUnitCalculations.html and read-write-operations.html.
  it('sizes strings by UTF-8 bytes of name and value', () => {
    expect(itemBytes({ Id: { S: 'abc' } })).toBe(2 + 3);
    expect(itemBytes({ name: { S: 'é€' } })).toBe(4 + 2 + 3);
  });

  it('sizes numbers at 1 byte per two significant digits plus 1, zeros trimmed', () => {
    expect(valueBytes({ N: '12345' })).toBe(3 + 1);
    expect(valueBytes({ N: '1234' })).toBe(2 + 1);
    expect(valueBytes({ N: '-0.00120' })).toBe(1 + 1);
    expect(valueBytes({ N: '1000000' })).toBe(1 + 1);
  });

  it('sizes binary by raw bytes, null and boolean at 1 byte', () => {
    expect(itemBytes({ b: { B: new Uint8Array(10) } })).toBe(1 + 10);
    expect(itemBytes({ ok: { BOOL: true }, no: { NULL: true } })).toBe(2 + 1 + 2 + 1);
  });

  it('adds 3 bytes per list or map and 1 byte per element', () => {
    expect(itemBytes({ l: { L: [] } })).toBe(1 + 3);
    expect(itemBytes({ l: { L: [{ S: 'ab' }, { N: '7' }] } })).toBe(1 + 3 + (1 + 2) + (1 + 2));
    expect(itemBytes({ m: { M: { k: { S: 'v' } } } })).toBe(1 + 3 + (1 + 1 + 1));
  });

  it('bills 1 write unit per started KB per item (a 500-byte and a 3.5 KB item: 1 + 4)', () => {
    expect(writeUnits(500) + writeUnits(3.5 * 1024)).toBe(5);
    expect(writeUnits(1024)).toBe(1);
    expect(writeUnits(1025)).toBe(2);
    expect(writeUnits(0)).toBe(1);
  });

  it('bills a header with a customer once in the table and once in gsi1 (projected size)', () => {
    const item = keys.invoice('536365');
    const header = marshall({ ...item, customerId: '17850', gsi1pk: 'CUST#17850', gsi1sk: 'x', region: 'r' });
    expect(putWriteUnits(header)).toEqual({ table: 1, indexes: 1 });
    const noCustomer = marshall({ ...item, customerId: null });
    expect(putWriteUnits(noCustomer)).toEqual({ table: 1, indexes: 0 });
  });
});

describe('invoice chunks at the size bound', () => {
  const header = invoiceFieldsOf(widest(1, '1'));
  const invoice = Array.from({ length: 1_114 }, (_, i) => widest(i + 1, '1'));

  it('splits the widest 1,114-line invoice into items far below 400 KB, each as full as the bound allows', () => {
    const chunks = chunkItems(invoice, header);
    const sizes = chunks.map((c) => itemBytes(c.item));
    expect(Math.max(...sizes)).toBeLessThanOrEqual(ITEM_TARGET_BYTES);
    expect(Math.max(...sizes)).toBeLessThan(MAX_ITEM_BYTES / 40);
    // Greedy: a chunk ends only where its next line would pass the bound.
    for (let k = 0; k + 1 < chunks.length; k++) {
      const next = (chunks[k + 1] as (typeof chunks)[number]).lines[0] as LineToStore;
      const grown = chunkItems([...(chunks[k] as (typeof chunks)[number]).lines, next], header);
      expect(grown).toHaveLength(2);
    }
    // ~1 KB per line of this width: 8 lines per 8 KB item, 140 items.
    expect(chunks.length).toBe(Math.ceil(1_114 / (chunks[0] as (typeof chunks)[number]).lines.length));
    expect(chunks.length).toBe(140);
    expect(chunks.flatMap((c) => c.lines.map((l) => l.lineNo))).toEqual(invoice.map((l) => l.lineNo));
  });

  it('reads every line back exactly as written', () => {
    const chunks = chunkItems(invoice, header);
    const back = chunks.flatMap((c) => chunkLines(c.item, header));
    const { streamWriteSentAt: _sent, ...first } = back[0] as (typeof back)[number];
    expect(first).toEqual(invoice[0]);
    expect(back.map(({ streamWriteSentAt: _s, ...l }) => l)).toEqual(invoice);
  });

  it('packs ordinary lines ~50 to an item, and keeps a line whose invoice fields differ from the header', () => {
    const lines = Array.from({ length: 100 }, (_, i) => stored(i + 1, '7'));
    const odd = stored(101, '7', { customerId: '99999', country: 'France' });
    const chunks = chunkItems([...lines, odd], invoiceFieldsOf(lines[0] as LineToStore));
    expect(chunks.length).toBeLessThanOrEqual(3);
    const back = chunks.flatMap((c) => chunkLines(c.item, invoiceFieldsOf(lines[0] as LineToStore)));
    expect(back.at(-1)).toMatchObject({ customerId: '99999', country: 'France', countryCode: 'FR' });
    expect(back.at(-2)).toMatchObject({ customerId: '17850', country: 'United Kingdom' });
  });

  it('keeps product items within the bound too, and reads every sale back exactly', () => {
    // Two descriptions, so no value is shared and every sale holds its widest self.
    const sameProduct = Array.from({ length: 1_114 }, (_, i) => ({
      ...widest(i + 1, '1'),
      stockCode: 'P',
      ...(i % 2 ? { description: '₤'.repeat(RULES.description.maxLength) } : {}),
    }));
    const items = productItems(sameProduct);
    expect(Math.max(...items.map(itemBytes))).toBeLessThanOrEqual(ITEM_TARGET_BYTES);
    expect(Math.max(...items.map(itemBytes))).toBeLessThan(MAX_ITEM_BYTES / 40);
    expect(items.length).toBeGreaterThan(50);
    const back = items.flatMap(productSales).sort((a, b) => a.lineNo - b.lineNo);
    expect(back.map(({ streamWriteSentAt: _s, ...sale }) => sale)).toEqual(sameProduct.map(saleOf));
  });
});

describe('compact layout: what a reader derives is not stored, and everything reads back exactly', () => {
  it('packs an ISO instant into 8 base-36 characters, and keeps any other text as it is', () => {
    expect(packTime('2026-12-06T07:00:00.050Z')).toHaveLength(8);
    for (const t of ['2026-12-06T07:00:00.050Z', '1970-01-01T00:00:00.000Z'])
      expect(unpackTime(packTime(t))).toBe(t);
    for (const t of ['2026-12-06T07:00:00Z', '2026-12-06T08:00:00.050+01:00', '1969-12-31T23:59:59.999Z'])
      expect(packTime(t)).toBe(t);
  });

  it('holds an ordinary line in ~60 bytes of a chunk (~78 before), and an ordinary sale in a product item of < 300 bytes', () => {
    const lines = Array.from({ length: 40 }, (_, i) => stored(i + 1, '7'));
    const [one] = chunkItems(lines.slice(0, 1), invoiceFieldsOf(lines[0] as LineToStore));
    const [forty] = chunkItems(lines, invoiceFieldsOf(lines[0] as LineToStore));
    const perLine =
      (itemBytes((forty as { item: Record<string, AttributeValue> }).item) -
        itemBytes((one as { item: Record<string, AttributeValue> }).item)) /
      39;
    expect(perLine).toBeLessThan(64);
    const [sale] = productItems(lines.slice(0, 1));
    expect(itemBytes(sale as Record<string, AttributeValue>)).toBeLessThan(300);
  });

  it('stores a derived field only when it differs from what the reader derives (both layouts of item)', () => {
    const header = invoiceFieldsOf(stored(1, '7'));
    const odd: LineToStore[] = [
      { ...stored(1, '7'), lineTotal: '99.999', isNonProduct: true },
      { ...stored(2, '7', { producedAt: '2026-12-06T07:00:00Z' }), invoiceTs: '2010-12-01T08:26:00.000Z' },
      stored(3, '7', { stockCode: 'POST', description: null, acceptedAt: '2026-12-06T08:00:00.050+01:00' }),
    ];
    const back = chunkItems(odd, header).flatMap((c) => chunkLines(c.item, header));
    expect(back.map(({ streamWriteSentAt: _s, ...l }) => l)).toEqual(odd);
    expect(back[2]?.isNonProduct).toBe(true);
    const sales = odd.flatMap((l) => productItems([l])).flatMap(productSales);
    expect(sales.map(({ streamWriteSentAt: _s, ...x }) => x)).toEqual(odd.map(saleOf));
    const totals = chunkItems(odd, header).flatMap((c) => lineTotalsOf(c.item));
    expect(totals.map((t) => t.lineTotal)).toEqual(['99.999', '15.300', '15.300']);
  });

  it('still reads the chunk and product items of the layout before, and their owners', async () => {
    const { items } = memoryTable();
    const line = stored(1, '5');
    const header = headerItemOf(line);
    // Written by the version before: rows with lineTotal and isNonProduct, keys with the sequence number.
    const before = [
      header,
      marshall({
        ...keys.chunk(line.invoiceNo, 1),
        entity: 'lines',
        o: `${SHARD}/5`,
        w: '2026-12-06T07:00:01.000Z',
        d: JSON.stringify({
          p: line.producedAt,
          a: line.acceptedAt,
          l: [
            [
              1,
              line.stockCode,
              line.description,
              line.quantity,
              line.unitPrice,
              line.lineTotal,
              0,
              null,
              null,
            ],
          ],
        }),
      }),
      marshall({
        pk: `PROD#${line.stockCode}`,
        sk: `${line.invoiceTs}#${SHARD}#5#000`,
        entity: 'sales',
        w: '2026-12-06T07:00:01.000Z',
        d: JSON.stringify([
          [
            line.invoiceNo,
            1,
            line.invoiceTs,
            line.invoiceDate,
            line.quantity,
            line.unitPrice,
            line.lineTotal,
            line.description,
            line.customerId,
            line.country,
            0,
            line.producedAt,
            line.acceptedAt,
          ],
        ]),
      }),
    ];
    for (const item of before) items.set(`${item.pk?.S}|${item.sk?.S}`, item);
    const s = store();
    // A re-send of line 1 is refused (its owner is read from the old chunk); line 2 is new.
    const out = await s.putLines([stored(1, '6'), stored(2, '6')]);
    expect(out.duplicate).toEqual([true, false]);
    const invoice = await s.getInvoice(line.invoiceNo);
    expect(invoice?.lines.map(({ streamWriteSentAt: _s, ...l }) => l)).toEqual([line, stored(2, '6')]);
    expect(invoice?.lines[0]?.streamWriteSentAt).toBe('2026-12-06T07:00:01.000Z');
    const sales = await s.getProductLines(line.stockCode, { limit: 5 });
    expect(sales?.recent.map(({ streamWriteSentAt: _s, ...x }) => x)).toEqual(
      [stored(2, '6'), line].map(saleOf),
    );
  });
});

describe('ownership rule and cache', () => {
  const known = (owners: Record<number, string>): InvoiceOwnership => ({
    header: undefined,
    owners: new Map(Object.entries(owners).map(([n, o]) => [Number(n), o])),
  });

  it('writes new lines and its own, refuses lines another record owns and second copies', () => {
    const state = known({ 1: `${SHARD}/5`, 2: `${SHARD}/9` });
    const lines = [stored(1, '9'), stored(2, '9'), stored(3, '9'), stored(3, '10')];
    expect(decideOwnership(lines, () => state)).toEqual(['duplicate', 'write', 'write', 'duplicate']);
    expect(decideOwnership(lines, () => undefined)).toEqual(['write', 'write', 'write', 'duplicate']);
  });

  it('keeps at most the bound of invoices per shard, least recently used out', () => {
    const cache = new OwnershipCache(2);
    cache.set(SHARD, 'a', known({}));
    cache.set(SHARD, 'b', known({}));
    cache.get(SHARD, 'a');
    cache.set(SHARD, 'c', known({}));
    expect(cache.get(SHARD, 'b')).toBeUndefined();
    expect(cache.get(SHARD, 'a')).toBeDefined();
    expect(cache.size(SHARD)).toBe(2);
    expect(cache.get('other-shard', 'a')).toBeUndefined();
  });
});

describe('putLines with the ownership cache', () => {
  it('reads only invoices it does not know: nothing for the next record of an invoice it wrote', async () => {
    const { calls } = memoryTable();
    const s = store();
    await s.putLines([stored(1, '10'), stored(2, '10')]);
    expect([calls.headers, calls.queries]).toEqual([1, 0]); // a new invoice: its header is absent
    await s.putLines([stored(3, '11')]);
    expect([calls.headers, calls.queries]).toEqual([1, 0]);
    // Another consumer (a restart) does not know it: header, then the lines.
    await store().putLines([stored(4, '12')]);
    expect([calls.headers, calls.queries]).toEqual([2, 1]);
  });

  it('rewrites identical chunks on a redelivery of the same record', async () => {
    const { items } = memoryTable();
    const s = store();
    const record = Array.from({ length: 120 }, (_, i) => stored(i + 1, '20'));
    await s.putLines(record);
    // The shard lease changes hands when another instance writes; the data items must not change.
    const data = () =>
      new Map(
        [...items].filter(([k]) => !k.startsWith('LEASE#')).map(([k, v]) => [k, { ...v, w: undefined }]),
      );
    const before = data();
    for (const again of [s, store()]) {
      const out = await again.putLines(record);
      expect(out.duplicate?.every((d) => !d)).toBe(true);
      expect(out.visibleAt.every((v) => v !== undefined)).toBe(true);
    }
    expect(data()).toEqual(before);
  });

  it('writes and bills nothing for a producer re-send of stored lines, warm or cold', async () => {
    const { calls } = memoryTable();
    const s = store();
    await s.putLines([stored(1, '30'), stored(2, '30')]);
    const billed = s.billing();
    const writes = calls.writes;
    for (const consumer of [s, store()]) {
      const out = await consumer.putLines([stored(1, '31'), stored(2, '31')]);
      expect(out.duplicate).toEqual([true, true]);
      expect(out.visibleAt).toEqual([undefined, undefined]);
    }
    expect(calls.writes).toBe(writes);
    expect(s.billing()).toEqual(billed);
  });

  it('writes only the lines not yet stored when a re-send groups them differently', async () => {
    const { items } = memoryTable();
    const s = store();
    await s.putLines([1, 2, 3].map((n) => stored(n, '40')));
    const out = await store().putLines([2, 3, 4, 5].map((n) => stored(n, '41')));
    expect(out.duplicate).toEqual([true, true, false, false]);
    expect(sks(items, 'LINES#')).toEqual(['LINES#0000001', 'LINES#0000004']);
    const invoice = await s.getInvoice('536365');
    expect(invoice?.lines.map((l) => [l.lineNo, l.sequenceNumber])).toEqual([
      [1, '40'],
      [2, '40'],
      [3, '40'],
      [4, '41'],
      [5, '41'],
    ]);
  });

  it('forgets a shard another instance wrote to in between, so a re-send of its lines is refused', async () => {
    memoryTable();
    const a = store({ instanceId: 'a' });
    const b = store({ instanceId: 'b' });
    await a.putLines([stored(1, '60'), stored(2, '60')]);
    // The shard moves to another Lambda environment, which stores line 3, then comes back.
    await b.putLines([stored(3, '61')]);
    const resend = await a.putLines([stored(3, '62'), stored(4, '62')]);
    expect(resend.duplicate).toEqual([true, false]);
    const invoice = await a.getInvoice('536365');
    expect(invoice?.lines.map((l) => [l.lineNo, l.sequenceNumber])).toEqual([
      [1, '60'],
      [2, '60'],
      [3, '61'],
      [4, '62'],
    ]);
  });

  it('reads the lease in the same call as the invoices the cache does not know', async () => {
    memoryTable();
    const out = await store().putLines([stored(1, '95')]);
    expect(out.visibleAt[0]).toBeDefined();
    const asked = ddb.commandCalls(BatchGetItemCommand).map((c) => c.args[0].input.RequestItems?.t?.Keys);
    expect(asked).toEqual([
      [
        { pk: { S: `LEASE#${SHARD}` }, sk: { S: 'LEASE' } },
        { pk: { S: 'INV#536365' }, sk: { S: 'HEADER' } },
      ],
    ]);
    expect(ddb.commandCalls(GetItemCommand)).toHaveLength(0);
  });

  it('after a takeover reads again only the invoices its cache answered', async () => {
    const { calls } = memoryTable();
    const a = store({ instanceId: 'a' });
    await a.putLines([stored(1, '96')]);
    await store({ instanceId: 'b' }).putLines([stored(2, '97')]);
    const gets = calls.gets;
    const other = { invoiceNo: '536366' };
    const out = await a.putLines([stored(2, '98'), stored(1, '98', other)]);
    expect(out.duplicate).toEqual([true, false]);
    // In parallel with the lease: the new invoice's header; after it: the cached invoice's header.
    expect(calls.gets - gets).toBe(2);
  });

  it('reads the lease once per batch and keeps its cache while it holds the shard', async () => {
    const { calls } = memoryTable();
    const s = store({ instanceId: 'a' });
    await s.putLines([stored(1, '70')]);
    await s.putLines([stored(2, '71')]);
    // One BatchGetItem per batch: the lease, and the first time the invoice's header.
    expect([calls.gets, calls.headers, calls.queries]).toEqual([2, 1, 0]);
    expect(ddb.commandCalls(PutItemCommand)).toHaveLength(1);
  });

  it('forgets an invoice whose write failed, and reads it again next time', async () => {
    const { calls, writeBatch } = memoryTable();
    const s = store();
    await s.putLines([stored(1, '50')]);
    ddb.on(BatchWriteItemCommand).callsFake((input: { RequestItems: Record<string, WriteRequest[]> }) => ({
      UnprocessedItems: { t: input.RequestItems.t ?? [] },
    }));
    const failed = await s.putLines([stored(2, '51')]);
    expect(failed.visibleAt).toEqual([undefined]);
    // The table takes writes again (same items, the lease still this store's).
    ddb.on(BatchWriteItemCommand).callsFake(writeBatch);
    const headers = calls.headers;
    await s.putLines([stored(2, '51')]);
    // Its header is asked for again (an invoice the cache knew would not be: 0 headers).
    expect(calls.headers - headers).toBe(1);
  });
});

describe('product sales', () => {
  it('de-duplicates a line written by two batchings and keeps the newest first', async () => {
    const { items } = memoryTable();
    const s = store();
    const day = (lineNo: number, d: number, seq: string) =>
      stored(lineNo, seq, {
        invoiceNo: String(600 + d),
        invoiceDate: `2011-01-${String(d).padStart(2, '0')}T10:00:00`,
      });
    const lines = [day(1, 1, '60'), day(1, 2, '61'), day(1, 3, '62')];
    await s.putLines(lines);
    // A redelivery after a crash, in other batches: the product items get other keys.
    await store().putLines([lines[1] as LineToStore]);
    await store().putLines([lines[1] as LineToStore, lines[2] as LineToStore]);
    expect(sks(items, '2011-')).toHaveLength(3);
    const sales = await s.getProductLines('85123A', { limit: 2 });
    expect(sales?.recent.map((r) => r.invoiceNo)).toEqual(['603', '602']);
    expect(sales?.totals).toEqual({ lines: 3, quantity: 18, amount: '45.900' });
    expect(sales?.totalsComplete).toBe(true);
    const capped = await store({ maxTotalsLines: 2 }).getProductLines('85123A', { limit: 5 });
    expect(capped?.totals.lines).toBe(2);
    expect(capped?.totalsComplete).toBe(false);
    expect(await s.getProductLines('NOPE', { limit: 5 })).toBeUndefined();
  });
});

describe('billing', () => {
  it('counts the write units of what was acknowledged: table, gsi1, chunks and product items', async () => {
    const { items } = memoryTable();
    const s = store();
    await s.putLines([stored(1, '70')]);
    // the shard lease, taken once 1 + header 1 + its gsi1 entry 1 + one chunk 1 + one product item 1
    expect(s.billing()).toMatchObject({ writeUnits: 5, indexWriteUnits: 1, items: 4, lines: 1 });
    expect(
      Object.fromEntries(
        Object.entries(s.billing().byKind ?? {}).map(([k, v]) => [k, [v.writeUnits, v.items]]),
      ),
    ).toEqual({ lease: [1, 1], header: [2, 1], chunk: [1, 1], product: [1, 1] });
    await s.putLines(Array.from({ length: 50 }, (_, i) => ({ ...widest(i + 1, '71'), invoiceNo: '536366' })));
    const b = s.billing();
    // Every item was written once: the bill is the sum of their units, an 8 KB chunk costing 8.
    const units = [...items.values()].map(putWriteUnits);
    expect(b).toMatchObject({
      writeUnits: units.reduce((sum, u) => sum + u.table + u.indexes, 0),
      indexWriteUnits: 2,
      items: items.size,
      lines: 51,
    });
    const kinds = Object.values(b.byKind ?? {});
    expect(kinds.reduce((sum, k) => sum + k.writeUnits, 0)).toBe(b.writeUnits);
    expect(kinds.reduce((sum, k) => sum + k.items, 0)).toBe(b.items);
    expect(units.filter((u) => u.table === 8).length).toBeGreaterThanOrEqual(5);
  });

  it('bills nothing for items handed back unprocessed', async () => {
    ddb.on(BatchWriteItemCommand).callsFake((input: { RequestItems: Record<string, WriteRequest[]> }) => ({
      UnprocessedItems: { t: input.RequestItems.t ?? [] },
    }));
    ddb.on(BatchGetItemCommand).resolves({ Responses: { t: [] } });
    const s = store();
    await s.putLines([stored(1, '80')]);
    // Only the shard lease it took (a PutItem) is billed.
    expect(Object.keys(s.billing().byKind ?? {})).toEqual(['lease']);
    expect(s.billing().writeUnits).toBe(1);
  });

  it('bills an aggregate update on the item it returns, and a refused one too', async () => {
    const s = store();
    ddb
      .on(UpdateItemCommand)
      .resolves({ Attributes: marshall({ pk: 'AGG#COUNTRY', big: 'x'.repeat(1500) }) });
    const line = stored(1, '1');
    await s.applyAggregate({
      target: { kind: 'country', line },
      shardId: SHARD,
      batchMaxSeq: '1',
      entries: [{ seq: '1', delta: { lines: 1, quantity: 1, amount: '1', invoices: 1 } }],
    });
    expect(s.billing().writeUnits).toBe(2);
  });

  it('names the owner as shard/sequence', () => {
    expect(ownerOf({ shardId: SHARD, sequenceNumber: '9' })).toBe(`${SHARD}/9`);
  });
});
