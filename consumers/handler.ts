import type { KinesisStreamBatchResponse, KinesisStreamEvent, KinesisStreamRecord } from 'aws-lambda';
import { type DeadLetter, type DeadLetterSink, DeadLetterWriteError } from '#adapters/dlq';
import type { ArchiveWriter } from '#adapters/firehose-writer';
import type { Logger } from '#adapters/logger';
import { mapLimit } from '#adapters/retry';
import { errorMessage } from '#core/resilience';
import type { LineSink, LineToStore, StoredLine } from '#core/serving';
import { padSequence } from '#core/serving';
import { planAggregates } from './aggregates.ts';
import { type InvalidLine, processRecord } from './process-line.ts';
import { ProgressSaver } from './progress.ts';

export interface ConsumerDeps {
  sink: LineSink;
  archive: ArchiveWriter;
  dlq: DeadLetterSink;
  logger: Logger;
  /** UpdateItem calls in flight for the aggregates of one batch. */
  aggregateConcurrency?: number;
  /** Observes lines as they become visible (benchmarks, metrics); producer re-sends are not included. */
  onVisible?: (lines: readonly VisibleLine[]) => void;
  /** Spacing of one shard's progress writes (consumers/progress.ts); default PROGRESS_EVERY_MS. */
  progressEveryMs?: number;
}

/** A line the consumer just stored, stamped with its write's acknowledgement time. */
export type VisibleLine = StoredLine & { streamVisibleAt: string };

export type BatchHandler = (event: KinesisStreamEvent) => Promise<KinesisStreamBatchResponse>;

/**
 * The Lambda-shaped batch handler (Kinesis event in, partial batch response out).
 *
 * A record carries many lines of one invoice (core/records.ts). The record is the unit of success:
 * its lines are stored, archived and counted together under its sequence number, and it is
 * reported failed if any of its good lines is not stored. Lines are judged one by one
 * (processRecord): invalid lines go to the dead-letter sink, named with their index and reason,
 * and do not hold back the record's other lines nor the shard.
 *
 * The writes are batched per Kinesis batch, because one DynamoDB call per record would cap the
 * stream far below its target. The semantics are those of Powertools' processPartialResponse for
 * Kinesis, with one addition the stream needs: a record counts as done only if every record
 * before it in the shard is done, so when record k fails, k and everything after it are reported
 * (the event source retries from k anyway) and the aggregates only take contributions from
 * records before k. See docs/RELIABILITY.md and docs/dynamodb.md.
 */
export function createBatchHandler(deps: ConsumerDeps): BatchHandler {
  // Highest sequence number (padded) known fully processed, per shard: saves a read per batch.
  const progress: ShardProgress = {
    known: new Map(),
    saver: new ProgressSaver(deps.sink, deps.logger, deps.progressEveryMs),
  };
  const order = new Map<string, ShardOrder>();
  return async (event) => {
    const byShard = new Map<string, KinesisStreamRecord[]>();
    for (const r of event.Records) {
      const shardId = shardOf(r);
      const list = byShard.get(shardId);
      if (list) list.push(r);
      else byShard.set(shardId, [r]);
    }
    const failures: { itemIdentifier: string }[] = [];
    for (const [shardId, records] of byShard) {
      let lane = order.get(shardId);
      if (!lane) {
        lane = new ShardOrder();
        order.set(shardId, lane);
      }
      const turn = lane.enter(
        padSequence((records[0] as KinesisStreamRecord).kinesis.sequenceNumber),
        padSequence((records.at(-1) as KinesisStreamRecord).kinesis.sequenceNumber),
      );
      failures.push(...(await processShardBatch(deps, progress, shardId, records, turn)));
    }
    return { batchItemFailures: failures };
  };
}

/** Per shard: the highest sequence number known fully processed, and the writer of that mark. */
interface ShardProgress {
  known: Map<string, string>;
  saver: ProgressSaver;
}

/** One invocation's place in its shard's order (see ShardOrder). */
interface Turn {
  /** Resolves when the previous invocation's line writes are acknowledged (or it ended). */
  previousLines: Promise<void>;
  /** Whether the previous invocation succeeded whole, when this one continues it; true otherwise. */
  previousOk: Promise<boolean>;
  linesDone(): void;
  settle(ok: boolean): void;
}

/**
 * Invocations of one shard may overlap: the local poller starts the next batch while the previous
 * one finishes its archive write and aggregate updates (PollerOptions.pipelineDepth; Lambda never
 * overlaps them, so on AWS this orders nothing). What must stay in stream order is ordered here:
 * - line writes: a batch writes after the previous batch's writes are acknowledged, because the
 *   first record to store a line owns it (and the store's per-shard ownership cache assumes one
 *   writer per shard);
 * - aggregates: a batch that continues the previous one applies its contributions only once the
 *   previous one succeeded whole, because the high-water marks are per shard: a later batch's mark
 *   would hide the earlier batch's retried contributions. If the previous batch failed, the
 *   event source retries from its failed record, which covers this batch again: it fails whole.
 * Only a batch invoked while the previous one is still running, starting after its last record,
 * is such a continuation; a retry (starting at or before it) or a batch invoked after the previous
 * one answered does not depend on the previous outcome.
 */
class ShardOrder {
  private lines: Promise<void> = Promise.resolve();
  private outcome: Promise<boolean> = Promise.resolve(true);
  private current = { settled: true };
  private lastSeq = '';

  enter(firstSeq: string, lastSeq: string): Turn {
    const previousLines = this.lines;
    const previousOutcome = this.outcome;
    // Overlapping and later: a continuation. Once the previous invocation has answered, the event
    // source has acted on its outcome (retry, split, discard) before invoking this one.
    const continues = firstSeq > this.lastSeq && !this.current.settled;
    const mine = { settled: false };
    let linesDone!: () => void;
    let resolveOutcome!: (ok: boolean) => void;
    this.lines = new Promise<void>((resolve) => {
      linesDone = resolve;
    });
    this.outcome = new Promise<boolean>((resolve) => {
      resolveOutcome = resolve;
    });
    this.current = mine;
    this.lastSeq = lastSeq;
    return {
      previousLines,
      previousOk: continues ? previousOutcome : previousOutcome.then(() => true),
      linesDone,
      settle: (ok) => {
        mine.settled = true;
        resolveOutcome(ok);
      },
    };
  }
}

/** Lambda's eventID is `<shardId>:<sequenceNumber>`. */
function shardOf(r: KinesisStreamRecord): string {
  const i = r.eventID.lastIndexOf(':');
  return i > 0 ? r.eventID.slice(0, i) : 'shardId-unknown';
}

async function processShardBatch(
  deps: ConsumerDeps,
  progress: ShardProgress,
  shardId: string,
  records: KinesisStreamRecord[],
  turn: Turn,
): Promise<{ itemIdentifier: string }[]> {
  let failures: { itemIdentifier: string }[] = records.map((r) => ({
    itemIdentifier: r.kinesis.sequenceNumber,
  }));
  try {
    await turn.previousLines;
    const written = await writeLines(deps, progress, shardId, records);
    turn.linesDone();
    if (written === 'skip') {
      failures = [];
      return failures;
    }
    // Stream-visible now: the archive write and the aggregates follow, off the next batch's path.
    const archived = startArchive(deps, shardId, written);
    if (!(await turn.previousOk)) {
      await archived;
      return failures;
    }
    failures = await finish(deps, progress, shardId, records, written, archived);
    return failures;
  } finally {
    turn.linesDone();
    turn.settle(failures.length === 0);
  }
}

/** What the line-write phase leaves for the rest: the stored lines, and the first failed record. */
interface Written {
  seqs: string[];
  mark: string;
  firstFailed: number;
  /** Lines stored by records before the first failure, with their acknowledgement times. */
  stored: VisibleLine[];
  fail(i: number): void;
}

/**
 * Decode, dead-letter the poison, write the good lines. Resolves once the line writes are
 * acknowledged (or failed): that is when lines are stream-visible.
 */
async function writeLines(
  deps: ConsumerDeps,
  progress: ShardProgress,
  shardId: string,
  records: KinesisStreamRecord[],
): Promise<Written | 'skip'> {
  const { logger } = deps;
  const seqs = records.map((r) => padSequence(r.kinesis.sequenceNumber));
  let done = progress.known.get(shardId);
  if (done === undefined) {
    try {
      done = (await deps.sink.getShardProgress(shardId)) ?? '';
    } catch (err) {
      logger.error({ shardId, err: errorMessage(err) }, 'shard progress unreadable');
      return { seqs, mark: '', firstFailed: 0, stored: [], fail: () => {} };
    }
    progress.known.set(shardId, done);
  }
  const mark = done;
  // Records at or below the shard's progress were fully processed before (a redelivery): skip them.
  const todo = records.map((_, i) => i).filter((i) => (seqs[i] as string) > mark);
  if (todo.length === 0) return 'skip';

  const written: Written = {
    seqs,
    mark,
    firstFailed: records.length,
    stored: [],
    fail(i) {
      if (i < this.firstFailed) this.firstFailed = i;
    },
  };
  const fail = (i: number) => written.fail(i);

  const outcomes = new Map(
    todo.map((i) => {
      const r = records[i] as KinesisStreamRecord;
      return [i, processRecord(dataOf(r), r.kinesis.partitionKey)];
    }),
  );

  // Poison goes to the on-failure destination now: retrying cannot fix its bytes. An unreadable
  // record goes whole; a readable one with bad lines gets one letter naming each of them, and its
  // good lines are stored below.
  const letters: { i: number; letter: DeadLetter }[] = [];
  for (const [i, o] of outcomes) {
    if (o.ok && o.invalid.length === 0) continue;
    const r = records[i] as KinesisStreamRecord;
    const where = {
      data: dataOf(r),
      shardId,
      sequenceNumber: r.kinesis.sequenceNumber,
      partitionKey: r.kinesis.partitionKey,
      approximateArrivalTimestamp: r.kinesis.approximateArrivalTimestamp,
      eventSourceARN: r.eventSourceARN,
    };
    letters.push({
      i,
      letter: o.ok
        ? { ...where, reason: invalidLinesReason(o.invalid, o.lines.length), invalidLines: o.invalid }
        : { ...where, reason: o.reason },
    });
  }
  const dlqWrite =
    letters.length === 0
      ? Promise.resolve()
      : deps.dlq.send(letters.map((l) => l.letter)).then(
          () =>
            logger.warn(
              { shardId, records: letters.length, reason: letters[0]?.letter.reason },
              'poison records to dlq',
            ),
          (err) => {
            const failedSeqs =
              err instanceof DeadLetterWriteError ? new Set(err.failedSequenceNumbers) : undefined;
            for (const l of letters) if (!failedSeqs || failedSeqs.has(l.letter.sequenceNumber)) fail(l.i);
            logger.error({ shardId, err: errorMessage(err) }, 'dlq write failed');
          },
        );

  // Every line of a record names the record (its sequence number): a record's lines are owned,
  // counted and checkpointed together.
  const good: { i: number; line: LineToStore }[] = [];
  for (const [i, o] of outcomes) {
    if (!o.ok) continue;
    const sequenceNumber = (records[i] as KinesisStreamRecord).kinesis.sequenceNumber;
    for (const line of o.lines) good.push({ i, line: { ...line, shardId, sequenceNumber } });
  }
  let visibleAt: (string | undefined)[] = [];
  let duplicate: boolean[] = [];
  if (good.length > 0) {
    try {
      const out = await deps.sink.putLines(good.map((g) => g.line));
      visibleAt = out.visibleAt;
      duplicate = out.duplicate ?? [];
      if (out.reason) logger.warn({ shardId, reason: out.reason }, 'line writes failed after retries');
    } catch (err) {
      logger.error({ shardId, err: errorMessage(err) }, 'line writes failed');
    }
  }
  await dlqWrite;
  good.forEach((g, k) => {
    if (visibleAt[k] === undefined && duplicate[k] !== true) fail(g.i);
  });

  // Effects that count: only records before the first failure (they will not be redelivered).
  // A duplicate (a line another record owns: a producer re-send) is done, but neither archived nor counted.
  let duplicates = 0;
  good.forEach((g, k) => {
    if (g.i >= written.firstFailed) return;
    const at = visibleAt[k];
    if (at === undefined) duplicates++;
    else written.stored.push({ ...g.line, streamVisibleAt: at });
  });
  if (duplicates > 0) logger.info({ shardId, duplicates }, 'producer re-sends skipped');
  return written;
}

function startArchive(
  deps: ConsumerDeps,
  shardId: string,
  written: Written,
): Promise<{ failed: number[]; reason?: string | undefined }> {
  if (written.stored.length === 0) return Promise.resolve({ failed: [] });
  const archived = written.stored.map((l) => Buffer.from(`${JSON.stringify(l)}\n`));
  return deps.archive.putRecords(archived).catch((err: unknown) => {
    deps.logger.warn({ shardId, err: errorMessage(err) }, 'archive write threw');
    return { failed: archived.map((_, k) => k), reason: errorMessage(err) };
  });
}

/**
 * The aggregates and the archive outcome: a record counts as done only once all of its effects
 * are; the shard progress then moves past the records before the first failure.
 */
async function finish(
  deps: ConsumerDeps,
  progress: ShardProgress,
  shardId: string,
  records: KinesisStreamRecord[],
  written: Written,
  archived: Promise<{ failed: number[]; reason?: string | undefined }>,
): Promise<{ itemIdentifier: string }[]> {
  const { logger } = deps;
  const { seqs, stored, mark } = written;
  const failAllFrom = (k: number) =>
    records.slice(k).map((r) => ({ itemIdentifier: r.kinesis.sequenceNumber }));
  const accountedUpTo = written.firstFailed - 1;
  if (accountedUpTo < 0) {
    await archived;
    return failAllFrom(0);
  }
  const seqIndex = new Map(seqs.map((s, i) => [s, i]));
  const recordOf = (l: VisibleLine) => seqIndex.get(padSequence(l.sequenceNumber)) as number;
  const updates = planAggregates(
    shardId,
    seqs[accountedUpTo] as string,
    stored.map((line) => ({ seq: padSequence(line.sequenceNumber), line })),
  );
  const [archive, aggregates] = await Promise.all([
    archived,
    mapLimit(updates, deps.aggregateConcurrency ?? 16, (u) =>
      deps.sink.applyAggregate(u).catch((err) => ({ status: 'failed' as const, reason: errorMessage(err) })),
    ),
  ]);
  for (const k of archive.failed) written.fail(recordOf(stored[k] as VisibleLine));
  if (archive.failed.length > 0)
    logger.warn({ shardId, failed: archive.failed.length, reason: archive.reason }, 'archive failed');
  aggregates.forEach((outcome, k) => {
    if (outcome.status !== 'failed') return;
    const u = updates[k];
    logger.warn({ shardId, target: u?.target.kind, reason: outcome.reason }, 'aggregate update failed');
    for (const e of u?.entries ?? []) written.fail(seqIndex.get(e.seq) as number);
  });

  const { firstFailed } = written;
  if (firstFailed > 0) {
    const upTo = seqs[firstFailed - 1] as string;
    if (upTo > mark) {
      progress.known.set(shardId, upTo);
      // Not awaited, and spaced out: the mark only lets a redelivery after a restart skip work
      // (without it the redelivery is still idempotent), so it must not add a round trip to every batch.
      progress.saver.save(shardId, upTo);
    }
  }
  deps.onVisible?.(stored.filter((l) => recordOf(l) < firstFailed));
  if (firstFailed < records.length) {
    logger.warn(
      {
        shardId,
        failedFrom: records[firstFailed]?.kinesis.sequenceNumber,
        count: records.length - firstFailed,
      },
      'partial batch failure',
    );
  }
  return failAllFrom(firstFailed);
}

/** One reason for the whole letter; each line's own reason is in the letter's list. */
function invalidLinesReason(invalid: readonly InvalidLine[], good: number): string {
  const named = invalid.map((l) => `line ${l.index}: ${l.reason}`).join('; ');
  return `${invalid.length} of ${invalid.length + good} lines invalid (the others were stored): ${named}`;
}

function dataOf(r: KinesisStreamRecord): Buffer {
  return Buffer.from(r.kinesis.data, 'base64');
}
