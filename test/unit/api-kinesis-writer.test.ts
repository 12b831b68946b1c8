import { KinesisClient, PutRecordsCommand, type PutRecordsRequestEntry } from '@aws-sdk/client-kinesis';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { KinesisLineWriter, KinesisWriteError } from '#adapters/kinesis-writer';
import { decodeLine } from '#core/avro';
import type { AcceptedLine } from '#core/invoice-line';

const kinesis = mockClient(KinesisClient);
const noWait = { baseMs: 1, maxMs: 1, sleep: async () => {} };

const lines = (n: number): AcceptedLine[] =>
  Array.from({ length: n }, (_, i) => ({
    invoiceNo: String(500000 + Math.floor(i / 10)),
    lineNo: (i % 10) + 1,
    stockCode: 'X',
    description: null,
    quantity: 1,
    invoiceDate: '2010-12-01T08:26:00',
    unitPrice: '1.000',
    customerId: null,
    country: 'France',
    producedAt: '2024-01-01T00:00:00.000Z',
    acceptedAt: '2024-01-01T00:00:00.000Z',
  }));

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
    await writer().putLines(lines(3));
    const sent = kinesis.commandCalls(PutRecordsCommand).map((c) => c.args[0].input.Records?.length);
    expect(sent).toEqual([3, 2]);
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
