import { Duration, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as kinesis from 'aws-cdk-lib/aws-kinesis';
import type * as firehose from 'aws-cdk-lib/aws-kinesisfirehose';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sources from 'aws-cdk-lib/aws-lambda-event-sources';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { acknowledge, KMS_GRANT_REASON, KMS_GRANT_WILDCARDS, nagArn } from '../nag.ts';
import type { Alerts } from './alerts.ts';
import { BUCKET_PREFIXES } from './archive.ts';
import { PipelineFunction } from './pipeline-function.ts';

/**
 * Event source mapping settings. They mirror the local poller's (RP_POLL_*), except the record-age bound:
 * locally records never expire, here they are given up on well inside the stream's 24 h retention, so the
 * shard/sequence range in the on-failure message can still be replayed from the stream.
 */
export const CONSUMER_SETTINGS = {
  batchSize: 500,
  maxBatchingWindow: Duration.seconds(1),
  bisectBatchOnError: true,
  retryAttempts: 5,
  maxRecordAge: Duration.hours(6),
  iteratorAgeAlarmMs: 5 * 60 * 1000,
} as const;

export interface ConsumersProps {
  bundle: boolean;
  key: kms.IKey;
  stream: kinesis.IStream;
  table: dynamodb.ITable;
  deliveryStream: firehose.IDeliveryStream;
  bucket: s3.IBucket;
  alerts: Alerts;
  /** Concurrent batches per shard, 1-10 (a CloudFormation parameter). */
  parallelizationFactor: number;
  /** Variables every function needs for adapters/config.ts to accept RP_MODE=aws. */
  baseEnvironment: Record<string, string>;
}

/** The stream consumer: Lambda on a Kinesis event source mapping with partial batch failures and an on-failure queue. */
export class Consumers extends Construct {
  readonly function: PipelineFunction;
  readonly onFailure: sqs.Queue;

  constructor(scope: Construct, id: string, props: ConsumersProps) {
    super(scope, id);
    this.function = new PipelineFunction(this, 'ProcessInvoiceLines', {
      entry: 'consumer',
      description: 'Kinesis consumer: invoice lines -> DynamoDB + Firehose',
      bundle: props.bundle,
      memorySize: 1024,
      timeout: Duration.minutes(1),
      environment: { ...props.baseEnvironment, RP_STREAM_NAME: props.stream.streamName },
    })
      .use('RP_TABLE_NAME', props.table.tableName, (g) => props.table.grantReadWriteData(g))
      .use('RP_DELIVERY_STREAM', props.deliveryStream.deliveryStreamName, (g) =>
        props.deliveryStream.grantPutRecords(g),
      )
      // Only dlq/: the consumer parks failed record bodies there and must not touch the archive.
      .use('RP_BUCKET', props.bucket.bucketName, (g) => props.bucket.grantPut(g, `${BUCKET_PREFIXES.dlq}*`));
    acknowledge(
      this.function,
      [`AwsSolutions-IAM5[Resource::${nagArn(props.table)}/index/*]`],
      "Writes maintain the GSI keys and idempotency reads may use gsi1/gsi2; the wildcard covers only this table's indexes.",
    );
    acknowledge(
      this.function,
      [
        `AwsSolutions-IAM5[Resource::${nagArn(props.bucket)}/${BUCKET_PREFIXES.dlq}*]`,
        'AwsSolutions-IAM5[Action::s3:Abort*]',
      ],
      'Failed record bodies are written as new objects under dlq/ only (object keys are not known in advance); Abort* lets an interrupted multipart upload be cleaned up.',
    );
    acknowledge(this.function, KMS_GRANT_WILDCARDS, KMS_GRANT_REASON);

    this.onFailure = new sqs.Queue(this, 'OnFailure', {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: props.key,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(this.onFailure).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'This queue is itself the on-failure destination (a DLQ) of the event source mapping.',
    });

    this.function.fn.addEventSource(
      new sources.KinesisEventSource(props.stream, {
        startingPosition: lambda.StartingPosition.TRIM_HORIZON,
        batchSize: CONSUMER_SETTINGS.batchSize,
        maxBatchingWindow: CONSUMER_SETTINGS.maxBatchingWindow,
        bisectBatchOnError: CONSUMER_SETTINGS.bisectBatchOnError,
        retryAttempts: CONSUMER_SETTINGS.retryAttempts,
        maxRecordAge: CONSUMER_SETTINGS.maxRecordAge,
        reportBatchItemFailures: true,
        parallelizationFactor: props.parallelizationFactor,
        onFailure: new sources.SqsDlq(this.onFailure),
      }),
    );

    const fn = this.function.fn;
    props.alerts.alarm('IteratorAge', {
      metric: fn.metric('IteratorAge', { statistic: 'Maximum', period: Duration.minutes(1) }),
      threshold: CONSUMER_SETTINGS.iteratorAgeAlarmMs,
      evaluationPeriods: 3,
      description: 'The consumer is falling behind the stream (iterator age above 5 minutes for 3 minutes).',
    });
    props.alerts.alarm('ConsumerErrors', {
      metric: fn.metricErrors({ statistic: 'Sum', period: Duration.minutes(5) }),
      threshold: 0,
      description: 'The consumer function failed (whole-batch errors, retried by the event source mapping).',
    });
    props.alerts.alarm('ConsumerDlqDepth', {
      metric: this.onFailure.metricApproximateNumberOfMessagesVisible({
        statistic: 'Maximum',
        period: Duration.minutes(1),
      }),
      threshold: 0,
      comparison: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      description: 'Batches gave up after retries or record age; record bodies are under dlq/ in the bucket.',
    });
  }
}
