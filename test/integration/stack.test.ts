import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { BatchWriteItemCommand, QueryCommand } from '@aws-sdk/client-dynamodb';
import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  ListShardsCommand,
  PutRecordsCommand,
} from '@aws-sdk/client-kinesis';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '#adapters/config';
import { readEndpoints } from '#local/endpoints';
import type { LocalStack } from '#local/stack';
import { startTestStack, testConfig } from '#test/helpers/stack';

const run = promisify(execFile);

describe('local stack', () => {
  let config: Config;
  let stack: LocalStack;

  beforeAll(async () => {
    config = await testConfig();
    stack = await startTestStack(config);
  });
  afterAll(async () => {
    await stack?.stop();
    fs.rmSync(config.dataDir, { recursive: true, force: true });
  });

  it('writes endpoints.json with every service and all of them healthy', async () => {
    const endpoints = await readEndpoints(config.dataDir);
    for (const key of ['kinesis', 'dynamodb', 's3', 'firehose', 'postgres'] as const) {
      expect(endpoints[key]).toMatch(/^(http|postgresql):\/\//);
    }
    const health = await stack.health();
    expect(health.filter((h) => !h.ok)).toEqual([]);
  });

  it('round-trips Kinesis PutRecords / GetRecords', async () => {
    const { kinesis } = stack.clients;
    const StreamName = config.names.stream;
    const put = await kinesis.send(
      new PutRecordsCommand({
        StreamName,
        Records: Array.from({ length: 20 }, (_, i) => ({
          Data: Buffer.from(`rec-${i}`),
          PartitionKey: 'same',
        })),
      }),
    );
    expect(put.FailedRecordCount).toBe(0);
    const shardId = put.Records?.[0]?.ShardId;
    const it0 = await kinesis.send(
      new GetShardIteratorCommand({ StreamName, ShardId: shardId, ShardIteratorType: 'TRIM_HORIZON' }),
    );
    const got = await kinesis.send(new GetRecordsCommand({ ShardIterator: it0.ShardIterator }));
    const data = (got.Records ?? []).map((r) => Buffer.from(r.Data ?? []).toString());
    expect(data).toEqual(Array.from({ length: 20 }, (_, i) => `rec-${i}`));
    const shards = await kinesis.send(new ListShardsCommand({ StreamName }));
    expect(shards.Shards).toHaveLength(config.streamShards);
  });

  it('round-trips DynamoDB BatchWriteItem / Query on a GSI', async () => {
    const { dynamodb } = stack.clients;
    await dynamodb.send(
      new BatchWriteItemCommand({
        RequestItems: {
          [config.names.table]: Array.from({ length: 3 }, (_, i) => ({
            PutRequest: {
              Item: {
                pk: { S: `TEST#${i}` },
                sk: { S: 'X' },
                gsi1pk: { S: 'CUSTOMER#1' },
                gsi1sk: { S: `2011-01-0${i + 1}` },
              },
            },
          })),
        },
      }),
    );
    const out = await dynamodb.send(
      new QueryCommand({
        TableName: config.names.table,
        IndexName: 'gsi1',
        KeyConditionExpression: 'gsi1pk = :c',
        ExpressionAttributeValues: { ':c': { S: 'CUSTOMER#1' } },
        ScanIndexForward: false,
      }),
    );
    expect(out.Items?.map((i) => i.pk?.S)).toEqual(['TEST#2', 'TEST#1', 'TEST#0']);
  });

  it('stores a streamed S3 upload byte-identical', async () => {
    const body = randomBytes(7 * 1024 * 1024); // larger than one 5 MiB part
    const upload = new Upload({
      client: stack.clients.s3,
      params: {
        Bucket: config.names.bucket,
        Key: 'test/blob.bin',
        Body: Readable.from([body.subarray(0, 3e6), body.subarray(3e6)]),
      },
    });
    await upload.done();
    const got = await stack.clients.s3.send(
      new GetObjectCommand({ Bucket: config.names.bucket, Key: 'test/blob.bin' }),
    );
    if (!got.Body) throw new Error('no body');
    const bytes = Buffer.from(await got.Body.transformToByteArray());
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(
      createHash('sha256').update(body).digest('hex'),
    );
  });

  it('round-trips PostgreSQL', async () => {
    const client = new pg.Client({ connectionString: stack.endpoints.postgres });
    await client.connect();
    try {
      await client.query('create table if not exists stack_probe (id int primary key, note text)');
      await client.query('insert into stack_probe values ($1, $2)', [1, "it's here"]);
      const res = await client.query('select note from stack_probe where id = $1', [1]);
      expect(res.rows[0]?.note).toBe("it's here");
    } finally {
      await client.end();
    }
  });

  it('is wire-compatible with the AWS CLI', async (ctx) => {
    if (!fs.existsSync('/usr/bin/aws')) {
      ctx.skip(true, '/usr/bin/aws is absent (Debian package awscli, installed by .ci/run)');
    }
    const { stdout } = await run(
      '/usr/bin/aws',
      ['--endpoint-url', stack.endpoints.kinesis, '--output', 'json', 'kinesis', 'list-streams'],
      {
        env: {
          ...process.env,
          AWS_ACCESS_KEY_ID: 'x',
          AWS_SECRET_ACCESS_KEY: 'x',
          AWS_DEFAULT_REGION: config.region,
        },
      },
    );
    expect(JSON.parse(stdout).StreamNames).toContain(config.names.stream);
  });
});
