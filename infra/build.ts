import { App, type AppProps } from 'aws-cdk-lib';
import { addNagChecks } from './nag.ts';
import { PipelineStack } from './pipeline-stack.ts';

export const STACK_NAME = 'RetailPipeline';

export interface BuildOptions extends AppProps {
  /** Overrides the `skipBundling` context flag (tests pass true for a fast synth). */
  skipBundling?: boolean;
  /** Run cdk-nag (default true). */
  nag?: boolean;
}

/** Flags the stack relies on, set here so tests and `cdk synth` build the same template. */
const FEATURE_FLAGS = {
  // Server access logs are delivered under a bucket policy instead of an ACL (ACLs are disabled).
  '@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy': true,
};

const truthy = (v: unknown) => v === true || v === 'true' || v === '1';

/**
 * Builds the CDK app. Context: `skipBundling=true` (no esbuild, placeholder code), `warehouseClientCidr=a.b.c.d/n`
 * (open the workgroup to BI clients), `account`/`region` (pin the environment; otherwise env-agnostic),
 * `totesysSecretArn` (an existing source secret), `totesysSubnetIds` + `totesysSecurityGroupIds` (the
 * extract's VPC, comma-separated).
 */
export function buildApp(options: BuildOptions = {}): { app: App; stack: PipelineStack } {
  const { skipBundling, nag = true, ...appProps } = options;
  const app = new App({ ...appProps, context: { ...FEATURE_FLAGS, ...appProps.context } });
  const ctx = (key: string) => app.node.tryGetContext(key) as string | undefined;
  const list = (key: string) =>
    ctx(key)
      ?.split(',')
      .map((v) => v.trim())
      .filter(Boolean) ?? [];
  const subnetIds = list('totesysSubnetIds');
  const securityGroupIds = list('totesysSecurityGroupIds');
  if (subnetIds.length > 0 !== securityGroupIds.length > 0)
    throw new Error('context totesysSubnetIds and totesysSecurityGroupIds go together (comma-separated ids)');
  const account = ctx('account');
  const region = ctx('region');
  const stack = new PipelineStack(app, STACK_NAME, {
    description:
      'retail-pipeline: invoice lines REST -> Kinesis -> DynamoDB + S3 archive -> Redshift; totesys CDC -> S3 -> Redshift',
    bundle: !(skipBundling ?? truthy(ctx('skipBundling'))),
    warehouseClientCidr: ctx('warehouseClientCidr'),
    totesys: {
      sourceSecretArn: ctx('totesysSecretArn'),
      network: subnetIds.length > 0 ? { subnetIds, securityGroupIds } : undefined,
    },
    ...(account || region ? { env: { account, region } } : {}),
  });
  if (nag) addNagChecks(app);
  return { app, stack };
}
