import type { KinesisStreamEvent } from 'aws-lambda';
import { type EventContext, toLambdaRecord } from '#local/poller-batch';

/** The shard and ARNs the unit tests' events come from. */
export const TEST_SHARD = 'shardId-000000000000';

const context = (shardId: string): EventContext => ({
  shardId,
  streamArn: 'arn:aws:kinesis:us-east-1:000000000000:stream/invoice-lines',
  region: 'us-east-1',
  invokeIdentityArn: 'arn:aws:iam::000000000000:role/test',
});

/**
 * A Kinesis event shaped exactly as the local poller (and Lambda's event source mapping) builds
 * it, from the poller's own `toLambdaRecord`: records get consecutive sequence numbers from
 * `firstSeq`, each keyed by its partition key.
 */
export function kinesisEvent(
  records: ReadonlyArray<{ partitionKey: string; data: Buffer }>,
  firstSeq = 100,
  shardId = TEST_SHARD,
): KinesisStreamEvent {
  return {
    Records: records.map((r, i) =>
      toLambdaRecord(
        { ...r, sequenceNumber: String(firstSeq + i), arrivedAtMs: 1_704_067_200_000 },
        context(shardId),
      ),
    ),
  };
}
