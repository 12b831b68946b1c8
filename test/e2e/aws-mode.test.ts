import fs from 'node:fs/promises';
import path from 'node:path';
import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  type _Record as KinesisRecord,
  ListShardsCommand,
} from '@aws-sdk/client-kinesis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envSchema } from '#adapters/config';
import type { Warehouse } from '#adapters/warehouse';
import { createPostgresWarehouse } from '#adapters/warehouse-postgres';
import { readMigrations } from '#batch/migrate';
import { dynamoLineSource, type ReconcileReport, reconcile, warehouseLineSource } from '#batch/reconcile';
import type { InvoiceLineInput } from '#core/invoice-line';
import { type EventContext, toLambdaRecord } from '#local/poller-batch';
import type { LocalStack } from '#local/stack';
import { openRunLog } from '#producer/run-log';
import type { Bundle } from '../../infra/bundle.ts';
import { CONSUMER_SETTINGS } from '../../infra/constructs/consumers.ts';
import { type AwsModeEnv, startAwsModeEnv } from '../helpers/aws-mode.ts';
import {
  type ApiResult,
  type AwsCall,
  allows,
  type CfnTemplate,
  ENDPOINT_VARIABLES,
  type KinesisResult,
  type LambdaFunction,
  LambdaInvokeError,
  LOCAL_ONLY_VARIABLES,
  type LocalNames,
  restApiEvent,
  roleStatements,
  runtimeVariables,
  scheduledEvent,
  startLambda,
  type TemplateFunction,
} from '../helpers/lambda-harness.ts';
import { invoiceLines } from '../helpers/lines.ts';

/**
 * aws mode, run here (issue 16 items 2 and 4): the Lambda bundles `cdk deploy` uploads, each run as
 * Lambda runs it with its environment from the synthesised template, against the local stand-ins of
 * every AWS API they call (the Redshift Data API included). Lines posted as API Gateway events to the
 * API bundle go to the local Kinesis; its records, as the event source mapping delivers them, go to the
 * consumer bundle; the archive objects Firehose writes, as EventBridge delivers S3's "Object Created",
 * go to the loader bundle, which applies the migrations it carries and loads through the Data API.
 */

// Names that differ from adapters/config.ts's defaults: a function the template forgot to give a
// name would fall back to a default, find no such resource here, and be caught.
const STACK_ENV = {
  RP_STREAM_NAME: 'aws-e2e-lines',
  RP_TABLE_NAME: 'aws-e2e-store',
  RP_BUCKET: 'aws-e2e-data',
  RP_DELIVERY_STREAM: 'aws-e2e-archive',
  RP_STREAM_SHARDS: '2',
};
const RUN = ['api', 'consumer', 'loader'] as const;
type Run = (typeof RUN)[number];

let env: AwsModeEnv<Run>;
let workdir: string;
let stack: LocalStack;
let template: CfnTemplate;
let functions: Map<string, TemplateFunction>;
let names: LocalNames;
let resolve: (e: unknown) => string;
let bundles: Record<Run, Bundle>;
let lambdas: Partial<Record<Run, LambdaFunction>> = {};
let warehouse: Warehouse;

/** What the drive through the bundles produced, asserted by the tests below. */
const drive = {
  posted: [] as InvoiceLineInput[],
  apiAnswers: [] as ApiResult[],
  lookup: undefined as ApiResult | undefined,
  consumerInvocations: 0,
  consumerFailures: 0,
  archiveKeys: [] as string[],
  loaderResults: [] as unknown[],
  report: undefined as ReconcileReport | undefined,
};

/** The invoice lines of one test run: numbers no other run of this file uses. */
function linesToPost(): InvoiceLineInput[][] {
  const base = 7_000_000 + Math.floor(Math.random() * 900_000);
  return [
    invoiceLines(5, { invoiceNo: String(base) }),
    [
      ...invoiceLines(3, { invoiceNo: String(base + 1), customerId: undefined }),
      ...invoiceLines(2, { invoiceNo: `C${base + 2}`, quantity: -1 }),
    ],
  ];
}

/** Every record on the local stream, per shard, oldest first (what the event source mapping reads). */
async function streamRecords(): Promise<Map<string, KinesisRecord[]>> {
  const kinesis = stack.clients.kinesis;
  const out = new Map<string, KinesisRecord[]>();
  const shards = await kinesis.send(new ListShardsCommand({ StreamName: names.stream }));
  for (const shard of shards.Shards ?? []) {
    const shardId = shard.ShardId as string;
    let iterator = (
      await kinesis.send(
        new GetShardIteratorCommand({
          StreamName: names.stream,
          ShardId: shardId,
          ShardIteratorType: 'TRIM_HORIZON',
        }),
      )
    ).ShardIterator;
    const records: KinesisRecord[] = [];
    while (iterator) {
      const page = await kinesis.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 1000 }));
      records.push(...(page.Records ?? []));
      iterator = page.Records?.length ? page.NextShardIterator : undefined;
    }
    out.set(shardId, records);
  }
  return out;
}

/**
 * One shard's records through the consumer bundle as the event source mapping does with
 * ReportBatchItemFailures: batches of the mapping's size, and after a partial failure the batch is
 * retried from the first failed record, up to the mapping's retry bound.
 */
async function consumeShard(consumer: LambdaFunction, shardId: string, records: KinesisRecord[]) {
  const ctx: EventContext = {
    shardId,
    streamArn: resolve({ 'Fn::GetAtt': [streamLogicalId(), 'Arn'] }),
    region: names.region,
    invokeIdentityArn: resolve({ 'Fn::GetAtt': [consumer.fn.roleLogicalId, 'Arn'] }),
  };
  let rest = records.map((r) =>
    toLambdaRecord(
      {
        partitionKey: r.PartitionKey as string,
        sequenceNumber: r.SequenceNumber as string,
        data: Buffer.from(r.Data as Uint8Array),
        arrivedAtMs: (r.ApproximateArrivalTimestamp as Date).getTime(),
      },
      ctx,
    ),
  );
  let attempts = 0;
  while (rest.length > 0) {
    const batch = rest.slice(0, CONSUMER_SETTINGS.batchSize);
    drive.consumerInvocations++;
    const response = await consumer.invoke<KinesisResult>({ Records: batch });
    const failed = response?.batchItemFailures ?? [];
    if (failed.length === 0) {
      rest = rest.slice(batch.length);
      attempts = 0;
      continue;
    }
    drive.consumerFailures += failed.length;
    if (++attempts > CONSUMER_SETTINGS.retryAttempts)
      throw new Error(`consumer kept failing ${JSON.stringify(failed)}:\n${consumer.logs()}`);
    const first = rest.findIndex((r) => failed.some((f) => f.itemIdentifier === r.kinesis.sequenceNumber));
    if (first < 0) throw new Error(`consumer reported unknown items ${JSON.stringify(failed)}`);
    rest = rest.slice(first);
  }
}

const streamLogicalId = () => {
  const id = Object.entries(template.Resources).find(([, r]) => r.Type === 'AWS::Kinesis::Stream')?.[0];
  if (!id) throw new Error('no stream in the template');
  return id;
};

async function warehouseLineCount(invoices: string[]): Promise<number> {
  const { rows } = await warehouse.query<{ n: string }>(
    'SELECT COUNT(*) AS n FROM fact_sales_line WHERE invoice_no = ANY($1)',
    [invoices],
  );
  return Number(rows[0]?.n ?? 0);
}

/** The whole path, through the three bundles alone. */
async function drivePipeline(): Promise<void> {
  const { api, consumer, loader } = lambdas as Record<Run, LambdaFunction>;
  const runLogDir = path.join(workdir, 'runs');
  const runLog = await openRunLog(runLogDir, 'aws-e2e', { kind: 'aws-e2e', target: 'api bundle' });
  // Archive objects as S3 announces them where the template routes them to the loader, in order.
  const nextArchiveObject = env.triggersOf('loader');

  for (const lines of linesToPost()) {
    const answer = await api.invoke<ApiResult>(
      restApiEvent({
        method: 'POST',
        path: '/invoices',
        body: JSON.stringify(lines),
        headers: { 'content-type': 'application/json' },
      }),
    );
    drive.apiAnswers.push(answer);
    if (answer.statusCode === 202) {
      drive.posted.push(...lines);
      await runLog.appendBatch(lines);
    }
  }
  await runLog.close({});

  for (const [shardId, records] of await streamRecords()) await consumeShard(consumer, shardId, records);
  const invoiceNo = drive.posted[0]?.invoiceNo as string;
  drive.lookup = await api.invoke<ApiResult>(restApiEvent({ method: 'GET', path: `/invoices/${invoiceNo}` }));

  // Each archive object as EventBridge delivers it, until the warehouse holds every posted line.
  const invoices = [...new Set(drive.posted.map((l) => l.invoiceNo))];
  // The first invocation is the loader's cold start: it creates the warehouse's tables.
  do {
    const key = await nextArchiveObject(30_000);
    drive.archiveKeys.push(key);
    drive.loaderResults.push(await loader.invoke(await env.announce(key)));
  } while ((await warehouseLineCount(invoices)) < drive.posted.length);

  drive.report = await reconcile({
    runLogDir,
    sources: [
      dynamoLineSource({ client: stack.clients.dynamodb, table: names.table }),
      warehouseLineSource(warehouse),
    ],
  });
}

beforeAll(async () => {
  const begun = performance.now();
  env = await startAwsModeEnv(RUN, STACK_ENV, 'rp-aws-e2e-');
  ({ workdir, stack, template, functions, names, resolve, bundles } = env);
  warehouse = createPostgresWarehouse({ connectionString: stack.endpoints.postgres });
  const ready = performance.now();
  const started = await Promise.all(RUN.map((run) => env.start(run)));
  lambdas = Object.fromEntries(RUN.map((run, i) => [run, started[i]]));
  const warm = performance.now();
  await drivePipeline();
  const ms = (a: number, b: number) => `${Math.round(b - a)} ms`;
  console.info(
    `stack + synth + bundles ${ms(begun, ready)}, cold starts ${ms(ready, warm)}, drive ${ms(warm, performance.now())}`,
  );
}, 240_000);

afterAll(async () => {
  await Promise.all(Object.values(lambdas).map((l) => l.stop()));
  await warehouse?.close();
  await env?.stop();
});

describe('aws mode: the deployable bundles, run as Lambda runs them, against the local stack', () => {
  it('posts through the API bundle end in DynamoDB and, through the loader bundle, in the warehouse; reconcile is clean', () => {
    expect(drive.apiAnswers.map((a) => a.statusCode)).toEqual([202, 202]);
    expect(drive.posted).toHaveLength(10);
    expect(drive.consumerInvocations).toBeGreaterThan(0);
    expect(drive.consumerFailures).toBe(0);
    expect(drive.lookup?.statusCode).toBe(200);
    expect((JSON.parse(drive.lookup?.body ?? '{}') as { lines?: unknown[] }).lines).toHaveLength(5);
    expect(drive.archiveKeys.length).toBeGreaterThan(0);
    const report = drive.report as ReconcileReport;
    expect(report.accepted.lines).toBe(10);
    expect(report.stores.map((s) => [s.store, s.missing, s.duplicated, s.mismatched])).toEqual([
      ['dynamodb', 0, 0, 0],
      ['warehouse', 0, 0, 0],
    ]);
    expect(report.ok).toBe(true);
  });

  it('the loader bundle applied, on its cold start, every Redshift migration it carries in its asset', async () => {
    expect(bundles.loader.runtimeFiles).toContain('analytics/sql/migrations');
    const wanted = (await readMigrations('redshift')).map((m) => m.version);
    const { rows } = await warehouse.query<{ version: number }>(
      'SELECT version FROM schema_migrations ORDER BY version',
    );
    expect(rows.map((r) => Number(r.version))).toEqual(expect.arrayContaining(wanted));
  });

  it('the loader bundle without the migrations in its asset fails its cold start with the missing folder', async () => {
    const bare = path.join(workdir, 'assets', 'loader-without-migrations');
    await fs.cp(bundles.loader.dir, bare, { recursive: true });
    await fs.rm(path.join(bare, 'analytics'), { recursive: true });
    const loader = await startLambda({
      fn: functions.get('loader') as TemplateFunction,
      dir: bare,
      names,
      resolve,
      endpoints: { s3: stack.endpoints.s3, redshiftData: stack.endpoints.redshiftData as string },
    });
    try {
      const failure = await loader.invoke(scheduledEvent()).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(failure).toBeInstanceOf(LambdaInvokeError);
      expect((failure as LambdaInvokeError).error.errorMessage).toMatch(/ENOENT.*analytics\/sql\/migrations/);
    } finally {
      await loader.stop();
    }
  });

  it('every project variable a bundle reads is set on its function in the template, or has a default there', () => {
    const schema = envSchema.shape as Record<string, { safeParse(v: unknown): { success: boolean } }>;
    for (const run of RUN) {
      const l = lambdas[run] as LambdaFunction;
      // What the template sets, and what the Lambda runtime sets in every execution environment.
      const set = new Set([
        ...Object.keys(l.fn.environment),
        ...Object.keys(runtimeVariables(l.fn, names, '')),
      ]);
      const reads = [...l.envReads()];
      // A variable read outside adapters/config.ts's one schema would escape this check and the docs.
      const stray = reads.filter((v) => v.startsWith('RP_') && !(v in schema));
      expect(stray, `${run}: RP_ variables read outside the config schema`).toEqual([]);
      const unset = reads.filter((v) => v in schema && !set.has(v));
      const required = unset.filter((v) => !schema[v]?.safeParse(undefined).success);
      expect(required, `${run}: required variables the template does not set`).toEqual([]);
      // Each service a bundle called must have been named by the template, not by a default.
      const services = new Set(l.calls().map((c) => c.action.split(':')[0] ?? ''));
      const naming: Record<string, string[]> = {
        kinesis: ['RP_STREAM_NAME'],
        dynamodb: ['RP_TABLE_NAME'],
        s3: ['RP_BUCKET'],
        firehose: ['RP_DELIVERY_STREAM'],
        'redshift-data': ['RP_REDSHIFT_WORKGROUP', 'RP_REDSHIFT_DATABASE'],
      };
      const unnamed = [...services].flatMap((s) => (naming[s] ?? []).filter((v: string) => !set.has(v)));
      expect(unnamed, `${run}: calls a service whose resource name the template does not set`).toEqual([]);
      console.info(`${run} reads, left to their defaults on AWS: ${unset.sort().join(' ')}`);
    }
  });

  it('every AWS call a bundle made is allowed by its role in the template', () => {
    const denied: string[] = [];
    for (const run of RUN) {
      const l = lambdas[run] as LambdaFunction;
      const calls = uniqueCalls(l.calls());
      expect(calls.length, `${run} made AWS calls`).toBeGreaterThan(0);
      for (const call of calls) {
        // A COPY reads S3 as the role its IAM_ROLE names (the template's COPY role, resolved by logical id).
        const role = call.roleArn ? (call.roleArn.split('/').pop() as string) : l.fn.roleLogicalId;
        if (!allows(roleStatements(template, role, resolve), call))
          denied.push(
            `${run}: ${call.action} on ${call.resource}${call.via ? ` (${call.via} as ${role})` : ''}`,
          );
      }
      console.info(`${run} calls: ${calls.map((c) => `${c.action} ${c.resource}`).join(', ')}`);
    }
    expect(denied).toEqual([]);
  });

  it('the checks can fail: a call outside a role, and a function environment without the template', () => {
    const api = lambdas.api as LambdaFunction;
    const statements = roleStatements(template, api.fn.roleLogicalId, resolve);
    const table = `arn:aws:dynamodb:${names.region}:${names.account}:table/${names.table}`;
    expect(allows(statements, { action: 'dynamodb:GetItem', resource: table })).toBeDefined();
    expect(allows(statements, { action: 'dynamodb:PutItem', resource: table })).toBeUndefined();
    expect(
      allows(statements, { action: 's3:GetObject', resource: `arn:aws:s3:::${names.bucket}/x` }),
    ).toBeUndefined();
    // The COPY role reads what the loader stages and the archive, not what COPY never reads.
    const copyRole = Object.keys(template.Resources).find((id) =>
      id.startsWith('WarehouseCopyRole'),
    ) as string;
    const copy = roleStatements(template, copyRole, resolve);
    const object = (key: string) => ({
      action: 's3:GetObject',
      resource: `arn:aws:s3:::${names.bucket}/${key}`,
    });
    expect(allows(copy, object('staging/x.csv.gz'))).toBeDefined();
    expect(allows(copy, object('dlq/x'))).toBeUndefined();
    // The harness adds only the runtime's variables and the local endpoints to the template's.
    const added = Object.keys(api.environment).filter((k) => !(k in api.fn.environment));
    const allowed = new Set([
      ...Object.keys(runtimeVariables(api.fn, names, '')),
      ...Object.keys(LOCAL_ONLY_VARIABLES),
      ...Object.values(ENDPOINT_VARIABLES),
    ]);
    expect(added.filter((k) => !allowed.has(k))).toEqual([]);
  });
});

function uniqueCalls(calls: AwsCall[]): AwsCall[] {
  const seen = new Map<string, AwsCall>();
  for (const c of calls) seen.set(`${c.action} ${c.resource} ${c.roleArn ?? ''}`, c);
  return [...seen.values()].sort((a, b) =>
    `${a.action}${a.resource}`.localeCompare(`${b.action}${b.resource}`),
  );
}
