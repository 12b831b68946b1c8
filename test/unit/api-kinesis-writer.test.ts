import { KinesisClient, PutRecordsCommand, type PutRecordsRequestEntry } from '@aws-sdk/client-kinesis';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { KinesisLineWriter, KinesisWriteError } from '#adapters/kinesis-writer';
import { decodeLines } from '#core/avro';
import type { AcceptedLine } from '#core/invoice-line';
import { acceptedLine } from '../helpers/lines.ts';

const kinesis = mockClient(KinesisClient);
const noWait = { baseMs: 1, maxMs: 1, sleep: async () => {} };

/** One line each of `n` invoices numbered from `first`: one stream record per line. */
const lines = (n: number, first = 500000): AcceptedLine[] =>
  Array.from({ length: n }, (_, i) => acceptedLine({ invoiceNo: String(first + i), lineNo: 1 }));
const okAll = (input: { Records: unknown[] }) => ({
  FailedRecordCount: 0,
  Records: input.Records.map(() => ({ SequenceNumber: '1', ShardId: 's' })),
});

const writer = (maxAttempts = 5) =>
  new KinesisLineWriter({
    client: new KinesisClient({ region: 'us-east-1' }),
    streamName: 's',
    retry: { ...noWait, maxAttempts },
  });

beforeEach(() => kinesis.reset());

describe('KinesisLineWriter', () => {
  it('writes in chunks of 500 records, Avro-encoded, partition key invoiceNo', async () => {
    kinesis.on(PutRecordsCommand).callsFake(okAll);
    const out = await writer().putLines(lines(1001));
    expect(out).toEqual({ lines: 1001, records: 1001, calls: 3 });
    const sizes = kinesis.commandCalls(PutRecordsCommand).map((c) => c.args[0].input.Records?.length);
    expect(sizes).toEqual([500, 500, 1]);
    const first = kinesis.commandCalls(PutRecordsCommand)[0]?.args[0].input.Records?.[0];
    expect(first?.PartitionKey).toBe('500000');
    expect(decodeLines(first?.Data as Uint8Array)).toMatchObject([{ invoiceNo: '500000', lineNo: 1 }]);
  });

  it("puts one invoice's lines of a request in one record, in order, partition key = invoiceNo", async () => {
    kinesis.on(PutRecordsCommand).callsFake(okAll);
    const of = (invoiceNo: string, n: number) =>
      Array.from({ length: n }, (_, i) =>
        acceptedLine({ invoiceNo, lineNo: i + 1, stockCode: `S${i}`, unitPrice: '2.550' }),
      );
    const [a, b, c] = [of('536365', 10), of('536366', 8), of('C536367', 7)];
    // Interleaved in the request: grouping keeps each invoice's own order.
    const request = Array.from({ length: 10 }, (_, i) => [a[i], b[i], c[i]])
      .flat()
      .filter((l) => l !== undefined);
    const w = writer();
    expect(await w.putLines(request)).toEqual({ lines: 25, records: 3, calls: 1 });
    const sent = kinesis.commandCalls(PutRecordsCommand)[0]?.args[0].input.Records ?? [];
    expect(sent.map((r) => r.PartitionKey)).toEqual(['536365', '536366', 'C536367']);
    expect(sent.map((r) => decodeLines(r.Data as Uint8Array))).toEqual([a, b, c]);
    expect(w.stats()).toMatchObject({ requests: 1, lines: 25, records: 3, putPayloadUnits: 3 });
  });

  it('counts PUT payload units per record (25 KiB of Data plus partition key, rounded up)', async () => {
    kinesis.on(PutRecordsCommand).callsFake(okAll);
    const w = writer();
    // The real file's largest invoice: several records of at most 24 KiB, one unit each.
    const big = Array.from({ length: 1114 }, (_, i) =>
      acceptedLine({ invoiceNo: '573585', lineNo: i + 1, stockCode: `T${i}`, unitPrice: '2.550' }),
    );
    const out = await w.putLines(big);
    expect(out.lines).toBe(1114);
    expect(out.records).toBeGreaterThan(1);
    const sent = kinesis.commandCalls(PutRecordsCommand).flatMap((c) => c.args[0].input.Records ?? []);
    expect(sent).toHaveLength(out.records);
    for (const r of sent) expect(r.Data?.byteLength).toBeLessThanOrEqual(24 * 1024);
    expect(sent.flatMap((r) => decodeLines(r.Data as Uint8Array))).toEqual(big);
    expect(w.stats()).toMatchObject({ lines: 1114, records: out.records, putPayloadUnits: out.records });
    // A record over 25 KiB (the writer does not validate; the API does) is billed two units.
    await w.putLines([acceptedLine({ invoiceNo: '600000', description: 'x'.repeat(26_000) })]);
    expect(w.stats().putPayloadUnits).toBe(out.records + 2);
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
    expect(await w.putLines(lines(3))).toEqual({ lines: 3, records: 3, calls: 2 });
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
  const partitionKeys = (call: number) =>
    kinesis.commandCalls(PutRecordsCommand)[call]?.args[0].input.Records?.map((r) => r.PartitionKey) ?? [];
  // Answers on a later turn, as a real call does; no test depends on how much later.
  const ack = async (input: { Records: PutRecordsRequestEntry[] }) => ({
    FailedRecordCount: 0,
    Records: input.Records.map(() => ({ SequenceNumber: '1', ShardId: 's' })),
  });

  it('coalesces concurrent requests into shared calls and answers each with its own count', async () => {
    kinesis.on(PutRecordsCommand).callsFake(ack);
    const w = writer();
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, r) => w.putLines(lines(10, 600000 + 10 * r))),
    );
    expect(results.every((x) => x.records === 10 && x.lines === 10)).toBe(true);
    const sizes = kinesis.commandCalls(PutRecordsCommand).map((c) => c.args[0].input.Records?.length ?? 0);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(600);
    // 60 requests of 10 records, all arriving in one turn: one full call of 500 and one of 100.
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
      return ack(input);
    });
    const w = new KinesisLineWriter({
      client: new KinesisClient({ region: 'us-east-1' }),
      streamName: 's',
      concurrency: 1,
      lingerMs: 1,
    });
    const first = w.putLines(lines(5, 700000));
    await firstCall;
    const later = [w.putLines(lines(5, 700100)), w.putLines(lines(5, 700200))];
    ackFirst();
    await Promise.all([first, ...later]);
    expect(partitionKeys(0)).toEqual(lines(5, 700000).map((l) => l.invoiceNo));
    // With one call in flight at most, the two later requests share the second call.
    expect(partitionKeys(1)).toEqual([...lines(5, 700100), ...lines(5, 700200)].map((l) => l.invoiceNo));
  });

  it('a request fails only for its own lines when they keep failing in a shared call', async () => {
    const culprit = (r: PutRecordsRequestEntry) => r.PartitionKey?.startsWith('8001') === true;
    kinesis.on(PutRecordsCommand).callsFake((input: { Records: PutRecordsRequestEntry[] }) => ({
      FailedRecordCount: input.Records.filter(culprit).length,
      Records: input.Records.map((r) =>
        culprit(r)
          ? { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: 'slow down' }
          : { SequenceNumber: '1', ShardId: 's' },
      ),
    }));
    const w = writer(3);
    const [a, b, c] = await Promise.allSettled([
      w.putLines(lines(4, 800000)),
      w.putLines(lines(3, 800100)),
      w.putLines(lines(4, 800200)),
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
      if (input.Records.some((r) => r.PartitionKey?.startsWith('9001'))) throw validation;
      return {
        FailedRecordCount: 0,
        Records: input.Records.map(() => ({ SequenceNumber: '1', ShardId: 's' })),
      };
    });
    const w = writer();
    const [a, b] = await Promise.allSettled([w.putLines(lines(2, 900000)), w.putLines(lines(2, 900100))]);
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
    kinesis.on(PutRecordsCommand).callsFake(ack);
    // ~20 kB records (the writer does not validate; the API does): 5 MiB holds ~260 of them.
    const big = lines(600, 950000).map((l) => ({ ...l, description: 'x'.repeat(20_000) }));
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
