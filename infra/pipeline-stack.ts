import { CfnParameter, Duration, Fn, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { Alerts } from './constructs/alerts.ts';
import { IngestApi } from './constructs/api.ts';
import { Archive } from './constructs/archive.ts';
import { Catalog } from './constructs/catalog.ts';
import { Consumers } from './constructs/consumers.ts';
import { DataKey } from './constructs/data-key.ts';
import { ServingStore } from './constructs/store.ts';
import { InvoiceStream } from './constructs/stream.ts';
import { Totesys, type TotesysSourceNetwork } from './constructs/totesys.ts';
import { Warehouse } from './constructs/warehouse.ts';
import { acknowledge } from './nag.ts';

export interface PipelineStackProps extends StackProps {
  /** false: inline placeholder code instead of esbuild bundles (tests, quick synths). Never deploy that. */
  bundle: boolean;
  /** Power BI and other SQL clients: when set, the workgroup is reachable from this CIDR only. */
  warehouseClientCidr?: string | undefined;
  /** Redshift namespace/workgroup name. */
  warehouseName?: string;
  /** The totesys source (context): an existing secret, and the VPC the extract needs to reach it. */
  totesys?: { sourceSecretArn?: string | undefined; network?: TotesysSourceNetwork | undefined };
}

const DATABASE = 'retail';

/** The whole pipeline in one stack: stream, API, consumers, store, archive, catalog, warehouse and alerts. */
export class PipelineStack extends Stack {
  readonly api: IngestApi;
  readonly consumers: Consumers;
  readonly warehouse: Warehouse;
  readonly alerts: Alerts;
  readonly totesys: Totesys;

  constructor(scope: Construct, id: string, props: PipelineStackProps) {
    super(scope, id, props);
    const p = this.parameters();

    const warehouseName = props.warehouseName ?? 'retail-pipeline';
    // adapters/config.ts requires the warehouse coordinates in aws mode, so every function carries them.
    const baseEnvironment = {
      RP_REDSHIFT_WORKGROUP: warehouseName,
      RP_REDSHIFT_DATABASE: DATABASE,
      RP_DB_NAME: DATABASE,
    };

    const key = new DataKey(this, 'DataKey').key;
    this.alerts = new Alerts(this, 'Alerts', { key, email: p.alertEmail });
    const stream = new InvoiceStream(this, 'Stream', { shardCount: p.shardCount }).stream;
    const table = new ServingStore(this, 'Store', { key }).table;
    const archive = new Archive(this, 'Archive', {
      key,
      bufferSeconds: p.bufferSeconds,
      bufferMiB: p.bufferMiB,
    });
    this.api = new IngestApi(this, 'Api', {
      bundle: props.bundle,
      stream,
      table,
      alerts: this.alerts,
      rateLimit: p.rateLimit,
      burstLimit: p.burstLimit,
      baseEnvironment,
    });
    this.consumers = new Consumers(this, 'Consumers', {
      bundle: props.bundle,
      key,
      stream,
      table,
      deliveryStream: archive.deliveryStream,
      bucket: archive.bucket,
      alerts: this.alerts,
      parallelizationFactor: p.parallelizationFactor,
      baseEnvironment,
    });
    const catalog = new Catalog(this, 'Catalog', {
      key,
      bucket: archive.bucket,
      databaseName: 'retail_pipeline',
    });
    this.warehouse = new Warehouse(this, 'Warehouse', {
      bundle: props.bundle,
      key,
      bucket: archive.bucket,
      alerts: this.alerts,
      name: warehouseName,
      databaseName: DATABASE,
      adminUsername: 'rpadmin',
      baseCapacity: p.baseRpu,
      clientCidr: props.warehouseClientCidr,
      loadSchedule: Duration.minutes(15),
      baseEnvironment,
    });
    // After the warehouse: its loader's rules stay the template's first event rules.
    this.totesys = new Totesys(this, 'Totesys', {
      bundle: props.bundle,
      key,
      bucket: archive.bucket,
      alerts: this.alerts,
      warehouse: this.warehouse,
      catalog,
      schedule: p.totesysSchedule,
      freshnessSeconds: p.totesysFreshnessSeconds,
      sourceSecretArn: props.totesys?.sourceSecretArn,
      network: props.totesys?.network,
      baseEnvironment,
    });
    this.acknowledgeCdkInternals();
    this.alerts.alarm('ArchiveFreshness', {
      metric: archive.deliveryStream.metric('DeliveryToS3.DataFreshness', {
        statistic: 'Maximum',
        period: Duration.minutes(5),
      }),
      threshold: 20 * 60,
      description: 'Firehose has held records for more than 20 minutes without delivering them to S3.',
    });
  }

  /** The deploy-time knobs, as CloudFormation parameters with their bounds. */
  private parameters() {
    const number = (name: string, description: string, def: number, min: number, max: number) =>
      new CfnParameter(this, name, {
        type: 'Number',
        description,
        default: def,
        minValue: min,
        maxValue: max,
      }).valueAsNumber;

    return {
      alertEmail: new CfnParameter(this, 'AlertEmail', {
        type: 'String',
        description: 'Address that receives alarm notifications (confirm the subscription mail)',
        allowedPattern: '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$',
        constraintDescription: 'an e-mail address',
      }).valueAsString,
      shardCount: number('ShardCount', 'Kinesis shards; 0 = on-demand capacity mode', 1, 0, 200),
      parallelizationFactor: number(
        'ParallelizationFactor',
        'Concurrent consumer batches per shard (ordering is kept per partition key)',
        1,
        1,
        10,
      ),
      rateLimit: number('ApiRateLimit', 'Steady requests per second per API key', 50, 1, 10000),
      burstLimit: number('ApiBurstLimit', 'Burst requests per API key', 100, 1, 5000),
      bufferSeconds: number('FirehoseBufferSeconds', 'Firehose flushes after this many seconds', 300, 0, 900),
      bufferMiB: number('FirehoseBufferMiB', 'Firehose flushes after this many MiB', 64, 1, 128),
      totesysSchedule: new CfnParameter(this, 'TotesysSchedule', {
        type: 'String',
        description: 'How often the totesys extract runs (EventBridge rate or cron expression)',
        default: 'rate(15 minutes)',
        allowedPattern: '^(rate\\(\\d+ (minute|minutes|hour|hours|day|days)\\)|cron\\(.+\\))$',
        constraintDescription: 'rate(N minutes) or cron(...)',
      }).valueAsString,
      totesysFreshnessSeconds: number(
        'TotesysFreshnessSeconds',
        'Alarm when the totesys stars lag the source by more than this many seconds',
        1800,
        120,
        86400,
      ),
      baseRpu: number(
        'WarehouseBaseRpu',
        'Redshift Serverless base capacity (RPU, multiple of 8)',
        8,
        8,
        512,
      ),
    };
  }

  /** cdk-nag findings on resources CDK itself adds, each with why it is acceptable. */
  private acknowledgeCdkInternals(): void {
    // Created by CDK for eventBridgeEnabled buckets: a one-shot custom resource that turns on S3 -> EventBridge.
    for (const child of this.node.children) {
      if (child.node.id.startsWith('BucketNotificationsHandler')) {
        acknowledge(
          child,
          [
            'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
          ],
          'CDK-internal custom resource that enables EventBridge notifications on the bucket; it only writes its own logs.',
        );
      }
    }
    acknowledge(
      this,
      ['CloudFormation-Validate::W7001'],
      'The Firehose construct always adds its CIDR mapping; it is only referenced by HTTP/Redshift destinations, which this stack does not use.',
    );
  }

  /** Three AZs even when the stack is environment-agnostic: Redshift Serverless needs subnets in three. */
  override get availabilityZones(): string[] {
    return [0, 1, 2].map((i) => Fn.select(i, Fn.getAzs()));
  }
}
