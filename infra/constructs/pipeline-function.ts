import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CfnOutput, type CfnOutputProps, type Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { Env } from '#adapters/config';
import { ENTRY_METADATA_KEY, LAMBDA_ENTRIES, type LambdaEntryName } from '../entries.ts';

/** The repository root: entry paths and the lock file are resolved from here, whatever the cwd. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Only the variables adapters/config.ts reads, so a typo is a compile error rather than a silent default. */
export type EnvName = keyof Env;

export interface PipelineFunctionProps {
  entry: LambdaEntryName;
  description: string;
  /** false: an inline placeholder instead of the esbuild bundle (tests and quick synths; never deploy it). */
  bundle: boolean;
  memorySize: number;
  timeout: Duration;
  environment: Partial<Record<EnvName, string>>;
  logRetention?: logs.RetentionDays;
}

/**
 * One Lambda function running one of the entry files in {@link LAMBDA_ENTRIES}, bundled by the local esbuild
 * (no Docker) as ESM for the newest Node.js runtime. The AWS SDK is bundled too, so Lambda runs the exact
 * client versions the local mode was tested with rather than whatever the runtime ships.
 */
export class PipelineFunction extends Construct {
  readonly fn: lambda.Function;
  readonly entryPath: string;

  constructor(scope: Construct, id: string, props: PipelineFunctionProps) {
    super(scope, id);
    this.entryPath = LAMBDA_ENTRIES[props.entry];
    const logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // Our own role instead of AWSLambdaBasicExecutionRole: log writes scoped to this function's log group.
    const role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `retail-pipeline ${props.entry} function`,
    });
    logGroup.grantWrite(role);
    const common = {
      role,
      description: `${props.description} (${this.entryPath})`,
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize,
      timeout: props.timeout,
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      environment: {
        RP_MODE: 'aws',
        RP_LOG_LEVEL: 'info',
        NODE_OPTIONS: '--enable-source-maps',
        POWERTOOLS_SERVICE_NAME: `retail-pipeline-${props.entry}`,
        ...props.environment,
      },
    } satisfies Partial<lambda.FunctionProps>;

    this.fn = props.bundle
      ? new nodejs.NodejsFunction(this, 'Function', {
          ...common,
          entry: path.join(REPO_ROOT, this.entryPath),
          handler: 'handler',
          projectRoot: REPO_ROOT,
          depsLockFilePath: path.join(REPO_ROOT, 'package-lock.json'),
          bundling: {
            forceDockerBundling: false,
            format: nodejs.OutputFormat.ESM,
            target: 'node24',
            mainFields: ['module', 'main'],
            // CommonJS dependencies call require(); ESM output has none unless we make one.
            banner:
              "import { createRequire as rpCreateRequire } from 'node:module'; const require = rpCreateRequire(import.meta.url);",
            bundleAwsSDK: true,
            minify: true,
            sourceMap: true,
            sourcesContent: false,
          },
        })
      : new lambda.Function(this, 'Function', {
          ...common,
          handler: 'index.handler',
          code: lambda.Code.fromInline(
            `exports.handler = async () => { throw new Error('placeholder for ${this.entryPath}: synthesised without bundling'); };`,
          ),
        });
    (this.fn.node.defaultChild as lambda.CfnFunction).addMetadata(ENTRY_METADATA_KEY, this.entryPath);
  }

  /** Sets the variable the handler's config reads and grants the access it implies, in one call. */
  use(name: EnvName, value: string, grant?: (grantee: iam.IGrantable) => unknown): this {
    this.fn.addEnvironment(name, value);
    grant?.(this.fn);
    return this;
  }
}

/** A stack output with a fixed name (no construct-path hash), so docs and scripts can rely on it. */
export function stableOutput(scope: Construct, name: string, props: CfnOutputProps): CfnOutput {
  const output = new CfnOutput(scope, name, props);
  output.overrideLogicalId(name);
  return output;
}
