import { describe, expect, it } from 'vitest';
import {
  FirehoseApiError,
  MAX_BATCH_BYTES,
  MAX_RECORD_BYTES,
  parseBody,
  parseDescribe,
  parseList,
  parsePutRecord,
  parsePutRecordBatch,
} from '#local/firehose-protocol';

const b64 = (b: Buffer) => b.toString('base64');
const batch = (datas: Buffer[], name = 's') => ({
  DeliveryStreamName: name,
  Records: datas.map((d) => ({ Data: b64(d) })),
});

function errorOf(fn: () => unknown): FirehoseApiError {
  try {
    fn();
  } catch (err) {
    if (err instanceof FirehoseApiError) return err;
    throw err;
  }
  throw new Error('expected a FirehoseApiError');
}

describe('parsePutRecordBatch', () => {
  it('decodes records and sums their bytes', () => {
    const input = parsePutRecordBatch(batch([Buffer.from('a\n'), Buffer.from('bc\n')]));

    expect(input.deliveryStreamName).toBe('s');
    expect(input.records.map(String)).toEqual(['a\n', 'bc\n']);
    expect(input.bytes).toBe(5);
  });

  it('accepts exactly 500 records and exactly 1,024,000 bytes in a record', () => {
    expect(
      parsePutRecordBatch(batch(Array.from({ length: 500 }, () => Buffer.from('x')))).records,
    ).toHaveLength(500);
    expect(parsePutRecordBatch(batch([Buffer.alloc(MAX_RECORD_BYTES)])).bytes).toBe(MAX_RECORD_BYTES);
  });

  it('rejects 501 records with a ValidationException, before looking at sizes', () => {
    const err = errorOf(() =>
      parsePutRecordBatch(batch(Array.from({ length: 501 }, () => Buffer.alloc(10_000)))),
    );

    expect(err.type).toBe('ValidationException');
    expect(err.status).toBe(400);
    expect(err.message).toMatch(
      /^1 validation error detected: .* at 'records' failed to satisfy constraint: /,
    );
    expect(err.message).toMatch(/Member must have length less than or equal to 500$/);
  });

  it('rejects each record over 1,024,000 bytes with one ValidationException naming them all', () => {
    const big = Buffer.alloc(MAX_RECORD_BYTES + 1);

    const err = errorOf(() => parsePutRecordBatch(batch([Buffer.from('ok'), big, big])));

    expect(err.type).toBe('ValidationException');
    expect(err.message).toMatch(/^2 validation errors detected: /);
    expect(err.message).toContain(
      "Value 'java.nio.HeapByteBuffer[pos=0 lim=1024001 cap=1024001]' at 'records.2.member.data' failed to " +
        'satisfy constraint: Member must have length less than or equal to 1024000',
    );
    expect(err.message).toContain("at 'records.3.member.data'");
  });

  it('rejects more than 4 MiB in total with InvalidArgumentException, and accepts exactly 4 MiB', () => {
    const atLimit = [...Array.from({ length: 4 }, () => Buffer.alloc(1_000_000)), Buffer.alloc(194_304)];

    expect(parsePutRecordBatch(batch(atLimit)).bytes).toBe(MAX_BATCH_BYTES);
    const err = errorOf(() => parsePutRecordBatch(batch([...atLimit, Buffer.from('!')])));
    expect(err.type).toBe('InvalidArgumentException');
    expect(err.message).toBe('Records size exceeds 4 MB limit');
  });

  it('rejects missing members and an empty list as validation errors', () => {
    expect(errorOf(() => parsePutRecordBatch({ Records: [{ Data: 'eA==' }] })).message).toBe(
      "1 validation error detected: Value null at 'deliveryStreamName' failed to satisfy constraint: " +
        'Member must not be null',
    );
    expect(errorOf(() => parsePutRecordBatch({ DeliveryStreamName: 's' })).type).toBe('ValidationException');
    expect(errorOf(() => parsePutRecordBatch({ DeliveryStreamName: 's', Records: [] })).message).toMatch(
      /greater than or equal to 1/,
    );
    expect(errorOf(() => parsePutRecordBatch({ DeliveryStreamName: 's', Records: [{}] })).message).toMatch(
      /Value null at 'records\.1\.member\.data'/,
    );
    expect(
      errorOf(() => parsePutRecordBatch({ DeliveryStreamName: 'bad name!', Records: [{ Data: 'eA==' }] }))
        .type,
    ).toBe('ValidationException');
  });

  it('rejects a non-string Data as a SerializationException', () => {
    expect(errorOf(() => parsePutRecordBatch({ DeliveryStreamName: 's', Records: [{ Data: 5 }] })).type).toBe(
      'SerializationException',
    );
  });
});

describe('parsePutRecord', () => {
  it('decodes one record and validates its size at record.data', () => {
    expect(
      parsePutRecord({ DeliveryStreamName: 's', Record: { Data: b64(Buffer.from('hi\n')) } }).records.map(
        String,
      ),
    ).toEqual(['hi\n']);
    const err = errorOf(() =>
      parsePutRecord({ DeliveryStreamName: 's', Record: { Data: b64(Buffer.alloc(MAX_RECORD_BYTES + 1)) } }),
    );
    expect(err.type).toBe('ValidationException');
    expect(err.message).toMatch(/at 'record\.data' failed to satisfy constraint/);
    expect(errorOf(() => parsePutRecord({ DeliveryStreamName: 's' })).message).toMatch(
      /Value null at 'record'/,
    );
  });
});

describe('describe, list and bodies', () => {
  it('reads the stream name and list options', () => {
    expect(parseDescribe({ DeliveryStreamName: 'abc' })).toBe('abc');
    expect(parseList({})).toEqual({ limit: 10, exclusiveStart: undefined });
    expect(parseList({ Limit: 3, ExclusiveStartDeliveryStreamName: 'a' })).toEqual({
      limit: 3,
      exclusiveStart: 'a',
    });
    expect(errorOf(() => parseList({ Limit: 0 })).type).toBe('ValidationException');
  });

  it('parses JSON objects and answers SerializationException otherwise', () => {
    expect(parseBody('')).toEqual({});
    expect(parseBody('{"A":1}')).toEqual({ A: 1 });
    expect(errorOf(() => parseBody('{nope')).type).toBe('SerializationException');
    expect(errorOf(() => parseBody('[1]')).type).toBe('SerializationException');
  });
});
