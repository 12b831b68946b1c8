import { Aws, CfnCondition, Duration, Fn } from 'aws-cdk-lib';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import { Construct } from 'constructs';

export interface StreamProps {
  /** 0 means on-demand capacity; otherwise a provisioned stream with this many shards (a CloudFormation parameter). */
  shardCount: number;
}

/**
 * The invoice-lines stream. Encrypted with the AWS-managed `aws/kinesis` key: KMS encryption at rest without the
 * per-request KMS charges and key grants a customer key would add on the hottest path (AwsSolutions-KDS3).
 */
export class InvoiceStream extends Construct {
  readonly stream: kinesis.Stream;

  constructor(scope: Construct, id: string, props: StreamProps) {
    super(scope, id);
    this.stream = new kinesis.Stream(this, 'Stream', {
      streamMode: kinesis.StreamMode.PROVISIONED,
      shardCount: 1,
      encryption: kinesis.StreamEncryption.MANAGED,
      retentionPeriod: Duration.hours(24),
    });
    // The mode is chosen at deploy time by the parameter, so both branches live in the template.
    const onDemand = new CfnCondition(this, 'OnDemand', {
      expression: Fn.conditionEquals(props.shardCount, 0),
    });
    const cfn = this.stream.node.defaultChild as kinesis.CfnStream;
    cfn.addPropertyOverride(
      'StreamModeDetails',
      Fn.conditionIf(onDemand.logicalId, { StreamMode: 'ON_DEMAND' }, { StreamMode: 'PROVISIONED' }),
    );
    cfn.addPropertyOverride('ShardCount', Fn.conditionIf(onDemand.logicalId, Aws.NO_VALUE, props.shardCount));
  }
}
