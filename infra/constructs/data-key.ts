import { Aws, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';

/**
 * The customer-managed key that encrypts the pipeline's data at rest (table, bucket, Firehose, queues,
 * topic, warehouse and its secret, Glue logs). Rotated yearly. Retained on stack deletion: data encrypted
 * with it (snapshots, backups, retained buckets) would be unreadable without it.
 */
export class DataKey extends Construct {
  readonly key: kms.Key;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.key = new kms.Key(this, 'Key', {
      description: 'retail-pipeline data at rest',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const sameAccount = { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } };
    // Services that encrypt on our behalf without an IAM role of ours need the key policy to name them:
    // CloudWatch alarms publish to the encrypted topic, EventBridge writes to the encrypted rule DLQ.
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AlarmsAndRulesUseTheKey',
        principals: [
          new iam.ServicePrincipal('cloudwatch.amazonaws.com'),
          new iam.ServicePrincipal('events.amazonaws.com'),
        ],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
        conditions: sameAccount,
      }),
    );
    // Glue's security configuration encrypts the crawler's CloudWatch log group with this key.
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchLogsUseTheKey',
        principals: [new iam.ServicePrincipal(`logs.${Aws.REGION}.amazonaws.com`)],
        actions: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
        resources: ['*'],
        conditions: {
          ArnLike: {
            'kms:EncryptionContext:aws:logs:arn': `arn:${Aws.PARTITION}:logs:${Aws.REGION}:${Aws.ACCOUNT_ID}:*`,
          },
        },
      }),
    );
  }
}
