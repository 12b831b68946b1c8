import type { KinesisStreamEvent } from 'aws-lambda';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { DeadLetter, DeadLetterSink } from '#adapters/dlq';
import type { ArchiveResult, ArchiveWriter } from '#adapters/firehose-writer';
import { createBatchHandler } from '#consumers/handler';
import { encodeLine, encodeLines, encodeWithSchema } from '#core/avro';
import type { AcceptedLine } from '#core/invoice-line';
import {
  type AggregateOutcome,
  type AggregateUpdate,
  aboveMark,
  decideOwnership,
  type InvoiceOwnership,
  type LineSink,
  type LineToStore,
  type PutLinesOutcome,
  padSequence,
  sumDeltas,
} from '#core/serving';
import { kinesisEvent } from '#test/helpers/kinesis-events';
import { acceptedLine } from '#test/helpers/lines';

/**
 * The batch handler with many lines per record, against in-memory ports that follow the store's
 * contract with core's own rules (ownership, high-water marks): what a record's lines do together.
 */

const SHARD = 'shardId-000000000001';

class MemorySink implements LineSink {
  readonly owners = new Map<string, string>();
  readonly aggregates = new Map<string, { lines: number; quantity: number; invoices: number }>();
  readonly hwm = new Map<string, string>();
  progress: string | undefined;
  /** Line writes of these invoices fail (as after the retry bound). */
  failing = new Set<string>();
  calls: LineToStore[][] = [];
  /** What happened, in order (`put <invoice>`, `put done <invoice>`, `aggregate <country> <seq>`). */
  readonly log: string[] = [];
  /** Awaited before a putLines answers (a slow write). */
  beforeAnswer: (lines: readonly LineToStore[]) => Promise<void> = async () => {};

  async putLines(lines: readonly LineToStore[]): Promise<PutLinesOutcome> {
    this.calls.push([...lines]);
    this.log.push(`put ${lines[0]?.invoiceNo}`);
    await this.beforeAnswer(lines);
    this.log.push(`put done ${lines[0]?.invoiceNo}`);
    const decisions = decideOwnership(lines, (l) => this.ownership(l.invoiceNo));
    const at = new Date().toISOString();
    const visibleAt = lines.map((l, k) => {
      if (decisions[k] === 'duplicate' || this.failing.has(l.invoiceNo)) return undefined;
      this.owners.set(`${l.invoiceNo}#${l.lineNo}`, `${l.shardId}/${l.sequenceNumber}`);
      return at;
    });
    const failed = lines.some((l, k) => decisions[k] === 'write' && this.failing.has(l.invoiceNo));
    return {
      visibleAt,
      duplicate: decisions.map((d) => d === 'duplicate'),
      ...(failed ? { reason: 'injected' } : {}),
    };
  }

  private ownership(invoiceNo: string): InvoiceOwnership {
    const owners = new Map<number, string>();
    for (const [key, owner] of this.owners) {
      const [no, lineNo] = key.split('#');
      if (no === invoiceNo) owners.set(Number(lineNo), owner);
    }
    return { header: undefined, owners };
  }

  async applyAggregate(u: AggregateUpdate): Promise<AggregateOutcome> {
    this.log.push(`aggregate ${u.batchMaxSeq.replace(/^0+/, '')}`);
    const key = `${u.target.line.country}|${u.shardId}`;
    const fresh = u.entries.filter((e) => aboveMark(e.seq, this.hwm.get(key)));
    if (fresh.length === 0) return { status: 'already-applied' };
    const d = sumDeltas(fresh.map((e) => e.delta));
    const a = this.aggregates.get(u.target.line.country) ?? { lines: 0, quantity: 0, invoices: 0 };
    this.aggregates.set(u.target.line.country, {
      lines: a.lines + d.lines,
      quantity: a.quantity + d.quantity,
      invoices: a.invoices + d.invoices,
    });
    this.hwm.set(key, u.batchMaxSeq);
    return { status: 'applied' };
  }

  async getShardProgress(): Promise<string | undefined> {
    return this.progress;
  }

  async setShardProgress(_shardId: string, paddedSeq: string): Promise<void> {
    this.progress = paddedSeq;
  }
}

class MemoryArchive implements ArchiveWriter {
  readonly lines: Record<string, unknown>[] = [];
  /** Awaited before each write (a slow archive). */
  gate: Promise<void> = Promise.resolve();
  async putRecords(records: readonly Uint8Array[]): Promise<ArchiveResult> {
    await this.gate;
    for (const r of records) this.lines.push(JSON.parse(Buffer.from(r).toString()));
    return { failed: [] };
  }
}

class MemoryDlq implements DeadLetterSink {
  readonly letters: DeadLetter[] = [];
  async send(letters: readonly DeadLetter[]): Promise<void> {
    this.letters.push(...letters);
  }
}

function setup(sink = new MemorySink()) {
  const archive = new MemoryArchive();
  const dlq = new MemoryDlq();
  const handler = createBatchHandler({ sink, archive, dlq, logger: pino({ level: 'silent' }) });
  return { sink, archive, dlq, handler };
}

const lines = (invoiceNo: string, from: number, to: number, over: Partial<AcceptedLine> = {}) =>
  Array.from({ length: to - from + 1 }, (_, i) =>
    acceptedLine({ invoiceNo, lineNo: from + i, quantity: from + i, unitPrice: '1.000', ...over }),
  );

const event = (records: { key: string; data: Buffer }[], firstSeq = 100): KinesisStreamEvent =>
  kinesisEvent(
    records.map((r) => ({ partitionKey: r.key, data: r.data })),
    firstSeq,
    SHARD,
  );
const rec = (ls: AcceptedLine[]) => ({ key: ls[0]?.invoiceNo ?? '', data: encodeLines(ls) });

describe('batch handler, many lines per record', () => {
  it("stores, archives and counts every line of a record under the record's sequence number", async () => {
    const { sink, archive, handler } = setup();
    const res = await handler(event([rec(lines('536365', 1, 40)), rec(lines('536366', 1, 3))]));
    expect(res.batchItemFailures).toEqual([]);
    expect(sink.calls.flat()).toHaveLength(43);
    expect(
      new Set(
        sink.calls
          .flat()
          .filter((l) => l.invoiceNo === '536365')
          .map((l) => l.sequenceNumber),
      ),
    ).toEqual(new Set(['100']));
    expect(archive.lines).toHaveLength(43);
    expect(archive.lines[0]).toMatchObject({ invoiceNo: '536365', lineNo: 1, sequenceNumber: '100' });
    expect(sink.aggregates.get('United Kingdom')).toEqual({ lines: 43, quantity: 820 + 6, invoices: 2 });
    expect(sink.progress).toBe(padSequence('101'));
  });

  it('reads single-line v1 and v2 records (the previous version) beside multi-line ones', async () => {
    const { sink, handler } = setup();
    const [one, two, ...rest] = lines('536365', 1, 5);
    const res = await handler(
      event([
        { key: '536365', data: encodeWithSchema('v1', one) },
        { key: '536365', data: encodeLine(two as AcceptedLine) },
        rec(rest),
      ]),
    );
    expect(res.batchItemFailures).toEqual([]);
    expect(sink.calls.flat().map((l) => [l.lineNo, l.sequenceNumber])).toEqual([
      [1, '100'],
      [2, '101'],
      [3, '102'],
      [4, '102'],
      [5, '102'],
    ]);
    expect(sink.aggregates.get('United Kingdom')).toMatchObject({ lines: 5, invoices: 1 });
  });

  it('dead-letters each invalid line with its index and reason; the good lines and later records proceed', async () => {
    const { sink, dlq, archive, handler } = setup();
    const mixed = lines('536365', 1, 5);
    mixed[1] = { ...(mixed[1] as AcceptedLine), stockCode: '' };
    mixed[3] = { ...(mixed[3] as AcceptedLine), invoiceNo: '536999' };
    const res = await handler(event([rec(mixed), rec(lines('536366', 1, 2))]));
    expect(res.batchItemFailures).toEqual([]);
    expect(dlq.letters).toHaveLength(1);
    const letter = dlq.letters[0] as DeadLetter;
    expect(letter).toMatchObject({ shardId: SHARD, sequenceNumber: '100', partitionKey: '536365' });
    expect(letter.invalidLines?.map((l) => [l.index, l.reason])).toEqual([
      [1, expect.stringMatching(/^invalid: stockCode/)],
      [3, 'invalid: invoiceNo 536999 in a record keyed by invoice 536365'],
    ]);
    expect(letter.invalidLines?.[0]?.line).toMatchObject({ invoiceNo: '536365', lineNo: 2, stockCode: '' });
    expect(letter.reason).toMatch(
      /^2 of 5 lines invalid \(the others were stored\): line 1: invalid: stockCode/,
    );
    expect(Buffer.from(letter.data).equals(encodeLines(mixed))).toBe(true);
    const stored = sink.calls.flat().map((l) => `${l.invoiceNo}#${l.lineNo}`);
    expect(stored).toEqual(['536365#1', '536365#3', '536365#5', '536366#1', '536366#2']);
    expect(archive.lines).toHaveLength(5);
    expect(sink.aggregates.get('United Kingdom')).toMatchObject({ lines: 5, quantity: 1 + 3 + 5 + 1 + 2 });
  });

  it('dead-letters an undecodable record whole and processes the records after it', async () => {
    const { sink, dlq, handler } = setup();
    const res = await handler(
      event([
        rec(lines('536365', 1, 2)),
        { key: '536366', data: Buffer.from('poison') },
        rec(lines('536367', 1, 2)),
      ]),
    );
    expect(res.batchItemFailures).toEqual([]);
    expect(dlq.letters.map((l) => [l.sequenceNumber, l.invalidLines])).toEqual([['101', undefined]]);
    expect(dlq.letters[0]?.reason).toMatch(/^undecodable: /);
    expect(sink.calls.flat().map((l) => l.invoiceNo)).toEqual(['536365', '536365', '536367', '536367']);
  });

  it('fails a record as a whole when one of its lines is not written, and every record after it', async () => {
    const sink = new MemorySink();
    sink.failing.add('536366');
    const { archive, handler } = setup(sink);
    const res = await handler(
      event([rec(lines('536365', 1, 3)), rec(lines('536366', 1, 3)), rec(lines('536367', 1, 3))]),
    );
    expect(res.batchItemFailures).toEqual([{ itemIdentifier: '101' }, { itemIdentifier: '102' }]);
    // Effects only of the record before the failure: the rest come back together.
    expect(archive.lines.map((l) => l.invoiceNo)).toEqual(['536365', '536365', '536365']);
    expect(sink.aggregates.get('United Kingdom')).toMatchObject({ lines: 3, invoices: 1 });
    expect(sink.progress).toBe(padSequence('100'));
  });

  it('counts each line once when an invoice comes back grouped differently (a re-send split in two)', async () => {
    const { sink, archive, handler } = setup();
    // First as one request (one record of lines 1-4), then re-sent as two requests of 1-2 and 3-5.
    expect((await handler(event([rec(lines('536365', 1, 4))], 100))).batchItemFailures).toEqual([]);
    const res = await handler(event([rec(lines('536365', 1, 2)), rec(lines('536365', 3, 5))], 200));
    expect(res.batchItemFailures).toEqual([]);
    expect(sink.aggregates.get('United Kingdom')).toEqual({ lines: 5, quantity: 15, invoices: 1 });
    expect(sink.owners.get('536365#4')).toBe(`${SHARD}/100`);
    expect(sink.owners.get('536365#5')).toBe(`${SHARD}/201`);
    // Only what was new is archived: each line once.
    expect(archive.lines.map((l) => l.lineNo)).toEqual([1, 2, 3, 4, 5]);
  });

  it('counts nothing twice when a fresh consumer (no progress) gets the same records again', async () => {
    const sink = new MemorySink();
    const batch = event([rec(lines('536365', 1, 30)), rec(lines('536366', 1, 2))]);
    expect((await setup(sink).handler(batch)).batchItemFailures).toEqual([]);
    const after = structuredClone(sink.aggregates);
    sink.progress = undefined;
    expect((await setup(sink).handler(batch)).batchItemFailures).toEqual([]);
    expect(sink.aggregates).toEqual(after);
    expect(after.get('United Kingdom')).toMatchObject({ lines: 32, invoices: 2 });
  });

  describe('overlapping invocations of one shard (the local poller with pipelineDepth 2)', () => {
    const gate = () => {
      let open!: () => void;
      const opened = new Promise<void>((resolve) => {
        open = resolve;
      });
      return { opened, open };
    };
    const until = async (what: () => boolean) => {
      while (!what()) await new Promise((r) => setImmediate(r));
    };

    it("writes the next batch's lines while the previous one archives, counts it only after", async () => {
      const { sink, archive, handler } = setup();
      const firstWrite = gate();
      const slowArchive = gate();
      sink.beforeAnswer = (lines) =>
        lines[0]?.invoiceNo === '536365' ? firstWrite.opened : Promise.resolve();
      archive.gate = slowArchive.opened;
      const first = handler(event([rec(lines('536365', 1, 3))], 100));
      const second = handler(event([rec(lines('536366', 1, 2))], 200));
      await until(() => sink.log.length > 0);
      firstWrite.open();
      // The first batch now waits for its archive; the second batch's line writes go meanwhile.
      await until(() => sink.log.includes('put done 536366'));
      const puts = () => sink.log.filter((l) => l.startsWith('put'));
      expect(puts()).toEqual(['put 536365', 'put done 536365', 'put 536366', 'put done 536366']);
      // The second batch's aggregates wait for the first batch to succeed whole (archive included).
      expect(sink.log).not.toContain('aggregate 200');
      slowArchive.open();
      expect((await first).batchItemFailures).toEqual([]);
      expect((await second).batchItemFailures).toEqual([]);
      expect(sink.log.filter((l) => l.startsWith('aggregate'))).toEqual(['aggregate 100', 'aggregate 200']);
      expect(sink.aggregates.get('United Kingdom')).toMatchObject({ lines: 5, invoices: 2 });
      // The first mark is written at once; the next one waits out the interval (consumers/progress.ts).
      expect(sink.progress).toBe(padSequence('100'));
    });

    it('fails the continuing batch whole when the previous one failed; the retry counts everything once', async () => {
      const sink = new MemorySink();
      sink.failing.add('536365');
      const { handler } = setup(sink);
      const batch1 = event([rec(lines('536365', 1, 3))], 100);
      const batch2 = event([rec(lines('536366', 1, 2))], 200);
      const [r1, r2] = await Promise.all([handler(batch1), handler(batch2)]);
      expect(r1.batchItemFailures).toEqual([{ itemIdentifier: '100' }]);
      expect(r2.batchItemFailures).toEqual([{ itemIdentifier: '200' }]);
      expect(sink.log.filter((l) => l.startsWith('aggregate'))).toEqual([]);
      // The event source retries from the failed record: both records again, in one batch.
      sink.failing.clear();
      const retry = event([rec(lines('536365', 1, 3)), rec(lines('536366', 1, 2))], 100);
      retry.Records[1] = batch2.Records[0] as (typeof retry.Records)[number];
      expect((await handler(retry)).batchItemFailures).toEqual([]);
      expect(sink.aggregates.get('United Kingdom')).toMatchObject({ lines: 5, invoices: 2 });
    });

    it('does not tie a batch invoked after the previous one answered to its outcome (the source acted on it)', async () => {
      const sink = new MemorySink();
      sink.failing.add('536365');
      const { handler } = setup(sink);
      expect((await handler(event([rec(lines('536365', 1, 3))], 100))).batchItemFailures).toHaveLength(1);
      // E.g. the source gave up on record 100 (on-failure destination) and moved on.
      expect((await handler(event([rec(lines('536366', 1, 2))], 200))).batchItemFailures).toEqual([]);
      expect(sink.aggregates.get('United Kingdom')).toMatchObject({ lines: 2, invoices: 1 });
    });
  });
});
