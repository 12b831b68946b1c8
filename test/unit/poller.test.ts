import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  DescribeStreamSummaryCommand,
  ExpiredIteratorException,
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  ListShardsCommand,
  ProvisionedThroughputExceededException,
} from '@aws-sdk/client-kinesis';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '#adapters/logger';
import { PollerConfigError, startStreamPoller } from '#local/poller';
import {
  decide,
  expiredPrefix,
  fitBatch,
  interpretResponse,
  type ShardRecord,
  toLambdaRecord,
} from '#local/poller-batch';
import { CheckpointError, CheckpointStore } from '#local/poller-checkpoint';

const rec = (seq: string, data = 'x', arrivedAtMs = 1_700_000_000_000): ShardRecord => ({
  sequenceNumber: seq,
  partitionKey: 'pk',
  data: Buffer.from(data),
  arrivedAtMs,
});
const batch = (n: number) => Array.from({ length: n }, (_, i) => rec(String(100 + i)));

let tmp: string;
beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'poller-unit-'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('toLambdaRecord', () => {
  it('builds the Kinesis event record Lambda delivers', () => {
    const ctx = {
      shardId: 'shardId-000000000001',
      streamArn: 'arn:aws:kinesis:eu-west-1:000000000000:stream/s',
      region: 'eu-west-1',
      invokeIdentityArn: 'arn:aws:iam::000000000000:role/r',
    };
    expect(toLambdaRecord(rec('4959', 'hello', 1_700_000_000_123), ctx)).toEqual({
      kinesis: {
        kinesisSchemaVersion: '1.0',
        partitionKey: 'pk',
        sequenceNumber: '4959',
        data: Buffer.from('hello').toString('base64'),
        approximateArrivalTimestamp: 1_700_000_000.123,
      },
      eventSource: 'aws:kinesis',
      eventVersion: '1.0',
      eventID: 'shardId-000000000001:4959',
      eventName: 'aws:kinesis:record',
      invokeIdentityArn: ctx.invokeIdentityArn,
      awsRegion: 'eu-west-1',
      eventSourceARN: ctx.streamArn,
    });
  });
});

describe('interpretResponse (ReportBatchItemFailures)', () => {
  const b = batch(5);
  it.each([undefined, null, {}, { batchItemFailures: null }, { batchItemFailures: [] }])(
    'treats %j as complete success',
    (response) => {
      expect(interpretResponse(response, b)).toEqual({ kind: 'success' });
    },
  );

  it('fails from the lowest listed sequence number', () => {
    const outcome = interpretResponse(
      { batchItemFailures: [{ itemIdentifier: '103' }, { itemIdentifier: '101' }] },
      b,
    );
    expect(outcome).toMatchObject({ kind: 'failure', failedIndex: 1 });
  });

  it.each([
    { batchItemFailures: [{ itemIdentifier: '' }] },
    { batchItemFailures: [{ itemIdentifier: null }] },
    { batchItemFailures: [{ sequenceNumber: '101' }] },
    { batchItemFailures: [{ itemIdentifier: '999' }] },
    { batchItemFailures: 'all' },
  ])('treats %j as a complete failure', (response) => {
    expect(interpretResponse(response, b)).toMatchObject({ kind: 'failure', failedIndex: 0 });
  });
});

describe('decide (retry policy)', () => {
  const whole = { kind: 'failure', failedIndex: 0, reason: 'boom' } as const;
  const noBisect = { bisectOnError: false, maxRetries: 2 };
  const bisect = { bisectOnError: true, maxRetries: 2 };

  it('commits a successful batch', () => {
    expect(decide({ kind: 'success' }, 7, 3, noBisect)).toEqual({ commit: 7 });
  });

  it('retries a failed batch until maxRetries, then discards it', () => {
    expect(decide(whole, 4, 0, noBisect)).toEqual({ commit: 0, rest: { action: 'retry', attempts: 1 } });
    expect(decide(whole, 4, 1, noBisect)).toEqual({ commit: 0, rest: { action: 'retry', attempts: 2 } });
    expect(decide(whole, 4, 2, noBisect)).toEqual({ commit: 0, rest: { action: 'discard', attempts: 3 } });
    expect(decide(whole, 4, 0, { bisectOnError: false, maxRetries: 0 }).rest).toEqual({
      action: 'discard',
      attempts: 1,
    });
    expect(decide(whole, 4, 5000, { bisectOnError: false, maxRetries: -1 }).rest).toEqual({
      action: 'retry',
      attempts: 5001,
    });
  });

  it('checkpoints before a partial failure and retries from the failed record', () => {
    const partial = { kind: 'failure', failedIndex: 3, reason: 'x' } as const;
    expect(decide(partial, 10, 2, noBisect)).toEqual({ commit: 3, rest: { action: 'retry', attempts: 1 } });
    expect(decide(partial, 10, 0, { bisectOnError: false, maxRetries: 0 })).toEqual({
      commit: 3,
      rest: { action: 'discard', attempts: 1 },
    });
    expect(decide(partial, 10, 2, bisect)).toEqual({
      commit: 3,
      rest: { action: 'split', sizes: [7], attempts: 0 },
    });
  });

  it('bisects without counting the split as a retry, and counts retries of a single record', () => {
    expect(decide(whole, 5, 1, bisect)).toEqual({
      commit: 0,
      rest: { action: 'split', sizes: [3, 2], attempts: 1 },
    });
    expect(decide(whole, 1, 0, bisect)).toEqual({ commit: 0, rest: { action: 'retry', attempts: 1 } });
    expect(decide(whole, 1, 2, bisect)).toEqual({ commit: 0, rest: { action: 'discard', attempts: 3 } });
  });
});

describe('fitBatch and expiredPrefix', () => {
  it('caps a batch by count and by Lambda payload size', () => {
    expect(fitBatch(batch(10), 4)).toBe(4);
    expect(fitBatch(batch(3), 500)).toBe(3);
    const big = Array.from({ length: 10 }, (_, i) => rec(String(i), 'y'.repeat(1_000_000)));
    // 1 MB raw is ~1.33 MB in base64: four fit under 6 MiB, five do not.
    expect(fitBatch(big, 500)).toBe(4);
    expect(fitBatch([rec('1', 'z'.repeat(7_000_000))], 500)).toBe(1);
  });

  it('finds the leading records older than the maximum age', () => {
    const now = 1_000_000;
    const records = [rec('1', 'a', now - 5000), rec('2', 'b', now - 3000), rec('3', 'c', now - 5000)];
    expect(expiredPrefix(records, 3, 4, now)).toBe(1);
    expect(expiredPrefix(records, 3, 1, now)).toBe(3);
    expect(expiredPrefix(records, 2, 1, now)).toBe(2);
    expect(expiredPrefix(records, 3, -1, now)).toBe(0);
  });
});

describe('CheckpointStore', () => {
  it('round-trips a checkpoint atomically and leaves no temp file', async () => {
    const store = new CheckpointStore(path.join(tmp, 'cp'), 'stream');
    await store.init();
    expect(await store.load('shardId-000000000000')).toBeUndefined();
    await store.save('shardId-000000000000', '123');
    await store.save('shardId-000000000000', '456');
    expect(await store.load('shardId-000000000000')).toBe('456');
    expect(await fs.readdir(store.dir)).toEqual(['stream.shardId-000000000000.checkpoint.json']);
  });

  it('refuses a corrupt checkpoint instead of silently restarting from the beginning', async () => {
    const store = new CheckpointStore(path.join(tmp, 'bad'), 'stream');
    await store.init();
    await fs.writeFile(store.file('shardId-000000000000'), '{"sequenceNumber": 12');
    await expect(store.load('shardId-000000000000')).rejects.toBeInstanceOf(CheckpointError);
  });
});

describe('startStreamPoller against a mocked Kinesis', () => {
  const options = (kinesis: KinesisClient, dir: string) => ({
    kinesis,
    streamName: 's',
    region: 'us-east-1',
    checkpointDir: dir,
    batchSize: 100,
    batchWindowMs: 0,
    bisectOnError: false,
    maxRetries: 1,
    maxRecordAgeSeconds: -1,
    onFailure: async () => {},
    idlePollMs: 5,
    retryBaseMs: 1,
    retryMaxMs: 5,
    logger: createLogger('silent'),
    handler: async () => {},
  });

  it('rejects invalid options with every problem named', async () => {
    const kinesis = new KinesisClient({ region: 'us-east-1' });
    await expect(
      startStreamPoller({ ...options(kinesis, tmp), batchSize: 0, maxRetries: -2 }),
    ).rejects.toThrow(PollerConfigError);
    await expect(startStreamPoller({ ...options(kinesis, tmp), batchSize: 0 })).rejects.toThrow(/batchSize/);
  });

  it('backs off on throttling and resumes after the last read record when the iterator expires', async () => {
    const kinesis = new KinesisClient({ region: 'us-east-1' });
    const mock = mockClient(kinesis);
    const meta = { $metadata: {} };
    const at = new Date();
    const record = (seq: string) => ({
      SequenceNumber: seq,
      PartitionKey: 'k',
      Data: Buffer.from(seq),
      ApproximateArrivalTimestamp: at,
    });
    mock.on(DescribeStreamSummaryCommand).resolves({
      StreamDescriptionSummary: { StreamARN: 'arn:aws:kinesis:us-east-1:123456789012:stream/s' } as never,
    });
    mock.on(ListShardsCommand).resolves({ Shards: [{ ShardId: 'shardId-000000000000' } as never] });
    mock.on(GetShardIteratorCommand).callsFake((input) => ({
      ShardIterator:
        input.ShardIteratorType === 'AFTER_SEQUENCE_NUMBER'
          ? `after-${input.StartingSequenceNumber}`
          : 'start',
    }));
    let calls = 0;
    mock.on(GetRecordsCommand).callsFake((input) => {
      calls++;
      if (calls === 1) throw new ProvisionedThroughputExceededException({ message: 'slow down', ...meta });
      if (calls === 2)
        return { Records: [record('1'), record('2')], NextShardIterator: 'it-2', MillisBehindLatest: 0 };
      if (calls === 3) throw new ExpiredIteratorException({ message: 'expired', ...meta });
      if (input.ShardIterator === 'after-2')
        return { Records: [record('3')], NextShardIterator: 'it-4', MillisBehindLatest: 0 };
      return { Records: [], NextShardIterator: 'it-4', MillisBehindLatest: 0 };
    });
    const seen: string[] = [];
    const poller = await startStreamPoller({
      ...options(kinesis, path.join(tmp, 'mock')),
      handler: async (event) => {
        expect(event.Records[0]?.eventSourceARN).toBe('arn:aws:kinesis:us-east-1:123456789012:stream/s');
        seen.push(...event.Records.map((r) => r.kinesis.sequenceNumber));
      },
    });
    await poller.idle();
    await poller.stop();

    expect(seen).toEqual(['1', '2', '3']);
    const iteratorCalls = mock
      .commandCalls(GetShardIteratorCommand)
      .map((c) => c.args[0].input.ShardIteratorType);
    expect(iteratorCalls).toEqual(['TRIM_HORIZON', 'AFTER_SEQUENCE_NUMBER']);
    expect(poller.stats().shards[0]?.checkpoint).toBe('3');
  });
});

describe('waking a caught-up poller (the local API after PutRecords)', () => {
  /** A one-shard mocked stream whose GetRecords answers what `next` says, in order. */
  function mockedShard() {
    const kinesis = new KinesisClient({ region: 'us-east-1' });
    const mock = mockClient(kinesis);
    mock.on(DescribeStreamSummaryCommand).resolves({
      StreamDescriptionSummary: { StreamARN: 'arn:aws:kinesis:us-east-1:123456789012:stream/s' } as never,
    });
    mock.on(ListShardsCommand).resolves({ Shards: [{ ShardId: 'shardId-000000000000' } as never] });
    mock.on(GetShardIteratorCommand).resolves({ ShardIterator: 'start' });
    const written: string[] = [];
    const reads: { started: () => void }[] = [];
    let hold: Promise<void> | undefined;
    mock.on(GetRecordsCommand).callsFake(async () => {
      for (const r of reads.splice(0)) r.started();
      // What is on the shard when the read looks: a read held meanwhile answers as of its start.
      const records = written.splice(0).map((seq) => ({
        SequenceNumber: seq,
        PartitionKey: 'k',
        Data: Buffer.from(seq),
        ApproximateArrivalTimestamp: new Date(),
      }));
      if (hold) await hold;
      return { Records: records, NextShardIterator: 'next', MillisBehindLatest: 0 };
    });
    return {
      kinesis,
      written,
      /** Resolves when the next GetRecords starts. */
      nextRead: () => new Promise<void>((started) => reads.push({ started })),
      holdReads(until: Promise<void>) {
        hold = until;
      },
    };
  }

  const handled = () => {
    const seen: string[] = [];
    let resolve!: () => void;
    const first = new Promise<void>((r) => {
      resolve = r;
    });
    const handler = async (event: { Records: { kinesis: { sequenceNumber: string } }[] }) => {
      seen.push(...event.Records.map((r) => r.kinesis.sequenceNumber));
      resolve();
    };
    return { seen, first, handler };
  };

  // An idle poll far longer than the test's timeout: only the wake can bring the record in time.
  const NEVER_MS = 600_000;
  /**
   * Lets the poller finish what its first (empty) read started: its promise chain runs within a
   * few turns of the event loop, after which its reader waits out the idle poll.
   */
  const turnsPassed = async () => {
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  };

  /** A poller on `shard` whose idle poll never ends within the test: it reads again only when woken. */
  const wakeablePoller = (
    shard: ReturnType<typeof mockedShard>,
    h: ReturnType<typeof handled>,
    dir: string,
  ) =>
    startStreamPoller({
      kinesis: shard.kinesis,
      streamName: 's',
      region: 'us-east-1',
      checkpointDir: path.join(tmp, dir),
      batchSize: 100,
      batchWindowMs: 0,
      bisectOnError: false,
      maxRetries: 1,
      maxRecordAgeSeconds: -1,
      onFailure: async () => {},
      idlePollMs: NEVER_MS,
      logger: createLogger('silent'),
      handler: h.handler,
    });

  it('reads at once when woken instead of waiting out its idle poll', { timeout: 20_000 }, async () => {
    const shard = mockedShard();
    const h = handled();
    const firstRead = shard.nextRead();
    const poller = await wakeablePoller(shard, h, 'wake');
    await firstRead;
    await turnsPassed();

    shard.written.push('7');
    poller.wake();
    await h.first;
    await poller.stop();

    expect(h.seen).toEqual(['7']);
  });

  it('reads again at once when woken during a read that missed the record', { timeout: 20_000 }, async () => {
    const shard = mockedShard();
    const h = handled();
    const firstRead = shard.nextRead();
    const poller = await wakeablePoller(shard, h, 'wake-during-read');
    await firstRead;
    await turnsPassed();
    let release!: () => void;
    shard.holdReads(
      new Promise<void>((r) => {
        release = r;
      }),
    );
    const reading = shard.nextRead();
    poller.wake();
    await reading;

    // Written (and woken) while that read is in flight: it answers empty.
    shard.written.push('8');
    poller.wake();
    shard.holdReads(Promise.resolve());
    release();
    await h.first;
    await poller.stop();

    expect(h.seen).toEqual(['8']);
  });
});
