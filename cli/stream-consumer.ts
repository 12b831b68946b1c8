import fs from 'node:fs/promises';
import path from 'node:path';
import type { Clients } from '#adapters/clients';
import type { Config } from '#adapters/config';
import { S3DeadLetterSink } from '#adapters/dlq';
import type { Logger } from '#adapters/logger';
import { createConsumerDeps } from '#consumers/deps';
import { createBatchHandler } from '#consumers/handler';
import type { WriteBilling } from '#core/serving';
import { type StreamPoller, startStreamPoller } from '#local/poller';

/** The stream consumer as `npm start` runs it, wherever it runs (its own process or the caller's). */
export interface StreamConsumer {
  poller: StreamPoller;
  /** The consumer store's DynamoDB write request units so far (undefined if the sink does not count). */
  billing(): WriteBilling | undefined;
}

/**
 * How often a caught-up shard is polled again. Lines the local API accepts do not wait for it: the
 * API wakes the poller once they are on the stream (StreamPoller.wake, cli/pipeline.ts), so this
 * only bounds the wait of records written by anything else (the AWS CLI, a test). Each empty
 * GetRecords costs kinesalite and the consumer CPU the stream path needs under load
 * (docs/benchmarks.md, issue 14 (c)).
 */
export const IDLE_POLL_MS = 50;

/**
 * Batches in flight per shard. 2 takes the archive write (the local Firehose's WAL fsync), the
 * aggregate updates and the checkpoint of one batch off the path of the next batch's line writes
 * (issue 14 item 4); measured in docs/benchmarks.md (issue 14, (c)).
 */
export const PIPELINE_DEPTH = 2;

/** The Lambda batch handler behind a poller with event source mapping semantics (local/poller.ts). */
export async function startStreamConsumer(
  config: Config,
  clients: Pick<Clients, 'kinesis' | 'dynamodb' | 'firehose' | 's3'>,
  logger: Logger,
): Promise<StreamConsumer> {
  const consumerDeps = createConsumerDeps(config, clients, logger);
  const handler = createBatchHandler(consumerDeps);
  const dlq = new S3DeadLetterSink({ client: clients.s3, bucket: config.names.bucket });
  const checkpointDir = path.join(config.dataDir, 'checkpoints');
  await fs.mkdir(checkpointDir, { recursive: true });
  const poller = await startStreamPoller({
    kinesis: clients.kinesis,
    streamName: config.names.stream,
    region: config.region,
    handler,
    checkpointDir,
    ...config.poller,
    idlePollMs: IDLE_POLL_MS,
    // The next batch's line writes start while this one archives, counts and checkpoints; the
    // handler keeps in order what must be (consumers/handler.ts ShardOrder), checkpoints stay in order.
    pipelineDepth: PIPELINE_DEPTH,
    logger,
    // On-failure destination: the same dlq/ letters the handler writes for poison records.
    onFailure: (failure) =>
      dlq.send(
        failure.records.map((r) => ({
          data: r.data,
          reason: failure.reason,
          shardId: failure.shardId,
          sequenceNumber: r.sequenceNumber,
          partitionKey: r.partitionKey,
          approximateArrivalTimestamp: r.approximateArrivalTimestamp,
        })),
      ),
  });
  return { poller, billing: () => consumerDeps.sink.billing?.() };
}
