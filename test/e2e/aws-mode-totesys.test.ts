import {
  GetSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_CREDENTIALS } from '#adapters/clients';
import type { Warehouse } from '#adapters/warehouse';
import { createPostgresWarehouse } from '#adapters/warehouse-postgres';
import type { CdcLoadResult } from '#cdc/load';
import type { ExtractRun } from '#cdc/totesys/extract';
import { ensureSeededSource } from '#cdc/totesys/seed';
import type { TransformSweep } from '#cdc/transform';
import type { LocalStack } from '#local/stack';
import type { LambdaEntryName } from '../../infra/entries.ts';
import { type AwsModeEnv, startAwsModeEnv } from '../helpers/aws-mode.ts';
import {
  type AwsCall,
  allows,
  type CfnTemplate,
  type LambdaFunction,
  LambdaInvokeError,
  type LocalNames,
  roleStatements,
  scheduledEvent,
  type TemplateFunction,
} from '../helpers/lambda-harness.ts';
import { type SecretsManagerStandIn, startSecretsManager } from '../helpers/secrets-manager.ts';
import { testConfig } from '../helpers/stack.ts';

/**
 * aws mode, run here, for the operational database (issue 16 item 2): the three totesys bundles
 * `cdk deploy` uploads, run as Lambda runs them with their environments from the synthesised template.
 * The extract, on its schedule's event, reads the source's coordinates from Secrets Manager (a local
 * stand-in) and captures the seeded source into ingestion/; its completion marker, announced as S3's
 * "Object Created" event where the template's rule matches it, runs the transform bundle; the processed
 * marker, likewise, runs the load bundle, whose Redshift statements go through the local Data API.
 */

const STACK_ENV = { RP_BUCKET: 'aws-e2e-totesys', RP_TOTESYS_SIMULATE_RATE: '0' };
const RUN = ['totesysExtract', 'totesysTransform', 'totesysLoad'] as const satisfies LambdaEntryName[];
type Run = (typeof RUN)[number];

let env: AwsModeEnv<Run>;
let stack: LocalStack;
let template: CfnTemplate;
let names: LocalNames;
let resolve: (e: unknown) => string;
let lambdas: Partial<Record<Run, LambdaFunction>> = {};
let secrets: SecretsManagerStandIn;
let secretArn: string;
let source: pg.Pool;
let warehouse: Warehouse;

const drive = {
  extract: undefined as ExtractRun | undefined,
  ingestionMarker: undefined as string | undefined,
  transform: undefined as TransformSweep | undefined,
  processedMarker: undefined as string | undefined,
  load: undefined as { results: CdcLoadResult[]; lagSeconds: number | null } | undefined,
};

const fnOf = (run: Run) => env.fnOf(run);
const start = (run: Run, fn?: TemplateFunction) =>
  env.start(run, { extra: { secretsManager: secrets.url }, ...(fn ? { fn } : {}) });

/** The source database's coordinates in the secret's RDS shape (plain TCP: the embedded server has no TLS). */
function sourceSecretValue(connectionString: string): string {
  const u = new URL(connectionString);
  return JSON.stringify({
    engine: 'postgres',
    host: u.hostname,
    port: Number(u.port),
    username: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    dbname: u.pathname.slice(1),
    ssl: false,
  });
}

async function drivePipeline(): Promise<void> {
  const { totesysExtract, totesysTransform, totesysLoad } = lambdas as Record<Run, LambdaFunction>;
  const toTransform = env.triggersOf('totesysTransform');
  const toLoad = env.triggersOf('totesysLoad');
  drive.extract = await totesysExtract.invoke<ExtractRun>(
    scheduledEvent(`arn:aws:events:${names.region}:${names.account}:rule/ExtractSchedule`),
  );
  drive.ingestionMarker = await toTransform(30_000);
  drive.transform = await totesysTransform.invoke<TransformSweep>(await env.announce(drive.ingestionMarker));
  drive.processedMarker = await toLoad(30_000);
  drive.load = await totesysLoad.invoke(await env.announce(drive.processedMarker));
}

beforeAll(async () => {
  const begun = performance.now();
  env = await startAwsModeEnv(RUN, STACK_ENV, 'rp-aws-totesys-');
  ({ stack, template, names, resolve } = env);
  const totesysUrl = stack.endpoints.totesys;
  if (!totesysUrl) throw new Error('the local stack has no totesys database (endpoints.json totesys)');
  source = new pg.Pool({ connectionString: totesysUrl });
  await ensureSeededSource(source, (await testConfig(STACK_ENV)).totesys.seed);
  secretArn = resolve(fnOf('totesysExtract').environment.RP_TOTESYS_SECRET_ARN);
  secrets = await startSecretsManager([{ arn: secretArn, value: sourceSecretValue(totesysUrl) }]);
  warehouse = createPostgresWarehouse({ connectionString: stack.endpoints.postgres });
  const ready = performance.now();
  const started = await Promise.all(RUN.map((run) => start(run)));
  lambdas = Object.fromEntries(RUN.map((run, i) => [run, started[i]]));
  const warm = performance.now();
  await drivePipeline();
  const ms = (a: number, b: number) => `${Math.round(b - a)} ms`;
  console.info(
    `stack + template + bundles + seed ${ms(begun, ready)}, cold starts ${ms(ready, warm)}, drive ${ms(warm, performance.now())}`,
  );
}, 300_000);

afterAll(async () => {
  await Promise.all(Object.values(lambdas).map((l) => l.stop()));
  await secrets?.close();
  await source?.end();
  await warehouse?.close();
  await env?.stop();
});

/** count and sum of one column, as exact text, from a source table and its fact table. */
async function totals(table: string, fact: string, column: string) {
  const sql = (from: string) => `SELECT COUNT(*)::text AS n, SUM(${column})::text AS total FROM ${from}`;
  const [a, b] = await Promise.all([source.query(sql(table)), warehouse.query(sql(`totesys.${fact}`))]);
  return { source: a.rows[0], warehouse: b.rows[0] };
}

describe('aws mode: the totesys bundles, run as Lambda runs them, against the local stack', () => {
  it('the extract read its source through the secret; the markers ran the transform and the load', () => {
    expect(secrets.requests()).toEqual([secretArn]);
    const run = drive.extract as ExtractRun;
    expect(run.rows).toBeGreaterThan(0);
    expect(drive.ingestionMarker).toBe(run.markerKey);
    expect(drive.transform?.failed).toBeUndefined();
    expect(drive.transform?.transformed).toHaveLength(1);
    expect(drive.processedMarker).toMatch(/^processed\/totesys\/_runs\//);
    const results = drive.load?.results ?? [];
    expect(results.length).toBeGreaterThan(0);
    expect(results.filter((r) => r.status !== 'loaded')).toEqual([]);
    expect(drive.load?.lagSeconds).not.toBeNull();
  });

  it('the sales, purchases and payments stars hold the seeded rows (counts and sums equal to the source)', async () => {
    const checks = await Promise.all([
      totals('sales_order', 'fact_sales_order', 'units_sold'),
      totals('purchase_order', 'fact_purchase_orders', 'item_quantity'),
      totals('payment', 'fact_payment', 'payment_amount'),
      totals('counterparty', 'dim_counterparty', 'counterparty_id'),
    ]);
    for (const c of checks) {
      expect(Number(c.source?.n)).toBeGreaterThan(0);
      expect(c.warehouse).toEqual(c.source);
    }
  });

  it('every AWS call a totesys bundle made is allowed by its role in the template', () => {
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
    const extract = (lambdas.totesysExtract as LambdaFunction).calls();
    expect(extract).toContainEqual({ action: 'secretsmanager:GetSecretValue', resource: secretArn });
    // Only the extract may read the source's secret.
    const load = lambdas.totesysLoad as LambdaFunction;
    expect(
      allows(roleStatements(template, load.fn.roleLogicalId, resolve), {
        action: 'secretsmanager:GetSecretValue',
        resource: secretArn,
      }),
    ).toBeUndefined();
  });

  it('the Secrets Manager stand-in answers an unknown secret as the service does, and the extract fails on it by name', async () => {
    const client = new SecretsManagerClient({
      region: names.region,
      endpoint: secrets.url,
      credentials: LOCAL_CREDENTIALS,
    });
    try {
      const missing = `arn:aws:secretsmanager:${names.region}:${names.account}:secret:no-such-source`;
      await expect(client.send(new GetSecretValueCommand({ SecretId: missing }))).rejects.toBeInstanceOf(
        ResourceNotFoundException,
      );
      const byName = await client.send(
        new GetSecretValueCommand({ SecretId: secretArn.split(':secret:')[1] }),
      );
      expect(byName.ARN).toBe(secretArn);
      expect(byName.CreatedDate).toBeInstanceOf(Date);

      const fn = fnOf('totesysExtract');
      const extract = await start('totesysExtract', {
        ...fn,
        environment: { ...fn.environment, RP_TOTESYS_SECRET_ARN: missing },
      });
      try {
        const failure = await extract.invoke(scheduledEvent()).then(
          () => undefined,
          (err: unknown) => err,
        );
        expect(failure).toBeInstanceOf(LambdaInvokeError);
        expect((failure as LambdaInvokeError).error).toMatchObject({
          errorType: 'ResourceNotFoundException',
          errorMessage: expect.stringContaining("can't find the specified secret"),
        });
      } finally {
        await extract.stop();
      }
    } finally {
      client.destroy();
    }
  });
});

function uniqueCalls(calls: AwsCall[]): AwsCall[] {
  const seen = new Map<string, AwsCall>();
  for (const c of calls) seen.set(`${c.action} ${c.resource} ${c.roleArn ?? ''}`, c);
  return [...seen.values()].sort((a, b) =>
    `${a.action}${a.resource}`.localeCompare(`${b.action}${b.resource}`),
  );
}
