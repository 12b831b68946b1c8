import { type KinesisClient, PutRecordsCommand, type PutRecordsRequestEntry } from '@aws-sdk/client-kinesis';
import type { AcceptedLine } from '#core/invoice-line';
import { putPayloadUnits, toRecords } from '#core/records';
import {
  errorMessage,
  type PartialResult,
  type RetryPolicy,
  retryPartial,
  retryPolicy,
} from '#core/resilience';
import type { Logger } from './logger.ts';
import { isRetryable, unfiltered } from './retry.ts';

/** The port the API writes accepted lines through. Resolves only when every line is on the stream. */
export interface LineWriter {
  putLines(lines: readonly AcceptedLine[]): Promise<PutLinesResult>;
}

export interface PutLinesResult {
  /** Lines written: all of the request's (the promise rejects otherwise). */
  lines: number;
  /** Stream records that carried them (core/records.ts groups a request's lines by invoice). */
  records: number;
  /** PutRecords calls that carried this request's lines, retries included (a measure of throttling). */
  calls: number;
}

export class KinesisWriteError extends Error {
  constructor(
    message: string,
    readonly failedRecords: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'KinesisWriteError';
  }
}

// PutRecords limits: 500 records and 5 MiB per call (data plus partition keys).
const MAX_RECORDS_PER_CALL = 500;
const MAX_BYTES_PER_CALL = 5 * 1024 * 1024;

export interface KinesisLineWriterOptions {
  client: KinesisClient;
  streamName: string;
  retry?: Partial<RetryPolicy>;
  /** PutRecords calls in flight at once, over all requests. Default 4. */
  concurrency?: number;
  /**
   * How long lines wait for others to share their PutRecords call while calls are in flight
   * (default 2 ms). With no call in flight they go at once; a full call (500 records) never waits.
   */
  lingerMs?: number;
  logger?: Logger;
}

export interface KinesisLineWriterStats {
  requests: number;
  /** Lines written (of requests that succeeded). */
  lines: number;
  /** Stream records written (of requests that succeeded). */
  records: number;
  /**
   * Kinesis PUT payload units of those records, as AWS bills them: per record, 25 KiB of Data plus
   * partition key, rounded up. Retries are not billed again here (AWS bills successful records).
   */
  putPayloadUnits: number;
  /** PutRecords calls, retries included. */
  calls: number;
  /** Calls that carried lines of more than one request. */
  sharedCalls: number;
}

/** One putLines call waiting for its lines. */
interface Ticket {
  remaining: number;
  failed: number;
  calls: number;
  cause?: unknown;
  resolve(result: PutLinesResult): void;
  reject(err: KinesisWriteError): void;
  total: number;
  lines: number;
  units: number;
}

interface Pending {
  entry: PutRecordsRequestEntry;
  bytes: number;
  ticket: Ticket;
  settled?: boolean;
}

/**
 * Groups a request's lines into records (core/records.ts: the lines of one invoice, up to 24 KiB),
 * Avro-encodes them and writes them with PutRecords, partition key = invoiceNo.
 *
 * Group commit: lines of concurrent requests share PutRecords calls (up to 500 records / 5 MiB). On
 * kinesalite a PutRecords costs the same whether it carries 10 records or 500 (it locks the stream,
 * writes one LevelDB batch); on AWS fewer, fuller calls mean fewer throttled calls. Each request
 * still resolves only when every one of ITS lines is acknowledged, and fails only for its own lines.
 */
export class KinesisLineWriter implements LineWriter {
  private readonly policy: RetryPolicy;
  private readonly concurrency: number;
  private readonly lingerMs: number;
  private queue: Pending[] = [];
  private queuedBytes = 0;
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private readonly counters: KinesisLineWriterStats = {
    requests: 0,
    lines: 0,
    records: 0,
    putPayloadUnits: 0,
    calls: 0,
    sharedCalls: 0,
  };

  constructor(private readonly options: KinesisLineWriterOptions) {
    this.policy = retryPolicy(options.retry);
    this.concurrency = Math.max(1, options.concurrency ?? 4);
    this.lingerMs = options.lingerMs ?? 2;
  }

  putLines(lines: readonly AcceptedLine[]): Promise<PutLinesResult> {
    if (lines.length === 0) return Promise.resolve({ lines: 0, records: 0, calls: 0 });
    let records: ReturnType<typeof toRecords>;
    try {
      records = toRecords(lines);
    } catch (err) {
      // InvalidRecordError for a line outside the schema: refused before anything is queued.
      return Promise.reject(err);
    }
    return new Promise<PutLinesResult>((resolve, reject) => {
      const ticket: Ticket = {
        remaining: records.length,
        total: records.length,
        lines: lines.length,
        units: 0,
        failed: 0,
        calls: 0,
        resolve,
        reject,
      };
      this.counters.requests++;
      for (const record of records) {
        const entry = { Data: record.data, PartitionKey: record.partitionKey };
        const bytes = entry.Data.byteLength + Buffer.byteLength(entry.PartitionKey);
        ticket.units += putPayloadUnits(entry.Data.byteLength, entry.PartitionKey);
        this.queue.push({ entry, bytes, ticket });
        this.queuedBytes += bytes;
      }
      this.schedule();
    });
  }

  stats(): KinesisLineWriterStats {
    return { ...this.counters };
  }

  /** Sends what is due: full calls at once, the rest at once when idle, else after the linger. */
  private schedule(): void {
    while (this.inFlight < this.concurrency && this.isFull()) this.send(this.take());
    if (this.queue.length === 0 || this.inFlight >= this.concurrency) return;
    if (this.inFlight === 0) {
      // Idle: go in this turn of the event loop, after the requests already parsed in it joined.
      if (this.immediate === undefined) {
        this.immediate = setImmediate(() => {
          this.immediate = undefined;
          this.flushPartial();
        });
      }
    } else if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.flushPartial();
      }, this.lingerMs);
    }
  }

  private flushPartial(): void {
    if (this.queue.length > 0 && this.inFlight < this.concurrency) this.send(this.take());
    this.schedule();
  }

  private isFull(): boolean {
    return this.queue.length >= MAX_RECORDS_PER_CALL || this.queuedBytes >= MAX_BYTES_PER_CALL;
  }

  /** The next call's worth of queued entries, in arrival order. */
  private take(): Pending[] {
    let n = 0;
    let bytes = 0;
    while (n < this.queue.length && n < MAX_RECORDS_PER_CALL) {
      const b = (this.queue[n] as Pending).bytes;
      if (n > 0 && bytes + b > MAX_BYTES_PER_CALL) break;
      bytes += b;
      n++;
    }
    this.queuedBytes -= bytes;
    return this.queue.splice(0, n);
  }

  private send(batch: Pending[]): void {
    this.inFlight++;
    this.putBatch(batch, true)
      .catch((err: unknown) => {
        // putBatch settles every entry itself; this only guards against a bug leaving tickets hanging.
        for (const p of batch) this.settle(p, err);
      })
      .finally(() => {
        this.inFlight--;
        this.schedule();
      });
  }

  /**
   * One PutRecords call and its retries; after a partial failure only the failed entries go again.
   * A call refused as a whole for a non-retryable reason (a validation error) cannot say whose lines
   * caused it: when it carried several requests, each request's lines go again on their own, so a
   * request fails for its own lines only.
   */
  private async putBatch(batch: Pending[], mayIsolate: boolean): Promise<void> {
    const outcome = await retryPartial(
      batch,
      (pending, attempt) => this.putOnce(pending, attempt),
      this.policy,
      {
        retryable: isRetryable,
      },
    );
    if (outcome.failed.length === 0) return;
    const refused = outcome.cause !== undefined && !isRetryable(outcome.cause);
    if (refused) {
      const tickets = new Set(outcome.failed.map((p) => p.ticket));
      if (mayIsolate && tickets.size > 1) {
        await Promise.all(
          [...tickets].map((t) =>
            this.putBatch(
              outcome.failed.filter((p) => p.ticket === t),
              false,
            ),
          ),
        );
        return;
      }
    }
    const failure = refused
      ? new KinesisWriteError(`PutRecords failed: ${outcome.reason}`, outcome.failed.length, {
          cause: outcome.cause,
        })
      : new KinesisWriteError(
          `records still failing after ${outcome.attempts} attempts (${outcome.reason})`,
          outcome.failed.length,
          { cause: outcome.cause },
        );
    for (const p of outcome.failed) this.settle(p, failure);
  }

  /** One PutRecords call: settles the entries it wrote, answers those to send again; throws what it threw. */
  private async putOnce(pending: readonly Pending[], attempt: number): Promise<PartialResult<Pending>> {
    const tickets = new Set(pending.map((p) => p.ticket));
    for (const t of tickets) t.calls++;
    this.counters.calls++;
    if (tickets.size > 1) this.counters.sharedCalls++;
    const out = await this.options.client.send(
      unfiltered(
        new PutRecordsCommand({ StreamName: this.options.streamName, Records: pending.map((p) => p.entry) }),
      ),
    );
    const results = out.Records ?? [];
    if (!out.FailedRecordCount) {
      for (const p of pending) this.settle(p);
      return { failed: [] };
    }
    // A response without per-record results cannot say which failed: resend everything still pending.
    const failed =
      results.length === pending.length ? pending.filter((_, i) => results[i]?.ErrorCode) : [...pending];
    const failedSet = new Set(failed);
    for (const p of pending) if (!failedSet.has(p)) this.settle(p);
    const reason = results.find((r) => r.ErrorCode)?.ErrorCode ?? 'unknown';
    this.options.logger?.debug(
      { failed: failed.length, of: pending.length, attempt, reason },
      'PutRecords partial failure',
    );
    return { failed, reason };
  }

  /** Marks one entry done (or failed); its request answers once all of its entries are. */
  private settle(p: Pending, err?: unknown): void {
    if (p.settled) return;
    p.settled = true;
    const t = p.ticket;
    t.remaining--;
    if (err !== undefined) {
      t.failed++;
      t.cause = err;
    }
    if (t.remaining > 0) return;
    if (t.failed === 0) {
      this.counters.records += t.total;
      this.counters.lines += t.lines;
      this.counters.putPayloadUnits += t.units;
      t.resolve({ lines: t.lines, records: t.total, calls: t.calls });
      return;
    }
    const reason = errorMessage(t.cause, { name: false });
    t.reject(
      new KinesisWriteError(`${t.failed} of ${t.total} records not written: ${reason}`, t.failed, {
        cause: t.cause,
      }),
    );
  }
}
