import { Duration, RemovalPolicy, Size, Validations } from 'aws-cdk-lib';
import * as firehose from 'aws-cdk-lib/aws-kinesisfirehose';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { ARCHIVE_PREFIX, LANDING_PREFIX, STAGING_PREFIX } from '#core/bucket-layout';
import { acknowledge, KMS_GRANT_REASON, KMS_GRANT_WILDCARDS, nagArn, S3_READ_WILDCARDS } from '../nag.ts';

/** Key prefixes inside the data bucket; the same layout the local stack writes. */
export const BUCKET_PREFIXES = {
  archive: ARCHIVE_PREFIX,
  archiveErrors: 'archive-errors/',
  landing: LANDING_PREFIX,
  dlq: 'dlq/',
} as const;

/** How long the loader's staging/ objects live (S3 lifecycle expiry). */
export const STAGING_EXPIRY_DAYS = 2;

export interface ArchiveProps {
  key: kms.IKey;
  /** Firehose buffering hints (CloudFormation parameters): flush after this many seconds or MiB. */
  bufferSeconds: number;
  bufferMiB: number;
}

/**
 * The data bucket (archive/, landing/, dlq/) and the Firehose delivery stream that writes
 * archive/YYYY/MM/DD/HH/*.json.gz into it. Retained on stack deletion: it is the system of record.
 */
export class Archive extends Construct {
  readonly bucket: s3.Bucket;
  readonly deliveryStream: firehose.DeliveryStream;

  constructor(scope: Construct, id: string, props: ArchiveProps) {
    super(scope, id);
    const accessLogs = new s3.Bucket(this, 'AccessLogs', {
      // S3 server access logging can only deliver to SSE-S3 buckets.
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ expiration: Duration.days(365) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(accessLogs).acknowledge({
      id: 'AwsSolutions-S1',
      reason: 'This is the access-log bucket itself; logging it into itself would loop.',
    });

    this.bucket = new s3.Bucket(this, 'Bucket', {
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: props.key,
      // One data key per bucket instead of one KMS call per object: Firehose and the loader touch many objects.
      bucketKeyEnabled: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: accessLogs,
      serverAccessLogsPrefix: 'data-bucket/',
      // Object-created events go to EventBridge, where the loader's rule filters on prefixes.
      eventBridgeEnabled: true,
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [
        { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(7) },
        {
          id: 'archive-to-cheaper-storage',
          prefix: BUCKET_PREFIXES.archive,
          transitions: [
            { storageClass: s3.StorageClass.INFREQUENT_ACCESS, transitionAfter: Duration.days(30) },
            { storageClass: s3.StorageClass.GLACIER_INSTANT_RETRIEVAL, transitionAfter: Duration.days(90) },
          ],
        },
        {
          id: 'landing-to-cheaper-storage',
          prefix: BUCKET_PREFIXES.landing,
          transitions: [
            { storageClass: s3.StorageClass.INFREQUENT_ACCESS, transitionAfter: Duration.days(30) },
          ],
        },
        {
          id: 'dlq-to-cheaper-storage',
          prefix: BUCKET_PREFIXES.dlq,
          transitions: [
            { storageClass: s3.StorageClass.INFREQUENT_ACCESS, transitionAfter: Duration.days(30) },
          ],
        },
        {
          // The Redshift way's typed rows, read once by the load's COPY and never deleted by the loader
          // (a Data API batch cannot delete an object); two days leave a failed COPY's input to look at.
          id: 'expire-staged-rows',
          prefix: STAGING_PREFIX,
          expiration: Duration.days(STAGING_EXPIRY_DAYS),
        },
        {
          id: 'expire-delivery-errors',
          prefix: BUCKET_PREFIXES.archiveErrors,
          expiration: Duration.days(90),
        },
      ],
    });

    this.deliveryStream = new firehose.DeliveryStream(this, 'Delivery', {
      encryption: firehose.StreamEncryption.customerManagedKey(props.key),
      destination: new firehose.S3Bucket(this.bucket, {
        // Same layout as Firehose's default (UTC hour folders), under archive/ so the crawler and loader find it.
        dataOutputPrefix: `${BUCKET_PREFIXES.archive}!{timestamp:yyyy/MM/dd/HH}/`,
        errorOutputPrefix: `${BUCKET_PREFIXES.archiveErrors}!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/`,
        bufferingInterval: Duration.seconds(props.bufferSeconds),
        bufferingSize: Size.mebibytes(props.bufferMiB),
        compression: firehose.Compression.GZIP,
        fileExtension: '.json.gz',
        encryptionKey: props.key,
      }),
    });
    acknowledge(this.deliveryStream, KMS_GRANT_WILDCARDS, KMS_GRANT_REASON);
    acknowledge(
      this.deliveryStream,
      [
        ...S3_READ_WILDCARDS,
        'AwsSolutions-IAM5[Action::s3:DeleteObject*]',
        'AwsSolutions-IAM5[Action::s3:Abort*]',
        `AwsSolutions-IAM5[Resource::${nagArn(this.bucket)}/*]`,
      ],
      'The permissions Firehose documents for an S3 destination (CDK S3Bucket destination grant); limited to this one bucket, whose object keys Firehose generates.',
    );
  }
}
