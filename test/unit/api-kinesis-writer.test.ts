import { KinesisClient, PutRecordsCommand, type PutRecordsRequestEntry } from '@aws-sdk/client-kinesis';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { KinesisLineWriter, KinesisWriteError } from '#adapters/kinesis-writer';
import { decodeLine } from '#core/avro';
import type { AcceptedLine } from '#core/invoice-line';
import { acceptedLine } from '../helpers/lines.ts';

const kinesis = mockClient(KinesisClient);
const noWait = { baseMs: 1, maxMs: 1, sleep: async () => {} };

/** Ten lines per invoice, invoices numbered from 500000. */
const lines = (n: number): AcceptedLine[] =>
  Array.from({ length: n }, (_, i) =>
    acceptedLine({ invoiceNo: String(500000 + Math.floor(i / 10)), lineNo: (i % 10) + 1 }),
  );

const writer = (maxAttempts = 5) =>
  new KinesisLineWriter({
    client: new KinesisClient({ region: 'us-east-1' }),
    streamName: 's',
    retry: { ...noWait, maxAttempts },
  });

beforeEach(() => kinesis.reset());

describe('KinesisLineWriter', () => {
  it('writes in chunks of 500, Avro-encoded, partition key invoiceNo', async () => {
    kinesis.on(PutRecordsCommand).callsFake((input: { Records: unknown[] }) => ({
      FailedRecordCount: 0,
      Records: input.Records.map(() => ({ SequenceNumber: '1', ShardId: 's' })),
    }));
    const out = await writer().putLines(lines(1001));
    expect(out).toEqual({ records: 1001, calls: 3 });
    const sizes = kinesis.commandCalls(PutRecordsCommand).map((c) => c.args[0].input.Records?.length);
    expect(sizes).toEqual([500, 500, 1]);
    const first = kinesis.commandCalls(PutRecordsCommand)[0]?.args[0].input.Records?.[0];
    expect(first?.PartitionKey).toBe('500000');
    expect(decodeLine(first?.Data as Uint8Array)).toMatchObject({ invoiceNo: '500000', lineNo: 1 });
  });

  it('resends only the failed entries of a partial failure', async () => {
    let call = 0;
    kinesis.on(PutRecordsCommand).callsFake((input: { Records: PutRecordsRequestEntry[] }) => {
      call++;
      return {
        FailedRecordCount: call === 1 ? 2 : 0,
        Records: input.Records.map((_, i) =>
          call === 1 && i >= 1
            ? { ErrorCode: 'ProvisionedThroughputExceededException' }
            : { SequenceNumber: '1' },
        ),
      };
    });
    const w = writer();
    expect(await w.putLines(lines(3))).toEqual({ records: 3, calls: 2 });
    const sent = kinesis.commandCalls(PutRecordsCommand).map((c) => c.args[0].input.Records?.length);
    expect(sent).toEqual([3, 2]);
    expect(w.stats()).toMatchObject({ requests: 1, records: 3, calls: 2, sharedCalls: 0 });
  });

  it('waits the policy backoff before each retry, growing', async () => {
    kinesis
      .on(PutRecordsCommand)
      .resolves({ FailedRecordCount: 1, Records: [{ ErrorCode: 'ProvisionedThroughputExceededException' }] });
    const waits: number[] = [];
    const w = new KinesisLineWriter({
      client: new KinesisClient({ region: 'us-east-1' }),
      streamName: 's',
      retry: {
        maxAttempts: 4,
        baseMs: 10,
        maxMs: 1_000,
        jitter: 'none',
        sleep: async (ms) => void waits.push(ms),
      },
    });
    await expect(w.putLines(lines(1))).rejects.toThrow(
      /1 of 1 records not written: records still failing after 4 attempts \(ProvisionedThroughputExceededException\)/,
    );
    expect(waits).toEqual([10, 20, 40]);
  });

  it('throws KinesisWriteError when entries still fail after the bound', async () => {
    kinesis
      .on(PutRecordsCommand)
      .resolves({ FailedRecordCount: 1, Records: [{ ErrorCode: 'InternalFailure' }] });
    const err = await writer(3)
      .putLines(lines(1))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KinesisWriteError);
    expect((err as KinesisWriteError).failedRecords).toBe(1);
    expect(kinesis.commandCalls(PutRecordsCommand)).toHaveLength(3);
  });
});

describe('KinesisLineWriter group commit', () => {
  const invoiceLines = (invoiceNo: string, n: number): AcceptedLine[] =>
    lines(n).map((l, i) => ({ ...l, invoiceNo, lineNo: i + 1 }));
  const partitionKeys = (call: number) =>
    kinesis.commandCalls(PutRecordsCommand)[call]?.args[0].input.Records?.map((r) => r.PartitionKey) ?? [];
  const slowAck = (ms: number) => (input: { Records: PutRecordsRequestEntry[] }) =>
    new Promise((resolve) =>
      setTimeout(
        () =>
          resolve({
            FailedRecordCount: 0,
            Records: input.Records.map(() => ({ SequenceNumber: '1', ShardId: 's' })),
          }),
        ms,
      ),
    );

  it('coalesces concurrent requests into shared calls and answers each with its own count', async () => {
    kinesis.on(PutRecordsCommand).callsFake(slowAck(20));
    const w = writer();
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, r) => w.putLines(invoiceLines(String(600000 + r), 10))),
    );
    expect(results.every((x) => x.records === 10)).toBe(true);
    const sizes = kinesis.commandCalls(PutRecordsCommand).map((c) => c.args[0].input.Records?.length ?? 0);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(600);
    // 60 requests of 10 lines, all arriving in one turn: one full call of 500 and one of 100.
    expect(sizes).toEqual([500, 100]);
    expect(w.stats()).toMatchObject({ requests: 60, records: 600, calls: 2, sharedCalls: 2 });
  });

  it('requests arriving while a call is in flight wait for it, then share the next call', async () => {
    let firstSent!: () => void;
    const firstCall = new Promise<void>((resolve) => {
      firstSent = resolve;
    });
    let ackFirst!: () => void;
    const firstAcked = new Promise<void>((resolve) => {
      ackFirst = resolve;
    });
    let calls = 0;
    kinesis.on(PutRecordsCommand).callsFake(async (input: { Records: PutRecordsRequestEntry[] }) => {
      if (++calls === 1) {
        firstSent();
        await firstAcked;
      }
      return slowAck(0)(input);
    });
    const w = new KinesisLineWriter({
      client: new KinesisClient({ region: 'us-east-1' }),
      streamName: 's',
      concurrency: 1,
      lingerMs: 1,
    });
    const first = w.putLines(invoiceLines('700000', 5));
    await firstCall;
    const later = [w.putLines(invoiceLines('700001', 5)), w.putLines(invoiceLines('700002', 5))];
    ackFirst();
    await Promise.all([first, ...later]);
    expect(partitionKeys(0)).toEqual(Array(5).fill('700000'));
    // With one call in flight at most, the two later requests share the second call.
    expect(partitionKeys(1)).toEqual([...Array(5).fill('700001'), ...Array(5).fill('700002')]);
  });

  it('a request fails only for its own lines when they keep failing in a shared call', async () => {
    kinesis.on(PutRecordsCommand).callsFake((input: { Records: PutRecordsRequestEntry[] }) => ({
      FailedRecordCount: input.Records.filter((r) => r.PartitionKey === '800001').length,
      Records: input.Records.map((r) =>
        r.PartitionKey === '800001'
          ? { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: 'slow down' }
          : { SequenceNumber: '1', ShardId: 's' },
      ),
    }));
    const w = writer(3);
    const [a, b, c] = await Promise.allSettled([
      w.putLines(invoiceLines('800000', 4)),
      w.putLines(invoiceLines('800001', 3)),
      w.putLines(invoiceLines('800002', 4)),
    ]);
    expect(a).toMatchObject({ status: 'fulfilled', value: { records: 4 } });
    expect(c).toMatchObject({ status: 'fulfilled', value: { records: 4 } });
    expect(b.status).toBe('rejected');
    const err = (b as PromiseRejectedResult).reason as KinesisWriteError;
    expect(err).toBeInstanceOf(KinesisWriteError);
    expect(err.failedRecords).toBe(3);
    // First call carried all 11; the retries only the 3 failing entries.
    const sizes = kinesis.commandCalls(PutRecordsCommand).map((call) => call.args[0].input.Records?.length);
    expect(sizes).toEqual([11, 3, 3]);
  });

  it('a shared call refused as a whole is retried per request, so only the culprit fails', async () => {
    const validation = Object.assign(new Error('record too large'), { name: 'ValidationException' });
    kinesis.on(PutRecordsCommand).callsFake((input: { Records: PutRecordsRequestEntry[] }) => {
      if (input.Records.some((r) => r.PartitionKey === '900001')) throw validation;
      return {
        FailedRecordCount: 0,
        Records: input.Records.map(() => ({ SequenceNumber: '1', ShardId: 's' })),
      };
    });
    const w = writer();
    const [a, b] = await Promise.allSettled([
      w.putLines(invoiceLines('900000', 2)),
      w.putLines(invoiceLines('900001', 2)),
    ]);
    expect(a).toMatchObject({ status: 'fulfilled', value: { records: 2 } });
    expect(b.status).toBe('rejected');
    const err = (b as PromiseRejectedResult).reason as KinesisWriteError;
    expect(err.failedRecords).toBe(2);
    expect(err.message).toBe(
      '2 of 2 records not written: PutRecords failed: ValidationException: record too large',
    );
    // Not retried: the shared call, then one call per request.
    expect(w.stats()).toMatchObject({ requests: 2, records: 2, calls: 3, sharedCalls: 1 });
  });

  it('splits calls by the 5 MiB limit as well as by 500 records', async () => {
    kinesis.on(PutRecordsCommand).callsFake(slowAck(0));
    // ~20 kB records (the writer does not validate; the API does): 5 MiB holds ~260 of them.
    const big = invoiceLines('950000', 600).map((l) => ({ ...l, description: 'x'.repeat(20_000) }));
    const out = await writer().putLines(big);
    expect(out.records).toBe(600);
    const calls = kinesis.commandCalls(PutRecordsCommand).map((call) => call.args[0].input.Records ?? []);
    expect(calls.length).toBe(3);
    expect(calls.reduce((n, r) => n + r.length, 0)).toBe(600);
    for (const records of calls) {
      const bytes = records.reduce(
        (n, r) => n + (r.Data?.byteLength ?? 0) + (r.PartitionKey?.length ?? 0),
        0,
      );
      expect(bytes).toBeLessThanOrEqual(5 * 1024 * 1024);
    }
  });
});
