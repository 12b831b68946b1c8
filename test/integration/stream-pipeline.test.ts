import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import {
  type AttributeValue,
  CreateTableCommand,
  DeleteItemCommand,
  PutItemCommand,
  ScanCommand,
} from '@aws-sdk/client-dynamodb';
import {
  type _Record,
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  ListShardsCommand,
  PutRecordCommand,
} from '@aws-sdk/client-kinesis';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { marshall } from '@aws-sdk/util-dynamodb';
import type { KinesisStreamEvent } from 'aws-lambda';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Clients, createClients } from '#adapters/clients';
import { S3DeadLetterSink } from '#adapters/dlq';
import { tableDefinition } from '#adapters/dynamo-table';
import { FirehoseArchiveWriter } from '#adapters/firehose-writer';
import { chunkOwners, headerItem, keys } from '#adapters/invoice-items';
import { DynamoInvoiceStore } from '#adapters/invoice-store';
import { KinesisLineWriter } from '#adapters/kinesis-writer';
import { createApp } from '#api/app';
import { type BatchHandler, createBatchHandler } from '#consumers/handler';
import { processRecord } from '#consumers/process-line';
import { decodeLines, encodeLine, encodeLines, encodeWithSchema } from '#core/avro';
import { enrich } from '#core/enrich';
import type { AcceptedLine, InvoiceLineInput } from '#core/invoice-line';
import { invoiceFieldsOf } from '#core/serving';
import { type RunningEmulator, startDynamo, startKinesis, startS3 } from '#local/emulators';
import { type LocalFirehose, startLocalFirehose } from '#local/firehose';
import { type PollerFailure, type StreamPoller, startStreamPoller } from '#local/poller';
import { acceptedLine, inputLine } from '#test/helpers/lines';
import { eventually } from '#test/helpers/stack';

const HOST = '127.0.0.1';
const REGION = 'us-east-1';
const STREAM = 'invoice-lines';
const TABLE = 'retail-pipeline';
const BUCKET = 'retail-pipeline';
const DELIVERY = 'invoice-lines-archive';
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

/** A proxy in front of dynalite that answers the next N BatchWriteItem calls with real throttling errors. */
function throttlingProxy(target: string) {
  const state = { throttleNext: 0, throttled: 0 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.headers['x-amz-target'] === 'DynamoDB_20120810.BatchWriteItem' && state.throttleNext > 0) {
        state.throttleNext--;
        state.throttled++;
        res.writeHead(400, { 'content-type': 'application/x-amz-json-1.0' });
        res.end(
          JSON.stringify({
            __type: 'com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException',
            message: 'Rate of requests exceeds the allowed throughput',
          }),
        );
        return;
      }
      const url = new URL(target);
      const fwd = http.request(
        { host: url.hostname, port: url.port, method: req.method, path: req.url, headers: req.headers },
        (up) => {
          res.writeHead(up.statusCode ?? 500, up.headers);
          up.pipe(res);
        },
      );
      fwd.on('error', () => res.destroy());
      fwd.end(body);
    });
  });
  return { server, state };
}

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  return `http://${HOST}:${(server.address() as AddressInfo).port}`;
}

async function scanAll(clients: Clients): Promise<Map<string, Record<string, AttributeValue>>> {
  const out = new Map<string, Record<string, AttributeValue>>();
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await clients.dynamodb.send(
      new ScanCommand({
        TableName: TABLE,
        ConsistentRead: true,
        ...(start ? { ExclusiveStartKey: start } : {}),
      }),
    );
    for (const item of page.Items ?? []) out.set(`${item.pk?.S}|${item.sk?.S}`, item);
    start = page.LastEvaluatedKey;
  } while (start);
  return out;
}

/**
 * Invoices, lines and aggregates without the consumer's own bookkeeping: progress items, when each
 * item was sent (`w`), and product items (at-least-once by design: a redelivery in other batches
 * writes them under other keys, and the product route de-duplicates; checked through the route).
 */
function withoutWriteTimes(items: Map<string, Record<string, AttributeValue>>) {
  return new Map(
    [...items]
      // Progress and the shard lease are the consumer's bookkeeping (a fresh consumer takes the
      // lease over); product items of another batching are new keys, read back de-duplicated.
      .filter(([k]) => !k.startsWith('PROGRESS#') && !k.startsWith('LEASE#') && !k.startsWith('PROD#'))
      .map(([k, v]) => [k, { ...v, w: undefined }]),
  );
}

/** The invoice chunk item that holds a line. */
function chunkOf(items: Map<string, Record<string, AttributeValue>>, invoiceNo: string, lineNo: number) {
  return [...items.values()].find(
    (i) =>
      i.pk?.S === `INV#${invoiceNo}` &&
      i.sk?.S?.startsWith('LINES#') &&
      chunkOwners(i).lineNos.includes(lineNo),
  );
}

async function readArchive(clients: Clients): Promise<Record<string, unknown>[]> {
  const listed = await clients.s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'archive/' }));
  const archived: Record<string, unknown>[] = [];
  for (const o of listed.Contents ?? []) {
    const obj = await clients.s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: o.Key }));
    const bytes = await (obj.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray();
    const text = gunzipSync(Buffer.from(bytes)).toString();
    archived.push(
      ...text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
    );
  }
  return archived;
}

/**
 * A line of these tests: its quantity is its line number and its price 0.1, so the expected totals
 * are easy to add up; each test names its own invoice (and, where it counts aggregates, its own
 * country), so no test sees another's lines in the figures it checks.
 */
const numbered = (invoiceNo: string, lineNo: number) =>
  ({ invoiceNo, lineNo, stockCode: `SKU${lineNo}`, quantity: lineNo, unitPrice: '0.1' }) as const;
const line = (invoiceNo: string, lineNo: number, over: Partial<InvoiceLineInput> = {}) =>
  inputLine({ ...numbered(invoiceNo, lineNo), ...over });
/** The same line as the API hands it on, stamped now: for tests that write the stream directly. */
function stamped(invoiceNo: string, lineNo: number, over: Partial<AcceptedLine> = {}): AcceptedLine {
  const now = new Date().toISOString();
  return acceptedLine({ ...numbered(invoiceNo, lineNo), producedAt: now, acceptedAt: now, ...over });
}

describe('stream path through the emulators', () => {
  let tmp: string;
  let kinesis: RunningEmulator;
  let dynamo: RunningEmulator;
  let s3: RunningEmulator;
  let firehose: LocalFirehose;
  let clients: Clients;
  let consumerClients: Clients;
  let proxy: ReturnType<typeof throttlingProxy>;
  let api: http.Server;
  let apiUrl: string;
  let poller: StreamPoller;
  let handler: BatchHandler;
  const pollerFailures: PollerFailure[] = [];

  beforeAll(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'stream-it-'));
    [kinesis, dynamo, s3] = await Promise.all([
      startKinesis({ host: HOST, port: 0 }),
      startDynamo({ host: HOST, port: 0 }),
      startS3({ host: HOST, port: 0, directory: path.join(tmp, 's3'), buckets: [BUCKET] }),
    ]);
    clients = createClients({
      region: REGION,
      local: true,
      endpoints: { kinesis: kinesis.url, dynamodb: dynamo.url, s3: s3.url },
    });
    await clients.kinesis.send(new CreateStreamCommand({ StreamName: STREAM, ShardCount: 2 }));
    await clients.dynamodb.send(new CreateTableCommand(tableDefinition(TABLE)));
    await eventually(
      async () => {
        const s = await clients.kinesis.send(new DescribeStreamSummaryCommand({ StreamName: STREAM }));
        return s.StreamDescriptionSummary?.StreamStatus === 'ACTIVE' ? true : undefined;
      },
      { what: 'the stream to be active' },
    );
    firehose = await startLocalFirehose({
      host: HOST,
      port: 0,
      s3: clients.s3,
      bucket: BUCKET,
      dataDir: path.join(tmp, 'firehose'),
      deliveryStreams: [{ name: DELIVERY, prefix: 'archive/', bufferMiB: 1, bufferSeconds: 60 }],
      logger,
      region: REGION,
    });
    proxy = throttlingProxy(dynamo.url);
    const proxyUrl = await listen(proxy.server);
    consumerClients = createClients({
      region: REGION,
      local: true,
      endpoints: { dynamodb: proxyUrl, s3: s3.url, firehose: firehose.url },
    });
    const retry = { baseMs: 5, maxMs: 50 };
    handler = createBatchHandler({
      sink: new DynamoInvoiceStore({ client: consumerClients.dynamodb, tableName: TABLE, retry, logger }),
      archive: new FirehoseArchiveWriter({
        client: consumerClients.firehose,
        deliveryStreamName: DELIVERY,
        retry,
      }),
      dlq: new S3DeadLetterSink({ client: consumerClients.s3, bucket: BUCKET }),
      logger,
    });
    poller = await startStreamPoller({
      kinesis: clients.kinesis,
      streamName: STREAM,
      region: REGION,
      handler,
      checkpointDir: path.join(tmp, 'checkpoints'),
      batchSize: 500,
      batchWindowMs: 0,
      bisectOnError: true,
      maxRetries: 3,
      maxRecordAgeSeconds: -1,
      onFailure: async (f) => {
        pollerFailures.push(f);
      },
      idlePollMs: 20,
      logger,
    });
    const app = createApp({
      store: new DynamoInvoiceStore({ client: clients.dynamodb, tableName: TABLE }),
      writer: new KinesisLineWriter({ client: clients.kinesis, streamName: STREAM }),
      logger,
      limits: { maxLines: 50, maxBytes: 16 * 1024 },
    });
    api = http.createServer(app);
    apiUrl = await listen(api);
  });

  afterAll(async () => {
    await poller?.stop();
    await new Promise((r) => api?.close(r));
    await new Promise((r) => proxy?.server.close(r));
    await firehose?.stop();
    clients?.destroy();
    consumerClients?.destroy();
    await Promise.all([kinesis?.stop(), dynamo?.stop(), s3?.stop()]);
    await fs.rm(tmp, { recursive: true, force: true });
  });

  const post = (body: unknown, contentType = 'application/json') =>
    fetch(`${apiUrl}/invoices`, {
      method: 'POST',
      headers: { 'content-type': contentType },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const get = async (p: string) => {
    const res = await fetch(`${apiUrl}${p}`);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  // How long the stream path takes is bench/stream.ts's figure; here only that it gets there.
  const visible = (invoiceNo: string, lines: number) =>
    eventually(
      async () => {
        const r = await get(`/invoices/${invoiceNo}`);
        return r.status === 200 && (r.body.lines as unknown[]).length === lines ? r.body : undefined;
      },
      { timeoutMs: 30_000, what: `invoice ${invoiceNo} with ${lines} lines` },
    );

  it('makes a POSTed invoice readable through every GET, archived with lineage', async () => {
    // The only lines of customer 12345, of France and of stock code E2E2: the aggregates are its own.
    const mine = (n: number, over: Partial<InvoiceLineInput> = {}) =>
      line('600001', n, {
        stockCode: `E2E${n}`,
        customerId: '12345',
        country: 'France',
        invoiceDate: '2011-06-01T10:00:00',
        ...over,
      });
    const res = await post([mine(1), mine(2), mine(3, { quantity: -1 })]);
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({ accepted: 3, invoices: 1 });
    const invoice = await visible('600001', 3);
    expect(invoice).toMatchObject({ status: 'complete', customerId: '12345', countryCode: 'FR' });
    expect(invoice.totals).toEqual({ lines: 3, quantity: 2, amount: '0.200' });
    const customer = await get('/customers/12345/invoices');
    expect(customer.body.invoices).toEqual([
      expect.objectContaining({ invoiceNo: '600001', kind: 'sale', invoiceTs: '2011-06-01T09:00:00.000Z' }),
    ]);
    const product = await get('/products/E2E2/sales');
    expect(product.body.totals).toMatchObject({ lines: 1, quantity: 2, amount: '0.200' });
    const stats = await get('/stats/countries');
    expect(stats.body.countries).toContainEqual(
      expect.objectContaining({ country: 'France', lines: 3, invoices: 1, revenue: '0.200' }),
    );

    await firehose.flush();
    const archived = (await readArchive(clients)).filter((a) => a.invoiceNo === '600001');
    expect(archived).toHaveLength(3);
    // streamVisibleAt is the write's acknowledgement: after the API accepted the line and after the
    // request carrying the item left (the item holds that instant: the ack time is only known later).
    const items = await scanAll(clients);
    for (const a of archived) {
      const item = chunkOf(items, '600001', a.lineNo as number);
      const visible = Date.parse(a.streamVisibleAt as string);
      expect(visible).toBeGreaterThanOrEqual(Date.parse(a.acceptedAt as string));
      expect(visible).toBeGreaterThanOrEqual(Date.parse(item?.w?.S as string));
    }
  });

  it('leaves lines and aggregates unchanged when the same batch is delivered twice', async () => {
    expect((await post([line('600002', 1), line('600002', 2, { country: 'Spain' })])).status).toBe(202);
    await visible('600002', 2);
    await poller.idle();
    const before = await scanAll(clients);
    const productBefore = await get('/products/SKU1/sales');

    // Re-read every record of the stream and deliver it again, as a retried event source would.
    const shards = await clients.kinesis.send(new ListShardsCommand({ StreamName: STREAM }));
    const events: KinesisStreamEvent[] = [];
    for (const shard of shards.Shards ?? []) {
      const it0 = await clients.kinesis.send(
        new GetShardIteratorCommand({
          StreamName: STREAM,
          ShardId: shard.ShardId,
          ShardIteratorType: 'TRIM_HORIZON',
        }),
      );
      const got = await clients.kinesis.send(new GetRecordsCommand({ ShardIterator: it0.ShardIterator }));
      events.push(toEvent(shard.ShardId as string, got.Records ?? []));
    }
    // 1) a redelivery the shard progress recognises: nothing is rewritten at all.
    for (const e of events) expect((await handler(e)).batchItemFailures).toEqual([]);
    expect(await scanAll(clients)).toEqual(before);

    // 2) a redelivery after a crash that lost the progress: lines are overwritten with the same
    // content and the aggregates' high-water marks refuse to count anything twice.
    for (const key of [...before.keys()].filter((k) => k.startsWith('PROGRESS#'))) {
      const [pk, sk] = key.split('|');
      await clients.dynamodb.send(
        new DeleteItemCommand({
          TableName: TABLE,
          Key: { pk: { S: pk as string }, sk: { S: sk as string } },
        }),
      );
    }
    const fresh = createBatchHandler({
      sink: new DynamoInvoiceStore({ client: consumerClients.dynamodb, tableName: TABLE }),
      archive: new FirehoseArchiveWriter({ client: consumerClients.firehose, deliveryStreamName: DELIVERY }),
      dlq: new S3DeadLetterSink({ client: consumerClients.s3, bucket: BUCKET }),
      logger,
    });
    for (const e of events) expect((await fresh(e)).batchItemFailures).toEqual([]);
    expect(withoutWriteTimes(await scanAll(clients))).toEqual(withoutWriteTimes(before));
    const productAfter = await get('/products/SKU1/sales');
    expect(productAfter.body.totals).toEqual(productBefore.body.totals);
    // The same sales; only when their items were last sent moves (as on the invoice's chunks).
    const sales = (r: { body: Record<string, unknown> }) =>
      (r.body.recent as { lineage: Record<string, unknown> }[]).map((l) => ({
        ...l,
        lineage: { ...l.lineage, streamWriteSentAt: undefined },
      }));
    expect(sales(productAfter)).toEqual(sales(productBefore));
  });

  it('counts a line the producer re-sends (HTTP retry, or a second PutRecords) once', async () => {
    const stats = async () =>
      ((await get('/stats/countries')).body.countries as Record<string, unknown>[]).find(
        (c) => c.country === 'Germany',
      );
    const de = (n: number) => line('600006', n, { country: 'Germany' });
    expect((await post([de(1), de(2)])).status).toBe(202);
    await visible('600006', 2);
    // The response was "lost": the producer sends the same request again, then the next line.
    expect((await post([de(1), de(2)])).status).toBe(202);
    // A producer talking to the stream directly re-sends line 1 once more.
    const writer = new KinesisLineWriter({ client: clients.kinesis, streamName: STREAM });
    await writer.putLines([stamped('600006', 1, { country: 'Germany' })]);
    expect((await post([de(3)])).status).toBe(202);
    await visible('600006', 3);
    await poller.idle();
    expect(await stats()).toMatchObject({ lines: 3, invoices: 1, quantity: 6, revenue: '0.600' });
    // The stored line still names the record that first wrote it.
    const items = await scanAll(clients);
    const first = chunkOf(items, '600006', 1);
    // One record per request of this invoice: 2 POSTs of lines 1-2, the direct re-send, line 3.
    const sequences = (await readStream(clients)).filter((r) => r.PartitionKey === '600006');
    expect(sequences).toHaveLength(4);
    expect(first?.o?.S?.split('/').at(-1)).toBe(sequences[0]?.SequenceNumber);
  });

  it('counts a line once when the consumer died between the line write and the aggregate update', async () => {
    const shardId = 'shardId-000000000009';
    const data = encodeLine(stamped('600007', 1, { country: 'Italy' }));
    const record = { SequenceNumber: '7'.repeat(56), PartitionKey: '600007', Data: data };
    const event = toEvent(shardId, [record]);
    // First delivery: the line item was written, then the process died before the aggregates.
    const decoded = processRecord(data);
    if (!decoded.ok) throw new Error(decoded.reason);
    const sink = new DynamoInvoiceStore({ client: consumerClients.dynamodb, tableName: TABLE });
    await sink.putLines(decoded.lines.map((l) => ({ ...l, shardId, sequenceNumber: record.SequenceNumber })));
    const italy = async () =>
      ((await get('/stats/countries')).body.countries as Record<string, unknown>[]).find(
        (c) => c.country === 'Italy',
      );
    expect(await italy()).toBeUndefined();
    // Redelivered (twice, by handlers with no memory of the shard): counted exactly once.
    for (let i = 0; i < 2; i++) {
      const fresh = createBatchHandler({
        sink,
        archive: new FirehoseArchiveWriter({
          client: consumerClients.firehose,
          deliveryStreamName: DELIVERY,
        }),
        dlq: new S3DeadLetterSink({ client: consumerClients.s3, bucket: BUCKET }),
        logger,
      });
      expect((await fresh(event)).batchItemFailures).toEqual([]);
    }
    expect(await italy()).toMatchObject({ lines: 1, invoices: 1, quantity: 1, revenue: '0.100' });
  });

  it('answers every read route from line items of the previous version and new chunks together', async () => {
    // A table upgraded in place: lines 1-2 of 600020 were stored one item per line (the previous
    // version's layout, with its product index entry in gsi2); line 3 arrives now.
    const old = (n: number) =>
      stamped('600020', n, { stockCode: 'UPG1', country: 'Norway', customerId: '15555' });
    await clients.dynamodb.send(
      new PutItemCommand({ TableName: TABLE, Item: headerItem(invoiceFieldsOf(enrich(old(1)))) }),
    );
    for (const n of [1, 2]) {
      const line = { ...enrich(old(n)), shardId: 'shardId-000000000000', sequenceNumber: String(n) };
      await clients.dynamodb.send(
        new PutItemCommand({
          TableName: TABLE,
          Item: marshall(
            {
              ...keys.line(line.invoiceNo, line.lineNo),
              ...keys.productLine(line.stockCode, line.invoiceTs, line.invoiceNo, line.lineNo),
              entity: 'line',
              ...line,
              streamWriteSentAt: line.acceptedAt,
            },
            { removeUndefinedValues: true },
          ),
        }),
      );
    }
    // A consumer that never saw the invoice: reads the old items' owners, so a re-send of line 2
    // is refused and line 3 goes into a chunk.
    const fresh = new DynamoInvoiceStore({ client: consumerClients.dynamodb, tableName: TABLE });
    const out = await fresh.putLines(
      [2, 3].map((n) => ({ ...enrich(old(n)), shardId: 'shardId-000000000000', sequenceNumber: '9' })),
    );
    expect(out.duplicate).toEqual([true, false]);
    const invoice = await get('/invoices/600020');
    expect(invoice.body).toMatchObject({ status: 'complete', customerId: '15555', countryCode: 'NO' });
    expect(invoice.body.totals).toEqual({ lines: 3, quantity: 6, amount: '0.600' });
    expect((invoice.body.lines as { lineNo: number }[]).map((l) => l.lineNo)).toEqual([1, 2, 3]);
    const product = await get('/products/UPG1/sales?limit=2');
    expect(product.body.totals).toEqual({ lines: 3, quantity: 6, amount: '0.600', complete: true });
    expect((product.body.recent as { lineNo: number }[]).map((l) => l.lineNo)).toEqual([3, 2]);
    const customer = await get('/customers/15555/invoices');
    expect(customer.body.invoices).toEqual([
      expect.objectContaining({ invoiceNo: '600020', country: 'Norway' }),
    ]);
  });

  it('stores only the lines not yet stored when a re-send groups them into records differently', async () => {
    const pl = (n: number, seq: string) => ({
      ...enrich(stamped('600021', n, { country: 'Poland' })),
      shardId: 'shardId-000000000007',
      sequenceNumber: seq,
    });
    await new DynamoInvoiceStore({ client: consumerClients.dynamodb, tableName: TABLE }).putLines(
      [1, 2, 3].map((n) => pl(n, '100')),
    );
    // A cold consumer (a restart) reads the owners; a warm one knows them.
    for (const consumer of [
      new DynamoInvoiceStore({ client: consumerClients.dynamodb, tableName: TABLE }),
      new DynamoInvoiceStore({ client: consumerClients.dynamodb, tableName: TABLE }),
    ]) {
      const out = await consumer.putLines([2, 3, 4].map((n) => pl(n, '200')));
      expect(out.duplicate).toEqual([true, true, false]);
      const again = await consumer.putLines([4, 5].map((n) => pl(n, '300')));
      expect(again.duplicate).toEqual([true, false]);
    }
    const items = await scanAll(clients);
    expect([...items.keys()].filter((k) => k.startsWith('INV#600021|LINES#'))).toEqual([
      'INV#600021|LINES#0000001',
      'INV#600021|LINES#0000004',
      'INV#600021|LINES#0000005',
    ]);
    const invoice = await get('/invoices/600021');
    expect(invoice.body.totals).toEqual({ lines: 5, quantity: 15, amount: '1.500' });
  });

  it('sends a poison record to dlq/ with its reason and processes the records after it', async () => {
    const put = await clients.kinesis.send(
      new PutRecordCommand({
        StreamName: STREAM,
        PartitionKey: '600003',
        Data: Buffer.from('not avro at all'),
      }),
    );
    expect((await post([line('600003', 1)])).status).toBe(202);
    await visible('600003', 1);
    const listed = await eventually(
      async () => {
        const l = await clients.s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'dlq/' }));
        return l.Contents?.find((o) => o.Key?.endsWith(`/${put.SequenceNumber}.json`));
      },
      { what: 'the dead letter' },
    );
    const obj = await clients.s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: listed.Key }));
    const letter = JSON.parse(
      await (obj.Body as { transformToString(): Promise<string> }).transformToString(),
    );
    expect(letter).toMatchObject({ shardId: put.ShardId, sequenceNumber: put.SequenceNumber });
    expect(letter.reason).toMatch(/^undecodable: not Avro single-object encoding/);
    expect(Buffer.from(letter.record, 'base64').toString()).toBe('not avro at all');
    expect(pollerFailures).toEqual([]);
  });

  it('counts each line once when an invoice is re-sent grouped into records differently', async () => {
    const pt = (n: number) => line('600010', n, { country: 'Portugal' });
    const portugal = async () =>
      ((await get('/stats/countries')).body.countries as Record<string, unknown>[]).find(
        (c) => c.country === 'Portugal',
      );
    // Posted once as one request (one record of lines 1-6)...
    expect(await (await post([1, 2, 3, 4, 5, 6].map(pt))).json()).toMatchObject({ accepted: 6, invoices: 1 });
    await visible('600010', 6);
    // ...then again split over two requests (records of lines 1-3 and 4-7), the second with a new line.
    expect((await post([1, 2, 3].map(pt))).status).toBe(202);
    expect((await post([4, 5, 6, 7].map(pt))).status).toBe(202);
    await visible('600010', 7);
    await poller.idle();
    const records = (await readStream(clients)).filter((r) => r.PartitionKey === '600010');
    expect(records.map((r) => decodeLines(r.Data as Uint8Array).map((l) => l.lineNo))).toEqual([
      [1, 2, 3, 4, 5, 6],
      [1, 2, 3],
      [4, 5, 6, 7],
    ]);
    expect(await portugal()).toMatchObject({ lines: 7, invoices: 1, quantity: 28, revenue: '2.800' });
    const invoice = await get('/invoices/600010');
    expect(invoice.body.totals).toEqual({ lines: 7, quantity: 28, amount: '2.800' });
    // Each line archived once: a re-sent line is a duplicate, neither stored again nor archived.
    await firehose.flush();
    const archived = (await readArchive(clients)).filter((a) => a.invoiceNo === '600010');
    expect(archived.map((a) => a.lineNo).sort()).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(new Set(archived.map((a) => a.sequenceNumber))).toEqual(
      new Set([records[0]?.SequenceNumber, records[2]?.SequenceNumber]),
    );
  });

  it("sends each invalid line of a record to dlq/ with its index and reason; its good lines and the shard's later records proceed", async () => {
    const ok = (n: number) => stamped('600011', n, { country: 'Austria' });
    const bad = [ok(1), { ...ok(2), stockCode: '' }, ok(3), { ...ok(4), quantity: 20_000_000 }, ok(5)];
    const put = await clients.kinesis.send(
      new PutRecordCommand({ StreamName: STREAM, PartitionKey: '600011', Data: encodeLines(bad) }),
    );
    // The same invoice (so the same shard) right after: lines 6 and 7 through the API.
    expect((await post([6, 7].map((n) => line('600011', n, { country: 'Austria' })))).status).toBe(202);
    const invoice = await visible('600011', 5);
    expect((invoice.lines as { lineNo: number }[]).map((l) => l.lineNo)).toEqual([1, 3, 5, 6, 7]);
    const listed = await eventually(
      async () => {
        const l = await clients.s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'dlq/' }));
        return l.Contents?.find((o) => o.Key?.endsWith(`/${put.SequenceNumber}.json`));
      },
      { what: 'the dead letter' },
    );
    const obj = await clients.s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: listed.Key }));
    const letter = JSON.parse(
      await (obj.Body as { transformToString(): Promise<string> }).transformToString(),
    );
    expect(letter).toMatchObject({ shardId: put.ShardId, sequenceNumber: put.SequenceNumber });
    expect(letter.reason).toMatch(/^2 of 5 lines invalid/);
    expect(letter.invalidLines).toEqual([
      {
        index: 1,
        reason: expect.stringMatching(/^invalid: stockCode/),
        line: expect.objectContaining({ lineNo: 2 }),
      },
      {
        index: 3,
        reason: expect.stringMatching(/^invalid: quantity/),
        line: expect.objectContaining({ lineNo: 4 }),
      },
    ]);
    expect(decodeLines(Buffer.from(letter.record, 'base64'))).toHaveLength(5);
    await poller.idle();
    const austria = ((await get('/stats/countries')).body.countries as Record<string, unknown>[]).find(
      (c) => c.country === 'Austria',
    );
    expect(austria).toMatchObject({ lines: 5, quantity: 1 + 3 + 5 + 6 + 7 });
    expect(pollerFailures).toEqual([]);
  });

  it('reads the single-line records the previous version wrote (v1 and v2) beside multi-line ones', async () => {
    const be = (n: number) => stamped('600012', n, { country: 'Belgium' });
    const [one, two] = [be(1), be(2)];
    for (const data of [encodeWithSchema('v1', one), encodeLine(two), encodeLines([be(3), be(4)])]) {
      await clients.kinesis.send(
        new PutRecordCommand({ StreamName: STREAM, PartitionKey: '600012', Data: data }),
      );
    }
    const invoice = await visible('600012', 4);
    expect(invoice.totals).toEqual({ lines: 4, quantity: 10, amount: '1.000' });
  });

  it('retries injected DynamoDB throttling and loses nothing', async () => {
    proxy.state.throttleNext = 4;
    const before = proxy.state.throttled;
    expect((await post([1, 2, 3, 4, 5].map((n) => line('600004', n)))).status).toBe(202);
    await visible('600004', 5);
    expect(proxy.state.throttled - before).toBe(4);
    expect(pollerFailures).toEqual([]);
  });

  it.each([
    ['wrong types', [{ ...line('600005', 1), quantity: '1' }], 'application/json', 400, /quantity/],
    ['missing fields', [{ invoiceNo: '600005', lineNo: 1 }], 'application/json', 400, /stockCode/],
    ['not JSON', '[{"invoiceNo":', 'application/json', 400, /not valid JSON/],
    [
      'too many lines',
      Array.from({ length: 51 }, (_, i) => line('600005', i + 1)),
      'application/json',
      413,
      /too many lines/,
    ],
    [
      'too many bytes',
      [line('600005', 1, { description: 'x'.repeat(200) }), 'y'.repeat(17_000)],
      'application/json',
      413,
      /larger than/,
    ],
    ['wrong content type', 'a,b,c', 'text/csv', 415, /Content-Type/],
  ])('answers %s with the right 4xx and message', async (_what, body, contentType, status, message) => {
    const res = await post(body, contentType);
    expect(res.status).toBe(status);
    const json = (await res.json()) as { message: string };
    expect(JSON.stringify(json)).toMatch(message);
    expect(JSON.stringify(json)).not.toMatch(/node_modules|\.ts:\d+|at \w+ \(/);
  });
});

async function readStream(clients: Clients): Promise<_Record[]> {
  const shards = await clients.kinesis.send(new ListShardsCommand({ StreamName: STREAM }));
  const out: _Record[] = [];
  for (const shard of shards.Shards ?? []) {
    const it0 = await clients.kinesis.send(
      new GetShardIteratorCommand({
        StreamName: STREAM,
        ShardId: shard.ShardId,
        ShardIteratorType: 'TRIM_HORIZON',
      }),
    );
    const got = await clients.kinesis.send(new GetRecordsCommand({ ShardIterator: it0.ShardIterator }));
    out.push(...(got.Records ?? []));
  }
  return out;
}

function toEvent(shardId: string, records: _Record[]): KinesisStreamEvent {
  return {
    Records: records.map((r) => ({
      eventID: `${shardId}:${r.SequenceNumber}`,
      eventSource: 'aws:kinesis',
      eventVersion: '1.0',
      eventName: 'aws:kinesis:record',
      invokeIdentityArn: 'arn:aws:iam::000000000000:role/test',
      awsRegion: REGION,
      eventSourceARN: `arn:aws:kinesis:${REGION}:000000000000:stream/${STREAM}`,
      kinesis: {
        kinesisSchemaVersion: '1.0',
        partitionKey: r.PartitionKey as string,
        sequenceNumber: r.SequenceNumber as string,
        data: Buffer.from(r.Data ?? []).toString('base64'),
        approximateArrivalTimestamp: (r.ApproximateArrivalTimestamp?.getTime() ?? Date.now()) / 1000,
      },
    })),
  };
}
