import type { KinesisStreamRecord } from 'aws-lambda';

/**
 * The pure half of the poller: Lambda's event shape and its failure policy for stream event source
 * mappings, as documented for Kinesis (partial batch response, bisect on error, retry bound, record age).
 */

/** A record as read from the shard, before it becomes a Lambda event record. */
export interface ShardRecord {
  sequenceNumber: string;
  partitionKey: string;
  data: Buffer;
  /** Epoch milliseconds. */
  arrivedAtMs: number;
}

export interface EventContext {
  shardId: string;
  streamArn: string;
  region: string;
  invokeIdentityArn: string;
}

/** Lambda's synchronous invocation payload limit; an event source mapping never builds a bigger event. */
export const MAX_EVENT_BYTES = 6 * 1024 * 1024;
/** The JSON around one record's data in the event (ARNs, ids, field names), rounded up. */
const RECORD_OVERHEAD_BYTES = 600;

export function toLambdaRecord(record: ShardRecord, ctx: EventContext): KinesisStreamRecord {
  return {
    kinesis: {
      kinesisSchemaVersion: '1.0',
      partitionKey: record.partitionKey,
      sequenceNumber: record.sequenceNumber,
      data: record.data.toString('base64'),
      approximateArrivalTimestamp: record.arrivedAtMs / 1000,
    },
    eventSource: 'aws:kinesis',
    eventVersion: '1.0',
    eventID: `${ctx.shardId}:${record.sequenceNumber}`,
    eventName: 'aws:kinesis:record',
    invokeIdentityArn: ctx.invokeIdentityArn,
    awsRegion: ctx.region,
    eventSourceARN: ctx.streamArn,
  };
}

/** How many of the buffered records (from the front) fit one invocation: count and payload bounds. */
export function fitBatch(
  records: readonly ShardRecord[],
  batchSize: number,
  maxBytes = MAX_EVENT_BYTES,
): number {
  const limit = Math.min(batchSize, records.length);
  let bytes = 0;
  for (let i = 0; i < limit; i++) {
    const record = records[i] as ShardRecord;
    bytes += Math.ceil(record.data.length / 3) * 4 + record.partitionKey.length + RECORD_OVERHEAD_BYTES;
    // One record always goes, even alone over the limit: Kinesis caps records at 1 MiB anyway.
    if (bytes > maxBytes && i > 0) return i;
  }
  return limit;
}

/** Leading records older than the maximum record age (-1 = no limit). */
export function expiredPrefix(
  records: readonly ShardRecord[],
  count: number,
  maxRecordAgeSeconds: number,
  nowMs: number,
): number {
  if (maxRecordAgeSeconds < 0) return 0;
  const cutoff = nowMs - maxRecordAgeSeconds * 1000;
  let n = 0;
  while (n < count && (records[n] as ShardRecord).arrivedAtMs < cutoff) n++;
  return n;
}

export type BatchOutcome =
  | { kind: 'success' }
  /** failedIndex: position of the lowest failed record; 0 when the whole batch failed. */
  | { kind: 'failure'; failedIndex: number; reason: string };

/**
 * Reads a handler's result the way Lambda does with ReportBatchItemFailures: no response, an empty
 * response or an empty/null `batchItemFailures` is complete success; a null, empty or unknown
 * `itemIdentifier` (or a malformed list) fails the whole batch; otherwise the batch failed from the
 * record with the lowest sequence number listed.
 */
export function interpretResponse(response: unknown, batch: readonly ShardRecord[]): BatchOutcome {
  if (response === undefined || response === null || typeof response !== 'object') return { kind: 'success' };
  const failures = (response as { batchItemFailures?: unknown }).batchItemFailures;
  if (failures === undefined || failures === null) return { kind: 'success' };
  if (!Array.isArray(failures)) {
    return { kind: 'failure', failedIndex: 0, reason: 'batchItemFailures is not a list' };
  }
  if (failures.length === 0) return { kind: 'success' };
  const positions = new Map(batch.map((r, i) => [r.sequenceNumber, i]));
  let lowest = Number.POSITIVE_INFINITY;
  for (const failure of failures) {
    const id = (failure as { itemIdentifier?: unknown } | null)?.itemIdentifier;
    const index = typeof id === 'string' && id !== '' ? positions.get(id) : undefined;
    if (index === undefined) {
      return {
        kind: 'failure',
        failedIndex: 0,
        reason: `invalid itemIdentifier ${JSON.stringify(id ?? null)} in batchItemFailures`,
      };
    }
    lowest = Math.min(lowest, index);
  }
  return { kind: 'failure', failedIndex: lowest, reason: 'reported in batchItemFailures' };
}

export interface FailurePolicy {
  bisectOnError: boolean;
  /** -1 = retry until the records expire. */
  maxRetries: number;
}

export type FailureAction =
  /** Retry the remaining records as these consecutive sub-batches (bisect); no backoff. */
  | { action: 'split'; sizes: number[]; attempts: number }
  /** Retry the remaining records as one batch after a backoff. */
  | { action: 'retry'; attempts: number }
  /** Give up on the remaining records: on-failure destination, then move on. */
  | { action: 'discard'; attempts: number };

export interface Decision {
  /** Leading records that succeeded: checkpoint after the last of them. */
  commit: number;
  /** What happens to the rest of the batch (absent when the whole batch succeeded). */
  rest?: FailureAction;
}

/**
 * Lambda's retry policy for one invocation's outcome. `attempts` counts failed invocations that
 * contained the batch's first record. As documented: splitting a batch (bisect) does not count
 * towards the retry quota; with a partial batch response the records before the failed one are
 * checkpointed and the batch is retried from it ("bisected at the returned sequence number").
 */
export function decide(
  outcome: BatchOutcome,
  batchLength: number,
  attempts: number,
  policy: FailurePolicy,
): Decision {
  if (outcome.kind === 'success') return { commit: batchLength };
  const commit = Math.min(outcome.failedIndex, batchLength - 1);
  const rest = batchLength - commit;
  // The head moved: the new first record has only failed in this one invocation so far.
  const previous = commit > 0 ? 0 : attempts;
  if (policy.bisectOnError && commit > 0)
    return { commit, rest: { action: 'split', sizes: [rest], attempts: 0 } };
  if (policy.bisectOnError && rest > 1) {
    const first = Math.ceil(rest / 2);
    return { commit, rest: { action: 'split', sizes: [first, rest - first], attempts: previous } };
  }
  const failed = previous + 1;
  if (policy.maxRetries >= 0 && failed > policy.maxRetries) {
    return { commit, rest: { action: 'discard', attempts: failed } };
  }
  return { commit, rest: { action: 'retry', attempts: failed } };
}
