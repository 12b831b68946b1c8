import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import type http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  type KinesisClient,
  PutRecordsCommand,
} from '@aws-sdk/client-kinesis';
import type { KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Clients, createClients } from '#adapters/clients';
import { createLogger } from '#adapters/logger';
import { type PollerFailure, type PollerOptions, type StreamPoller, startStreamPoller } from '#local/poller';
import { eventually } from '../helpers/stack.ts';

const require = createRequire(import.meta.url);
const kinesalite = require('kinesalite') as (options: object) => http.Server;

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const region = 'us-east-1';
const logger = createLogger('silent');

let server: http.Server;
let endpoint: string;
let clients: Clients;
let kinesis: KinesisClient;
let tmp: string;
const pollers: StreamPoller[] = [];
let streamCounter = 0;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'poller-test-'));
  server = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100 });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  clients = createClients({ region, endpoints: { kinesis: endpoint }, local: true });
  kinesis = clients.kinesis;
});

afterAll(async () => {
  await Promise.all(pollers.map((p) => p.stop()));
  clients?.destroy();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  await fs.rm(tmp, { recursive: true, force: true });
});

async function createStream(shards: number): Promise<string> {
  const name = `poller-test-${++streamCounter}`;
  await kinesis.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
  for (;;) {
    const s = await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: name }));
    if (s.StreamDescriptionSummary?.StreamStatus === 'ACTIVE') return name;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Puts `payloads` in order (PutRecords keeps order within a shard); returns their sequence numbers. */
async function put(
  stream: string,
  payloads: string[],
  key = (i: number) => `pk-${i % 20}`,
): Promise<string[]> {
  const seqs: string[] = [];
  for (let start = 0; start < payloads.length; start += 500) {
    const chunk = payloads.slice(start, start + 500);
    const res = await kinesis.send(
      new PutRecordsCommand({
        StreamName: stream,
        Records: chunk.map((p, i) => ({ Data: Buffer.from(p), PartitionKey: key(start + i) })),
      }),
    );
    expect(res.FailedRecordCount ?? 0).toBe(0);
    for (const r of res.Records ?? []) seqs.push(r.SequenceNumber as string);
  }
  return seqs;
}

const texts = (n: number, prefix = 'r') => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
const dataOf = (event: KinesisStreamEvent) =>
  event.Records.map((r) => Buffer.from(r.kinesis.data, 'base64').toString());

async function start(overrides: Partial<PollerOptions> & Pick<PollerOptions, 'streamName' | 'handler'>) {
  const failures: PollerFailure[] = [];
  const poller = await startStreamPoller({
    kinesis,
    region,
    checkpointDir: path.join(tmp, overrides.streamName),
    batchSize: 100,
    batchWindowMs: 0,
    bisectOnError: false,
    maxRetries: 3,
    maxRecordAgeSeconds: -1,
    onFailure: async (f) => {
      failures.push(f);
    },
    idlePollMs: 20,
    retryBaseMs: 5,
    retryMaxMs: 50,
    logger,
    ...overrides,
  });
  pollers.push(poller);
  return { poller, failures };
}

async function checkpointOf(stream: string, shardId = 'shardId-000000000000'): Promise<string> {
  const file = path.join(tmp, stream, `${stream}.${shardId}.checkpoint.json`);
  return (JSON.parse(await fs.readFile(file, 'utf8')) as { sequenceNumber: string }).sequenceNumber;
}

describe('stream poller against kinesalite', () => {
  it('delivers Lambda-shaped events in order per shard, one batch in flight per shard', async () => {
    const stream = await createStream(2);
    const payloads = texts(1200);
    const putStarted = Date.now();
    await put(stream, payloads);
    const putDone = Date.now();
    const seen = new Map<string, bigint[]>();
    const delivered: string[] = [];
    const inFlight = new Map<string, number>();
    let maxInFlightPerShard = 0;
    let maxBatch = 0;
    let sample: KinesisStreamEvent['Records'][number] | undefined;
    const { poller } = await start({
      streamName: stream,
      handler: async (event) => {
        const shard = event.Records[0]?.eventID.split(':')[0] as string;
        inFlight.set(shard, (inFlight.get(shard) ?? 0) + 1);
        maxInFlightPerShard = Math.max(maxInFlightPerShard, inFlight.get(shard) as number);
        maxBatch = Math.max(maxBatch, event.Records.length);
        sample ??= event.Records[0];
        await new Promise((r) => setTimeout(r, 1));
        for (const r of event.Records) {
          const list = seen.get(shard) ?? [];
          list.push(BigInt(r.kinesis.sequenceNumber));
          seen.set(shard, list);
        }
        delivered.push(...dataOf(event));
        inFlight.set(shard, (inFlight.get(shard) as number) - 1);
      },
    });
    await poller.idle();

    expect(delivered.sort()).toEqual([...payloads].sort());
    expect([...seen.keys()].sort()).toEqual(['shardId-000000000000', 'shardId-000000000001']);
    for (const seqs of seen.values()) {
      expect(seqs.every((s, i) => i === 0 || s > (seqs[i - 1] as bigint))).toBe(true);
    }
    expect(maxInFlightPerShard).toBe(1);
    expect(maxBatch).toBeLessThanOrEqual(100);
    const arn = (await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: stream })))
      .StreamDescriptionSummary?.StreamARN;
    expect(sample).toMatchObject({
      eventSource: 'aws:kinesis',
      eventVersion: '1.0',
      eventName: 'aws:kinesis:record',
      awsRegion: region,
      eventSourceARN: arn,
      kinesis: { kinesisSchemaVersion: '1.0', partitionKey: expect.stringMatching(/^pk-/) },
    });
    expect(sample?.eventID).toBe(`${sample?.eventID.split(':')[0]}:${sample?.kinesis.sequenceNumber}`);
    // Seconds, not milliseconds: between instants taken around the put (whole seconds, in case it is rounded).
    const arrived = sample?.kinesis.approximateArrivalTimestamp ?? 0;
    expect(arrived).toBeGreaterThanOrEqual(Math.floor(putStarted / 1000));
    expect(arrived).toBeLessThanOrEqual(Math.ceil(putDone / 1000));
    expect(poller.stats().recordsProcessed).toBe(1200);
  });

  it('retries a partial batch failure from the lowest failed item only', async () => {
    const stream = await createStream(1);
    const seqs = await put(stream, texts(10));
    const calls: string[][] = [];
    const { poller, failures } = await start({
      streamName: stream,
      batchSize: 10,
      handler: async (event): Promise<KinesisStreamBatchResponse> => {
        calls.push(dataOf(event));
        if (calls.length > 1) return { batchItemFailures: [] };
        // Reported out of order on purpose: the lowest sequence number is the checkpoint.
        return {
          batchItemFailures: [{ itemIdentifier: seqs[7] as string }, { itemIdentifier: seqs[4] as string }],
        };
      },
    });
    await poller.idle();

    expect(calls).toEqual([texts(10), texts(10).slice(4)]);
    expect(failures).toEqual([]);
    expect(await checkpointOf(stream)).toBe(seqs[9]);
  });

  it('holds a partial batch for the batching window, and sends a full batch at once', async () => {
    const stream = await createStream(1);
    const calls: string[][] = [];
    // A window no test outlives: a batch that goes is one that filled up.
    const { poller } = await start({
      streamName: stream,
      batchSize: 50,
      batchWindowMs: 300_000,
      handler: async (event) => void calls.push(dataOf(event)),
    });
    const buffered = () => poller.stats().shards[0]?.buffered;

    await put(stream, texts(3, 'a'));
    await eventually(async () => (buffered() === 3 ? true : undefined), { what: 'three records read' });
    expect(calls).toEqual([]);
    await put(stream, texts(47, 'b'));
    await eventually(async () => (calls.length === 1 ? true : undefined), { what: 'the filled batch' });
    expect(calls[0]).toEqual([...texts(3, 'a'), ...texts(47, 'b')]);

    const payloads = texts(120);
    await put(stream, payloads);
    await eventually(async () => (calls.length === 3 && buffered() === 20 ? true : undefined), {
      what: 'two full batches, twenty records held',
    });
    expect(calls.slice(1)).toEqual([payloads.slice(0, 50), payloads.slice(50, 100)]);
  });

  it('sends a partial batch once the batching window has passed since its first record was read', async () => {
    const stream = await createStream(1);
    const calls: Array<{ at: number; data: string[] }> = [];
    const { poller } = await start({
      streamName: stream,
      batchSize: 50,
      batchWindowMs: 300,
      handler: async (event) => void calls.push({ at: Date.now(), data: dataOf(event) }),
    });
    const put0 = Date.now();
    await put(stream, ['a', 'b', 'c']);
    await poller.idle();
    expect(calls.map((c) => c.data)).toEqual([['a', 'b', 'c']]);
    // Read after the put began, so the window cannot have ended before put0 + 300 ms.
    expect((calls[0]?.at ?? 0) - put0).toBeGreaterThanOrEqual(300);
  });

  it('bisects a throwing batch to isolate poison records, sends them on failure, processes the rest', async () => {
    const stream = await createStream(1);
    const payloads = texts(16);
    // One at the head (bisect never moves past it, so splits must not eat its retries) and one in the middle.
    payloads[0] = 'poison-a';
    payloads[10] = 'poison-b';
    const seqs = await put(stream, payloads);
    const processed: string[] = [];
    const calls: string[][] = [];
    const { poller, failures } = await start({
      streamName: stream,
      batchSize: 16,
      bisectOnError: true,
      maxRetries: 2,
      handler: async (event) => {
        const data = dataOf(event);
        calls.push(data);
        if (data.some((d) => d.startsWith('poison'))) throw new Error('cannot decode poison');
        processed.push(...data);
      },
    });
    await poller.idle();

    expect(processed).toEqual(payloads.filter((p) => !p.startsWith('poison')));
    expect(failures).toHaveLength(2);
    for (const [i, failure] of failures.entries()) {
      expect(failure).toMatchObject({
        shardId: 'shardId-000000000000',
        condition: 'RetryAttemptsExhausted',
        attempts: 3,
      });
      expect(failure.reason).toContain('cannot decode poison');
      const index = i === 0 ? 0 : 10;
      expect(failure.records.map((r) => [r.sequenceNumber, r.data.toString()])).toEqual([
        [seqs[index], payloads[index]],
      ]);
      // Splits are free; the isolated record is tried once plus maxRetries times.
      expect(calls.filter((c) => c.length === 1 && c[0] === payloads[index])).toHaveLength(3);
    }
    expect(await checkpointOf(stream)).toBe(seqs[15]);
  });

  it('without bisect, discards the whole failing batch after maxRetries and moves on', async () => {
    const stream = await createStream(1);
    await put(stream, ['a', 'poison', 'c', 'd', 'e', 'f']);
    const calls: string[][] = [];
    const { poller, failures } = await start({
      streamName: stream,
      batchSize: 4,
      maxRetries: 1,
      handler: async (event) => {
        calls.push(dataOf(event));
        if (dataOf(event).includes('poison')) throw new Error('boom');
      },
    });
    await poller.idle();

    expect(calls).toEqual([
      ['a', 'poison', 'c', 'd'],
      ['a', 'poison', 'c', 'd'],
      ['e', 'f'],
    ]);
    expect(failures.map((f) => [f.condition, f.attempts, f.records.map((r) => r.data.toString())])).toEqual([
      ['RetryAttemptsExhausted', 2, ['a', 'poison', 'c', 'd']],
    ]);
  });

  it('sends records older than maxRecordAge on failure, even with infinite retries', async () => {
    const stream = await createStream(1);
    await put(stream, ['old-1', 'old-2']);
    // The poller's clock, moved instead of waiting for records to grow old.
    let clock = () => Date.now() + 1_500;
    const processed: string[] = [];
    const stuck: number[] = [];
    const { poller, failures } = await start({
      streamName: stream,
      maxRetries: -1,
      maxRecordAgeSeconds: 1,
      clock: () => clock(),
      handler: async (event) => {
        const data = dataOf(event);
        if (data.includes('stuck')) {
          stuck.push((event.Records[0]?.kinesis.approximateArrivalTimestamp ?? 0) * 1000);
          throw new Error('always fails');
        }
        processed.push(...data);
      },
    });
    await poller.idle();
    expect(processed).toEqual([]);
    expect(failures.map((f) => [f.condition, f.records.map((r) => r.data.toString())])).toEqual([
      ['RecordAgeExceeded', ['old-1', 'old-2']],
    ]);

    // A record retried forever leaves once it is too old; what follows it is then processed.
    clock = () => Date.now();
    await put(stream, ['stuck']);
    await eventually(async () => (stuck.length >= 2 ? true : undefined), { what: 'stuck retried' });
    await put(stream, ['after']);
    // Put after two failed tries of 'stuck' (5 ms apart at least), 'after' is younger than this by then.
    const stuckArrived = stuck[0] as number;
    clock = () => stuckArrived + 1_001;
    await poller.idle();
    expect(processed).toEqual(['after']);
    expect(failures.map((f) => f.condition)).toEqual(['RecordAgeExceeded', 'RecordAgeExceeded']);
    expect(failures[1]?.records.map((r) => r.data.toString())).toEqual(['stuck']);
  });

  it('resumes after the checkpoint on restart: nothing lost, nothing checkpointed replayed', async () => {
    const stream = await createStream(2);
    const first = texts(300, 'first');
    await put(stream, first);
    const runA: string[] = [];
    const a = await start({ streamName: stream, handler: async (e) => void runA.push(...dataOf(e)) });
    await a.poller.idle();
    await a.poller.stop();
    expect(runA.sort()).toEqual([...first].sort());

    const second = texts(200, 'second');
    await put(stream, second);
    const runB: string[] = [];
    const b = await start({ streamName: stream, handler: async (e) => void runB.push(...dataOf(e)) });
    await b.poller.idle();
    expect(runB.sort()).toEqual([...second].sort());
    expect(b.poller.stats().shards.every((s) => s.checkpoint !== null)).toBe(true);
  });

  it('redelivers the batch whose checkpoint a crash (kill -9) prevented', async () => {
    const stream = await createStream(1);
    const payloads = texts(50);
    const seqs = await put(stream, payloads);
    const out = path.join(tmp, `${stream}.delivered`);
    const checkpointDir = path.join(tmp, stream);
    // The child runs the real poller; its handler does its work, then the process dies before returning.
    const script = `
      import { appendFileSync } from 'node:fs';
      import { createClients } from '#adapters/clients';
      import { createLogger } from '#adapters/logger';
      import { startStreamPoller } from '#local/poller';
      const env = process.env;
      const { kinesis } = createClients({ region: 'us-east-1', endpoints: { kinesis: env.KINESIS }, local: true });
      let batches = 0;
      await startStreamPoller({
        kinesis, streamName: env.STREAM, region: 'us-east-1', checkpointDir: env.DIR, batchSize: 10,
        batchWindowMs: 0, bisectOnError: false, maxRetries: 3, maxRecordAgeSeconds: -1,
        onFailure: async () => {}, logger: createLogger('silent'),
        handler: async (event) => {
          appendFileSync(env.OUT, event.Records.map((r) => r.kinesis.sequenceNumber).join('\\n') + '\\n');
          if (++batches === 3) process.kill(process.pid, 'SIGKILL');
        },
      });`;
    const signal = await new Promise<NodeJS.Signals | null>((resolve) => {
      const child = execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        cwd: repoRoot,
        env: { ...process.env, KINESIS: endpoint, STREAM: stream, DIR: checkpointDir, OUT: out },
        timeout: 30_000,
      });
      child.on('exit', (_code, sig) => resolve(sig));
    });
    expect(signal).toBe('SIGKILL');
    const crashed = (await fs.readFile(out, 'utf8')).trim().split('\n');
    expect(crashed).toEqual(seqs.slice(0, 30));
    expect(await checkpointOf(stream)).toBe(seqs[19]);

    const after: string[] = [];
    const { poller } = await start({
      streamName: stream,
      checkpointDir,
      batchSize: 10,
      handler: async (e) => void after.push(...e.Records.map((r) => r.kinesis.sequenceNumber)),
    });
    await poller.idle();
    // The crashed batch (records 20-29) comes again; the checkpointed ones (0-19) do not.
    expect(after).toEqual(seqs.slice(20));
  });
});

describe('stream poller with pipelineDepth 2', () => {
  it('starts the next batch while the previous one runs, and checkpoints only after the previous returns', async () => {
    const stream = await createStream(1);
    await put(stream, texts(300));
    const starts: string[] = [];
    let secondStarted!: () => void;
    const second = new Promise<void>((resolve) => {
      secondStarted = resolve;
    });
    let checkpointWhileFirstRan: string | undefined;
    const { poller } = await start({
      streamName: stream,
      pipelineDepth: 2,
      handler: async (event) => {
        const data = dataOf(event);
        starts.push(data[0] as string);
        if (starts.length === 1) {
          // With one invocation in flight (depth 1) this would never resolve: the test times out.
          await second;
          checkpointWhileFirstRan = await checkpointOf(stream).catch(() => 'none');
        } else if (starts.length === 2) secondStarted();
      },
    });
    await poller.idle();
    expect(starts).toEqual(['r-0', 'r-100', 'r-200']);
    // The second batch ran to its end first, yet nothing was checkpointed past the first batch.
    expect(checkpointWhileFirstRan).toBe('none');
    expect(poller.stats()).toMatchObject({ recordsProcessed: 300, batches: 3, failedInvocations: 0 });
  });

  it('starts a batch ahead for records that arrive while the batch in flight runs', async () => {
    const stream = await createStream(1);
    await put(stream, texts(10));
    const starts: string[] = [];
    let secondStarted!: () => void;
    const second = new Promise<void>((resolve) => {
      secondStarted = resolve;
    });
    const { poller } = await start({
      streamName: stream,
      pipelineDepth: 2,
      handler: async (event) => {
        const data = dataOf(event);
        starts.push(data[0] as string);
        if (starts.length === 1) {
          // These arrive after the first batch was taken: only a batch started on their arrival
          // runs while this one waits (without it the test times out).
          await put(stream, texts(5, 'late'));
          await second;
        } else if (starts.length === 2) secondStarted();
      },
    });
    await poller.idle();
    expect(starts).toEqual(['r-0', 'late-0']);
    expect(poller.stats()).toMatchObject({ recordsProcessed: 15, batches: 2, failedInvocations: 0 });
  });

  it('when the batch in flight fails, drops the outcome of the one started ahead and retries from the failed record', async () => {
    const stream = await createStream(1);
    const seqs = await put(stream, texts(200));
    const seen: string[][] = [];
    let failOnce = true;
    const { poller, failures } = await start({
      streamName: stream,
      pipelineDepth: 2,
      handler: async (event): Promise<KinesisStreamBatchResponse> => {
        const data = dataOf(event);
        seen.push([data[0] as string, data.at(-1) as string]);
        if (data[0] === 'r-0' && failOnce) {
          failOnce = false;
          // Let the batch ahead finish (successfully) first: its success must not be checkpointed.
          await eventually(async () => (seen.length >= 2 ? true : undefined), { what: 'the batch ahead' });
          return { batchItemFailures: [{ itemIdentifier: seqs[50] as string }] };
        }
        return { batchItemFailures: [] };
      },
    });
    await poller.idle();
    // First r-0..r-99 (fails at r-50) and r-100..r-199 ahead; then from r-50 again, in order.
    expect(seen.slice(0, 2)).toEqual([
      ['r-0', 'r-99'],
      ['r-100', 'r-199'],
    ]);
    expect(seen[2]?.[0]).toBe('r-50');
    expect(seen.flat().at(-1)).toBe('r-199');
    expect(failures).toEqual([]);
    expect(await checkpointOf(stream)).toBe(seqs[199]);
  });
});
