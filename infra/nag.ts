import { type App, type CfnElement, Stack, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';

/** Runs the AWS Solutions rule pack over the app at synth time; any unacknowledged finding fails the synth. */
export function addNagChecks(app: App): void {
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
}

/** Acknowledges several findings for one reason (cdk-nag 3 takes one finding id per call). */
export function acknowledge(scope: IConstruct, ids: readonly string[], reason: string): void {
  for (const id of ids) Validations.of(scope).acknowledge({ id, reason });
}

/** Finding ids of the wildcard-suffixed KMS actions that every CDK `key.grant*` emits. */
export const KMS_GRANT_WILDCARDS = [
  'AwsSolutions-IAM5[Action::kms:ReEncrypt*]',
  'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]',
] as const;
export const KMS_GRANT_REASON =
  'CDK key grant on the one data key (resource is that key ARN); the suffix wildcards only cover the variants of ReEncrypt/GenerateDataKey that SSE on S3, Firehose and SQS call.';

/** Finding ids of the wildcard-suffixed S3 read actions that `bucket.grantRead` emits. */
export const S3_READ_WILDCARDS = [
  'AwsSolutions-IAM5[Action::s3:GetObject*]',
  'AwsSolutions-IAM5[Action::s3:GetBucket*]',
  'AwsSolutions-IAM5[Action::s3:List*]',
] as const;

/** How cdk-nag spells a resource's ARN in finding ids: `<LogicalId.Arn>`. */
export function nagArn(resource: IConstruct): string {
  const cfn = resource.node.defaultChild as CfnElement;
  return `<${Stack.of(cfn).resolve(cfn.logicalId)}.Arn>`;
}
