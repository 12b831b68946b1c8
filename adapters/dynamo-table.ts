import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';

/**
 * The single table behind the serving store (see docs/dynamodb.md for the item types).
 * pk/sk: the item's identity; gsi1: customer -> invoices; gsi2: product -> lines.
 */
export const TABLE_KEYS = {
  pk: 'pk',
  sk: 'sk',
  gsi1: { name: 'gsi1', pk: 'gsi1pk', sk: 'gsi1sk' },
  gsi2: { name: 'gsi2', pk: 'gsi2pk', sk: 'gsi2sk' },
} as const;

export function tableDefinition(tableName: string): CreateTableCommandInput {
  const gsi = (g: { name: string; pk: string; sk: string }) => ({
    IndexName: g.name,
    KeySchema: [
      { AttributeName: g.pk, KeyType: 'HASH' as const },
      { AttributeName: g.sk, KeyType: 'RANGE' as const },
    ],
    Projection: { ProjectionType: 'ALL' as const },
  });
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [
      TABLE_KEYS.pk,
      TABLE_KEYS.sk,
      TABLE_KEYS.gsi1.pk,
      TABLE_KEYS.gsi1.sk,
      TABLE_KEYS.gsi2.pk,
      TABLE_KEYS.gsi2.sk,
    ].map((AttributeName) => ({ AttributeName, AttributeType: 'S' as const })),
    KeySchema: [
      { AttributeName: TABLE_KEYS.pk, KeyType: 'HASH' },
      { AttributeName: TABLE_KEYS.sk, KeyType: 'RANGE' },
    ],
    GlobalSecondaryIndexes: [gsi(TABLE_KEYS.gsi1), gsi(TABLE_KEYS.gsi2)],
  };
}
