/**
 * DynamoDB write units per line of the serving store, by item kind (issue 14's <= 0.5 WRU/line).
 * Runnable alone: `node --import tsx bench/store-billing.ts [--lines 100000] [--requests-per-batch 4]`.
 *
 * The first N lines of the real file go through the real consumer (consumers/handler.ts) and the
 * real store (adapters/invoice-store.ts) on an in-memory dynalite, shaped as the stream path shapes
 * them, without the timing of a running pipeline: requests of 500 lines (the replay's batches), one
 * acceptedAt and producedAt per request, records as the API groups them (core/records.ts), two
 * shards by Kinesis' MD5 of the partition key, and per shard one consumer batch of the records of
 * `requests-per-batch` consecutive requests (what the poller finds buffered at full speed with the
 * replay's 4 requests in flight). Write units are the store's own `billing()` (AWS's rules); sizes are
 * a scan of the table afterwards. Prints JSON.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type AttributeValue, CreateTableCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import { createClients } from '#adapters/clients';
import { tableDefinition, writeUnits } from '#adapters/dynamo-table';
import { DynamoInvoiceStore } from '#adapters/invoice-store';
import { createLogger } from '#adapters/logger';
import { acceptLines } from '#api/ingest';
import { createBatchHandler } from '#consumers/handler';
import type { AcceptedLine } from '#core/invoice-line';
import { toRecords } from '#core/records';
import { startDynamo } from '#local/emulators';
import { type EventContext, toLambdaRecord } from '#local/poller-batch';
import { replayBatches } from '#producer/replay';

const here = path.dirname(fileURLToPath(import.meta.url));
const REAL_FILE = path.resolve(here, '../../shared/data/online-retail/online-retail.csv.gz');
const REQUEST_LINES = 500;
const SHARDS = ['shardId-000000000000', 'shardId-000000000001'];
const TABLE = 'billing-bench';
const MAX_BATCH_RECORDS = 500;

/** The real file's first `limit` lines in requests of 500, accepted as the API accepts them. */
async function requests(file: string, limit: number): Promise<AcceptedLine[][]> {
  const lines: unknown[] = [];
  for await (const batch of replayBatches(file, { encoding: 'utf8' })) {
    for (const r of batch) if (lines.length < limit) lines.push(r.line);
    if (lines.length >= limit) break;
  }
  const out: AcceptedLine[][] = [];
  const start = Date.parse('2026-12-06T10:00:00.000Z');
  for (let i = 0; i < lines.length; i += REQUEST_LINES) {
    const at = new Date(start + (i / REQUEST_LINES) * 80);
    const values = lines
      .slice(i, i + REQUEST_LINES)
      .map((l) => ({ ...(l as object), producedAt: new Date(at.getTime() - 3).toISOString() }));
    out.push(acceptLines({ values, invalid: [] }, REQUEST_LINES, at));
  }
  return out;
}

/** Kinesis puts a partition key on the shard whose hash key range holds its MD5 (two equal halves). */
const shardOf = (partitionKey: string): number =>
  (createHash('md5').update(partitionKey).digest()[0] as number) >= 0x80 ? 1 : 0;

function quantiles(values: number[]) {
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
  return {
    items: s.length,
    meanBytes: Math.round(s.reduce((a, b) => a + b, 0) / Math.max(1, s.length)),
    p10: at(0.1),
    p50: at(0.5),
    p90: at(0.9),
    max: s.at(-1) ?? 0,
    overOneKb: Math.round((s.filter((b) => b > 1024).length / Math.max(1, s.length)) * 1000) / 1000,
    unitsIfWrittenOnce: s.reduce((a, b) => a + writeUnits(b), 0),
  };
}

export async function runStoreBillingBench(
  opts: { lines?: number; requestsPerBatch?: number; file?: string } = {},
) {
  const limit = opts.lines ?? 100_000;
  const perBatch = opts.requestsPerBatch ?? 4;
  const reqs = await requests(opts.file ?? REAL_FILE, limit);
  const dynamo = await startDynamo({ host: '127.0.0.1', port: 0 });
  try {
    const clients = createClients({ region: 'us-east-1', local: true, endpoints: { dynamodb: dynamo.url } });
    await clients.dynamodb.send(new CreateTableCommand(tableDefinition(TABLE)));
    const store = new DynamoInvoiceStore({ client: clients.dynamodb, tableName: TABLE });
    const handle = createBatchHandler({
      sink: store,
      // Only DynamoDB is measured: the archive and the dead letters accept everything.
      archive: { putRecords: async () => ({ failed: [] }) },
      dlq: { send: async () => {} },
      logger: createLogger('warn', 'store-billing'),
    });
    const seq = SHARDS.map(() => 49_590_338_271_490_256_608_559_692_538_361_571_095_921_575_989_136_588_898n);
    let lines = 0;
    let failures = 0;
    for (let r = 0; r < reqs.length; r += perBatch) {
      const byShard = SHARDS.map(() => [] as ReturnType<typeof toLambdaRecord>[]);
      for (const request of reqs.slice(r, r + perBatch)) {
        lines += request.length;
        for (const record of toRecords(request)) {
          const shard = shardOf(record.partitionKey);
          seq[shard] = (seq[shard] as bigint) + 1n;
          const ctx: EventContext = {
            shardId: SHARDS[shard] as string,
            streamArn: 'arn:aws:kinesis:us-east-1:000000000000:stream/invoice-lines',
            region: 'us-east-1',
            invokeIdentityArn: 'arn:aws:iam::000000000000:role/bench',
          };
          const rec = { ...record, sequenceNumber: String(seq[shard]), arrivedAtMs: 0 };
          byShard[shard]?.push(toLambdaRecord(rec, ctx));
        }
      }
      for (const records of byShard) {
        // The event source mapping's batch size (infra/constructs/consumers.ts, RP_POLL_BATCH_SIZE).
        for (let i = 0; i < records.length; i += MAX_BATCH_RECORDS) {
          const out = await handle({ Records: records.slice(i, i + MAX_BATCH_RECORDS) });
          failures += out.batchItemFailures.length;
        }
      }
    }
    const billing = store.billing();
    const sizes = await scanSizes(clients.dynamodb);
    const per = (x: number) => Math.round((x / lines) * 10_000) / 10_000;
    return {
      lines,
      requestsPerBatch: perBatch,
      failures,
      writeUnitsPerLine: per(billing.writeUnits),
      writeUnits: billing.writeUnits,
      byKind: Object.fromEntries(
        Object.entries(billing.byKind ?? {}).map(([k, v]) => [
          k,
          {
            writeUnitsPerLine: per(v.writeUnits),
            writeUnits: v.writeUnits,
            writes: v.items,
            meanBytesWritten: Math.round(v.bytes / Math.max(1, v.items)),
          },
        ]),
      ),
      storedSizes: sizes,
    };
  } finally {
    await dynamo.stop();
  }
}

/** The size of every item in the table at the end, by kind (as itemBytes measures them). */
async function scanSizes(client: ReturnType<typeof createClients>['dynamodb']) {
  const { itemBytes } = await import('#adapters/dynamo-table');
  const byKind = new Map<string, number[]>();
  let start: Record<string, AttributeValue> | undefined;
  do {
    const out = await client.send(
      new ScanCommand({ TableName: TABLE, ...(start ? { ExclusiveStartKey: start } : {}) }),
    );
    for (const item of out.Items ?? []) {
      const pk = item.pk?.S ?? '';
      const kind = pk.startsWith('INV#')
        ? item.sk?.S === 'HEADER'
          ? 'header'
          : 'chunk'
        : pk.slice(0, pk.indexOf('#')).toLowerCase();
      const list = byKind.get(kind) ?? [];
      list.push(itemBytes(item));
      byKind.set(kind, list);
    }
    start = out.LastEvaluatedKey;
  } while (start);
  return Object.fromEntries([...byKind].map(([k, v]) => [k, quantiles(v)]));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? Number(process.argv[i + 1]) : undefined;
  };
  const lines = arg('--lines');
  const requestsPerBatch = arg('--requests-per-batch');
  const result = await runStoreBillingBench({
    ...(lines ? { lines } : {}),
    ...(requestsPerBatch ? { requestsPerBatch } : {}),
  });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
