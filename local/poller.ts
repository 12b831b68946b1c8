import {
  DescribeStreamSummaryCommand,
  type KinesisClient,
  ListShardsCommand,
  type Shard,
} from '@aws-sdk/client-kinesis';
import type { Logger } from '#adapters/logger';
import { sleep } from '#core/resilience';
import { CheckpointStore } from './poller-checkpoint.ts';
import { type PollerFailure, type ShardStats, ShardWorker, type StreamHandler } from './poller-shard.ts';

export type { FailureCondition, PollerFailure, ShardStats, StreamHandler } from './poller-shard.ts';

/**
 * The local stand-in for a Lambda event source mapping on a Kinesis stream: it runs the same handler
 * Lambda runs, per shard, with Lambda's documented semantics (batch size, batching window,
 * ReportBatchItemFailures, bisect on error, retry bound, record age, on-failure destination) and
 * checkpoints that survive restarts. Delivery is at least once: a crash between the handler's
 * success and the checkpoint redelivers that batch.
 */
export interface PollerOptions {
  kinesis: KinesisClient;
  streamName: string;
  region: string;
  /** The same handler Lambda runs. */
  handler: StreamHandler;
  /** One checkpoint file per shard lives here. */
  checkpointDir: string;
  /** Max records per invocation (Lambda's default is 100). */
  batchSize: number;
  /** MaximumBatchingWindowInSeconds, in ms: 0 = invoke as soon as records are there. */
  batchWindowMs: number;
  /** BisectBatchOnFunctionError. */
  bisectOnError: boolean;
  /** MaximumRetryAttempts: -1 = retry until the records expire. */
  maxRetries: number;
  /** MaximumRecordAgeInSeconds: -1 = no limit. */
  maxRecordAgeSeconds: number;
  /** The on-failure destination: records that exhausted retries or grew too old. Retried until it succeeds. */
  onFailure: (failure: PollerFailure) => Promise<void>;
  /**
   * Invocations in flight per shard: 1 (default) is Lambda's behaviour; 2 starts the next batch
   * while the previous one finishes, checkpoints still in order. Only for a handler that orders
   * its own effects across overlapping batches (consumers/handler.ts does).
   */
  pipelineDepth?: 1 | 2;
  /** How often a caught-up shard is polled again (default 50 ms: sub-second end-to-end latency). */
  idlePollMs?: number;
  /** First backoff after a failed invocation or a throttled read; doubles up to retryMaxMs (default 100). */
  retryBaseMs?: number;
  /** Default 5000. */
  retryMaxMs?: number;
  /** Where a shard without a checkpoint starts (default TRIM_HORIZON: nothing written while down is missed). */
  startingPosition?: 'TRIM_HORIZON' | 'LATEST';
  /** Epoch milliseconds (default Date.now); injected so a test can age records without waiting. */
  clock?: () => number;
  logger: Logger;
}

export interface PollerStats {
  recordsProcessed: number;
  batches: number;
  failedInvocations: number;
  retries: number;
  discarded: number;
  shards: ShardStats[];
}

export interface StreamPoller {
  /** Lets each shard's in-flight batch finish and checkpoint, then stops reading. Idempotent. */
  stop(): Promise<void>;
  stats(): PollerStats;
  /** Resolves once every shard has read to its tip (as of this call) and handled everything it read. */
  idle(): Promise<void>;
  /**
   * A hint that records were just written (the local API calls it after PutRecords): caught-up
   * shards read now instead of after their idle poll. Optional for latency, never for correctness.
   */
  wake(): void;
}

export class PollerConfigError extends Error {
  override name = 'PollerConfigError';
}

export class PollerStoppedError extends Error {
  override name = 'PollerStoppedError';
}

function validate(o: PollerOptions): void {
  const problems: string[] = [];
  const int = (v: number) => Number.isInteger(v);
  if (!int(o.batchSize) || o.batchSize < 1 || o.batchSize > 10_000)
    problems.push('batchSize must be 1..10000');
  if (!int(o.batchWindowMs) || o.batchWindowMs < 0 || o.batchWindowMs > 300_000) {
    problems.push('batchWindowMs must be 0..300000');
  }
  if (!int(o.maxRetries) || o.maxRetries < -1) problems.push('maxRetries must be -1 or more');
  if (!(o.maxRecordAgeSeconds === -1 || o.maxRecordAgeSeconds > 0)) {
    problems.push('maxRecordAgeSeconds must be -1 or positive');
  }
  if (o.idlePollMs !== undefined && !(o.idlePollMs >= 1)) problems.push('idlePollMs must be at least 1');
  if (problems.length > 0) throw new PollerConfigError(`invalid poller options: ${problems.join('; ')}`);
}

async function listShards(kinesis: KinesisClient, streamName: string): Promise<Shard[]> {
  const shards: Shard[] = [];
  let nextToken: string | undefined;
  do {
    const page = await kinesis.send(
      new ListShardsCommand(nextToken ? { NextToken: nextToken } : { StreamName: streamName }),
    );
    shards.push(...(page.Shards ?? []));
    nextToken = page.NextToken;
  } while (nextToken);
  return shards;
}

/**
 * Starts one worker per shard (listed once at start: resharding while running is not followed).
 * Rejects if the stream does not exist or a checkpoint cannot be read.
 */
export async function startStreamPoller(opts: PollerOptions): Promise<StreamPoller> {
  validate(opts);
  const log = opts.logger.child({ component: 'stream-poller', stream: opts.streamName });
  const checkpoints = new CheckpointStore(opts.checkpointDir, opts.streamName);
  await checkpoints.init();
  const summary = await opts.kinesis.send(new DescribeStreamSummaryCommand({ StreamName: opts.streamName }));
  const streamArn =
    summary.StreamDescriptionSummary?.StreamARN ??
    `arn:aws:kinesis:${opts.region}:000000000000:stream/${opts.streamName}`;
  const accountId = streamArn.split(':')[4] || '000000000000';
  const shards = await listShards(opts.kinesis, opts.streamName);

  const workers = shards.map(
    (shard) =>
      new ShardWorker({
        kinesis: opts.kinesis,
        streamName: opts.streamName,
        shardId: shard.ShardId as string,
        event: {
          shardId: shard.ShardId as string,
          streamArn,
          region: opts.region,
          invokeIdentityArn: `arn:aws:iam::${accountId}:role/local-stream-poller`,
        },
        handler: opts.handler,
        onFailure: opts.onFailure,
        checkpoints,
        batchSize: opts.batchSize,
        batchWindowMs: opts.batchWindowMs,
        policy: { bisectOnError: opts.bisectOnError, maxRetries: opts.maxRetries },
        maxRecordAgeSeconds: opts.maxRecordAgeSeconds,
        idlePollMs: opts.idlePollMs ?? 50,
        retryBaseMs: opts.retryBaseMs ?? 100,
        retryMaxMs: opts.retryMaxMs ?? 5000,
        startingPosition: opts.startingPosition ?? 'TRIM_HORIZON',
        pipelineDepth: opts.pipelineDepth ?? 1,
        clock: opts.clock ?? Date.now,
        logger: log,
      }),
  );
  try {
    await Promise.all(workers.map((w) => w.start()));
  } catch (err) {
    await Promise.all(workers.map((w) => w.stop()));
    throw err;
  }
  log.info({ shards: workers.length, streamArn }, 'stream poller started');

  let stopping: Promise<void> | undefined;
  return {
    stop() {
      stopping ??= Promise.all(workers.map((w) => w.stop())).then(() => {
        log.info({ recordsProcessed: total('recordsProcessed') }, 'stream poller stopped');
      });
      return stopping;
    },
    stats() {
      return {
        recordsProcessed: total('recordsProcessed'),
        batches: total('batches'),
        failedInvocations: total('failedInvocations'),
        retries: total('retries'),
        discarded: total('discarded'),
        shards: workers.map((w) => w.stats()),
      };
    },
    wake() {
      for (const w of workers) w.wake();
    },
    async idle() {
      const marks = workers.map((w) => w.readsStarted);
      for (;;) {
        const crashed = workers.find((w) => w.crashed !== undefined);
        if (crashed)
          throw new PollerStoppedError(`shard ${crashed.shardId} crashed`, { cause: crashed.crashed });
        if (stopping) throw new PollerStoppedError('poller stopped before catching up');
        if (workers.every((w, i) => w.caughtUpSince(marks[i] as number))) return;
        await sleep(10);
      }
    },
  };

  function total(
    key: 'recordsProcessed' | 'batches' | 'failedInvocations' | 'retries' | 'discarded',
  ): number {
    return workers.reduce((sum, w) => sum + w.stats()[key], 0);
  }
}
