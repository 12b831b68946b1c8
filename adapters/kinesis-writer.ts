import { type KinesisClient, PutRecordsCommand, type PutRecordsRequestEntry } from '@aws-sdk/client-kinesis';
import { encodeLine } from '#core/avro';
import type { AcceptedLine } from '#core/invoice-line';
import type { Logger } from './logger.ts';
import {
  errorMessage,
  isRetryable,
  mapLimit,
  pause,
  type RetryPolicy,
  retryPolicy,
  unfiltered,
} from './retry.ts';

/** The port the API writes accepted lines through. Resolves only when every line is on the stream. */
export interface LineWriter {
  putLines(lines: readonly AcceptedLine[]): Promise<PutLinesResult>;
}

export interface PutLinesResult {
  records: number;
  /** PutRecords calls made, retries included (a measure of throttling). */
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
  /** PutRecords calls in flight per request. */
  concurrency?: number;
  logger?: Logger;
}

/** Avro-encodes lines and writes them with PutRecords, partition key = invoiceNo. */
export class KinesisLineWriter implements LineWriter {
  private readonly policy: RetryPolicy;
  private readonly concurrency: number;

  constructor(private readonly options: KinesisLineWriterOptions) {
    this.policy = retryPolicy(options.retry);
    this.concurrency = options.concurrency ?? 4;
  }

  async putLines(lines: readonly AcceptedLine[]): Promise<PutLinesResult> {
    const entries = lines.map((line) => ({ Data: encodeLine(line), PartitionKey: line.invoiceNo }));
    const chunks = chunkEntries(entries);
    const calls = await mapLimit(chunks, this.concurrency, (chunk) => this.putChunk(chunk));
    return { records: entries.length, calls: calls.reduce((a, b) => a + b, 0) };
  }

  /** Sends one chunk; after a partial failure only the failed entries go again. Returns the call count. */
  private async putChunk(chunk: PutRecordsRequestEntry[]): Promise<number> {
    let pending = chunk;
    let lastReason = '';
    for (let attempt = 0; attempt < this.policy.maxAttempts; attempt++) {
      if (attempt > 0) await pause(attempt, this.policy);
      let results: { ErrorCode?: string; ErrorMessage?: string }[];
      try {
        const out = await this.options.client.send(
          unfiltered(new PutRecordsCommand({ StreamName: this.options.streamName, Records: pending })),
        );
        results = out.Records ?? [];
        if (!out.FailedRecordCount) return attempt + 1;
      } catch (err) {
        if (!isRetryable(err)) {
          throw new KinesisWriteError(`PutRecords failed: ${errorMessage(err)}`, pending.length, {
            cause: err,
          });
        }
        lastReason = errorMessage(err);
        continue;
      }
      const failed = pending.filter((_, i) => results[i]?.ErrorCode);
      lastReason = results.find((r) => r.ErrorCode)?.ErrorCode ?? 'unknown';
      this.options.logger?.debug(
        { failed: failed.length, of: pending.length, attempt, reason: lastReason },
        'PutRecords partial failure',
      );
      // A response without per-record results cannot say which failed: resend everything still pending.
      pending = failed.length > 0 ? failed : pending;
    }
    throw new KinesisWriteError(
      `${pending.length} records still failing after ${this.policy.maxAttempts} attempts (${lastReason})`,
      pending.length,
    );
  }
}

function chunkEntries(entries: PutRecordsRequestEntry[]): PutRecordsRequestEntry[][] {
  const chunks: PutRecordsRequestEntry[][] = [];
  let current: PutRecordsRequestEntry[] = [];
  let bytes = 0;
  for (const e of entries) {
    const size = (e.Data?.byteLength ?? 0) + Buffer.byteLength(e.PartitionKey ?? '');
    if (
      current.length === MAX_RECORDS_PER_CALL ||
      (current.length > 0 && bytes + size > MAX_BYTES_PER_CALL)
    ) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(e);
    bytes += size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}
