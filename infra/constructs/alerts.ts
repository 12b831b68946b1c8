import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';

export interface AlertsProps {
  key: kms.IKey;
  /** Where alarms are mailed (a CloudFormation parameter); AWS sends a confirmation mail first. */
  email: string;
}

export interface AlarmSpec {
  metric: cloudwatch.IMetric;
  threshold: number;
  description: string;
  evaluationPeriods?: number;
  comparison?: cloudwatch.ComparisonOperator;
  /** Default NOT_BREACHING; a freshness alarm whose metric stops coming is BREACHING. */
  treatMissingData?: cloudwatch.TreatMissingData;
}

/** The alert topic and every alarm that notifies it (alarm and OK transitions). */
export class Alerts extends Construct {
  readonly topic: sns.Topic;
  readonly alarms: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: AlertsProps) {
    super(scope, id);
    this.topic = new sns.Topic(this, 'Topic', {
      displayName: 'retail-pipeline alerts',
      masterKey: props.key,
      enforceSSL: true,
    });
    this.topic.addSubscription(new subscriptions.EmailSubscription(props.email));
  }

  /** An alarm on `spec.metric` wired to the topic; missing data is not an alarm (idle pipelines are fine) unless the spec says so. */
  alarm(id: string, spec: AlarmSpec): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this, id, {
      metric: spec.metric,
      threshold: spec.threshold,
      evaluationPeriods: spec.evaluationPeriods ?? 1,
      comparisonOperator: spec.comparison ?? cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: spec.treatMissingData ?? cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: spec.description,
    });
    const action = new actions.SnsAction(this.topic);
    alarm.addAlarmAction(action);
    alarm.addOkAction(action);
    this.alarms.push(alarm);
    return alarm;
  }
}
