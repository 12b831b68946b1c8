import { FirehoseClient, PutRecordBatchCommand } from '@aws-sdk/client-firehose';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { FirehoseArchiveWriter } from '#adapters/firehose-writer';

const firehose = mockClient(FirehoseClient);
const noWait = { baseMs: 1, maxMs: 1, sleep: async () => {} };

const writer = (maxAttempts = 4) =>
  new FirehoseArchiveWriter({
    client: new FirehoseClient({ region: 'us-east-1' }),
    deliveryStreamName: 'archive',
    retry: { ...noWait, maxAttempts },
  });
const records = (n: number) => Array.from({ length: n }, (_, i) => Buffer.from(`record-${i}\n`));
const sent = () =>
  firehose.commandCalls(PutRecordBatchCommand).map((c) =>
    (c.args[0].input.Records ?? []).map((r) =>
      Buffer.from(r.Data as Uint8Array)
        .toString()
        .trim(),
    ),
  );

beforeEach(() => firehose.reset());

describe('FirehoseArchiveWriter', () => {
  it('sends again only the records a partial failure names', async () => {
    let call = 0;
    firehose.on(PutRecordBatchCommand).callsFake((input: { Records: unknown[] }) => {
      call++;
      return {
        FailedPutCount: call === 1 ? 2 : 0,
        RequestResponses: input.Records.map((_, i) =>
          call === 1 && i !== 1 ? { ErrorCode: 'ServiceUnavailableException' } : { RecordId: `r${i}` },
        ),
      };
    });
    expect(await writer().putRecords(records(3))).toEqual({ failed: [] });
    expect(sent()).toEqual([
      ['record-0', 'record-1', 'record-2'],
      ['record-0', 'record-2'],
    ]);
  });

  it('reports the input indexes still failing after the bound, with the reason', async () => {
    firehose.on(PutRecordBatchCommand).callsFake((input: { Records: unknown[] }) => ({
      FailedPutCount: 1,
      RequestResponses: input.Records.map((_, i) =>
        i === input.Records.length - 1 ? { ErrorCode: 'ServiceUnavailableException' } : { RecordId: 'ok' },
      ),
    }));
    const out = await writer(3).putRecords(records(4));
    expect(out).toEqual({ failed: [3], reason: 'PutRecordBatch: ServiceUnavailableException' });
    expect(sent()).toEqual([['record-0', 'record-1', 'record-2', 'record-3'], ['record-3'], ['record-3']]);
  });

  it('resends everything when a failure count comes without per-record answers', async () => {
    let call = 0;
    firehose
      .on(PutRecordBatchCommand)
      .callsFake(() => (++call === 1 ? { FailedPutCount: 1 } : { FailedPutCount: 0 }));
    expect(await writer().putRecords(records(2))).toEqual({ failed: [] });
    expect(sent()).toEqual([
      ['record-0', 'record-1'],
      ['record-0', 'record-1'],
    ]);
  });

  it('retries a thrown throttling error, and gives up at once on one that is not retryable', async () => {
    const throttled = Object.assign(new Error('slow down'), { name: 'ThrottlingException' });
    const invalid = Object.assign(new Error('bad stream'), { name: 'InvalidArgumentException' });
    firehose.on(PutRecordBatchCommand).rejectsOnce(throttled).rejects(invalid);
    const out = await writer().putRecords(records(2));
    expect(out).toEqual({ failed: [0, 1], reason: 'PutRecordBatch: InvalidArgumentException: bad stream' });
    expect(firehose.commandCalls(PutRecordBatchCommand)).toHaveLength(2);
  });

  it('keeps each chunk within 500 records, and reports failed indexes into the whole input', async () => {
    firehose.on(PutRecordBatchCommand).callsFake((input: { Records: Array<{ Data: Uint8Array }> }) => {
      const answers = input.Records.map((r) =>
        Buffer.from(r.Data).toString() === 'record-700\n'
          ? { ErrorCode: 'InternalFailure' }
          : { RecordId: 'ok' },
      );
      return { FailedPutCount: answers.filter((a) => 'ErrorCode' in a).length, RequestResponses: answers };
    });
    const out = await writer(2).putRecords(records(1_001));
    expect(out.failed).toEqual([700]);
    expect(sent().map((c) => c.length)).toEqual([500, 500, 1, 1]);
  });
});
