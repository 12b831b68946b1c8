import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { GetRecordsCommand, GetShardIteratorCommand, PutRecordCommand } from '@aws-sdk/client-kinesis';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '#adapters/logger';
import { endpointsPath } from '#local/endpoints';
import { StackAlreadyRunningError, startStack } from '#local/stack';
import { startTestStack, testConfig } from '#test/helpers/stack';

/** PIDs of postgres server processes whose command line mentions this data directory. */
function postgresProcessesFor(dataDir: string): string[] {
  const out = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' });
  return out.split('\n').filter((l) => /\bpostgres\b/.test(l) && l.includes(dataDir));
}

/** True when nothing answers at that connection string any more. */
async function refused(connectionString: string): Promise<boolean> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.end();
    return false;
  } catch {
    return true;
  }
}

// Three stack starts (emulators plus a PostgreSQL server each) in one test: about 20 s each on a 2-core
// machine under load (56 s in all was measured next to other suites), past vitest's 60 s default.
const THREE_STACK_STARTS_TIMEOUT_MS = 240_000;

describe('local stack lifecycle', { timeout: THREE_STACK_STARTS_TIMEOUT_MS }, () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('keeps every store across a restart, refuses a second stack, and --fresh wipes', async () => {
    const config = await testConfig();
    dirs.push(config.dataDir);
    let stack = await startTestStack(config);
    const { names } = config;
    let seq: string | undefined;
    let shardId: string | undefined;
    try {
      await expect(startStack({ config, logger: createLogger('silent') })).rejects.toBeInstanceOf(
        StackAlreadyRunningError,
      );
      const put = await stack.clients.kinesis.send(
        new PutRecordCommand({ StreamName: names.stream, Data: Buffer.from('kept'), PartitionKey: 'k' }),
      );
      seq = put.SequenceNumber;
      shardId = put.ShardId;
      await stack.clients.dynamodb.send(
        new PutItemCommand({ TableName: names.table, Item: { pk: { S: 'KEPT' }, sk: { S: '1' } } }),
      );
      await stack.clients.s3.send(
        new PutObjectCommand({ Bucket: names.bucket, Key: 'kept.txt', Body: 'kept' }),
      );
      const db = new pg.Client({ connectionString: stack.endpoints.postgres });
      await db.connect();
      await db.query('create table kept (v text)');
      await db.query("insert into kept values ('kept')");
      await db.end();
    } finally {
      await stack.stop();
    }
    expect(fs.existsSync(endpointsPath(config.dataDir))).toBe(false);
    expect(postgresProcessesFor(config.dataDir)).toEqual([]);
    await expect(refused(stack.endpoints.postgres)).resolves.toBe(true);
    for (const url of [
      stack.endpoints.kinesis,
      stack.endpoints.dynamodb,
      stack.endpoints.s3,
      stack.endpoints.firehose,
    ]) {
      await expect(
        fetch(url).then(
          () => false,
          () => true,
        ),
        url,
      ).resolves.toBe(true);
    }

    stack = await startTestStack(config);
    try {
      const it0 = await stack.clients.kinesis.send(
        new GetShardIteratorCommand({
          StreamName: names.stream,
          ShardId: shardId,
          ShardIteratorType: 'AT_SEQUENCE_NUMBER',
          StartingSequenceNumber: seq,
        }),
      );
      const recs = await stack.clients.kinesis.send(
        new GetRecordsCommand({ ShardIterator: it0.ShardIterator }),
      );
      expect(Buffer.from(recs.Records?.[0]?.Data ?? []).toString()).toBe('kept');
      const item = await stack.clients.dynamodb.send(
        new GetItemCommand({ TableName: names.table, Key: { pk: { S: 'KEPT' }, sk: { S: '1' } } }),
      );
      expect(item.Item?.pk?.S).toBe('KEPT');
      const obj = await stack.clients.s3.send(
        new GetObjectCommand({ Bucket: names.bucket, Key: 'kept.txt' }),
      );
      expect(await obj.Body?.transformToString()).toBe('kept');
      const db = new pg.Client({ connectionString: stack.endpoints.postgres });
      await db.connect();
      expect((await db.query('select v from kept')).rows).toEqual([{ v: 'kept' }]);
      await db.end();
    } finally {
      await stack.stop();
    }

    stack = await startStack({ config, logger: createLogger('silent'), fresh: true });
    try {
      const item = await stack.clients.dynamodb.send(
        new GetItemCommand({ TableName: names.table, Key: { pk: { S: 'KEPT' }, sk: { S: '1' } } }),
      );
      expect(item.Item).toBeUndefined();
      const db = new pg.Client({ connectionString: stack.endpoints.postgres });
      await db.connect();
      const res = await db.query("select to_regclass('public.kept') as t");
      expect(res.rows[0]?.t).toBeNull();
      await db.end();
    } finally {
      await stack.stop();
    }
    expect(postgresProcessesFor(config.dataDir)).toEqual([]);
  });
});
