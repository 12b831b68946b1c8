import { describe, expect, it } from 'vitest';
import { KinesisWriteError, type LineWriter, type PutLinesResult } from '#adapters/kinesis-writer';
import { withWrittenHook } from '#api/deps';
import type { AcceptedLine } from '#core/invoice-line';
import { acceptedLine } from '../helpers/lines.ts';

/** A writer answering as KinesisLineWriter does: every line on the stream, or a KinesisWriteError. */
function fakeWriter(fail: boolean): LineWriter & { calls: AcceptedLine[][] } {
  const calls: AcceptedLine[][] = [];
  return {
    calls,
    async putLines(lines): Promise<PutLinesResult> {
      calls.push([...lines]);
      if (fail) throw new KinesisWriteError('1 of 1 records not written', 1);
      return { lines: lines.length, records: 1, calls: 1 };
    },
  };
}

describe('withWrittenHook (npm start wakes the stream poller with it)', () => {
  it('tells once a request is on the stream, after the writer answered, and passes the answer on', async () => {
    const writer = fakeWriter(false);
    const told: number[] = [];
    const hooked = withWrittenHook(writer, () => told.push(writer.calls.length));
    const lines = [acceptedLine({ lineNo: 1 }), acceptedLine({ lineNo: 2 })];

    const result = await hooked.putLines(lines);

    expect(result).toEqual({ lines: 2, records: 1, calls: 1 });
    expect(writer.calls).toEqual([lines]);
    expect(told).toEqual([1]);
  });

  it('tells nothing when the write failed, and the failure reaches the caller', async () => {
    const writer = fakeWriter(true);
    let told = 0;
    const hooked = withWrittenHook(writer, () => told++);

    await expect(hooked.putLines([acceptedLine()])).rejects.toBeInstanceOf(KinesisWriteError);
    expect(told).toBe(0);
  });
});
