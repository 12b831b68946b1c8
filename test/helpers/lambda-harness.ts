import { type ChildProcess, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type {
  APIGatewayProxyEvent,
  APIGatewayProxyResult,
  EventBridgeEvent,
  KinesisStreamBatchResponse,
  KinesisStreamEvent,
  ScheduledEvent,
} from 'aws-lambda';
import { isAlive } from '#local/pid-lock';
import { BUNDLE_FILE, BUNDLE_NODE_MAJOR, REPO_ROOT } from '../../infra/bundle.ts';
import { ENTRY_METADATA_KEY, LAMBDA_ENTRIES, type LambdaEntryName } from '../../infra/entries.ts';

/**
 * Runs the deployable Lambda bundles (infra/bundle.ts) as Lambda does: each in a process of its own
 * with the function's environment from the synthesised template, the handler export called with an
 * event and a context whose remaining time counts down from the function's timeout. Every AWS call
 * goes through a recording proxy in front of the local stack, and every environment variable the
 * bundle reads is recorded, so a test can hold both to the template (issue 16 item 4).
 */

// ----- the template ----------------------------------------------------------------------------------

export type Expr = unknown;
export interface CfnResource {
  Type: string;
  Properties?: Record<string, unknown>;
  Metadata?: Record<string, unknown>;
}
export interface CfnTemplate {
  Resources: Record<string, CfnResource>;
  Parameters?: Record<string, { Default?: unknown }>;
}

export interface TemplateFunction {
  entry: LambdaEntryName;
  logicalId: string;
  roleLogicalId: string;
  timeoutSeconds: number;
  memorySize: number;
  environment: Record<string, Expr>;
}

/** The pipeline's functions in the template, by entry name (from the entry metadata infra sets). */
export function templateFunctions(template: CfnTemplate): Map<LambdaEntryName, TemplateFunction> {
  const byPath = new Map<string, LambdaEntryName>(
    Object.entries(LAMBDA_ENTRIES).map(([name, p]) => [p, name as LambdaEntryName]),
  );
  const out = new Map<LambdaEntryName, TemplateFunction>();
  for (const [logicalId, r] of Object.entries(template.Resources)) {
    const entry = byPath.get(String(r.Metadata?.[ENTRY_METADATA_KEY] ?? ''));
    if (r.Type !== 'AWS::Lambda::Function' || !entry) continue;
    const p = r.Properties ?? {};
    const role = p.Role as { 'Fn::GetAtt'?: [string, string] } | undefined;
    const roleLogicalId = role?.['Fn::GetAtt']?.[0];
    if (!roleLogicalId) throw new Error(`${logicalId}: role is not a GetAtt of a role in the template`);
    out.set(entry, {
      entry,
      logicalId,
      roleLogicalId,
      timeoutSeconds: Number(p.Timeout ?? 3),
      memorySize: Number(p.MemorySize ?? 128),
      environment: ((p.Environment as { Variables?: Record<string, Expr> } | undefined)?.Variables ??
        {}) as Record<string, Expr>,
    });
  }
  return out;
}

/** The local stand-ins' names for the template's resources. */
export interface LocalNames {
  region: string;
  account: string;
  stream: string;
  table: string;
  bucket: string;
  deliveryStream: string;
}

const arn = (service: string, n: LocalNames, resource: string) =>
  `arn:aws:${service}:${n.region}:${n.account}:${resource}`;
const workgroupArn = (n: LocalNames, name: string) => arn('redshift-serverless', n, `workgroup/${name}`);

/**
 * Resolves template expressions (Ref, Fn::GetAtt, Fn::Join, Fn::Select, pseudo parameters) to the local
 * stack's names and to ARNs of the shape AWS gives them. Resources the local stack has no name for
 * resolve to a name made of their logical id, so a call can never match them by accident.
 */
export function templateResolver(template: CfnTemplate, names: LocalNames) {
  const physical = (id: string): { ref: string; attrs: Record<string, string> } => {
    const r = template.Resources[id];
    if (!r) {
      const param = template.Parameters?.[id];
      if (param) return { ref: String(param.Default ?? id), attrs: {} };
      throw new Error(`template has no resource or parameter ${id}`);
    }
    const generic = { ref: id, attrs: { Arn: arn(r.Type.split('::')[1]?.toLowerCase() ?? 'x', names, id) } };
    switch (r.Type) {
      case 'AWS::Kinesis::Stream':
        return { ref: names.stream, attrs: { Arn: arn('kinesis', names, `stream/${names.stream}`) } };
      case 'AWS::DynamoDB::Table':
        return { ref: names.table, attrs: { Arn: arn('dynamodb', names, `table/${names.table}`) } };
      case 'AWS::KinesisFirehose::DeliveryStream':
        return {
          ref: names.deliveryStream,
          attrs: { Arn: arn('firehose', names, `deliverystream/${names.deliveryStream}`) },
        };
      case 'AWS::S3::Bucket': {
        // The data bucket is the one the functions name; the access-log bucket is another.
        const name = id.startsWith('ArchiveBucket') ? names.bucket : id.toLowerCase();
        return { ref: name, attrs: { Arn: `arn:aws:s3:::${name}` } };
      }
      case 'AWS::RedshiftServerless::Workgroup': {
        const name = String(r.Properties?.WorkgroupName ?? id);
        return {
          ref: name,
          attrs: { 'Workgroup.WorkgroupName': name, 'Workgroup.WorkgroupArn': workgroupArn(names, name) },
        };
      }
      case 'AWS::SecretsManager::Secret':
        return { ref: arn('secretsmanager', names, `secret:${id}`), attrs: {} };
      case 'AWS::IAM::Role':
        return { ref: id, attrs: { Arn: `arn:aws:iam::${names.account}:role/${id}` } };
      default:
        return generic;
    }
  };
  const pseudo: Record<string, string> = {
    'AWS::Region': names.region,
    'AWS::AccountId': names.account,
    'AWS::Partition': 'aws',
    'AWS::URLSuffix': 'amazonaws.com',
    'AWS::StackName': 'RetailPipeline',
  };
  const resolve = (expr: Expr): string => {
    if (typeof expr === 'string' || typeof expr === 'number' || typeof expr === 'boolean')
      return String(expr);
    if (expr && typeof expr === 'object') {
      const [fn, arg] = Object.entries(expr)[0] ?? [];
      if (fn === 'Ref') return pseudo[String(arg)] ?? physical(String(arg)).ref;
      if (fn === 'Fn::GetAtt') {
        const [id, attr] = arg as [string, string];
        const value = physical(id).attrs[attr];
        if (value === undefined) throw new Error(`cannot resolve ${id}.${attr} locally`);
        return value;
      }
      if (fn === 'Fn::Join') {
        const [sep, parts] = arg as [string, Expr[]];
        return parts.map(resolve).join(sep);
      }
      if (fn === 'Fn::Select') {
        const [i, list] = arg as [number, Expr[]];
        return resolve(list[Number(i)]);
      }
    }
    throw new Error(`cannot resolve ${JSON.stringify(expr)} locally`);
  };
  return resolve;
}

/** The object-key prefixes of the S3 "Object Created" rules that target a function (its triggers). */
export function objectCreatedPrefixes(template: CfnTemplate, fnLogicalId: string): string[] {
  const prefixes: string[] = [];
  for (const r of Object.values(template.Resources)) {
    if (r.Type !== 'AWS::Events::Rule') continue;
    const targets = (r.Properties?.Targets as Array<{ Arn?: { 'Fn::GetAtt'?: [string, string] } }>) ?? [];
    if (!targets.some((t) => t.Arn?.['Fn::GetAtt']?.[0] === fnLogicalId)) continue;
    const pattern = r.Properties?.EventPattern as
      | { 'detail-type'?: string[]; detail?: { object?: { key?: Array<{ prefix?: string }> } } }
      | undefined;
    if (!pattern?.['detail-type']?.includes('Object Created')) continue;
    for (const k of pattern.detail?.object?.key ?? []) if (k.prefix) prefixes.push(k.prefix);
  }
  return prefixes;
}

// ----- the synthesised template, shared by the aws-mode e2e files --------------------------------------

// What the template can depend on: the project's source (infra imports from several rooms), not tests.
const SOURCE_ROOTS = [
  'adapters',
  'analytics',
  'api',
  'batch',
  'cdc',
  'cli',
  'consumers',
  'core',
  'infra',
  'lake',
  'local',
  'producer',
];
const SOURCE_FILES = /\.(ts|json|sql|avsc)$/;

async function sourceDigest(): Promise<string> {
  const hash = crypto.createHash('sha256');
  const files: string[] = ['package-lock.json', 'cdk.json'];
  for (const root of SOURCE_ROOTS) {
    for (const f of await fs.readdir(path.join(REPO_ROOT, root), { recursive: true }))
      if (SOURCE_FILES.test(f)) files.push(path.join(root, f));
  }
  for (const f of files.sort()) {
    hash.update(f);
    hash.update(await fs.readFile(path.join(REPO_ROOT, f)).catch(() => Buffer.alloc(0)));
  }
  return hash.digest('hex').slice(0, 24);
}

const exists = (p: string) =>
  fs.access(p, fsConstants.F_OK).then(
    () => true,
    () => false,
  );

/** Resolves once `file` exists ('ready') or `lock` is gone without it ('free'), by the directory's events. */
async function awaitSynth(dir: string, file: string, lock: string): Promise<'ready' | 'free'> {
  const abort = new AbortController();
  const events = fs.watch(dir, { signal: abort.signal });
  const state = async () => ((await exists(file)) ? 'ready' : (await exists(lock)) ? undefined : 'free');
  try {
    // Checked after the watch has started, so a rename in between is not missed.
    const now = await state();
    if (now) return now;
    for await (const _ of events) {
      const s = await state();
      if (s) return s;
    }
    throw new Error(`${dir}: watch ended`);
  } finally {
    abort.abort();
  }
}

/**
 * The stack's synthesised template (no bundling, no cdk-nag: neither changes environments or policies;
 * test/integration/infra-synth.test.ts holds those), synthesised once per version of the source and
 * cached under node_modules/.cache: the e2e files that need it, run side by side in their own workers,
 * share one synth (~50 s on a loaded machine). The first takes a lock file and synthesises; the others
 * wait for its result by the cache directory's events, and take over if it gave up.
 */
export async function synthesisedTemplate(): Promise<CfnTemplate> {
  const dir = path.join(REPO_ROOT, 'node_modules', '.cache', 'retail-pipeline', 'aws-template');
  await fs.mkdir(dir, { recursive: true });
  const digest = await sourceDigest();
  const file = path.join(dir, `${digest}.json`);
  const lock = path.join(dir, `${digest}.lock`);
  for (;;) {
    if (await exists(file)) return JSON.parse(await fs.readFile(file, 'utf8')) as CfnTemplate;
    const taken = await fs.writeFile(lock, String(process.pid), { flag: 'wx' }).then(
      () => true,
      (err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
        return false;
      },
    );
    if (!taken) {
      const holder = Number(await fs.readFile(lock, 'utf8').catch(() => '0'));
      // A holder that died without removing its lock (killed): its lock is stale.
      if (holder > 0 && !isAlive(holder)) await fs.rm(lock, { force: true });
      else await awaitSynth(dir, file, lock);
      continue;
    }
    try {
      const outdir = await fs.mkdtemp(path.join(os.tmpdir(), 'rp-synth-'));
      try {
        const { buildApp, STACK_NAME } = await import('../../infra/build.ts');
        buildApp({ skipBundling: true, nag: false, outdir }).app.synth();
        const partial = `${file}.${process.pid}.tmp`;
        await fs.copyFile(path.join(outdir, `${STACK_NAME}.template.json`), partial);
        await fs.rename(partial, file);
        // Templates of earlier versions of the source are never read again.
        for (const f of await fs.readdir(dir))
          if (f.endsWith('.json') && f !== path.basename(file))
            await fs.rm(path.join(dir, f), { force: true });
      } finally {
        await fs.rm(outdir, { recursive: true, force: true });
      }
    } finally {
      await fs.rm(lock, { force: true });
    }
  }
}

// ----- IAM --------------------------------------------------------------------------------------------

export interface PolicyStatement {
  Effect: 'Allow' | 'Deny';
  Action: string | string[];
  Resource: Expr | Expr[];
  Condition?: unknown;
}
export interface ResolvedStatement {
  effect: 'Allow' | 'Deny';
  actions: string[];
  resources: string[];
  conditional: boolean;
}

/** Every identity-policy statement of a role: its inline policies and the AWS::IAM::Policy resources attached. */
export function roleStatements(
  template: CfnTemplate,
  roleLogicalId: string,
  resolve: (e: Expr) => string,
): ResolvedStatement[] {
  const docs: Array<{ Statement: PolicyStatement[] }> = [];
  const role = template.Resources[roleLogicalId];
  for (const p of (role?.Properties?.Policies as Array<{
    PolicyDocument: { Statement: PolicyStatement[] };
  }>) ?? [])
    docs.push(p.PolicyDocument);
  for (const r of Object.values(template.Resources)) {
    if (r.Type !== 'AWS::IAM::Policy') continue;
    const roles = (r.Properties?.Roles as Array<{ Ref?: string }> | undefined) ?? [];
    if (roles.some((x) => x.Ref === roleLogicalId))
      docs.push(r.Properties?.PolicyDocument as { Statement: PolicyStatement[] });
  }
  const list = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v]);
  return docs.flatMap((d) =>
    d.Statement.map((s) => ({
      effect: s.Effect,
      actions: list(s.Action),
      resources: list(s.Resource).map(resolve),
      conditional: s.Condition !== undefined,
    })),
  );
}

const glob = (pattern: string, flags = '') =>
  new RegExp(
    `^${pattern
      .split('')
      .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
      .join('')}$`,
    flags,
  );

export interface AwsCall {
  /** The IAM action, e.g. `kinesis:PutRecords`. */
  action: string;
  /** The resource ARN the action is authorised on (`*` for actions without a resource type). */
  resource: string;
  /** The API request that implied it, when it is not the action itself (S3 CopyObject, Data API secrets). */
  via?: string;
  /** Who is authorised: the function's role, unless Redshift assumes another role for a COPY. */
  roleArn?: string;
}

/** Whether the statements allow the call (an explicit deny wins); conditions are taken as met. */
export function allows(statements: ResolvedStatement[], call: AwsCall): ResolvedStatement | undefined {
  const matches = (s: ResolvedStatement) =>
    s.actions.some((a) => glob(a, 'i').test(call.action)) &&
    s.resources.some((r) => glob(r).test(call.resource));
  if (statements.some((s) => s.effect === 'Deny' && matches(s))) return undefined;
  return statements.find((s) => s.effect === 'Allow' && matches(s));
}

// ----- recording proxy in front of the local stack -----------------------------------------------------

/** The IAM actions one S3 REST request needs, from its method, path (path style) and query. */
function s3Calls(method: string, url: URL, headers: http.IncomingHttpHeaders, body: string): AwsCall[] {
  const [bucket = '', ...rest] = url.pathname.slice(1).split('/');
  const key = decodeURIComponent(rest.join('/'));
  const object = `arn:aws:s3:::${bucket}/${key}`;
  const q = url.searchParams;
  if (!key) {
    if (method === 'POST' && q.has('delete')) {
      return [...body.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => ({
        action: 's3:DeleteObject',
        resource: `arn:aws:s3:::${bucket}/${m[1] ?? ''}`,
        via: 'DeleteObjects',
      }));
    }
    return [{ action: 's3:ListBucket', resource: `arn:aws:s3:::${bucket}` }];
  }
  if (method === 'GET' || method === 'HEAD') return [{ action: 's3:GetObject', resource: object }];
  if (method === 'DELETE')
    return [{ action: q.has('uploadId') ? 's3:AbortMultipartUpload' : 's3:DeleteObject', resource: object }];
  const calls: AwsCall[] = [{ action: 's3:PutObject', resource: object }];
  const source = headers['x-amz-copy-source'];
  if (typeof source === 'string') {
    const from = decodeURIComponent(source.replace(/^\//, '').split('?')[0] ?? '');
    calls.push({ action: 's3:GetObject', resource: `arn:aws:s3:::${from}`, via: 'CopyObject' });
  }
  return calls;
}

/** What a COPY FROM S3 reads, as the role Redshift assumes for it (IAM_ROLE), not as the caller. */
function copyReads(sql: string): AwsCall[] {
  const copy = /^\s*COPY\b[\s\S]*?\bFROM\s+'s3:\/\/([^/']+)\/([^']*)'[\s\S]*?\bIAM_ROLE\s+'([^']+)'/i.exec(
    sql,
  );
  if (!copy) return [];
  const [, bucket, key, roleArn] = copy as unknown as [string, string, string, string];
  return [{ action: 's3:GetObject', resource: `arn:aws:s3:::${bucket}/${key}`, via: 'COPY', roleArn }];
}

/** The IAM actions one JSON-protocol request needs (Kinesis, DynamoDB, Firehose, Redshift Data API). */
function jsonCalls(service: string, target: string, body: string, n: LocalNames): AwsCall[] {
  const operation = target.split('.').pop() ?? target;
  const action = `${service}:${operation}`;
  let input: Record<string, unknown> = {};
  try {
    input = JSON.parse(body || '{}') as Record<string, unknown>;
  } catch {
    // not JSON (a CBOR body): the resource stays unknown and the check reports the call as unreadable
  }
  const str = (k: string) => (typeof input[k] === 'string' ? (input[k] as string) : undefined);
  switch (service) {
    case 'kinesis': {
      const stream =
        str('StreamARN') ?? (str('StreamName') && arn('kinesis', n, `stream/${str('StreamName')}`));
      return [{ action, resource: stream ?? '?' }];
    }
    case 'dynamodb': {
      const tables = str('TableName')
        ? [str('TableName') as string]
        : Object.keys((input.RequestItems as object | undefined) ?? {});
      const index = str('IndexName') ? `/index/${str('IndexName')}` : '';
      return tables.map((t) => ({ action, resource: arn('dynamodb', n, `table/${t}${index}`) }));
    }
    case 'firehose':
      return [{ action, resource: arn('firehose', n, `deliverystream/${str('DeliveryStreamName') ?? '?'}`) }];
    case 'secretsmanager': {
      // SecretId is the ARN or the name; IAM authorises on the ARN.
      const id = str('SecretId') ?? '?';
      return [{ action, resource: id.startsWith('arn:') ? id : arn('secretsmanager', n, `secret:${id}`) }];
    }
    case 'redshift-data': {
      const workgroup = str('WorkgroupName');
      const calls: AwsCall[] = [{ action, resource: workgroup ? workgroupArn(n, workgroup) : '*' }];
      // The Data API reads the secret with the caller's credentials.
      const secret = str('SecretArn');
      if (secret) calls.push({ action: 'secretsmanager:GetSecretValue', resource: secret, via: operation });
      const sqls = [str('Sql'), ...(Array.isArray(input.Sqls) ? (input.Sqls as string[]) : [])];
      for (const sql of sqls) calls.push(...copyReads(sql ?? ''));
      return calls;
    }
    default:
      return [{ action, resource: '?' }];
  }
}

export interface RecordingProxy {
  url: string;
  close(): Promise<void>;
}

/**
 * An HTTP proxy to one local service that records each request's IAM actions and resources. Requests
 * are forwarded unchanged (Host included, so SigV4 signatures still verify at the emulator).
 */
export async function startRecordingProxy(
  target: string,
  names: LocalNames,
  record: (call: AwsCall) => void,
): Promise<RecordingProxy> {
  const to = new URL(target);
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const scope = /Credential=[^/]+\/[^/]+\/[^/]+\/([^/]+)\//.exec(String(req.headers.authorization ?? ''));
      const service = scope?.[1] ?? 'unknown';
      const url = new URL(req.url ?? '/', 'http://proxy');
      const target = req.headers['x-amz-target'];
      const calls =
        service === 's3'
          ? s3Calls(req.method ?? 'GET', url, req.headers, body.toString('utf8'))
          : jsonCalls(service, String(target ?? req.url), body.toString('utf8'), names);
      for (const c of calls) record(c);
      const forward = http.request(
        { host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers },
        (upstream) => {
          res.writeHead(upstream.statusCode ?? 502, upstream.headers);
          upstream.pipe(res);
        },
      );
      forward.on('error', (err) => {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`proxy to ${target}: ${err.message}`);
      });
      forward.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// ----- one function, run as Lambda runs it --------------------------------------------------------------

/** The SDK's per-service endpoint variables (AWS_ENDPOINT_URL_<service id>), for the services the bundles call. */
export const ENDPOINT_VARIABLES = {
  kinesis: 'AWS_ENDPOINT_URL_KINESIS',
  dynamodb: 'AWS_ENDPOINT_URL_DYNAMODB',
  s3: 'AWS_ENDPOINT_URL_S3',
  firehose: 'AWS_ENDPOINT_URL_FIREHOSE',
  redshiftData: 'AWS_ENDPOINT_URL_REDSHIFT_DATA',
  secretsManager: 'AWS_ENDPOINT_URL_SECRETS_MANAGER',
} as const;
export type LocalService = keyof typeof ENDPOINT_VARIABLES;

/**
 * Settings only the local stand-ins need: s3rver stores a body sent with a streaming checksum with its
 * chunk framing (docs/aws.md), so the bundles' S3 clients send checksums only where S3 requires one.
 */
export const LOCAL_ONLY_VARIABLES = {
  AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
  AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_REQUIRED',
} as const;

/** What the Lambda runtime itself sets in every execution environment (not the template). */
export function runtimeVariables(
  fn: TemplateFunction,
  names: LocalNames,
  dir: string,
): Record<string, string> {
  const name = `RetailPipeline-${fn.logicalId}`;
  return {
    AWS_REGION: names.region,
    AWS_DEFAULT_REGION: names.region,
    // The key pair s3rver knows; the other stand-ins accept any (adapters/clients.ts LOCAL_CREDENTIALS).
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_LAMBDA_FUNCTION_NAME: name,
    AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(fn.memorySize),
    AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${name}`,
    AWS_LAMBDA_LOG_STREAM_NAME: `2026/12/06/[$LATEST]${crypto.randomBytes(16).toString('hex')}`,
    AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
    AWS_EXECUTION_ENV: `AWS_Lambda_nodejs${BUNDLE_NODE_MAJOR}.x`,
    LAMBDA_TASK_ROOT: dir,
    LAMBDA_RUNTIME_DIR: dir,
    _HANDLER: 'index.handler',
    TZ: ':UTC',
    LANG: 'en_US.UTF-8',
    PATH: process.env.PATH ?? '/usr/bin:/bin',
  };
}

export interface LambdaError {
  errorType: string;
  errorMessage: string;
  stack?: string;
}

export class LambdaInvokeError extends Error {
  override name = 'LambdaInvokeError';
  constructor(
    readonly functionName: string,
    readonly error: LambdaError,
    readonly logs: string,
  ) {
    super(`${functionName}: ${error.errorType}: ${error.errorMessage}\n--- function log (tail)\n${logs}`);
  }
}

export interface LambdaFunction {
  readonly name: string;
  readonly fn: TemplateFunction;
  /** The environment the function runs with: the template's, the runtime's and the local endpoints. */
  readonly environment: Record<string, string>;
  /** Calls the handler as one invocation; a thrown error or a timeout rejects with LambdaInvokeError. */
  invoke<R>(event: unknown): Promise<R>;
  /** Names of the environment variables the bundle read so far (cold start and invocations). */
  envReads(): Set<string>;
  /** The AWS calls the bundle made so far, as IAM actions on resources. */
  calls(): AwsCall[];
  logs(): string;
  stop(): Promise<void>;
}

export interface StartLambdaOptions {
  fn: TemplateFunction;
  /** The asset directory (infra/bundle.ts's output): the task root. */
  dir: string;
  names: LocalNames;
  resolve: (e: Expr) => string;
  /** The local stack's endpoint per service; each gets a recording proxy of this function's own. */
  endpoints: Partial<Record<LocalService, string>>;
}

// The runtime side: plain JavaScript run by `node -e`, so the bundle is imported by Node itself (no
// test transform). It records process.env reads, imports the bundle (the cold start) and then runs one
// invocation per message, with a context whose remaining time counts down from the deadline.
const RUNTIME = `
const reads = new Set();
const env = process.env;
const note = (k) => { if (typeof k === 'string') reads.add(k); };
process.env = new Proxy(env, {
  get(t, k) { note(k); return Reflect.get(t, k); },
  has(t, k) { note(k); return Reflect.has(t, k); },
  getOwnPropertyDescriptor(t, k) { note(k); return Reflect.getOwnPropertyDescriptor(t, k); },
});
const errorOf = (e) => ({ errorType: (e && e.name) || 'Error', errorMessage: String((e && e.message) || e), stack: e && e.stack });
let mod;
try {
  mod = await import(process.argv[1]);
  if (typeof mod.handler !== 'function') throw new TypeError('index.handler is not a function');
  process.send({ type: 'ready', reads: [...reads] });
} catch (e) {
  process.send({ type: 'init-error', error: errorOf(e), reads: [...reads] });
}
process.on('message', async (m) => {
  const deadline = m.deadline;
  const context = {
    callbackWaitsForEmptyEventLoop: true,
    functionName: env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: '$LATEST',
    invokedFunctionArn: m.functionArn,
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    awsRequestId: m.id,
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done() {}, fail() {}, succeed() {},
  };
  try {
    const result = await mod.handler(m.event, context);
    process.send({ type: 'result', id: m.id, result: result === undefined ? null : result, reads: [...reads] });
  } catch (e) {
    process.send({ type: 'error', id: m.id, error: errorOf(e), reads: [...reads] });
  }
});
`;

type RuntimeMessage =
  | { type: 'ready'; reads: string[] }
  | { type: 'init-error'; error: LambdaError; reads: string[] }
  | { type: 'result'; id: string; result: unknown; reads: string[] }
  | { type: 'error'; id: string; error: LambdaError; reads: string[] };

/** Starts one execution environment for `fn` and runs its cold start; resolves once the handler is loaded. */
export async function startLambda(opts: StartLambdaOptions): Promise<LambdaFunction> {
  const { fn, dir, names } = opts;
  const recorded: AwsCall[] = [];
  const proxies = await Promise.all(
    Object.entries(opts.endpoints).map(async ([service, url]) => ({
      service: service as LocalService,
      proxy: await startRecordingProxy(url, names, (c) => recorded.push(c)),
    })),
  );
  const templateEnv = Object.fromEntries(
    Object.entries(fn.environment).map(([k, v]) => [k, opts.resolve(v)]),
  );
  const environment: Record<string, string> = {
    ...runtimeVariables(fn, names, dir),
    ...templateEnv,
    ...LOCAL_ONLY_VARIABLES,
    ...Object.fromEntries(proxies.map((p) => [ENDPOINT_VARIABLES[p.service], p.proxy.url])),
  };
  const name = environment.AWS_LAMBDA_FUNCTION_NAME ?? fn.logicalId;
  const functionArn = arn('lambda', names, `function:${name}`);
  const child: ChildProcess = spawn(
    process.execPath,
    ['--input-type=module', '-e', RUNTIME, pathToFileURL(`${dir}/${BUNDLE_FILE}`).href],
    { cwd: dir, env: environment, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] },
  );
  let log = '';
  const keep = (chunk: Buffer) => {
    log = (log + chunk.toString('utf8')).slice(-64 * 1024);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const reads = new Set<string>();
  const pending = new Map<string, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let exited: Error | undefined;

  const ready = new Promise<void>((resolve, reject) => {
    child.on('message', (raw) => {
      const m = raw as RuntimeMessage;
      for (const r of m.reads) reads.add(r);
      if (m.type === 'ready') resolve();
      else if (m.type === 'init-error') reject(new LambdaInvokeError(name, m.error, log));
      else {
        const p = pending.get(m.id);
        pending.delete(m.id);
        if (m.type === 'result') p?.resolve(m.result);
        else p?.reject(new LambdaInvokeError(name, m.error, log));
      }
    });
    child.on('exit', (code, signal) => {
      exited = new Error(`${name}: runtime exited (${code ?? signal})\n${log}`);
      reject(exited);
      for (const p of pending.values()) p.reject(exited);
      pending.clear();
    });
  });
  const closeProxies = () => Promise.all(proxies.map((p) => p.proxy.close()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    }
    await closeProxies();
  };
  try {
    await ready;
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    name,
    fn,
    environment,
    invoke<R>(event: unknown): Promise<R> {
      if (exited) return Promise.reject(exited);
      const id = crypto.randomUUID();
      const timeoutMs = fn.timeoutSeconds * 1000;
      return new Promise<R>((resolve, reject) => {
        // Lambda ends an invocation at the function's timeout and discards the execution environment.
        const timer = setTimeout(() => {
          pending.delete(id);
          child.kill('SIGKILL');
          reject(
            new LambdaInvokeError(
              name,
              {
                errorType: 'Sandbox.Timedout',
                errorMessage: `Task timed out after ${fn.timeoutSeconds} seconds`,
              },
              log,
            ),
          );
        }, timeoutMs);
        pending.set(id, {
          resolve: (v) => {
            clearTimeout(timer);
            resolve(v as R);
          },
          reject: (e) => {
            clearTimeout(timer);
            reject(e);
          },
        });
        child.send({ id, event, deadline: Date.now() + timeoutMs, functionArn });
      });
    },
    envReads: () => new Set(reads),
    calls: () => [...recorded],
    logs: () => log,
    stop,
  };
}

// ----- events of the real shapes --------------------------------------------------------------------

/** A REST API (API Gateway v1) proxy event as LambdaRestApi's `{proxy+}` resource on stage v1 delivers it. */
export function restApiEvent(opts: {
  method: string;
  path: string;
  body?: string;
  headers?: Record<string, string>;
  query?: Record<string, string>;
}): APIGatewayProxyEvent {
  const headers = { Host: 'abc123.execute-api.us-east-1.amazonaws.com', ...opts.headers };
  const now = new Date();
  const query = opts.query && Object.keys(opts.query).length > 0 ? opts.query : null;
  return {
    resource: '/{proxy+}',
    path: opts.path,
    httpMethod: opts.method,
    headers,
    multiValueHeaders: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]])),
    queryStringParameters: query,
    multiValueQueryStringParameters: query
      ? Object.fromEntries(Object.entries(query).map(([k, v]) => [k, [v]]))
      : null,
    pathParameters: { proxy: opts.path.replace(/^\//, '') },
    stageVariables: null,
    body: opts.body ?? null,
    isBase64Encoded: false,
    requestContext: {
      accountId: '000000000000',
      apiId: 'abc123',
      authorizer: null,
      domainName: headers.Host,
      domainPrefix: 'abc123',
      httpMethod: opts.method,
      identity: {
        accessKey: null,
        accountId: null,
        apiKey: 'producer-key-value',
        apiKeyId: 'k1',
        caller: null,
        clientCert: null,
        cognitoAuthenticationProvider: null,
        cognitoAuthenticationType: null,
        cognitoIdentityId: null,
        cognitoIdentityPoolId: null,
        principalOrgId: null,
        sourceIp: '203.0.113.7',
        user: null,
        userAgent: 'retail-pipeline-producer',
        userArn: null,
      },
      path: `/v1${opts.path}`,
      protocol: 'HTTP/1.1',
      requestId: crypto.randomUUID(),
      requestTime: now.toUTCString(),
      requestTimeEpoch: now.getTime(),
      resourceId: 'r1',
      resourcePath: '/{proxy+}',
      stage: 'v1',
    },
  };
}

export type ApiResult = APIGatewayProxyResult;
export type KinesisResult = KinesisStreamBatchResponse | null;
export type { KinesisStreamEvent };

/** S3's "Object Created" event as EventBridge delivers it to a rule's Lambda target. */
export function objectCreatedEvent(
  bucket: string,
  key: string,
  size: number,
): EventBridgeEvent<'Object Created', unknown> {
  return {
    version: '0',
    id: crypto.randomUUID(),
    'detail-type': 'Object Created',
    source: 'aws.s3',
    account: '000000000000',
    time: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    region: 'us-east-1',
    resources: [`arn:aws:s3:::${bucket}`],
    detail: {
      version: '0',
      bucket: { name: bucket },
      object: { key, size, etag: crypto.randomBytes(16).toString('hex'), sequencer: '0062E99A88DC407460' },
      'request-id': crypto.randomUUID(),
      requester: '000000000000',
      'source-ip-address': '203.0.113.7',
      reason: 'PutObject',
    },
  };
}

/** An EventBridge schedule rule's event (the loader's sweep). */
export function scheduledEvent(ruleArn = 'arn:aws:events:us-east-1:000000000000:rule/sweep'): ScheduledEvent {
  return {
    version: '0',
    id: crypto.randomUUID(),
    'detail-type': 'Scheduled Event',
    source: 'aws.events',
    account: '000000000000',
    time: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    region: 'us-east-1',
    resources: [ruleArn],
    detail: {},
  };
}

/**
 * The bucket's "Object Created" announcements whose key `matches`, in order, each awaited as its
 * event arrives (what EventBridge would deliver); `timeoutMs` only bounds a wait that never ends.
 */
export function announcedKeys(
  onObjectCreated: (listener: (key: string) => void) => void,
  matches: (key: string) => boolean,
  what: string,
): (timeoutMs: number) => Promise<string> {
  const seen: string[] = [];
  let wake: (() => void) | undefined;
  onObjectCreated((key) => {
    if (!matches(key)) return;
    seen.push(key);
    wake?.();
  });
  let next = 0;
  return async (timeoutMs) => {
    if (next >= seen.length) {
      await new Promise<void>((resolveWait, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${what} announced`)), timeoutMs);
        wake = () => {
          clearTimeout(timer);
          resolveWait();
        };
      });
    }
    return seen[next++] as string;
  };
}
