import {
  type _Record,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type GetShardIteratorCommandInput,
  type KinesisClient,
} from '@aws-sdk/client-kinesis';
import type { KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import type { Logger } from '#adapters/logger';
import { unfiltered } from '#adapters/retry';
import { backoffMs, errorMessage, type RetryPolicy, sleep } from '#core/resilience';
import {
  type BatchOutcome,
  decide,
  type EventContext,
  expiredPrefix,
  type FailurePolicy,
  fitBatch,
  interpretResponse,
  type ShardRecord,
  toLambdaRecord,
} from './poller-batch.ts';
import type { CheckpointStore } from './poller-checkpoint.ts';

export type FailureCondition = 'RetryAttemptsExhausted' | 'RecordAgeExceeded';

/** What the on-failure destination receives: records given up on, with why and where from. */
export interface PollerFailure {
  shardId: string;
  /** Lambda's on-failure condition names, so a DLQ reads the same locally and on AWS. */
  condition: FailureCondition;
  /** Human-readable: the condition plus the handler's last error, if any. */
  reason: string;
  records: Array<{
    sequenceNumber: string;
    partitionKey: string;
    data: Buffer;
    /** Epoch seconds (with fraction), like the Lambda event's field of the same name. */
    approximateArrivalTimestamp: number;
  }>;
  /** Failed invocations that contained these records' first record. */
  attempts: number;
}

// void, not undefined: a plain `async (event) => { ... }` handler must fit, as it does on Lambda.
// biome-ignore lint/suspicious/noConfusingVoidType: see above
export type StreamHandler = (event: KinesisStreamEvent) => Promise<KinesisStreamBatchResponse | void>;

export interface ShardStats {
  shardId: string;
  checkpoint: string | null;
  recordsProcessed: number;
  batches: number;
  failedInvocations: number;
  retries: number;
  splits: number;
  discarded: number;
  buffered: number;
  millisBehindLatest: number;
  handlerMs: number;
}

export interface ShardWorkerOptions {
  kinesis: KinesisClient;
  streamName: string;
  shardId: string;
  event: EventContext;
  handler: StreamHandler;
  onFailure: (failure: PollerFailure) => Promise<void>;
  checkpoints: CheckpointStore;
  batchSize: number;
  batchWindowMs: number;
  policy: FailurePolicy;
  maxRecordAgeSeconds: number;
  idlePollMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  startingPosition: 'TRIM_HORIZON' | 'LATEST';
  /** Invocations in flight per shard (1 = Lambda's behaviour; see PollerOptions.pipelineDepth). */
  pipelineDepth: number;
  /** Epoch milliseconds, for record ages and the batching window. */
  clock: () => number;
  logger: Logger;
}

const THROTTLING = new Set([
  'ProvisionedThroughputExceededException',
  'LimitExceededException',
  'ThrottlingException',
  'KMSThrottlingException',
]);
interface FetchResult {
  records: _Record[];
  next: string | undefined;
  behind: number;
}

/** GetRecords returns at most this many records per call. */
const GET_RECORDS_MAX = 10_000;

/**
 * A condition a loop waits for (data arrived, space freed): wait() resolves on the next notify(), or
 * after the timeout (the batching window). Not a sleep: a stop notifies it like any other change.
 */
class Signal {
  readonly #waiters = new Set<() => void>();

  wait(timeoutMs?: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        if (timer) clearTimeout(timer);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = timeoutMs === undefined ? undefined : setTimeout(done, timeoutMs);
      this.#waiters.add(done);
    });
  }

  notify(): void {
    for (const done of [...this.#waiters]) done();
  }
}

function errorName(err: unknown): string {
  return (err as { name?: string } | null)?.name ?? 'Error';
}

function fromSdk(record: _Record, nowMs: number): ShardRecord {
  const data = record.Data ?? new Uint8Array();
  return {
    sequenceNumber: record.SequenceNumber ?? '',
    partitionKey: record.PartitionKey ?? '',
    // A view, not a copy: the SDK hands over a fresh array per record.
    data: Buffer.from(data.buffer, data.byteOffset, data.byteLength),
    arrivedAtMs: record.ApproximateArrivalTimestamp?.getTime() ?? nowMs,
  };
}

/**
 * One shard: a reader that keeps a read-ahead buffer filled (GetRecords) and a processor that runs
 * one batch at a time through the handler, in order, checkpointing after each. Reading ahead while
 * the handler runs is what Lambda does too; it never changes which records a batch holds.
 */
export class ShardWorker {
  readonly shardId: string;
  readonly #o: ShardWorkerOptions;
  readonly #log: Logger;
  readonly #readAhead: number;
  /**
   * No jitter: one worker per shard means no crowd of clients retrying in step to spread out, and
   * the options promise a first wait of retryBaseMs doubling up to retryMaxMs.
   */
  readonly #retry: Pick<RetryPolicy, 'baseMs' | 'maxMs' | 'jitter'>;

  #buffer: ShardRecord[] = [];
  /** Sizes of the sub-batches still to retry at the head of the buffer (bisect, partial failure). */
  #plan: number[] = [];
  #attempts = 0;
  #checkpoint: string | undefined;
  #lastFetched: string | undefined;
  #iterator: string | undefined;
  #windowStart = 0;
  #ended = false;
  #stopping = false;
  #busy = false;
  #readsStarted = 0;
  #lastEmptyRead = -1;
  #readFailures = 0;
  #crashed: unknown;
  #loops: Promise<unknown> = Promise.resolve();
  /** The invocation started for the batch right after the one in flight (pipelineDepth 2). */
  #ahead: { size: number; outcome: Promise<BatchOutcome> } | undefined;

  readonly #dataArrived = new Signal();
  readonly #spaceFreed = new Signal();
  /** Notified by wake() (records were just written) and by stop(): ends an idle poll wait. */
  readonly #woken = new Signal();
  #wakes = 0;
  /** Aborted by stop(): ends a backoff or an idle poll wait at once. */
  readonly #stop = new AbortController();

  readonly #stats = {
    recordsProcessed: 0,
    batches: 0,
    failedInvocations: 0,
    retries: 0,
    splits: 0,
    discarded: 0,
    millisBehindLatest: 0,
    handlerMs: 0,
  };

  constructor(options: ShardWorkerOptions) {
    this.#o = options;
    this.shardId = options.shardId;
    this.#log = options.logger.child({ shardId: options.shardId });
    // Big reads: on kinesalite each GetRecords has a fixed cost (iterator decryption, stream lookup)
    // that dominates small reads; a full 10,000-record read drains a backlog markedly faster.
    this.#readAhead = Math.max(GET_RECORDS_MAX, 2 * options.batchSize);
    this.#retry = { baseMs: options.retryBaseMs, maxMs: options.retryMaxMs, jitter: 'none' };
  }

  /** Loads the checkpoint and gets the first iterator, so a bad stream fails start-up, not later. */
  async start(): Promise<void> {
    this.#checkpoint = await this.#o.checkpoints.load(this.shardId);
    try {
      this.#iterator = await this.#getIterator();
    } catch (err) {
      if (this.#checkpoint === undefined || errorName(err) !== 'InvalidArgumentException') throw err;
      // The stream was recreated under the same name: the old checkpoint means nothing here.
      this.#log.warn(
        { checkpoint: this.#checkpoint, err },
        'checkpoint not from this stream, reading from start',
      );
      this.#checkpoint = undefined;
      this.#iterator = await this.#getIterator();
    }
    this.#log.debug({ checkpoint: this.#checkpoint ?? null }, 'shard worker started');
    this.#loops = Promise.all([this.#guard(this.#readLoop()), this.#guard(this.#processLoop())]);
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#dataArrived.notify();
    this.#spaceFreed.notify();
    this.#woken.notify();
    this.#stop.abort();
    await this.#loops;
  }

  /**
   * A hint that records were just written to this shard: a caught-up reader reads now instead of
   * after its idle poll. A wake during a read makes the next read follow at once (that read may
   * have missed them). Only latency depends on it: without hints the idle poll still finds them.
   */
  wake(): void {
    this.#wakes++;
    this.#woken.notify();
  }

  get readsStarted(): number {
    return this.#readsStarted;
  }

  get crashed(): unknown {
    return this.#crashed;
  }

  /** True when a read started after `mark` found nothing new and everything read has been handled. */
  caughtUpSince(mark: number): boolean {
    if (this.#plan.length > 0 || this.#buffer.length > 0 || this.#busy || this.#ahead) return false;
    return this.#ended || this.#lastEmptyRead > mark;
  }

  stats(): ShardStats {
    return {
      shardId: this.shardId,
      checkpoint: this.#checkpoint ?? null,
      buffered: this.#buffer.length,
      ...this.#stats,
    };
  }

  async #guard(loop: Promise<void>): Promise<void> {
    try {
      await loop;
    } catch (err) {
      // A bug, not an AWS or handler error (those are handled in the loops): stop this shard loudly.
      this.#crashed = err;
      this.#log.error({ err }, 'shard worker crashed');
      this.#stopping = true;
      this.#dataArrived.notify();
      this.#spaceFreed.notify();
      this.#woken.notify();
      this.#stop.abort();
    }
  }

  async #getIterator(): Promise<string | undefined> {
    const after = this.#lastFetched ?? this.#checkpoint;
    const input: GetShardIteratorCommandInput = {
      StreamName: this.#o.streamName,
      ShardId: this.shardId,
      ...(after
        ? { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: after }
        : { ShardIteratorType: this.#o.startingPosition }),
    };
    const res = await this.#o.kinesis.send(new GetShardIteratorCommand(input));
    return res.ShardIterator;
  }

  async #readLoop(): Promise<void> {
    while (!this.#stopping) {
      // Refill only once half the read-ahead is used, so a backlog is read in big chunks, not batch-sized ones.
      if (this.#buffer.length > this.#readAhead / 2) {
        await this.#spaceFreed.wait();
        continue;
      }
      const readId = ++this.#readsStarted;
      const wakes = this.#wakes;
      let result: FetchResult;
      try {
        this.#iterator ??= await this.#getIterator();
        result = await this.#fetch();
        this.#readFailures = 0;
      } catch (err) {
        const name = errorName(err);
        if (name === 'ExpiredIteratorException') {
          // Iterators live 5 minutes; a long backpressure wait outlives them. Resume where we were.
          this.#log.debug('shard iterator expired, getting a new one');
          this.#iterator = undefined;
          continue;
        }
        this.#readFailures++;
        const throttled = THROTTLING.has(name);
        if (!throttled) this.#iterator = undefined;
        const delay = backoffMs(this.#readFailures, this.#retry);
        this.#log[throttled ? 'debug' : 'warn'](
          { err, delay, failures: this.#readFailures },
          'GetRecords failed',
        );
        await sleep(delay, this.#stop.signal);
        continue;
      }
      const { records, next, behind } = result;
      this.#iterator = next;
      this.#stats.millisBehindLatest = behind;
      if (records.length > 0) {
        const now = this.#o.clock();
        if (this.#buffer.length === 0) this.#windowStart = now;
        for (const record of records) this.#buffer.push(fromSdk(record, now));
        this.#lastFetched = this.#buffer.at(-1)?.sequenceNumber;
        this.#dataArrived.notify();
        continue;
      }
      if (behind === 0) this.#lastEmptyRead = readId;
      if (next === undefined) {
        this.#ended = true;
        this.#log.info('shard closed and fully read');
        this.#dataArrived.notify();
        return;
      }
      // Empty reads can happen behind the tip (gaps in the shard): only wait when caught up, and
      // not when woken since this read started.
      if (behind === 0 && this.#wakes === wakes && !this.#stopping)
        await this.#woken.wait(this.#o.idlePollMs);
    }
  }

  async #fetch(): Promise<FetchResult> {
    const limit = Math.min(GET_RECORDS_MAX, this.#readAhead - this.#buffer.length);
    const res = await this.#o.kinesis.send(
      unfiltered(new GetRecordsCommand({ ShardIterator: this.#iterator, Limit: limit })),
    );
    return { records: res.Records ?? [], next: res.NextShardIterator, behind: res.MillisBehindLatest ?? 0 };
  }

  async #processLoop(): Promise<void> {
    try {
      await this.#runBatches();
    } finally {
      // Stopping: the batch started ahead is not checkpointed; its effects are idempotent on redelivery.
      await this.#dropAhead();
    }
  }

  async #runBatches(): Promise<void> {
    const { batchSize, batchWindowMs } = this.#o;
    while (!this.#stopping) {
      let size = this.#plan.shift() ?? this.#ahead?.size;
      if (size === undefined) {
        if (this.#buffer.length === 0) {
          await this.#dataArrived.wait();
          continue;
        }
        if (batchWindowMs > 0 && this.#buffer.length < batchSize && !this.#ended) {
          const wait = this.#windowStart + batchWindowMs - this.#o.clock();
          if (wait > 0) {
            await this.#dataArrived.wait(wait);
            continue;
          }
        }
        size = fitBatch(this.#buffer, batchSize);
      }

      // Busy until the batch's checkpoint is written: idle() must not see a drained buffer too early.
      this.#busy = true;
      try {
        if (!(await this.#step(size))) return;
      } finally {
        this.#busy = false;
      }
    }
  }

  /** Runs one batch of `size` records from the buffer's head; false when stopped mid-way. */
  async #step(size: number): Promise<boolean> {
    const { policy } = this.#o;
    const expired = expiredPrefix(this.#buffer, size, this.#o.maxRecordAgeSeconds, this.#o.clock());
    if (expired > 0) {
      await this.#dropAhead();
      const reason = `RecordAgeExceeded: older than ${this.#o.maxRecordAgeSeconds} s`;
      if (!(await this.#discard(expired, 'RecordAgeExceeded', reason, this.#attempts))) return false;
      if (size > expired) this.#plan.unshift(size - expired);
      this.#attempts = 0;
      return true;
    }

    const ahead = this.#ahead?.size === size ? this.#ahead.outcome : undefined;
    this.#ahead = undefined;
    const running = ahead ?? this.#invoke(this.#buffer.slice(0, size));
    this.#startAhead(size);
    const outcome = await this.#whileRunning(running, size);
    const decision = decide(outcome, size, this.#attempts, policy);
    if (decision.rest) {
      // The batch after a failed record is retried with it: what was started ahead is moot.
      await this.#dropAhead();
    }
    if (decision.commit > 0) {
      this.#stats.recordsProcessed += decision.commit;
      await this.#commit(decision.commit);
    }
    const rest = decision.rest;
    if (!rest || outcome.kind === 'success') {
      this.#attempts = 0;
      return true;
    }
    this.#stats.failedInvocations++;
    const remaining = size - decision.commit;
    this.#log.warn(
      {
        reason: outcome.reason,
        records: size,
        committed: decision.commit,
        action: rest.action,
        attempts: rest.attempts,
      },
      'batch failed',
    );
    this.#attempts = rest.attempts;
    if (rest.action === 'split') {
      this.#stats.splits++;
      this.#plan.unshift(...rest.sizes);
    } else if (rest.action === 'retry') {
      this.#stats.retries++;
      this.#plan.unshift(remaining);
      await sleep(backoffMs(rest.attempts, this.#retry), this.#stop.signal);
    } else {
      const reason = `RetryAttemptsExhausted: ${outcome.reason}`;
      if (!(await this.#discard(remaining, 'RetryAttemptsExhausted', reason, rest.attempts))) return false;
      this.#attempts = 0;
    }
    return true;
  }

  /**
   * With pipelineDepth 2, invokes the handler for the batch after the `headSize` records in flight
   * at once, so its line writes can start while the head batch finishes its archive write and
   * aggregates (the handler orders what must stay ordered: consumers/handler.ts ShardOrder).
   * Checkpoints stay in order: it is committed only after the head batch succeeded whole. Only in
   * the normal flow: never while retrying, splitting, or waiting out a batching window.
   */
  #startAhead(headSize: number): void {
    const { batchSize, batchWindowMs } = this.#o;
    if (this.#o.pipelineDepth < 2 || this.#ahead || this.#stopping) return;
    if (this.#plan.length > 0 || this.#attempts > 0) return;
    const rest = this.#buffer.slice(headSize);
    if (rest.length === 0) return;
    if (batchWindowMs > 0 && rest.length < batchSize && !this.#ended) return;
    const size = fitBatch(rest, batchSize);
    if (expiredPrefix(rest, size, this.#o.maxRecordAgeSeconds, this.#o.clock()) > 0) return;
    this.#ahead = { size, outcome: this.#invoke(rest.slice(0, size)) };
  }

  /**
   * Waits for the head batch's outcome; with pipelineDepth 2, records that arrive meanwhile get
   * their batch started ahead at once. At a steady trickle that is the common case: a line would
   * otherwise wait for the head batch's archive write, aggregates and checkpoint before its own
   * line write even began.
   */
  async #whileRunning(running: Promise<BatchOutcome>, headSize: number): Promise<BatchOutcome> {
    if (this.#o.pipelineDepth < 2) return running;
    let done = false;
    const outcome = running.finally(() => {
      done = true;
      this.#dataArrived.notify();
    });
    while (!done && !this.#ahead && !this.#stopping) {
      await this.#dataArrived.wait();
      if (!done) this.#startAhead(headSize);
    }
    return outcome;
  }

  async #dropAhead(): Promise<void> {
    const ahead = this.#ahead;
    this.#ahead = undefined;
    if (ahead) await ahead.outcome;
  }

  async #invoke(batch: ShardRecord[]): Promise<BatchOutcome> {
    const event: KinesisStreamEvent = { Records: batch.map((r) => toLambdaRecord(r, this.#o.event)) };
    const started = performance.now();
    try {
      return interpretResponse(await this.#o.handler(event), batch);
    } catch (err) {
      return { kind: 'failure', failedIndex: 0, reason: errorMessage(err) };
    } finally {
      this.#stats.batches++;
      this.#stats.handlerMs += performance.now() - started;
    }
  }

  /** Drops the first `count` buffered records as done and checkpoints after the last of them. */
  async #commit(count: number): Promise<void> {
    const last = this.#buffer[count - 1] as ShardRecord;
    this.#buffer.splice(0, count);
    this.#windowStart = this.#o.clock();
    this.#spaceFreed.notify();
    try {
      await this.#o.checkpoints.save(this.shardId, last.sequenceNumber);
      this.#checkpoint = last.sequenceNumber;
    } catch (err) {
      // Not fatal: the next checkpoint supersedes it, and a restart before then only redelivers.
      this.#log.error({ err, sequenceNumber: last.sequenceNumber }, 'checkpoint not saved');
    }
  }

  /** Hands records to the on-failure destination (retrying it: nothing is dropped), then moves on. */
  async #discard(
    count: number,
    condition: FailureCondition,
    reason: string,
    attempts: number,
  ): Promise<boolean> {
    const records = this.#buffer.slice(0, count);
    const failure: PollerFailure = {
      shardId: this.shardId,
      condition,
      reason,
      attempts,
      records: records.map((r) => ({
        sequenceNumber: r.sequenceNumber,
        partitionKey: r.partitionKey,
        data: r.data,
        approximateArrivalTimestamp: r.arrivedAtMs / 1000,
      })),
    };
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#o.onFailure(failure);
        break;
      } catch (err) {
        if (this.#stopping) return false;
        const delay = backoffMs(attempt, this.#retry);
        this.#log.error({ err, attempt, delay }, 'on-failure destination failed, retrying');
        await sleep(delay, this.#stop.signal);
        if (this.#stopping) return false;
      }
    }
    this.#log.warn(
      {
        condition,
        reason,
        records: count,
        first: records[0]?.sequenceNumber,
        last: records.at(-1)?.sequenceNumber,
      },
      'records sent to on-failure destination',
    );
    this.#stats.discarded += count;
    await this.#commit(count);
    return true;
  }
}
