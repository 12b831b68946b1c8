import { Aws, Duration, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as glue from 'aws-cdk-lib/aws-glue';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { ParquetType } from '#adapters/parquet-writer';
import { stageRecordKey } from '#cdc/stage-record';
import { INGESTION_RUNS_PREFIX, PROCESSED_RUNS_PREFIX, WATERMARKS_KEY } from '#cdc/totesys/layout';
import { WAREHOUSE_TABLES } from '#cdc/transform-model';
import { QUARANTINE_PREFIX, TOTESYS_INGESTION_PREFIX, TOTESYS_PROCESSED_PREFIX } from '#core/bucket-layout';
import { acknowledge, KMS_GRANT_WILDCARDS, nagArn, S3_READ_WILDCARDS } from '../nag.ts';
import type { Alerts } from './alerts.ts';
import type { Catalog } from './catalog.ts';
import { PipelineFunction, stableOutput } from './pipeline-function.ts';
import type { Warehouse } from './warehouse.ts';

/** The totesys zones in the data bucket (cdc/totesys/layout.ts, cdc/transform.ts). */
export const TOTESYS_PREFIXES = {
  ingestion: TOTESYS_INGESTION_PREFIX,
  ingestionRuns: INGESTION_RUNS_PREFIX,
  watermarks: WATERMARKS_KEY,
  processed: TOTESYS_PROCESSED_PREFIX,
  processedRuns: PROCESSED_RUNS_PREFIX,
  loadRecord: stageRecordKey('load'),
  quarantine: `${QUARANTINE_PREFIX}${TOTESYS_PROCESSED_PREFIX}`,
} as const;

/** The metric the load function publishes (cdc/functions/load-processed.ts) and the freshness alarm reads. */
export const TOTESYS_LAG_METRIC = {
  namespace: 'RetailPipeline/Totesys',
  name: 'WarehouseLagSeconds',
  dimensions: { Source: 'totesys' },
};

export interface TotesysSourceNetwork {
  /** Subnets from which the extract reaches a private database; absent: the function runs outside a VPC. */
  subnetIds: string[];
  securityGroupIds: string[];
}

export interface TotesysProps {
  bundle: boolean;
  key: kms.IKey;
  bucket: s3.IBucket;
  alerts: Alerts;
  warehouse: Warehouse;
  catalog: Catalog;
  /** EventBridge expression of the extract (a CloudFormation parameter, e.g. `rate(15 minutes)`). */
  schedule: string;
  /** The freshness alarm fires when the warehouse lags the source by more than this (seconds). */
  freshnessSeconds: number;
  /** An existing secret (RDS shape: host, port, username, password, dbname); absent: the stack creates one. */
  sourceSecretArn?: string | undefined;
  network?: TotesysSourceNetwork | undefined;
  baseEnvironment: Record<string, string>;
}

const S3_WRITE_WILDCARDS = ['AwsSolutions-IAM5[Action::s3:Abort*]'] as const;
const S3_DELETE_WILDCARDS = ['AwsSolutions-IAM5[Action::s3:DeleteObject*]'] as const;

/**
 * The totesys change data capture on AWS (docs/totesys.md "On AWS"): the extract on a schedule, the
 * transform on each extraction marker, the load on each processed marker (both also swept every 15
 * minutes), each function granted only its zone; the source secret; alarms on errors and freshness;
 * Glue tables over the processed Parquet.
 */
export class Totesys extends Construct {
  readonly extract: PipelineFunction;
  readonly transform: PipelineFunction;
  readonly load: PipelineFunction;
  readonly sourceSecret: secretsmanager.ISecret;
  readonly dlq: sqs.Queue;

  constructor(scope: Construct, id: string, props: TotesysProps) {
    super(scope, id);
    const { bucket } = props;
    this.sourceSecret = this.source(props);
    this.dlq = this.createDlq(props);

    this.extract = this.fn(
      props,
      'totesysExtract',
      'ExtractChanges',
      'totesys extract: changed rows -> ingestion/totesys/ CSV',
    )
      .use('RP_BUCKET', bucket.bucketName, (g) => {
        bucket.grantRead(g, TOTESYS_PREFIXES.watermarks);
        bucket.grantPut(g, `${TOTESYS_PREFIXES.ingestion}*`);
      })
      .use('RP_TOTESYS_SECRET_ARN', this.sourceSecret.secretArn, (g) => this.sourceSecret.grantRead(g));
    if (props.network) this.attachToNetwork(this.extract, props.network);

    this.transform = this.fn(
      props,
      'totesysTransform',
      'TransformRuns',
      'totesys transform: ingestion CSV -> processed Parquet',
    ).use('RP_BUCKET', bucket.bucketName, (g) => {
      bucket.grantRead(g, `${TOTESYS_PREFIXES.ingestion}*`);
      bucket.grantReadWrite(g, `${TOTESYS_PREFIXES.processed}*`);
    });

    const w = props.warehouse;
    this.load = this.fn(
      props,
      'totesysLoad',
      'LoadProcessed',
      'totesys load: processed Parquet -> the three stars (Redshift)',
    ).use('RP_BUCKET', bucket.bucketName, (g) => {
      bucket.grantRead(g, `${TOTESYS_PREFIXES.processed}*`);
      // The extraction markers: their finishedAt is each fact row's ingested_at (the cdc latency path).
      bucket.grantRead(g, `${TOTESYS_PREFIXES.ingestionRuns}*`);
      // Its own failure record, and the quarantine of a bad object (copy, reason, then delete).
      bucket.grantPut(g, TOTESYS_PREFIXES.loadRecord);
      bucket.grantPut(g, `${TOTESYS_PREFIXES.quarantine}*`);
      bucket.grantDelete(g, `${TOTESYS_PREFIXES.processed}*`);
    });
    w.useDataApi(this.load);
    // COPY ... FORMAT AS PARQUET reads the processed objects as the warehouse's COPY role.
    bucket.grantRead(w.copyRole, `${TOTESYS_PREFIXES.processed}*`);
    this.acknowledgeGrants(props);

    this.triggers(props);
    this.monitor(props);
    this.catalog(props);
  }

  private fn(
    props: TotesysProps,
    entry: 'totesysExtract' | 'totesysTransform' | 'totesysLoad',
    id: string,
    description: string,
  ) {
    const f = new PipelineFunction(this, id, {
      entry,
      description,
      bundle: props.bundle,
      memorySize: entry === 'totesysExtract' ? 512 : 1024,
      timeout: Duration.minutes(entry === 'totesysLoad' ? 15 : 5),
      environment: props.baseEnvironment,
    });
    f.fn.configureAsyncInvoke({ retryAttempts: 0 });
    return f;
  }

  /** The source database's secret: the one given, or a new one whose host and names the operator fills in. */
  private source(props: TotesysProps): secretsmanager.ISecret {
    if (props.sourceSecretArn)
      return secretsmanager.Secret.fromSecretCompleteArn(this, 'SourceSecret', props.sourceSecretArn);
    const secret = new secretsmanager.Secret(this, 'SourceSecret', {
      description:
        'totesys source database (RDS shape: fill in host, port, username, dbname; the password is generated)',
      encryptionKey: props.key,
      generateSecretString: {
        secretStringTemplate: JSON.stringify({ host: '', port: 5432, username: '', dbname: 'totesys' }),
        generateStringKey: 'password',
        passwordLength: 32,
        excludeCharacters: `'"\\/@ `,
      },
    });
    Validations.of(secret).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'The source database belongs to its owner, who rotates its password there; the pipeline only reads it (docs/totesys.md "On AWS").',
    });
    stableOutput(this, 'TotesysSourceSecretArn', {
      value: secret.secretArn,
      description:
        'Fill in the totesys source coordinates: aws secretsmanager put-secret-value --secret-id <this>',
    });
    return secret;
  }

  /** ENIs in the given subnets: the managed policy is the documented minimum for a function in a VPC. */
  private attachToNetwork(f: PipelineFunction, network: TotesysSourceNetwork): void {
    const cfn = f.fn.node.defaultChild as lambda.CfnFunction;
    cfn.vpcConfig = { subnetIds: network.subnetIds, securityGroupIds: network.securityGroupIds };
    f.fn.role?.addManagedPolicy(
      iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AWSLambdaVPCAccessExecutionRole'),
    );
    acknowledge(
      f,
      [
        'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]',
      ],
      'The ENI actions a function in a VPC needs have no narrower resource; AWS documents this policy for it.',
    );
  }

  private createDlq(props: TotesysProps): sqs.Queue {
    const queue = new sqs.Queue(this, 'Dlq', {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: props.key,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(queue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: "This queue is itself the dead-letter queue of the totesys functions' EventBridge targets.",
    });
    return queue;
  }

  private acknowledgeGrants(props: TotesysProps): void {
    const b = nagArn(props.bucket);
    const resource = (pattern: string) => `AwsSolutions-IAM5[Resource::${b}/${pattern}]`;
    acknowledge(
      this.extract,
      [
        ...S3_WRITE_WILDCARDS,
        ...KMS_GRANT_WILDCARDS,
        ...S3_READ_WILDCARDS,
        resource(`${TOTESYS_PREFIXES.ingestion}*`),
      ],
      'The extract writes run-named CSVs and markers under ingestion/totesys/ only and reads its watermarks object; the KMS wildcards are the data key grant.',
    );
    acknowledge(
      this.transform,
      [
        ...S3_WRITE_WILDCARDS,
        ...S3_DELETE_WILDCARDS,
        ...KMS_GRANT_WILDCARDS,
        ...S3_READ_WILDCARDS,
        resource(`${TOTESYS_PREFIXES.ingestion}*`),
        resource(`${TOTESYS_PREFIXES.processed}*`),
      ],
      'The transform reads ingestion/totesys/ and writes run-named Parquet, markers and its state under processed/totesys/ only (grantReadWrite adds delete there).',
    );
    acknowledge(
      this.load,
      [
        ...S3_WRITE_WILDCARDS,
        ...S3_DELETE_WILDCARDS,
        ...KMS_GRANT_WILDCARDS,
        ...S3_READ_WILDCARDS,
        resource(`${TOTESYS_PREFIXES.processed}*`),
        resource(`${TOTESYS_PREFIXES.ingestionRuns}*`),
        resource(`${TOTESYS_PREFIXES.quarantine}*`),
        'AwsSolutions-IAM5[Resource::*]',
      ],
      'The load reads processed/totesys/ and the extraction markers (ingestion/totesys/_runs/, for ingested_at), moves a bad object to quarantine/, writes its one record; Data API statement actions have no resource type and are limited to statements this role started.',
    );
    acknowledge(
      props.warehouse.copyRole,
      [`AwsSolutions-IAM5[Resource::${b}/${TOTESYS_PREFIXES.processed}*]`],
      'COPY FORMAT AS PARQUET reads the run-named objects under processed/totesys/; read-only.',
    );
  }

  /** The schedule, the zones' marker events, and the sweeps that pick up what an event missed. */
  private triggers(props: TotesysProps): void {
    const target = (f: PipelineFunction) =>
      new targets.LambdaFunction(f.fn, {
        deadLetterQueue: this.dlq,
        retryAttempts: 2,
        maxEventAge: Duration.hours(1),
      });
    new events.Rule(this, 'ExtractSchedule', {
      description: 'totesys change data capture: one extract run',
      schedule: events.Schedule.expression(props.schedule),
      targets: [target(this.extract)],
    });
    const onMarker = (id: string, prefix: string, f: PipelineFunction, description: string) =>
      new events.Rule(this, id, {
        description,
        eventPattern: {
          source: ['aws.s3'],
          detailType: ['Object Created'],
          detail: { bucket: { name: [props.bucket.bucketName] }, object: { key: [{ prefix }] } },
        },
        targets: [target(f)],
      });
    onMarker(
      'OnIngestionMarker',
      TOTESYS_PREFIXES.ingestionRuns,
      this.transform,
      'A completed extract run triggers the totesys transform',
    );
    onMarker(
      'OnProcessedMarker',
      TOTESYS_PREFIXES.processedRuns,
      this.load,
      'A transformed run triggers the totesys load',
    );
    new events.Rule(this, 'Sweep', {
      description: 'totesys transform and load sweeps: retries after cool-downs and anything an event missed',
      schedule: events.Schedule.rate(Duration.minutes(15)),
      targets: [target(this.transform), target(this.load)],
    });
  }

  private monitor(props: TotesysProps): void {
    for (const [id, f] of [
      ['TotesysExtractErrors', this.extract],
      ['TotesysTransformErrors', this.transform],
      ['TotesysLoadErrors', this.load],
    ] as const) {
      props.alerts.alarm(id, {
        metric: f.fn.metricErrors({ statistic: 'Sum', period: Duration.minutes(5) }),
        threshold: 0,
        description: `${f.entryPath} failed (retail-pipeline totesys status shows the stage's failure record).`,
      });
    }
    props.alerts.alarm('TotesysDlqDepth', {
      metric: this.dlq.metricApproximateNumberOfMessagesVisible({
        statistic: 'Maximum',
        period: Duration.minutes(1),
      }),
      threshold: 0,
      description: 'totesys function invocations were given up after retries.',
    });
    props.alerts.alarm('TotesysFreshness', {
      metric: new cloudwatch.Metric({
        namespace: TOTESYS_LAG_METRIC.namespace,
        metricName: TOTESYS_LAG_METRIC.name,
        dimensionsMap: TOTESYS_LAG_METRIC.dimensions,
        statistic: 'Maximum',
        period: Duration.minutes(15),
      }),
      threshold: props.freshnessSeconds,
      // No metric at all means the load has stopped running: that is stale too.
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      evaluationPeriods: 2,
      description:
        'The totesys stars lag the source by more than the freshness target (or the load stopped reporting).',
    });
  }

  /** One Glue table per warehouse table over its Parquet (Athena reads the date folders recursively). */
  private catalog(props: TotesysProps): void {
    for (const table of WAREHOUSE_TABLES) {
      const cfn = new glue.CfnTable(this, `Table-${table.name}`, {
        catalogId: Aws.ACCOUNT_ID,
        databaseName: props.catalog.database.ref,
        tableInput: {
          name: `totesys_${table.name}`,
          description: `totesys ${table.name} as the transform writes it (docs/totesys.md)`,
          tableType: 'EXTERNAL_TABLE',
          parameters: { classification: 'parquet', EXTERNAL: 'TRUE' },
          storageDescriptor: {
            location: `s3://${props.bucket.bucketName}/${TOTESYS_PREFIXES.processed}${table.name}/`,
            inputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat',
            outputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat',
            serdeInfo: {
              serializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe',
            },
            columns: table.columns.map((c) => ({ name: c.name, type: glueType(c.type) })),
          },
        },
      });
      cfn.addDependency(props.catalog.database);
    }
  }
}

/** Hive/Athena types of the Parquet columns; a TIME_MICROS (no Hive time type) reads as its microseconds. */
export function glueType(t: ParquetType): string {
  switch (t.kind) {
    case 'int32':
      return 'int';
    case 'int64':
    case 'time':
      return 'bigint';
    case 'decimal':
      return `decimal(${t.precision},${t.scale})`;
    default:
      return t.kind;
  }
}
