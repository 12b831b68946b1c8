import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as redshift from 'aws-cdk-lib/aws-redshiftserverless';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { STAGING_PREFIX } from '#batch/loader/objects';
import { acknowledge, KMS_GRANT_REASON, KMS_GRANT_WILDCARDS, nagArn, S3_READ_WILDCARDS } from '../nag.ts';
import type { Alerts } from './alerts.ts';
import { BUCKET_PREFIXES } from './archive.ts';
import { LAKE_PREFIXES } from './catalog.ts';
import { PipelineFunction, stableOutput } from './pipeline-function.ts';

export const WAREHOUSE_PORT = 5439;

export interface WarehouseProps {
  bundle: boolean;
  key: kms.IKey;
  bucket: s3.IBucket;
  alerts: Alerts;
  /** Namespace and workgroup name: lowercase letters, digits and dashes. */
  name: string;
  databaseName: string;
  adminUsername: string;
  /** Base capacity in RPUs, 8-512 in steps of 8 (a CloudFormation parameter). */
  baseCapacity: number;
  /** When set, the workgroup is publicly accessible and accepts port 5439 from this CIDR only (Power BI). */
  clientCidr?: string | undefined;
  /** How often the loader runs without an S3 event, to pick up anything an event missed. */
  loadSchedule?: Duration;
  baseEnvironment: Record<string, string>;
}

const READ_REASON =
  'COPY and the loader read whichever objects arrive under landing/ and archive/ (and COPY the staging/ objects the loader writes); read-only actions on those prefixes only.';

const readablePrefixes = (props: WarehouseProps) => [
  ...S3_READ_WILDCARDS,
  `AwsSolutions-IAM5[Resource::${nagArn(props.bucket)}/${BUCKET_PREFIXES.landing}*]`,
  `AwsSolutions-IAM5[Resource::${nagArn(props.bucket)}/${BUCKET_PREFIXES.archive}*]`,
  `AwsSolutions-IAM5[Resource::${nagArn(props.bucket)}/${STAGING_PREFIX}*]`,
];

const lakePrefixes = (props: WarehouseProps) => [
  'AwsSolutions-IAM5[Action::s3:DeleteObject*]',
  `AwsSolutions-IAM5[Resource::${nagArn(props.bucket)}/${LAKE_PREFIXES.invoiceLines}*]`,
  `AwsSolutions-IAM5[Resource::${nagArn(props.bucket)}/${LAKE_PREFIXES.lakeState}*]`,
];

const LAKE_REASON =
  'The lake writer names its Parquet files by content and its markers by source object, and replaces the files of a day partition it merged: read, write and delete on those two prefixes only.';

const STAGING_REASON =
  'COPY reads objects, not streams: the loader writes the typed rows of each load as a new staging/ object (named by the load) and COPY reads it; write on that prefix only (Abort* cleans up an interrupted multipart upload).';

/**
 * Redshift Serverless (namespace + workgroup) and the loader Lambda that drives it through the Data API.
 * The loader applies the versioned migrations itself on its first run, then loads landing/ and archive/ objects.
 */
export class Warehouse extends Construct {
  readonly namespace: redshift.CfnNamespace;
  readonly workgroup: redshift.CfnWorkgroup;
  readonly adminSecret: secretsmanager.Secret;
  readonly copyRole: iam.Role;
  readonly loader: PipelineFunction;
  readonly loaderDlq: sqs.Queue;
  readonly vpc: ec2.Vpc;
  readonly databaseName: string;

  constructor(scope: Construct, id: string, props: WarehouseProps) {
    super(scope, id);
    this.databaseName = props.databaseName;
    const { vpc, securityGroup } = this.network(props);
    this.vpc = vpc;
    this.adminSecret = this.createAdminSecret(props);
    this.copyRole = this.createCopyRole(props);
    const { namespace, workgroup } = this.serverless(props, securityGroup);
    this.namespace = namespace;
    this.workgroup = workgroup;
    this.loaderDlq = this.createLoaderDlq(props);
    this.loader = this.createLoader(props);
    this.trigger(props);
    this.monitor(props);
  }

  /** Redshift Serverless needs subnets in three AZs. */
  private network(props: WarehouseProps): { vpc: ec2.Vpc; securityGroup: ec2.SecurityGroup } {
    const publicAccess = Boolean(props.clientCidr);
    // Nothing in them needs the internet (COPY reaches S3
    // through Redshift's own network while enhanced VPC routing is off), so there are no NAT gateways.
    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 3,
      natGateways: 0,
      restrictDefaultSecurityGroup: false,
      subnetConfiguration: [
        {
          name: 'warehouse',
          subnetType: publicAccess ? ec2.SubnetType.PUBLIC : ec2.SubnetType.PRIVATE_ISOLATED,
          cidrMask: 24,
        },
      ],
    });
    vpc.addFlowLog('FlowLog', {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(
        new logs.LogGroup(this, 'FlowLogs', {
          retention: logs.RetentionDays.ONE_MONTH,
          removalPolicy: RemovalPolicy.DESTROY,
        }),
      ),
    });
    const securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc,
      description: 'retail-pipeline Redshift Serverless workgroup',
      allowAllOutbound: false,
    });
    if (props.clientCidr) {
      securityGroup.addIngressRule(
        ec2.Peer.ipv4(props.clientCidr),
        ec2.Port.tcp(WAREHOUSE_PORT),
        'BI clients (Power BI) from the configured CIDR',
      );
    }

    return { vpc, securityGroup };
  }

  private createAdminSecret(props: WarehouseProps): secretsmanager.Secret {
    // Generated by Secrets Manager at deploy time; the template only holds a {{resolve:secretsmanager}} reference.
    const secret = new secretsmanager.Secret(this, 'AdminSecret', {
      description: 'retail-pipeline Redshift Serverless admin credentials',
      encryptionKey: props.key,
      generateSecretString: {
        secretStringTemplate: JSON.stringify({ username: props.adminUsername }),
        generateStringKey: 'password',
        passwordLength: 32,
        requireEachIncludedType: true,
        // Characters Redshift refuses in passwords.
        excludeCharacters: `'"\\/@ `,
      },
    });
    Validations.of(secret).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'There is no hosted rotation for Redshift Serverless admin users; rotation is a documented manual step (docs/aws.md) that updates the namespace and the secret together.',
    });

    return secret;
  }

  /** The role Redshift assumes for COPY; it reads landing/ and archive/ only. */
  private createCopyRole(props: WarehouseProps): iam.Role {
    const role = new iam.Role(this, 'CopyRole', {
      description: 'Assumed by Redshift for COPY from the data bucket',
      assumedBy: new iam.CompositePrincipal(
        new iam.ServicePrincipal('redshift.amazonaws.com'),
        new iam.ServicePrincipal('redshift-serverless.amazonaws.com'),
      ),
    });
    props.bucket.grantRead(role, `${BUCKET_PREFIXES.landing}*`);
    props.bucket.grantRead(role, `${BUCKET_PREFIXES.archive}*`);
    // The loader's Redshift way COPYs the rows it typed from staging/ (batch/loader/strategies/redshift-s3.ts).
    props.bucket.grantRead(role, `${STAGING_PREFIX}*`);
    acknowledge(role, readablePrefixes(props), READ_REASON);

    return role;
  }

  private serverless(
    props: WarehouseProps,
    securityGroup: ec2.SecurityGroup,
  ): { namespace: redshift.CfnNamespace; workgroup: redshift.CfnWorkgroup } {
    const namespace = new redshift.CfnNamespace(this, 'Namespace', {
      namespaceName: props.name,
      dbName: props.databaseName,
      adminUsername: props.adminUsername,
      adminUserPassword: this.adminSecret.secretValueFromJson('password').unsafeUnwrap(),
      kmsKeyId: props.key.keyArn,
      iamRoles: [this.copyRole.roleArn],
      defaultIamRoleArn: this.copyRole.roleArn,
      logExports: ['userlog', 'connectionlog', 'useractivitylog'],
    });
    const workgroup = new redshift.CfnWorkgroup(this, 'Workgroup', {
      workgroupName: props.name,
      namespaceName: props.name,
      baseCapacity: props.baseCapacity,
      subnetIds: this.vpc.selectSubnets().subnetIds,
      securityGroupIds: [securityGroup.securityGroupId],
      publiclyAccessible: Boolean(props.clientCidr),
      enhancedVpcRouting: false,
      port: WAREHOUSE_PORT,
      configParameters: [
        { parameterKey: 'require_ssl', parameterValue: 'true' },
        { parameterKey: 'enable_user_activity_logging', parameterValue: 'true' },
      ],
    });
    workgroup.addResourceDependency(namespace);

    return { namespace, workgroup };
  }

  private createLoaderDlq(props: WarehouseProps): sqs.Queue {
    const queue = new sqs.Queue(this, 'LoaderDlq', {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: props.key,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(queue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This queue is itself the dead-letter queue of the loader (EventBridge targets and async invokes).',
    });

    return queue;
  }

  /** The loader Lambda: each variable it reads set together with the grant it needs. */
  private createLoader(props: WarehouseProps): PipelineFunction {
    const loader = new PipelineFunction(this, 'LoadObjects', {
      entry: 'loader',
      description: 'Warehouse loader: S3 objects -> Redshift (COPY + MERGE via the Data API)',
      bundle: props.bundle,
      memorySize: 512,
      // COPY + MERGE of a large landing file can take minutes on a cold workgroup.
      timeout: Duration.minutes(15),
      environment: props.baseEnvironment,
    }).use('RP_BUCKET', props.bucket.bucketName, (g) => {
      props.bucket.grantRead(g, `${BUCKET_PREFIXES.landing}*`);
      props.bucket.grantRead(g, `${BUCKET_PREFIXES.archive}*`);
      // The typed rows COPY reads (found by the aws-mode e2e: the loader was denied its first staging write).
      props.bucket.grantPut(g, `${STAGING_PREFIX}*`);
      // The lake writer (lake/invoice-lines.ts) merges each month partition into one file: it reads, writes
      // and deletes files under processed/invoice_lines/ and its markers under processed/_lake/.
      for (const prefix of [LAKE_PREFIXES.invoiceLines, LAKE_PREFIXES.lakeState]) {
        props.bucket.grantReadWrite(g, `${prefix}*`);
        props.bucket.grantDelete(g, `${prefix}*`);
      }
    });
    this.useDataApi(loader);
    const loaderFn = loader.fn;
    acknowledge(loader, readablePrefixes(props), READ_REASON);
    acknowledge(loader, ['AwsSolutions-IAM5[Action::s3:Abort*]'], STAGING_REASON);
    acknowledge(loader, lakePrefixes(props), LAKE_REASON);
    acknowledge(loader, KMS_GRANT_WILDCARDS, KMS_GRANT_REASON);
    acknowledge(
      loader,
      ['AwsSolutions-IAM5[Resource::*]'],
      'Data API statement actions (Describe/GetStatementResult/Cancel) have no resource type; the statement-owner condition limits them to statements this role started.',
    );
    loaderFn.configureAsyncInvoke({
      retryAttempts: 2,
      maxEventAge: Duration.hours(6),
      onFailure: new destinations.SqsDestination(this.loaderDlq),
    });

    return loader;
  }

  /**
   * Lets a function run SQL through the Data API: the workgroup, database, admin secret and COPY
   * role it reads at start-up, each set with its grant, and the statement actions, which accept no
   * resource but "*", narrowed to statements the function started.
   */
  useDataApi(fn: PipelineFunction): PipelineFunction {
    fn.use('RP_REDSHIFT_WORKGROUP', this.workgroup.attrWorkgroupWorkgroupName, (g) =>
      iam.Grant.addToPrincipal({
        grantee: g,
        actions: ['redshift-data:ExecuteStatement', 'redshift-data:BatchExecuteStatement'],
        resourceArns: [this.workgroup.attrWorkgroupWorkgroupArn],
      }),
    )
      .use('RP_REDSHIFT_DATABASE', this.databaseName)
      .use('RP_REDSHIFT_SECRET_ARN', this.adminSecret.secretArn, (g) => this.adminSecret.grantRead(g))
      .use('RP_REDSHIFT_COPY_ROLE_ARN', this.copyRole.roleArn);
    fn.fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: [
          'redshift-data:DescribeStatement',
          'redshift-data:GetStatementResult',
          'redshift-data:GetStatementResultV2',
          'redshift-data:CancelStatement',
        ],
        resources: ['*'],
        // biome-ignore lint/suspicious/noTemplateCurlyInString: an IAM policy variable, resolved by IAM
        conditions: { StringEquals: { 'redshift-data:statement-owner-iam-userid': '${aws:userid}' } },
      }),
    );
    return fn;
  }

  /** S3 object events and a schedule invoke the loader. */
  private trigger(props: WarehouseProps): void {
    const target = new targets.LambdaFunction(this.loader.fn, {
      deadLetterQueue: this.loaderDlq,
      retryAttempts: 4,
      maxEventAge: Duration.hours(2),
    });
    new events.Rule(this, 'OnObjectCreated', {
      description: 'New landing/ or archive/ objects trigger the warehouse loader',
      eventPattern: {
        source: ['aws.s3'],
        detailType: ['Object Created'],
        detail: {
          bucket: { name: [props.bucket.bucketName] },
          object: { key: [{ prefix: BUCKET_PREFIXES.landing }, { prefix: BUCKET_PREFIXES.archive }] },
        },
      },
      targets: [target],
    });
    new events.Rule(this, 'OnSchedule', {
      description: 'Periodic loader run: retries failed files and picks up anything an event missed',
      schedule: events.Schedule.rate(props.loadSchedule ?? Duration.minutes(15)),
      targets: [target],
    });
  }

  private monitor(props: WarehouseProps): void {
    props.alerts.alarm('LoaderErrors', {
      metric: this.loader.fn.metricErrors({ statistic: 'Sum', period: Duration.minutes(5) }),
      threshold: 0,
      description: 'A warehouse load failed (see the loader logs and the file manifest table).',
    });
    props.alerts.alarm('LoaderDlqDepth', {
      metric: this.loaderDlq.metricApproximateNumberOfMessagesVisible({
        statistic: 'Maximum',
        period: Duration.minutes(1),
      }),
      threshold: 0,
      description: 'Loader invocations were given up after retries.',
    });

    stableOutput(this, 'WarehouseEndpoint', {
      value: this.workgroup.attrWorkgroupEndpointAddress,
      description: `Redshift host for BI tools (port ${WAREHOUSE_PORT}, database ${props.databaseName})`,
    });
    stableOutput(this, 'WarehouseAdminSecretArn', {
      value: this.adminSecret.secretArn,
      description: 'aws secretsmanager get-secret-value --secret-id <this> shows the admin credentials',
    });
  }
}
