import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '#adapters/config';
import { TABLE_KEYS } from '#adapters/dynamo-table';
import { STAGING_PREFIX } from '#batch/loader/objects';
import { INVOICE_LINES_PREFIX, LAKE_STATE_PREFIX } from '#lake/invoice-lines';
import { LOCAL_WORKGROUP } from '#local/redshift-data';
import { buildApp, STACK_NAME } from '../../infra/build.ts';
import { LAKE_PREFIXES } from '../../infra/constructs/catalog.ts';
import { CONSUMER_SETTINGS } from '../../infra/constructs/consumers.ts';
import { REPO_ROOT } from '../../infra/constructs/pipeline-function.ts';
import { ENTRY_METADATA_KEY, LAMBDA_ENTRIES } from '../../infra/entries.ts';
import { addNagChecks } from '../../infra/nag.ts';

type Resource = { Type: string; Properties?: Record<string, unknown>; Metadata?: Record<string, unknown> };
type Statement = { Effect: string; Action: string | string[]; Resource: unknown; Condition?: unknown };
interface Violation {
  ruleName: string;
  severity: string;
  violatingConstructs: { constructPath: string }[];
}

let outdir: string;
let template: Template;
let json: {
  Resources: Record<string, Resource>;
  Parameters: Record<string, unknown>;
  Outputs: Record<string, unknown>;
};
let synthError: unknown;

const resources = (type: string) => Object.entries(json.Resources).filter(([, r]) => r.Type === type);
const asArray = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v]);
const ref = (logicalId: string) => ({ Ref: logicalId });
/** A property the assertion needs; a missing one fails the test with its name. */
const prop = <T>(resource: Resource | undefined, key: string): T => {
  const value = resource?.Properties?.[key];
  if (value === undefined)
    throw new Error(`property ${key} missing on ${JSON.stringify(resource)?.slice(0, 200)}`);
  return value as T;
};
const envOf = (resource: Resource | undefined) =>
  prop<{ Variables: Record<string, string> }>(resource, 'Environment').Variables;
const statementsOf = (resource: Resource | undefined) =>
  prop<{ Statement: Statement[] }>(resource, 'PolicyDocument').Statement;
const logicalIdOf = (type: string, pathFragment: string) => {
  const match = resources(type).find(([id]) => id.startsWith(pathFragment));
  if (!match) throw new Error(`no ${type} whose logical id starts with ${pathFragment}`);
  return match[0];
};

beforeAll(() => {
  // One synth (bundling skipped, cdk-nag on) shared by every assertion: synthesis is the slow part.
  outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'rp-infra-unit-'));
  const { app } = buildApp({ skipBundling: true, outdir });
  try {
    app.synth();
  } catch (error) {
    synthError = error;
  }
  json = JSON.parse(fs.readFileSync(path.join(outdir, `${STACK_NAME}.template.json`), 'utf8'));
  template = Template.fromJSON(json);
}, 180_000);

afterAll(() => {
  fs.rmSync(outdir, { recursive: true, force: true });
});

describe('cdk-nag (AwsSolutions) and CloudFormation validation', () => {
  it('report no unacknowledged error or warning and the synth succeeds', () => {
    const report = JSON.parse(fs.readFileSync(path.join(outdir, 'validation-report.json'), 'utf8')) as {
      pluginReports: { pluginName: string; violations: Violation[] }[];
    };
    const findings = report.pluginReports.flatMap((p) =>
      p.violations
        .filter((v) => v.severity === 'error' || v.severity === 'warning')
        .map(
          (v) =>
            `${p.pluginName} ${v.ruleName}: ${v.violatingConstructs.map((c) => c.constructPath).join(', ')}`,
        ),
    );
    expect(findings).toEqual([]);
    expect(synthError).toBeUndefined();
  });

  it('are really applied by addNagChecks: an unencrypted queue fails the synth', () => {
    const app = new App({ outdir: fs.mkdtempSync(path.join(os.tmpdir(), 'rp-infra-nag-')) });
    const stack = new Stack(app, 'Probe');
    new sqs.Queue(stack, 'Plain', { encryption: sqs.QueueEncryption.UNENCRYPTED });
    addNagChecks(app);
    expect(() => app.synth()).toThrow(/AwsSolutions-SQS2|Validation failed/);
    const report = fs.readFileSync(path.join(app.outdir, 'validation-report.json'), 'utf8');
    expect(report).toContain('AwsSolutions-SQS2');
    fs.rmSync(app.outdir, { recursive: true, force: true });
  });
});

describe('handlers', () => {
  it('run exactly the entry files the local mode runs, one function each', () => {
    const functions = resources('AWS::Lambda::Function').filter(([, r]) => r.Metadata?.[ENTRY_METADATA_KEY]);
    expect(functions.map(([, r]) => r.Metadata?.[ENTRY_METADATA_KEY]).sort()).toEqual(
      Object.values(LAMBDA_ENTRIES).sort(),
    );
    for (const [, fn] of functions) {
      expect(fn.Properties?.Runtime).toBe('nodejs24.x');
      expect(fn.Properties?.Handler).toBe('index.handler');
      expect(envOf(fn).RP_MODE).toBe('aws');
    }
  });

  for (const [name, entry] of Object.entries(LAMBDA_ENTRIES)) {
    const file = path.join(REPO_ROOT, entry);
    const present = fs.existsSync(file);
    if (!present) console.warn(`skipping the export check of ${entry}: the file does not exist yet`);
    it.runIf(present)(`${name}: ${entry} exports handler`, () => {
      const source = fs.readFileSync(file, 'utf8');
      expect(source).toMatch(
        /export\s+(const|let|async\s+function|function)\s+handler\b|export\s*\{[^}]*\bhandler\b/,
      );
    });
  }
});

describe('encryption at rest and in transit', () => {
  it('uses one rotated customer-managed key', () => {
    const keys = resources('AWS::KMS::Key');
    expect(keys).toHaveLength(1);
    expect(keys[0]?.[1].Properties?.EnableKeyRotation).toBe(true);
  });

  it('encrypts the stream, table, queues, topic, secret, Firehose and warehouse', () => {
    const key = { 'Fn::GetAtt': [logicalIdOf('AWS::KMS::Key', 'DataKey'), 'Arn'] };
    template.hasResourceProperties('AWS::Kinesis::Stream', { StreamEncryption: { EncryptionType: 'KMS' } });
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: key },
    });
    expect(resources('AWS::SQS::Queue').length).toBeGreaterThanOrEqual(2);
    for (const [, queue] of resources('AWS::SQS::Queue'))
      expect(queue.Properties?.KmsMasterKeyId).toEqual(key);
    for (const [, topic] of resources('AWS::SNS::Topic'))
      expect(topic.Properties?.KmsMasterKeyId).toEqual(key);
    template.hasResourceProperties('AWS::SecretsManager::Secret', { KmsKeyId: key });
    template.hasResourceProperties('AWS::KinesisFirehose::DeliveryStream', {
      DeliveryStreamEncryptionConfigurationInput: { KeyType: 'CUSTOMER_MANAGED_CMK', KeyARN: key },
      ExtendedS3DestinationConfiguration: {
        EncryptionConfiguration: { KMSEncryptionConfig: { AWSKMSKeyARN: key } },
      },
    });
    template.hasResourceProperties('AWS::RedshiftServerless::Namespace', { KmsKeyId: key });
    template.hasResourceProperties('AWS::RedshiftServerless::Workgroup', {
      ConfigParameters: Match.arrayWith([{ ParameterKey: 'require_ssl', ParameterValue: 'true' }]),
    });
  });

  it('encrypts every bucket, blocks public access and denies non-TLS requests', () => {
    const buckets = resources('AWS::S3::Bucket');
    expect(buckets.length).toBe(2);
    for (const [id, bucket] of buckets) {
      const encryption = bucket.Properties?.BucketEncryption as {
        ServerSideEncryptionConfiguration: { ServerSideEncryptionByDefault: { SSEAlgorithm: string } }[];
      };
      expect(
        encryption.ServerSideEncryptionConfiguration[0]?.ServerSideEncryptionByDefault.SSEAlgorithm,
      ).toMatch(/^(aws:kms|AES256)$/);
      expect(bucket.Properties?.PublicAccessBlockConfiguration).toEqual({
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      });
      const policy = resources('AWS::S3::BucketPolicy').find(
        ([, p]) => JSON.stringify(p.Properties?.Bucket) === JSON.stringify(ref(id)),
      );
      const statements = statementsOf(policy?.[1]);
      expect(statements).toContainEqual(
        expect.objectContaining({
          Effect: 'Deny',
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        }),
      );
    }
    // Only the access-log bucket may use SSE-S3 (S3 server access logging cannot write SSE-KMS).
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          { BucketKeyEnabled: true, ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' } },
        ],
      },
    });
  });
});

describe('IAM', () => {
  const dataServices = /^(s3|dynamodb|kinesis|firehose|kms|secretsmanager|sqs|sns|redshift-serverless|glue):/;

  it('grants no "*" action and no "*" resource on data resources', () => {
    const statements = resources('AWS::IAM::Policy').flatMap(([id, p]) =>
      statementsOf(p).map((s) => ({ id, ...s })),
    );
    expect(statements.length).toBeGreaterThan(10);
    for (const s of statements) {
      for (const action of asArray(s.Action)) {
        expect(action, s.id).not.toBe('*');
        expect(action, s.id).not.toMatch(/:\*$/);
      }
      if (asArray(s.Resource).includes('*')) {
        // The only "*" resource: Data API statement actions, which have no resource type, narrowed by owner.
        for (const action of asArray(s.Action)) expect(action, s.id).not.toMatch(dataServices);
        expect(asArray(s.Action).every((a) => a.startsWith('redshift-data:'))).toBe(true);
        // biome-ignore lint/suspicious/noTemplateCurlyInString: an IAM policy variable, not a JS template
        const owner = '${aws:userid}';
        expect(s.Condition).toEqual({ StringEquals: { 'redshift-data:statement-owner-iam-userid': owner } });
      }
    }
  });

  it('lets the consumer write objects only under dlq/', () => {
    const policy = logicalIdOf('AWS::IAM::Policy', 'ConsumersProcessInvoiceLinesRole');
    const statements = statementsOf(json.Resources[policy]);
    const s3Writes = statements.filter((s) => asArray(s.Action).includes('s3:PutObject'));
    expect(s3Writes).toHaveLength(1);
    expect(JSON.stringify(s3Writes[0]?.Resource)).toContain('/dlq/*');
  });
});

describe('stream and consumers', () => {
  it('offers on-demand or provisioned capacity through the ShardCount parameter', () => {
    expect(json.Parameters).toHaveProperty('ShardCount');
    const [, stream] = resources('AWS::Kinesis::Stream')[0] ?? [];
    expect(JSON.stringify(stream?.Properties?.StreamModeDetails)).toContain('ON_DEMAND');
    expect(JSON.stringify(stream?.Properties?.ShardCount)).toContain('ShardCount');
  });

  it('configures the event source mapping with bounded retries and an on-failure destination', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      StartingPosition: 'TRIM_HORIZON',
      BatchSize: CONSUMER_SETTINGS.batchSize,
      MaximumBatchingWindowInSeconds: 1,
      BisectBatchOnFunctionError: true,
      MaximumRetryAttempts: CONSUMER_SETTINGS.retryAttempts,
      MaximumRecordAgeInSeconds: 6 * 3600,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ParallelizationFactor: ref('ParallelizationFactor'),
      DestinationConfig: {
        OnFailure: {
          Destination: { 'Fn::GetAtt': [logicalIdOf('AWS::SQS::Queue', 'ConsumersOnFailure'), 'Arn'] },
        },
      },
    });
  });

  it('gives the consumer the table, delivery stream and bucket names its config reads', () => {
    const fn = logicalIdOf('AWS::Lambda::Function', 'ConsumersProcessInvoiceLines');
    const env = envOf(json.Resources[fn]);
    expect(Object.keys(env)).toEqual(
      expect.arrayContaining(['RP_TABLE_NAME', 'RP_DELIVERY_STREAM', 'RP_BUCKET', 'RP_REDSHIFT_WORKGROUP']),
    );
  });
});

describe('store, archive and catalog', () => {
  it('creates the table on demand with PITR and the GSIs from adapters/dynamo-table.ts', () => {
    const key = (name: string, type: string) => ({ AttributeName: name, KeyType: type });
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      KeySchema: [key(TABLE_KEYS.pk, 'HASH'), key(TABLE_KEYS.sk, 'RANGE')],
      GlobalSecondaryIndexes: [TABLE_KEYS.gsi1, TABLE_KEYS.gsi2].map((g) => ({
        IndexName: g.name,
        KeySchema: [key(g.pk, 'HASH'), key(g.sk, 'RANGE')],
        Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: [...g.project] },
      })),
    });
  });

  it('delivers gzipped JSON under archive/YYYY/MM/DD/HH/ with parameterised buffering', () => {
    template.hasResourceProperties('AWS::KinesisFirehose::DeliveryStream', {
      ExtendedS3DestinationConfiguration: {
        Prefix: 'archive/!{timestamp:yyyy/MM/dd/HH}/',
        ErrorOutputPrefix: 'archive-errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/',
        CompressionFormat: 'GZIP',
        FileExtension: '.json.gz',
        BufferingHints: {
          IntervalInSeconds: ref('FirehoseBufferSeconds'),
          SizeInMBs: ref('FirehoseBufferMiB'),
        },
      },
    });
  });

  it('moves archive objects to cheaper storage', () => {
    const bucket = logicalIdOf('AWS::S3::Bucket', 'ArchiveBucket');
    const rules = prop<{ Rules: Record<string, unknown>[] }>(
      json.Resources[bucket],
      'LifecycleConfiguration',
    ).Rules;
    expect(rules).toContainEqual(
      expect.objectContaining({
        Prefix: 'archive/',
        Transitions: expect.arrayContaining([expect.objectContaining({ StorageClass: 'STANDARD_IA' })]),
      }),
    );
  });

  it('expires the staging/ objects the Redshift way writes for COPY (the loader never deletes them)', () => {
    const bucket = logicalIdOf('AWS::S3::Bucket', 'ArchiveBucket');
    const rules = prop<{ Rules: Record<string, unknown>[] }>(
      json.Resources[bucket],
      'LifecycleConfiguration',
    ).Rules;
    expect(rules).toContainEqual(
      expect.objectContaining({ Prefix: STAGING_PREFIX, ExpirationInDays: 2, Status: 'Enabled' }),
    );
  });

  it('crawls archive/ on a schedule with an encrypting security configuration', () => {
    template.hasResourceProperties('AWS::Glue::Crawler', {
      Schedule: { ScheduleExpression: Match.stringLikeRegexp('^cron\\(') },
      CrawlerSecurityConfiguration: Match.anyValue(),
    });
    const [, crawler] = resources('AWS::Glue::Crawler')[0] ?? [];
    expect(JSON.stringify(crawler?.Properties?.Targets)).toMatch(/"\/archive\/"/);
  });

  it('crawls the lake prefixes: archive/ and processed/invoice_lines/ as S3 targets, the totesys tables as catalog targets', () => {
    const crawlers = resources('AWS::Glue::Crawler').map(([, r]) => r);
    const s3Paths = crawlers.flatMap(
      (c) => prop<{ S3Targets?: { Path: unknown; Exclusions?: string[] }[] }>(c, 'Targets').S3Targets ?? [],
    );
    expect(s3Paths.map((t) => JSON.stringify(t.Path))).toEqual([
      expect.stringMatching(/\/archive\/"\]\]\}$/),
      expect.stringMatching(/\/processed\/invoice_lines\/"\]\]\}$/),
    ]);
    for (const t of s3Paths) expect(t.Exclusions).toContain('**/_*/**');
    const catalogTargets = crawlers.flatMap(
      (c) => prop<{ CatalogTargets?: { Tables: string[] }[] }>(c, 'Targets').CatalogTargets ?? [],
    );
    const declared = resources('AWS::Glue::Table').map(
      ([, t]) => prop<{ Name: string }>(t, 'TableInput').Name,
    );
    expect(declared.length).toBeGreaterThan(0);
    expect(catalogTargets.flatMap((t) => t.Tables).sort()).toEqual([...declared].sort());
    // Every crawler encrypts its logs and bookmarks, and is created after the tables it names.
    for (const [id, c] of resources('AWS::Glue::Crawler')) {
      expect(c.Properties?.CrawlerSecurityConfiguration).toBeDefined();
      if (prop<{ CatalogTargets?: unknown[] }>(c, 'Targets').CatalogTargets) {
        const dependsOn = (json.Resources[id] as { DependsOn?: string[] }).DependsOn ?? [];
        for (const [tableId] of resources('AWS::Glue::Table')) expect(dependsOn).toContain(tableId);
      }
    }
  });

  it('reads the lake prefixes only: the crawler role may read archive/ and processed/, nothing else of the bucket', () => {
    const role = logicalIdOf('AWS::IAM::Role', 'CatalogCrawlerRole');
    const readable = resources('AWS::IAM::Policy')
      .filter(([, p]) => JSON.stringify(prop(p, 'Roles')).includes(role))
      .flatMap(([, p]) => statementsOf(p))
      .filter((st) => asArray(st.Action).some((a) => a.startsWith('s3:GetObject')))
      .flatMap((st) => asArray(st.Resource).map((r) => JSON.stringify(r)));
    // grantRead names the bucket itself (for listing) and the objects under one prefix.
    const objectPaths = readable
      .map((r) => /"\/([^"]*)"\]\]\}$/.exec(r)?.[1])
      .filter((p): p is string => p !== undefined);
    expect(objectPaths.sort()).toEqual(['archive/*', 'processed/invoice_lines/*', 'processed/totesys/*']);
    expect(readable.length - objectPaths.length).toBe(3);
  });

  it('queries through an Athena workgroup that enforces SSE-KMS results with the data key', () => {
    const key = logicalIdOf('AWS::KMS::Key', 'DataKey');
    const bucket = logicalIdOf('AWS::S3::Bucket', 'ArchiveBucket');
    template.hasResourceProperties('AWS::Athena::WorkGroup', {
      State: 'ENABLED',
      WorkGroupConfiguration: {
        EnforceWorkGroupConfiguration: true,
        EngineVersion: { SelectedEngineVersion: 'Athena engine version 3' },
        BytesScannedCutoffPerQuery: Match.anyValue(),
        ResultConfiguration: {
          EncryptionConfiguration: { EncryptionOption: 'SSE_KMS', KmsKey: { 'Fn::GetAtt': [key, 'Arn'] } },
          OutputLocation: {
            'Fn::Join': ['', ['s3://', ref(bucket), '/athena-results/']],
          },
        },
      },
    });
    const rules = prop<{ Rules: Record<string, unknown>[] }>(
      json.Resources[bucket],
      'LifecycleConfiguration',
    ).Rules;
    expect(rules).toContainEqual(
      expect.objectContaining({ Prefix: 'athena-results/', ExpirationInDays: 30 }),
    );
    expect(Object.keys(json.Outputs)).toContain('LakeWorkgroup');
  });
});

describe('api', () => {
  it('requires an API key on every method, throttles per key and logs access', () => {
    const methods = resources('AWS::ApiGateway::Method');
    expect(methods.length).toBeGreaterThan(0);
    for (const [, m] of methods) {
      expect(m.Properties?.ApiKeyRequired).toBe(true);
      expect(m.Properties?.RequestValidatorId).toBeDefined();
    }
    template.hasResourceProperties('AWS::ApiGateway::UsagePlan', {
      Throttle: { RateLimit: ref('ApiRateLimit'), BurstLimit: ref('ApiBurstLimit') },
    });
    template.hasResourceProperties('AWS::ApiGateway::Stage', {
      AccessLogSetting: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp('requestId') },
      MethodSettings: [Match.objectLike({ DataTraceEnabled: false, LoggingLevel: 'ERROR' })],
    });
  });

  it('publishes the outputs docs/aws.md refers to under fixed names', () => {
    expect(Object.keys(json.Outputs)).toEqual(
      expect.arrayContaining(['ApiUrl', 'ApiKeyId', 'WarehouseEndpoint', 'WarehouseAdminSecretArn']),
    );
  });

  it('bounds the request size in the Lambda below the Lambda and API Gateway payload limits', () => {
    const fn = logicalIdOf('AWS::Lambda::Function', 'ApiHttpApi');
    const env = envOf(json.Resources[fn]);
    expect(Number(env.RP_API_MAX_BYTES)).toBeLessThan(6 * 1024 * 1024);
    expect(Number(env.RP_API_MAX_LINES)).toBeGreaterThan(0);
  });
});

describe('secrets', () => {
  it('keeps the warehouse password out of the template', () => {
    const text = JSON.stringify(json);
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      GenerateSecretString: { GenerateStringKey: 'password' },
    });
    for (const [, secret] of resources('AWS::SecretsManager::Secret')) {
      expect(secret.Properties).not.toHaveProperty('SecretString');
    }
    const [, namespace] = resources('AWS::RedshiftServerless::Namespace')[0] ?? [];
    expect(JSON.stringify(namespace?.Properties?.AdminUserPassword)).toMatch(
      /^\{"Fn::Join".*\{\{resolve:secretsmanager:/,
    );
    for (const [, apiKey] of resources('AWS::ApiGateway::ApiKey'))
      expect(apiKey.Properties).not.toHaveProperty('Value');
    expect(text).not.toMatch(/RP_(API_KEY|DB_PASSWORD)/);
    expect(Object.values(json.Parameters ?? {}).map((p) => JSON.stringify(p))).not.toContainEqual(
      expect.stringMatching(/NoEcho/),
    );
  });
});

describe('alerts', () => {
  it('wires every alarm to the topic and covers DLQ depth, iterator age, consumer and loader errors', () => {
    const topic = ref(logicalIdOf('AWS::SNS::Topic', 'AlertsTopic'));
    const alarms = resources('AWS::CloudWatch::Alarm');
    for (const [id, alarm] of alarms) expect(alarm.Properties?.AlarmActions, id).toContainEqual(topic);
    const watched = alarms.map(([, a]) => `${a.Properties?.Namespace}/${a.Properties?.MetricName}`);
    expect(watched).toEqual(
      expect.arrayContaining([
        'AWS/Lambda/IteratorAge',
        'AWS/Lambda/Errors',
        'AWS/SQS/ApproximateNumberOfMessagesVisible',
      ]),
    );
    const dimension = (fragment: string) =>
      alarms.filter(([, a]) => JSON.stringify(a.Properties?.Dimensions).includes(fragment)).length;
    expect(
      dimension(logicalIdOf('AWS::Lambda::Function', 'ConsumersProcessInvoiceLines')),
    ).toBeGreaterThanOrEqual(2);
    expect(dimension(logicalIdOf('AWS::Lambda::Function', 'WarehouseLoadObjects'))).toBe(1);
    expect(dimension(logicalIdOf('AWS::SQS::Queue', 'ConsumersOnFailure'))).toBe(1);
    expect(dimension(logicalIdOf('AWS::SQS::Queue', 'WarehouseLoaderDlq'))).toBe(1);
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: ref('AlertEmail'),
    });
  });
});

describe('warehouse loader', () => {
  it('is triggered by landing/ and archive/ object events and by a schedule', () => {
    const rules = resources('AWS::Events::Rule').map(([, r]) => r.Properties ?? {});
    const onObject = rules.find((r) => r.EventPattern);
    expect(JSON.stringify(onObject?.EventPattern)).toContain('{"prefix":"landing/"}');
    expect(JSON.stringify(onObject?.EventPattern)).toContain('{"prefix":"archive/"}');
    expect(rules.some((r) => typeof r.ScheduleExpression === 'string')).toBe(true);
  });

  it('gets the Data API coordinates adapters/config.ts reads', () => {
    const fn = logicalIdOf('AWS::Lambda::Function', 'WarehouseLoadObjects');
    const env = envOf(json.Resources[fn]);
    expect(Object.keys(env)).toEqual(
      expect.arrayContaining([
        'RP_BUCKET',
        'RP_REDSHIFT_WORKGROUP',
        'RP_REDSHIFT_DATABASE',
        'RP_REDSHIFT_SECRET_ARN',
        'RP_REDSHIFT_COPY_ROLE_ARN',
      ]),
    );
  });
  it('lets the loader write the lake where lake/invoice-lines.ts writes it, and delete only there', () => {
    expect([LAKE_PREFIXES.invoiceLines, LAKE_PREFIXES.lakeState]).toEqual([
      INVOICE_LINES_PREFIX,
      LAKE_STATE_PREFIX,
    ]);
    const policy = logicalIdOf('AWS::IAM::Policy', 'WarehouseLoadObjectsRole');
    const statements = statementsOf(json.Resources[policy]);
    const resourcesFor = (action: string) =>
      statements.filter((s) => asArray(s.Action).includes(action)).map((s) => JSON.stringify(s.Resource));
    for (const prefix of [INVOICE_LINES_PREFIX, LAKE_STATE_PREFIX]) {
      expect(
        resourcesFor('s3:PutObject').some((r) => r.includes(`/${prefix}*`)),
        prefix,
      ).toBe(true);
      expect(
        resourcesFor('s3:DeleteObject*').some((r) => r.includes(`/${prefix}*`)),
        prefix,
      ).toBe(true);
    }
    const deletable = resourcesFor('s3:DeleteObject*').join(' ');
    expect(deletable).not.toMatch(/\/(landing|archive|staging)\//);
  });
});

describe('the local Redshift Data API stands in for this template', () => {
  it('answers for the workgroup and database the template creates', () => {
    const workgroups = resources('AWS::RedshiftServerless::Workgroup');
    const namespaces = resources('AWS::RedshiftServerless::Namespace');
    expect(
      [...workgroups, ...namespaces].map(([, r]) => [r.Properties?.WorkgroupName, r.Properties?.DbName]),
    ).toEqual([
      [LOCAL_WORKGROUP, undefined],
      [undefined, loadConfig({}).names.database],
    ]);
  });
});
