import { spawnSync } from 'node:child_process';
import path from 'node:path';
import {
  AssetHashType,
  CfnOutput,
  type CfnOutputProps,
  DockerImage,
  type Duration,
  RemovalPolicy,
} from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { Env } from '#adapters/config';
import { BUNDLE_HANDLER, REPO_ROOT } from '../bundle.ts';
import { ENTRY_METADATA_KEY, LAMBDA_ENTRIES, type LambdaEntryName } from '../entries.ts';

/** The repository root: entry paths are resolved from here, whatever the cwd. */
export { REPO_ROOT };

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
 * The entry's asset as infra/bundle.ts builds it (the same function the aws-mode e2e runs): esbuild with
 * the local binary, no Docker. CDK bundles synchronously and esbuild's plugins need its asynchronous API,
 * so the build runs in a child process, as NodejsFunction runs the esbuild binary.
 */
function bundledCode(entry: LambdaEntryName): lambda.Code {
  return lambda.Code.fromAsset(REPO_ROOT, {
    assetHashType: AssetHashType.OUTPUT,
    bundling: {
      // Never pulled: local bundling below always succeeds or throws.
      image: DockerImage.fromRegistry('retail-pipeline/no-docker-bundling'),
      // Never run either, but part of CDK's bundling cache key, which ignores `local`: without the entry
      // in it, every function would get the first function's bundle.
      command: ['node', '--import', 'tsx', 'infra/bundle.ts', entry, '/asset-output'],
      local: {
        tryBundle(outputDir: string): boolean {
          const result = spawnSync(
            process.execPath,
            ['--import', 'tsx', path.join(REPO_ROOT, 'infra/bundle.ts'), entry, outputDir],
            { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit'] },
          );
          if (result.status !== 0)
            throw new Error(
              `bundling ${LAMBDA_ENTRIES[entry]} failed (exit ${result.status ?? result.signal})`,
            );
          return true;
        },
      },
    },
  });
}

/**
 * One Lambda function running one of the entry files in {@link LAMBDA_ENTRIES}, bundled by
 * infra/bundle.ts as ESM for the newest Node.js runtime, with the files its code reads at run time
 * (the warehouse migrations). The AWS SDK is bundled too, so Lambda runs the exact client versions the
 * local mode was tested with rather than whatever the runtime ships.
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

    this.fn = new lambda.Function(this, 'Function', {
      ...common,
      ...(props.bundle
        ? { handler: BUNDLE_HANDLER, code: bundledCode(props.entry) }
        : {
            handler: 'index.handler',
            code: lambda.Code.fromInline(
              `exports.handler = async () => { throw new Error('placeholder for ${this.entryPath}: synthesised without bundling'); };`,
            ),
          }),
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
