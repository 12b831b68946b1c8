import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '#adapters/config';
import { WAREHOUSE_TABLES } from '#cdc/transform-model';
import { buildApp, STACK_NAME } from '../../infra/build.ts';
import { glueType, TOTESYS_LAG_METRIC, TOTESYS_PREFIXES } from '../../infra/constructs/totesys.ts';
import { ENTRY_METADATA_KEY, LAMBDA_ENTRIES } from '../../infra/entries.ts';

/**
 * The totesys CDC on AWS (infra/constructs/totesys.ts): what each function may touch, what it is
 * given at start-up, the triggers, the alarms and the catalog. Two synths with cdk-nag on: the
 * default (the stack creates the source secret, no VPC) and one with an existing secret and a VPC.
 */
type Resource = { Type: string; Properties?: Record<string, unknown>; Metadata?: Record<string, unknown> };
type Statement = { Effect: string; Action: string | string[]; Resource: unknown };
type TemplateJson = { Resources: Record<string, Resource> };

/** A resource's properties; a missing block fails the test with the resource. */
const propsOf = (r: Resource | undefined): Record<string, unknown> => {
  if (!r?.Properties) throw new Error(`no properties on ${JSON.stringify(r)?.slice(0, 200)}`);
  return r.Properties;
};
const asArray = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v]);
const dirs: string[] = [];

function synth(context: Record<string, string> = {}): TemplateJson {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'rp-infra-totesys-'));
  dirs.push(outdir);
  const { app } = buildApp({ skipBundling: true, outdir, context });
  app.synth();
  const report = JSON.parse(fs.readFileSync(path.join(outdir, 'validation-report.json'), 'utf8')) as {
    pluginReports: { violations: { ruleName: string; severity: string }[] }[];
  };
  const findings = report.pluginReports.flatMap((p) =>
    p.violations.filter((v) => v.severity === 'error' || v.severity === 'warning').map((v) => v.ruleName),
  );
  expect(findings).toEqual([]);
  return JSON.parse(fs.readFileSync(path.join(outdir, `${STACK_NAME}.template.json`), 'utf8'));
}

let json: TemplateJson;
let vpcJson: TemplateJson;
const SECRET = 'arn:aws:secretsmanager:eu-west-2:123456789012:secret:totesys-AbCdEf';

beforeAll(() => {
  json = synth();
  vpcJson = synth({
    totesysSecretArn: SECRET,
    totesysSubnetIds: 'subnet-0123456789abcdef0, subnet-0123456789abcdef1',
    totesysSecurityGroupIds: 'sg-0123456789abcdef0',
  });
}, 240_000);
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const resources = (t: TemplateJson, type: string) =>
  Object.entries(t.Resources).filter(([, r]) => r.Type === type);

function fnOf(t: TemplateJson, entry: keyof typeof LAMBDA_ENTRIES): [string, Resource] {
  const found = resources(t, 'AWS::Lambda::Function').find(
    ([, r]) => r.Metadata?.[ENTRY_METADATA_KEY] === LAMBDA_ENTRIES[entry],
  );
  if (!found) throw new Error(`no function runs ${LAMBDA_ENTRIES[entry]}`);
  return found;
}

/** Every statement of the policies attached to the function's role. */
function statementsOf(t: TemplateJson, entry: keyof typeof LAMBDA_ENTRIES): Statement[] {
  const [, fn] = fnOf(t, entry);
  const role = (propsOf(fn).Role as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
  return resources(t, 'AWS::IAM::Policy')
    .filter(([, p]) => JSON.stringify(p.Properties?.Roles).includes(`"${role}"`))
    .flatMap(([, p]) => (propsOf(p).PolicyDocument as { Statement: Statement[] }).Statement);
}

/** The object-key patterns (after the bucket ARN) an action is allowed on, e.g. `/ingestion/totesys/*`. */
function objectPatterns(statements: Statement[], action: string): string[] {
  return statements
    .filter((s) => s.Effect === 'Allow' && asArray(s.Action).includes(action))
    .flatMap((s) => asArray(s.Resource))
    .map((r) => JSON.stringify(r))
    .flatMap((r) => [...r.matchAll(/"(\/[^"]*)"/g)].map((m) => m[1] as string));
}

const actionsOf = (statements: Statement[]) => statements.flatMap((s) => asArray(s.Action));

describe('totesys functions: least privilege', () => {
  it('the extract writes only under ingestion/totesys/, reads only its watermarks and the source secret', () => {
    const s = statementsOf(json, 'totesysExtract');
    expect(objectPatterns(s, 's3:PutObject')).toEqual([`/${TOTESYS_PREFIXES.ingestion}*`]);
    expect(objectPatterns(s, 's3:GetObject*')).toEqual([`/${TOTESYS_PREFIXES.watermarks}`]);
    expect(actionsOf(s)).not.toContainEqual(expect.stringMatching(/^(redshift-data|s3:DeleteObject)/));
    const secretReads = s.filter((st) => asArray(st.Action).includes('secretsmanager:GetSecretValue'));
    expect(secretReads).toHaveLength(1);
    const source = resources(json, 'AWS::SecretsManager::Secret').find(([id]) =>
      id.startsWith('TotesysSourceSecret'),
    );
    expect(secretReads[0]?.Resource).toEqual({ Ref: source?.[0] });
  });

  it('the transform reads ingestion/totesys/ and writes only processed/totesys/, with no secret and no warehouse', () => {
    const s = statementsOf(json, 'totesysTransform');
    expect(objectPatterns(s, 's3:PutObject')).toEqual([`/${TOTESYS_PREFIXES.processed}*`]);
    expect(objectPatterns(s, 's3:GetObject*').sort()).toEqual(
      [`/${TOTESYS_PREFIXES.ingestion}*`, `/${TOTESYS_PREFIXES.processed}*`].sort(),
    );
    expect(actionsOf(s)).not.toContainEqual(expect.stringMatching(/^(redshift-data|secretsmanager):/));
  });

  it('the load reads processed/totesys/ and the extraction markers, uses the Data API, and writes only its record and the quarantine', () => {
    const s = statementsOf(json, 'totesysLoad');
    expect(objectPatterns(s, 's3:GetObject*').sort()).toEqual(
      [`/${TOTESYS_PREFIXES.processed}*`, `/${TOTESYS_PREFIXES.ingestionRuns}*`].sort(),
    );
    expect(objectPatterns(s, 's3:PutObject').sort()).toEqual(
      [`/${TOTESYS_PREFIXES.loadRecord}`, `/${TOTESYS_PREFIXES.quarantine}*`].sort(),
    );
    expect(objectPatterns(s, 's3:DeleteObject*')).toEqual([`/${TOTESYS_PREFIXES.processed}*`]);
    expect(actionsOf(s)).toContain('redshift-data:ExecuteStatement');
    // Only the warehouse's admin secret, never the source's.
    const secretReads = s.filter((st) => asArray(st.Action).includes('secretsmanager:GetSecretValue'));
    expect(JSON.stringify(secretReads)).toContain('WarehouseAdminSecret');
    expect(JSON.stringify(secretReads)).not.toContain('TotesysSourceSecret');
  });

  it("lets the warehouse's COPY role read processed/totesys/ (COPY FORMAT AS PARQUET)", () => {
    const policy = resources(json, 'AWS::IAM::Policy').find(([id]) => id.startsWith('WarehouseCopyRole'));
    const s = (propsOf(policy?.[1]).PolicyDocument as { Statement: Statement[] }).Statement;
    expect(objectPatterns(s, 's3:GetObject*')).toContain(`/${TOTESYS_PREFIXES.processed}*`);
    expect(objectPatterns(s, 's3:PutObject')).toEqual([]);
  });
});

describe('totesys functions: configuration', () => {
  // What each handler reads at start-up through adapters/config.ts, besides the mode.
  const needs = {
    totesysExtract: ['RP_BUCKET', 'RP_TOTESYS_SECRET_ARN'],
    totesysTransform: ['RP_BUCKET'],
    totesysLoad: [
      'RP_BUCKET',
      'RP_REDSHIFT_WORKGROUP',
      'RP_REDSHIFT_DATABASE',
      'RP_REDSHIFT_SECRET_ARN',
      'RP_REDSHIFT_COPY_ROLE_ARN',
    ],
  } as const;

  for (const [entry, names] of Object.entries(needs) as [keyof typeof needs, readonly string[]][]) {
    it(`${entry}: every variable its handler reads is set, and the config module accepts them`, () => {
      const [, fn] = fnOf(json, entry);
      const vars = (propsOf(fn).Environment as { Variables: Record<string, unknown> }).Variables;
      expect(Object.keys(vars)).toEqual(expect.arrayContaining(['RP_MODE', ...names]));
      // Deploy-time tokens stand in as plain strings: the config must parse what Lambda will see.
      const env = Object.fromEntries(
        Object.entries(vars).map(([k, v]) => [
          k,
          typeof v === 'string' ? v : `resolved-${k.toLowerCase().replaceAll('_', '-')}`,
        ]),
      );
      const cfg = loadConfig(env);
      expect(cfg.mode).toBe('aws');
      expect(cfg.names.bucket).toBe(env.RP_BUCKET);
      if (entry === 'totesysExtract') expect(cfg.totesys.secretArn).toBe(env.RP_TOTESYS_SECRET_ARN);
      if (entry === 'totesysLoad') {
        expect(cfg.redshift.workgroup).toBeTruthy();
        expect(cfg.redshift.copyRoleArn).toBe(env.RP_REDSHIFT_COPY_ROLE_ARN);
      }
    });
  }

  it('runs outside a VPC by default; with the context, only the extract joins the given subnets', () => {
    expect(fnOf(json, 'totesysExtract')[1].Properties?.VpcConfig).toBeUndefined();
    expect(fnOf(vpcJson, 'totesysExtract')[1].Properties?.VpcConfig).toEqual({
      SubnetIds: ['subnet-0123456789abcdef0', 'subnet-0123456789abcdef1'],
      SecurityGroupIds: ['sg-0123456789abcdef0'],
    });
    expect(fnOf(vpcJson, 'totesysTransform')[1].Properties?.VpcConfig).toBeUndefined();
    expect(fnOf(vpcJson, 'totesysLoad')[1].Properties?.VpcConfig).toBeUndefined();
  });

  it('uses a given source secret instead of creating one, and reads only that one', () => {
    const vars = (
      propsOf(fnOf(vpcJson, 'totesysExtract')[1]).Environment as { Variables: Record<string, unknown> }
    ).Variables;
    expect(vars.RP_TOTESYS_SECRET_ARN).toBe(SECRET);
    expect(resources(vpcJson, 'AWS::SecretsManager::Secret').map(([id]) => id)).not.toContainEqual(
      expect.stringMatching(/^TotesysSourceSecret/),
    );
    const reads = statementsOf(vpcJson, 'totesysExtract').filter((s) =>
      asArray(s.Action).includes('secretsmanager:GetSecretValue'),
    );
    expect(reads.map((s) => s.Resource)).toEqual([SECRET]);
  });

  it('creates the source secret encrypted with the data key, its password generated, no value in the template', () => {
    const [, secret] =
      resources(json, 'AWS::SecretsManager::Secret').find(([id]) => id.startsWith('TotesysSourceSecret')) ??
      [];
    const key = resources(json, 'AWS::KMS::Key')[0]?.[0];
    expect(secret?.Properties?.KmsKeyId).toEqual({ 'Fn::GetAtt': [key, 'Arn'] });
    expect(secret?.Properties).not.toHaveProperty('SecretString');
    expect(secret?.Properties?.GenerateSecretString).toMatchObject({ GenerateStringKey: 'password' });
  });
});

describe('totesys triggers, alarms and catalog', () => {
  const rules = () => resources(json, 'AWS::Events::Rule').map(([, r]) => r.Properties ?? {});
  const targetsOf = (r: Record<string, unknown>) => JSON.stringify(r.Targets);

  it('extracts on the TotesysSchedule parameter; transforms and loads on their zone markers and a sweep', () => {
    const [extractId] = fnOf(json, 'totesysExtract');
    const [transformId] = fnOf(json, 'totesysTransform');
    const [loadId] = fnOf(json, 'totesysLoad');
    const scheduled = rules().find(
      (r) => JSON.stringify(r.ScheduleExpression) === '{"Ref":"TotesysSchedule"}',
    );
    expect(targetsOf(scheduled ?? {})).toContain(extractId);
    const onPrefix = (prefix: string) =>
      rules().filter((r) => JSON.stringify(r.EventPattern ?? {}).includes(`{"prefix":"${prefix}"}`));
    expect(onPrefix(TOTESYS_PREFIXES.ingestionRuns).map(targetsOf).join()).toContain(transformId);
    expect(onPrefix(TOTESYS_PREFIXES.processedRuns).map(targetsOf).join()).toContain(loadId);
    const sweep = rules().find(
      (r) => r.ScheduleExpression === 'rate(15 minutes)' && targetsOf(r).includes(loadId),
    );
    expect(targetsOf(sweep ?? {})).toContain(transformId);
    // Every target gives up into the encrypted dead-letter queue.
    for (const r of rules().filter((r) => /Totesys/.test(targetsOf(r))))
      expect(targetsOf(r)).toContain('DeadLetterConfig');
  });

  it("alarms on each function's errors and on freshness (a missing metric counts as stale)", () => {
    const alarms = resources(json, 'AWS::CloudWatch::Alarm').map(([, a]) => a.Properties ?? {});
    for (const entry of ['totesysExtract', 'totesysTransform', 'totesysLoad'] as const) {
      const [id] = fnOf(json, entry);
      expect(
        alarms.some((a) => a.MetricName === 'Errors' && JSON.stringify(a.Dimensions).includes(id)),
        entry,
      ).toBe(true);
    }
    const freshness = alarms.find((a) => a.MetricName === TOTESYS_LAG_METRIC.name);
    expect(freshness).toMatchObject({
      Namespace: TOTESYS_LAG_METRIC.namespace,
      Threshold: { Ref: 'TotesysFreshnessSeconds' },
      TreatMissingData: 'breaching',
      Dimensions: [{ Name: 'Source', Value: 'totesys' }],
    });
    const topic = resources(json, 'AWS::SNS::Topic')[0]?.[0];
    expect(freshness?.AlarmActions).toEqual([{ Ref: topic }]);
  });

  it('defines a Glue table per warehouse table over its processed Parquet, columns as the model', () => {
    const tables = resources(json, 'AWS::Glue::Table').map(
      ([, t]) =>
        t.Properties?.TableInput as {
          Name: string;
          StorageDescriptor: { Location: unknown; Columns: { Name: string; Type: string }[] };
        },
    );
    expect(tables.map((t) => t.Name).sort()).toEqual(WAREHOUSE_TABLES.map((t) => `totesys_${t.name}`).sort());
    for (const model of WAREHOUSE_TABLES) {
      const t = tables.find((x) => x.Name === `totesys_${model.name}`);
      expect(JSON.stringify(t?.StorageDescriptor.Location)).toContain(
        `/${TOTESYS_PREFIXES.processed}${model.name}/`,
      );
      expect(t?.StorageDescriptor.Columns).toEqual(
        model.columns.map((c) => ({ Name: c.name, Type: glueType(c.type) })),
      );
    }
    expect(glueType({ kind: 'decimal', precision: 10, scale: 2 })).toBe('decimal(10,2)');
    expect(glueType({ kind: 'time' })).toBe('bigint');
  });
});
