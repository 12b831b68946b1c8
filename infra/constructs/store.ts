import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { INDEXES, TABLE_KEYS } from '#adapters/dynamo-table';

/** The serving store: the same single-table layout and GSIs the local mode creates (adapters/dynamo-table.ts). */
export class ServingStore extends Construct {
  readonly table: dynamodb.Table;

  constructor(scope: Construct, id: string, props: { key: kms.IKey }) {
    super(scope, id);
    const string = (name: string) => ({ name, type: dynamodb.AttributeType.STRING });
    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: string(TABLE_KEYS.pk),
      sortKey: string(TABLE_KEYS.sk),
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: props.key,
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // Each index stores only what its route shows (docs/dynamodb.md): an index write is billed on
    // the projected size, and gsi2 only holds line items of the one-item-per-line layout.
    for (const gsi of INDEXES) {
      this.table.addGlobalSecondaryIndex({
        indexName: gsi.name,
        partitionKey: string(gsi.pk),
        sortKey: string(gsi.sk),
        projectionType: dynamodb.ProjectionType.INCLUDE,
        nonKeyAttributes: [...gsi.project],
      });
    }
  }
}
