import { type FirehoseClient, PutRecordBatchCommand } from '@aws-sdk/client-firehose';
import { type RetryPolicy, retryPartial, retryPolicy } from '#core/resilience';
import type { Logger } from './logger.ts';
import { isRetryable, mapLimit, unfiltered } from './retry.ts';

/** The port the consumer archives through: which records are still failing after retries, never a silent drop. */
export interface ArchiveWriter {
  putRecords(records: readonly Uint8Array[]): Promise<ArchiveResult>;
}

export interface ArchiveResult {
  /** Indexes (into the input) of records that still failed after the retry bound. */
  failed: number[];
  reason?: string;
}

// PutRecordBatch limits: 500 records and 4 MiB per call.
const MAX_RECORDS_PER_CALL = 500;
const MAX_BYTES_PER_CALL = 4 * 1024 * 1024;

export interface FirehoseArchiveWriterOptions {
  client: FirehoseClient;
  deliveryStreamName: string;
  retry?: Partial<RetryPolicy>;
  concurrency?: number;
  logger?: Logger;
}

export class FirehoseArchiveWriter implements ArchiveWriter {
  private readonly policy: RetryPolicy;

  constructor(private readonly options: FirehoseArchiveWriterOptions) {
    this.policy = retryPolicy(options.retry);
  }

  async putRecords(records: readonly Uint8Array[]): Promise<ArchiveResult> {
    const chunks: number[][] = [];
    let current: number[] = [];
    let bytes = 0;
    records.forEach((r, i) => {
      if (
        current.length === MAX_RECORDS_PER_CALL ||
        (current.length > 0 && bytes + r.byteLength > MAX_BYTES_PER_CALL)
      ) {
        chunks.push(current);
        current = [];
        bytes = 0;
      }
      current.push(i);
      bytes += r.byteLength;
    });
    if (current.length > 0) chunks.push(current);
    const outcomes = await mapLimit(chunks, this.options.concurrency ?? 4, (chunk) =>
      this.putChunk(records, chunk),
    );
    const failed = outcomes.flatMap((o) => o.failed);
    const reason = outcomes.find((o) => o.reason)?.reason;
    return reason ? { failed, reason } : { failed };
  }

  private async putChunk(records: readonly Uint8Array[], chunk: number[]): Promise<ArchiveResult> {
    const outcome = await retryPartial(
      chunk,
      async (pending) => {
        const out = await this.options.client.send(
          unfiltered(
            new PutRecordBatchCommand({
              DeliveryStreamName: this.options.deliveryStreamName,
              Records: pending.map((i) => ({ Data: records[i] })),
            }),
          ),
        );
        if (!out.FailedPutCount) return { failed: [] };
        const responses = out.RequestResponses ?? [];
        const failed = pending.filter((_, k) => responses[k]?.ErrorCode);
        const reason = responses.find((r) => r.ErrorCode)?.ErrorCode ?? 'unknown';
        // A count of failures without saying which: all of them go again.
        return { failed: failed.length > 0 ? failed : pending, reason };
      },
      this.policy,
      {
        retryable: isRetryable,
        onRetry: ({ retry, pending, reason }) =>
          this.options.logger?.debug({ pending, attempt: retry - 1, reason }, 'PutRecordBatch retry'),
      },
    );
    if (outcome.failed.length === 0) return { failed: [] };
    return { failed: outcome.failed, reason: `PutRecordBatch: ${outcome.reason}` };
  }
}
