import {
  BatchGetItemCommand,
  BatchWriteItemCommand,
  ConditionalCheckFailedException,
  DynamoDBClient,
  GetItemCommand,
  ProvisionedThroughputExceededException,
  QueryCommand,
  UpdateItemCommand,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import { FirehoseClient, PutRecordBatchCommand } from '@aws-sdk/client-firehose';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { KinesisStreamEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { S3DeadLetterSink } from '#adapters/dlq';
import { FirehoseArchiveWriter } from '#adapters/firehose-writer';
import { chunkOwners, headerItem } from '#adapters/invoice-items';
import { DynamoInvoiceStore } from '#adapters/invoice-store';
import { createBatchHandler } from '#consumers/handler';
import { processRecord } from '#consumers/process-line';
import { decodeLines, encodeLine } from '#core/avro';
import { enrich } from '#core/enrich';
import type { AcceptedLine } from '#core/invoice-line';
import { invoiceFieldsOf, padSequence } from '#core/serving';
import { kinesisEvent } from '#test/helpers/kinesis-events';
import { acceptedLine } from '#test/helpers/lines';

const ddb = mockClient(DynamoDBClient);
const firehose = mockClient(FirehoseClient);
const s3 = mockClient(S3Client);
const noWait = { baseMs: 1, maxMs: 1, sleep: async () => {} };
const SHARD = 'shardId-000000000001';

// The price as the consumer decodes it (3 decimals).
const line = (lineNo: number, over: Partial<AcceptedLine> = {}) =>
  acceptedLine({ lineNo, unitPrice: '2.550', ...over });

/** The partition key the writer gives a record: its invoice number (536365 for poison). */
function invoiceOf(data: Buffer): string {
  try {
    return decodeLines(data)[0]?.invoiceNo ?? '536365';
  } catch {
    return '536365';
  }
}

const event = (payloads: Buffer[], firstSeq = 100): KinesisStreamEvent =>
  kinesisEvent(
    payloads.map((data) => ({ partitionKey: invoiceOf(data), data })),
    firstSeq,
    SHARD,
  );

function handler(maxAttempts = 4, clock?: () => Date) {
  return createBatchHandler({
    sink: new DynamoInvoiceStore({
      client: new DynamoDBClient({ region: 'us-east-1' }),
      tableName: 't',
      retry: { ...noWait, maxAttempts },
      ...(clock ? { clock } : {}),
    }),
    archive: new FirehoseArchiveWriter({
      client: new FirehoseClient({ region: 'us-east-1' }),
      deliveryStreamName: 'archive',
      retry: { ...noWait, maxAttempts },
    }),
    dlq: new S3DeadLetterSink({ client: new S3Client({ region: 'us-east-1' }), bucket: 'b' }),
    logger: pino({ level: 'silent' }),
  });
}

type Key = { pk: { S: string }; sk: { S: string } };
type BatchGetInput = { RequestItems: Record<string, { Keys: Key[] }> };

/**
 * Invoice 536365 is stored: BatchGetItem finds its header, and the Query of its lines finds these
 * lines as line items of the one-item-per-line layout, owned by the given records of SHARD.
 */
function storedOwners(owners: Record<number, string>, unprocessedOnce = 0) {
  const header = headerItem(invoiceFieldsOf(enrich(line(1))));
  ddb.on(QueryCommand).resolves({
    Items: Object.entries(owners).map(([lineNo, seq]) => ({
      pk: { S: 'INV#536365' },
      sk: { S: `LINE#${lineNo.padStart(7, '0')}` },
      lineNo: { N: lineNo },
      shardId: { S: SHARD },
      sequenceNumber: { S: seq },
    })),
  });
  let left = unprocessedOnce;
  ddb.on(BatchGetItemCommand).callsFake((input: BatchGetInput) => {
    const keys = input.RequestItems.t?.Keys ?? [];
    const held = left > 0 && keys.length > left ? keys.slice(0, left) : [];
    left -= held.length;
    const answered = keys.slice(held.length);
    return {
      Responses: { t: answered.filter((k) => k.pk.S === 'INV#536365').map(() => header) },
      ...(held.length > 0 ? { UnprocessedKeys: { t: { Keys: held } } } : {}),
    };
  });
}

const getKeys = () =>
  ddb
    .commandCalls(BatchGetItemCommand)
    .map((c) => (c.args[0].input.RequestItems?.t?.Keys ?? []).map((k) => k.sk?.S));

const countryUpdates = () =>
  ddb
    .commandCalls(UpdateItemCommand)
    .map((c) => c.args[0].input)
    .filter((u) => u.Key?.pk?.S === 'AGG#COUNTRY');

const archivedLines = () =>
  firehose
    .commandCalls(PutRecordBatchCommand)
    .flatMap((c) => c.args[0].input.Records ?? [])
    .map((r) => JSON.parse(Buffer.from(r.Data as Uint8Array).toString()));

const putItems = () =>
  ddb
    .commandCalls(BatchWriteItemCommand)
    .flatMap((c) => (c.args[0].input.RequestItems?.t ?? []).map((r) => r.PutRequest?.Item ?? {}));

/** What the BatchWriteItem calls stored, in order: HEADER, and LINE#n for each line of a chunk. */
const writtenKeys = () =>
  putItems().flatMap((item) => {
    const sk = item.sk?.S ?? '';
    if (sk === 'HEADER') return [sk];
    if (!sk.startsWith('LINES#')) return []; // product items
    return chunkOwners(item).lineNos.map((n) => `LINE#${String(n).padStart(7, '0')}`);
  });

beforeEach(() => {
  ddb.reset();
  firehose.reset();
  s3.reset();
  ddb.on(GetItemCommand).resolves({});
  ddb.on(UpdateItemCommand).resolves({});
  ddb.on(BatchWriteItemCommand).resolves({});
  ddb.on(BatchGetItemCommand).resolves({ Responses: { t: [] } });
  ddb.on(QueryCommand).resolves({ Items: [] });
  firehose.on(PutRecordBatchCommand).resolves({ FailedPutCount: 0, RequestResponses: [] });
  s3.on(PutObjectCommand).resolves({});
});
afterEach(() => {
  ddb.reset();
});

describe('processRecord', () => {
  it('decodes, validates and enriches a record', () => {
    const out = processRecord(encodeLine(line(1)));
    expect(out).toMatchObject({
      ok: true,
      lines: [{ lineTotal: '15.300', countryCode: 'GB', dateKey: 20101201 }],
      invalid: [],
    });
  });

  it('turns an undecodable record and invalid lines into reasons', () => {
    expect(processRecord(Buffer.from('garbage'))).toMatchObject({ ok: false, reason: /^undecodable: / });
    const bad = processRecord(encodeLine(line(1, { invoiceNo: 'X-1' })));
    expect(bad).toMatchObject({
      ok: true,
      lines: [],
      invalid: [{ index: 0, reason: /^invalid: invoiceNo/ }],
    });
  });
});

describe('batch handler', () => {
  it('writes lines, headers and country aggregates once, archives with streamVisibleAt, DLQs poison', async () => {
    const res = await handler()(event([encodeLine(line(1)), Buffer.from('poison'), encodeLine(line(2))]));
    expect(res.batchItemFailures).toEqual([]);

    expect(writtenKeys()).toEqual(['HEADER', 'LINE#0000001', 'LINE#0000002']);
    const updates = ddb.commandCalls(UpdateItemCommand).map((c) => c.args[0].input);
    const country = updates.find((u) => u.Key?.pk?.S === 'AGG#COUNTRY');
    expect(country?.ExpressionAttributeValues).toMatchObject({
      ':lc': { N: '2' },
      ':a': { N: '30.600' },
      ':ic': { N: '1' },
      ':max': { S: padSequence('102') },
    });
    expect(country?.ConditionExpression).toBe('attribute_not_exists(#h) OR #h < :min');
    expect(country?.ExpressionAttributeNames?.['#h']).toBe(`hwm_${SHARD}`);
    const progress = updates.find((u) => u.Key?.pk?.S === `PROGRESS#${SHARD}`);
    expect(progress?.ExpressionAttributeValues?.[':s']).toEqual({ S: padSequence('102') });

    const archived = firehose.commandCalls(PutRecordBatchCommand)[0]?.args[0].input.Records ?? [];
    expect(archived).toHaveLength(2);
    const first = JSON.parse(Buffer.from(archived[0]?.Data as Uint8Array).toString());
    expect(first).toMatchObject({
      invoiceNo: '536365',
      lineNo: 1,
      lineTotal: '15.300',
      sequenceNumber: '100',
    });
    expect(Date.parse(first.streamVisibleAt)).toBeGreaterThan(0);

    const letter = s3.commandCalls(PutObjectCommand)[0]?.args[0].input;
    expect(letter?.Key).toBe(`dlq/2024/01/01/${SHARD}/101.json`);
    const body = JSON.parse(String(letter?.Body));
    expect(body).toMatchObject({ shardId: SHARD, sequenceNumber: '101', reason: /undecodable/ });
    expect(Buffer.from(body.record, 'base64').toString()).toBe('poison');
  });

  it('retries UnprocessedItems until written', async () => {
    let calls = 0;
    ddb.on(BatchWriteItemCommand).callsFake((input: { RequestItems: Record<string, WriteRequest[]> }) => {
      calls++;
      // First answer: line 2 was not processed.
      return calls === 1 ? { UnprocessedItems: { t: [input.RequestItems.t?.[2]] } } : {};
    });
    const res = await handler()(event([encodeLine(line(1)), encodeLine(line(2))]));
    expect(res.batchItemFailures).toEqual([]);
    expect(writtenKeys()).toEqual(['HEADER', 'LINE#0000001', 'LINE#0000002', 'LINE#0000002']);
  });

  it('retries throttling with backoff', async () => {
    const throttle = new ProvisionedThroughputExceededException({ message: 'slow down', $metadata: {} });
    ddb.on(BatchWriteItemCommand).rejectsOnce(throttle).rejectsOnce(throttle).resolves({});
    const res = await handler()(event([encodeLine(line(1))]));
    expect(res.batchItemFailures).toEqual([]);
    // Two throttled calls, the chunks and header, then the product items.
    expect(ddb.commandCalls(BatchWriteItemCommand)).toHaveLength(4);
  });

  it('reports a persistently failing record and everything after it; aggregates count only the records before', async () => {
    ddb.on(BatchWriteItemCommand).callsFake((input: { RequestItems: Record<string, WriteRequest[]> }) => ({
      UnprocessedItems: {
        t: (input.RequestItems.t ?? []).filter((r) => r.PutRequest?.Item?.sk?.S === 'LINES#0000002'),
      },
    }));
    const res = await handler(3)(event([encodeLine(line(1)), encodeLine(line(2)), encodeLine(line(3))]));
    expect(res.batchItemFailures).toEqual([{ itemIdentifier: '101' }, { itemIdentifier: '102' }]);
    const country = ddb
      .commandCalls(UpdateItemCommand)
      .map((c) => c.args[0].input)
      .find((u) => u.Key?.pk?.S === 'AGG#COUNTRY');
    expect(country?.ExpressionAttributeValues).toMatchObject({
      ':lc': { N: '1' },
      ':max': { S: padSequence('100') },
    });
    expect(firehose.commandCalls(PutRecordBatchCommand)[0]?.args[0].input.Records).toHaveLength(1);
  });

  it('on redelivery applies only the contributions above the high-water mark', async () => {
    ddb
      .on(UpdateItemCommand, { Key: { pk: { S: 'AGG#COUNTRY' }, sk: { S: 'United Kingdom' } } })
      .rejectsOnce(new ConditionalCheckFailedException({ message: 'no', $metadata: {} }))
      .resolves({});
    ddb.on(GetItemCommand, { Key: { pk: { S: 'AGG#COUNTRY' }, sk: { S: 'United Kingdom' } } }).resolves({
      Item: { [`hwm_${SHARD}`]: { S: padSequence('100') } },
    });
    const res = await handler()(event([encodeLine(line(1)), encodeLine(line(2))]));
    expect(res.batchItemFailures).toEqual([]);
    const countryCalls = ddb
      .commandCalls(UpdateItemCommand)
      .map((c) => c.args[0].input)
      .filter((u) => u.Key?.pk?.S === 'AGG#COUNTRY');
    expect(countryCalls).toHaveLength(2);
    expect(countryCalls[1]?.ConditionExpression).toBe('#h = :prev');
    // Only line 2 (seq 101) is above the mark: one line, no invoice (line 1 counted it).
    expect(countryCalls[1]?.ExpressionAttributeValues).toMatchObject({
      ':lc': { N: '1' },
      ':ic': { N: '0' },
      ':a': { N: '15.300' },
      ':prev': { S: padSequence('100') },
    });
  });

  it('skips records at or below the shard progress entirely', async () => {
    ddb.on(GetItemCommand).resolves({ Item: { seq: { S: padSequence('101') } } });
    const res = await handler()(event([encodeLine(line(1)), encodeLine(line(2)), encodeLine(line(3))]));
    expect(res.batchItemFailures).toEqual([]);
    expect(writtenKeys()).toEqual(['HEADER', 'LINE#0000003']);
  });

  it("fails an invoice's lines when its header cannot be written", async () => {
    ddb.on(BatchWriteItemCommand).callsFake((input: { RequestItems: Record<string, WriteRequest[]> }) => ({
      UnprocessedItems: {
        t: (input.RequestItems.t ?? []).filter(
          (r) => r.PutRequest?.Item?.pk?.S === 'INV#2' && r.PutRequest.Item.sk?.S === 'HEADER',
        ),
      },
    }));
    const res = await handler(2)(
      event([encodeLine(line(1)), encodeLine(line(1, { invoiceNo: '2' })), encodeLine(line(2))]),
    );
    expect(res.batchItemFailures).toEqual([{ itemIdentifier: '101' }, { itemIdentifier: '102' }]);
  });

  it('fails a poison record when the dead letter cannot be stored, never dropping it', async () => {
    s3.on(PutObjectCommand).rejects(new Error('s3 down'));
    const res = await handler()(event([encodeLine(line(1)), Buffer.from('poison'), encodeLine(line(2))]));
    expect(res.batchItemFailures).toEqual([{ itemIdentifier: '101' }, { itemIdentifier: '102' }]);
  });

  it('fails records whose archive write keeps failing', async () => {
    firehose.on(PutRecordBatchCommand).callsFake((input: { Records: unknown[] }) => ({
      FailedPutCount: 1,
      RequestResponses: input.Records.map((_, i) =>
        i === input.Records.length - 1 ? { ErrorCode: 'ServiceUnavailableException' } : { RecordId: 'x' },
      ),
    }));
    const res = await handler(2)(event([encodeLine(line(1)), encodeLine(line(2))]));
    expect(res.batchItemFailures).toEqual([{ itemIdentifier: '101' }]);
  });

  it('stamps streamVisibleAt with the acknowledgement time; the item holds the send time', async () => {
    let tick = 0;
    const clock = () => new Date(Date.UTC(2024, 0, 1, 0, 0, 0, tick++ * 100));
    ddb.on(BatchWriteItemCommand).callsFake(async () => {
      tick += 5; // the write takes time: the answer comes later than the request
      return {};
    });
    const res = await handler(4, clock)(event([encodeLine(line(1))]));
    expect(res.batchItemFailures).toEqual([]);
    const item = putItems().find((i) => i.sk?.S === 'LINES#0000001');
    expect(item?.w).toEqual({ S: '2024-01-01T00:00:00.000Z' });
    expect(item?.streamVisibleAt).toBeUndefined();
    expect(archivedLines()[0]?.streamVisibleAt).toBe('2024-01-01T00:00:00.600Z');
  });
});

describe('producer re-sends (the same line in two stream records)', () => {
  it('neither rewrites, counts nor archives a line an earlier record owns; the record still succeeds', async () => {
    storedOwners({ 1: '42' });
    const res = await handler()(event([encodeLine(line(1)), encodeLine(line(2))]));
    expect(res.batchItemFailures).toEqual([]);
    expect(writtenKeys()).toEqual(['LINE#0000002']);
    const [country, ...more] = countryUpdates();
    expect(more).toEqual([]);
    // Only line 2: one line, no invoice (line 1 counted it when record 42 wrote it).
    expect(country?.ExpressionAttributeValues).toMatchObject({
      ':lc': { N: '1' },
      ':ic': { N: '0' },
      ':a': { N: '15.300' },
      ':max': { S: padSequence('101') },
    });
    expect(archivedLines().map((l) => l.lineNo)).toEqual([2]);
  });

  it('counts a line sent twice in one batch once, owned by its first copy', async () => {
    const res = await handler()(
      event([encodeLine(line(1)), encodeLine(line(1, { quantity: 99 })), encodeLine(line(2))]),
    );
    expect(res.batchItemFailures).toEqual([]);
    const chunks = putItems().filter((i) => i.sk?.S?.startsWith('LINES#'));
    // [sk, owner, [lineNo, quantity] of each line]
    expect(
      chunks.map((i) => [
        i.sk?.S,
        i.o?.S,
        (JSON.parse(i.d?.S ?? '') as { l: unknown[][] }).l.map((r) => [r[0], r[3]]),
      ]),
    ).toEqual([
      ['LINES#0000001', `${SHARD}/100`, [[1, 6]]],
      ['LINES#0000002', `${SHARD}/102`, [[2, 6]]],
    ]);
    expect(countryUpdates()[0]?.ExpressionAttributeValues).toMatchObject({
      ':lc': { N: '2' },
      ':q': { N: '12' },
    });
    expect(archivedLines()).toHaveLength(2);
  });

  it("rewrites and counts the owner's own redelivery (a crash between the line write and the aggregate update)", async () => {
    storedOwners({ 1: '100', 2: '101' });
    const res = await handler()(event([encodeLine(line(1)), encodeLine(line(2))]));
    expect(res.batchItemFailures).toEqual([]);
    expect(writtenKeys()).toEqual(['LINE#0000001', 'LINE#0000002']);
    expect(countryUpdates()[0]?.ExpressionAttributeValues).toMatchObject({
      ':lc': { N: '2' },
      ':ic': { N: '1' },
    });
  });

  it('reads one header per invoice, and the lines only of invoices seen before', async () => {
    const res = await handler()(
      event([encodeLine(line(1)), encodeLine(line(2)), encodeLine(line(1, { invoiceNo: '536366' }))]),
    );
    expect(res.batchItemFailures).toEqual([]);
    // Neither invoice has a header: no line of theirs can be owned, so no line is read. The shard's
    // lease comes in the same call.
    expect(getKeys()).toEqual([['LEASE', 'HEADER', 'HEADER']]);
  });

  it('reads headers in consistent BatchGetItem calls of 100 keys (UnprocessedKeys retried), then the lines of stored invoices', async () => {
    storedOwners({}, 3);
    // 150 invoices, of which only 536365 is stored.
    const records = Array.from({ length: 150 }, (_, i) =>
      encodeLine(line(1, { invoiceNo: String(536365 + i) })),
    );
    const res = await handler()(event(records));
    expect(res.batchItemFailures).toEqual([]);
    // 151 keys (the shard's lease and 150 headers) in calls of 100, 51, then the 3 handed back.
    const sizes = getKeys().map((k) => k.length);
    expect(sizes.sort((a, b) => a - b)).toEqual([3, 51, 100]);
    const reads = ddb.commandCalls(BatchGetItemCommand).map((c) => c.args[0].input.RequestItems?.t);
    expect(reads.every((r) => r?.ConsistentRead)).toBe(true);
    const queries = ddb.commandCalls(QueryCommand).map((c) => c.args[0].input);
    expect(queries.map((q) => [q.ExpressionAttributeValues?.[':pk']?.S, q.ConsistentRead])).toEqual([
      ['INV#536365', true],
    ]);
    // 536365's line 1 is not stored (no line item): written, without its header (stored already).
    expect(writtenKeys().filter((k) => k === 'HEADER')).toHaveLength(149);
    expect(writtenKeys().filter((k) => k !== 'HEADER')).toHaveLength(150);
  });

  it('writes nothing and fails the batch when the owners cannot be read', async () => {
    ddb
      .on(BatchGetItemCommand)
      .rejects(new ProvisionedThroughputExceededException({ message: 'slow down', $metadata: {} }));
    const res = await handler(2)(event([encodeLine(line(1)), encodeLine(line(2))]));
    expect(res.batchItemFailures).toEqual([{ itemIdentifier: '100' }, { itemIdentifier: '101' }]);
    expect(ddb.commandCalls(BatchGetItemCommand)).toHaveLength(2);
    expect(writtenKeys()).toEqual([]);
    expect(countryUpdates()).toEqual([]);
  });
});
