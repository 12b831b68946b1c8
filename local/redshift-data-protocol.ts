import type { SqlParameter } from './redshift-dialect.ts';

/**
 * The Redshift Data API's wire protocol as the local server speaks it (AWS JSON 1.1, target prefix
 * `RedshiftData.`): the requests' validation and the error answers. Shapes follow
 * `@aws-sdk/client-redshift-data`; messages the real service words differently are listed in
 * docs/aws.md.
 */
export const TARGET_PREFIX = 'RedshiftData.';
/** The Data API's limits: statements per batch, statement text size. */
export const MAX_BATCH_SQLS = 40;
export const MAX_SQL_BYTES = 100 * 1024;
export const STATEMENT_ID = /^[a-z0-9]{8}(-[a-z0-9]{4}){3}-[a-z0-9]{12}(:\d+)?$/;

/** An error answer: `{"__type": type, "message": message}` plus the members the SDK models. */
export class DataApiError extends Error {
  override name = 'DataApiError';
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
    readonly members: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export const validation = (message: string) => new DataApiError('ValidationException', message);
export const notFound = (message: string) => new DataApiError('ResourceNotFoundException', message);

function problem(at: string, detail: string): string {
  return `Value at '${at}' failed to satisfy constraint: ${detail}`;
}

function validationErrors(problems: string[]): DataApiError {
  const n = problems.length;
  return validation(`${n} validation error${n === 1 ? '' : 's'} detected: ${problems.join('; ')}`);
}

type Body = Record<string, unknown>;

function optionalString(body: Body, key: string, problems: string[]): string | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new DataApiError('SerializationException', `${key} must be a string`);
  if (v.length === 0) problems.push(problem(key, 'Member must have length greater than or equal to 1'));
  return v;
}

function requiredString(body: Body, key: string, problems: string[]): string {
  const v = optionalString(body, key, problems);
  if (v === undefined) problems.push(problem(key, 'Member must not be null'));
  return v ?? '';
}

/** Where a statement runs and as whom, as ExecuteStatement and BatchExecuteStatement take it. */
export interface Target {
  workgroupName?: string;
  clusterIdentifier?: string;
  database: string;
  secretArn?: string;
  dbUser?: string;
}

export interface SubmitInput {
  target: Target;
  sqls: string[];
  batch: boolean;
  parameters: SqlParameter[];
  statementName?: string;
  withEvent: boolean;
  /** The idempotency token (the SDK sends one): a retried request answers the same statement. */
  clientToken?: string;
}

function parameters(body: Body, problems: string[]): SqlParameter[] {
  const list = body.Parameters;
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw new DataApiError('SerializationException', 'Parameters must be a list');
  if (list.length === 0)
    problems.push(problem('parameters', 'Member must have length greater than or equal to 1'));
  return list.map((p: Body, i) => {
    const name = requiredString(p, 'name', problems);
    const value = requiredString(p, 'value', problems);
    if (name && !/^[0-9a-zA-Z_]+$/.test(name))
      problems.push(
        problem(
          `parameters.${i + 1}.member.name`,
          'Member must satisfy regular expression pattern: ^[0-9a-zA-Z_]+$',
        ),
      );
    return { name, value };
  });
}

function sqlSize(sql: string, at: string, problems: string[]): void {
  if (Buffer.byteLength(sql) > MAX_SQL_BYTES)
    problems.push(problem(at, `Member must have length less than or equal to ${MAX_SQL_BYTES}`));
}

function target(body: Body, problems: string[]): Target {
  const workgroupName = optionalString(body, 'WorkgroupName', problems);
  const clusterIdentifier = optionalString(body, 'ClusterIdentifier', problems);
  const database = optionalString(body, 'Database', problems);
  const secretArn = optionalString(body, 'SecretArn', problems);
  const dbUser = optionalString(body, 'DbUser', problems);
  if (problems.length > 0) throw validationErrors(problems);
  if (!workgroupName && !clusterIdentifier)
    throw validation('Either ClusterIdentifier or WorkgroupName needs to be specified.');
  if (workgroupName && clusterIdentifier)
    throw validation('ClusterIdentifier and WorkgroupName cannot both be specified.');
  if (clusterIdentifier && !secretArn && !dbUser)
    throw validation('Either SecretArn or DbUser needs to be specified with ClusterIdentifier.');
  if (!database) throw validation('Database needs to be specified.');
  return {
    database,
    ...(workgroupName ? { workgroupName } : {}),
    ...(clusterIdentifier ? { clusterIdentifier } : {}),
    ...(secretArn ? { secretArn } : {}),
    ...(dbUser ? { dbUser } : {}),
  };
}

/** Members the local server does not model: refused by name rather than ignored. */
const UNSUPPORTED = ['SessionId', 'SessionKeepAliveSeconds', 'ExecutionMode'];

function refuseUnsupported(body: Body): void {
  for (const key of UNSUPPORTED) {
    if (
      body[key] !== undefined &&
      body[key] !== null &&
      !(key === 'ExecutionMode' && body[key] === 'TRANSACTION')
    )
      throw validation(`${key} is not supported by the local Redshift Data API`);
  }
  if (body.ResultFormat !== undefined && body.ResultFormat !== 'JSON')
    throw validation('ResultFormat CSV is not supported by the local Redshift Data API');
}

function common(body: Body, problems: string[]) {
  const statementName = optionalString(body, 'StatementName', problems);
  if (body.WithEvent !== undefined && typeof body.WithEvent !== 'boolean')
    throw new DataApiError('SerializationException', 'WithEvent must be a boolean');
  const clientToken = optionalString(body, 'ClientToken', problems);
  return {
    withEvent: body.WithEvent === true,
    parameters: parameters(body, problems),
    ...(statementName ? { statementName } : {}),
    ...(clientToken ? { clientToken } : {}),
  };
}

export function parseExecute(body: Body): SubmitInput {
  refuseUnsupported(body);
  const problems: string[] = [];
  const sql = requiredString(body, 'Sql', problems);
  sqlSize(sql, 'sql', problems);
  const rest = common(body, problems);
  return { target: target(body, problems), sqls: [sql], batch: false, ...rest };
}

export function parseBatch(body: Body): SubmitInput {
  refuseUnsupported(body);
  const problems: string[] = [];
  const list = body.Sqls;
  if (list === undefined || list === null) problems.push(problem('sqls', 'Member must not be null'));
  else if (!Array.isArray(list)) throw new DataApiError('SerializationException', 'Sqls must be a list');
  const sqls = Array.isArray(list) ? list : [];
  if (Array.isArray(list) && (sqls.length < 1 || sqls.length > MAX_BATCH_SQLS))
    problems.push(problem('sqls', `Member must have length between 1 and ${MAX_BATCH_SQLS}`));
  sqls.forEach((s, i) => {
    if (typeof s !== 'string') throw new DataApiError('SerializationException', 'Sqls must be strings');
    sqlSize(s, `sqls.${i + 1}.member`, problems);
  });
  const rest = common(body, problems);
  return { target: target(body, problems), sqls, batch: true, ...rest };
}

/** A statement id as DescribeStatement, GetStatementResult and CancelStatement take it. */
export function parseId(body: Body): { id: string; sub: number | undefined } {
  const problems: string[] = [];
  const id = requiredString(body, 'Id', problems);
  if (problems.length === 0 && !STATEMENT_ID.test(id))
    problems.push(
      `Value '${id}' at 'id' failed to satisfy constraint: Member must satisfy regular expression pattern: ${STATEMENT_ID.source}`,
    );
  if (problems.length > 0) throw validationErrors(problems);
  const [parent, sub] = id.split(':');
  return { id: parent as string, sub: sub === undefined ? undefined : Number(sub) };
}

export function parseNextToken(body: Body): string | undefined {
  const v = body.NextToken;
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new DataApiError('SerializationException', 'NextToken must be a string');
  return v;
}

/** How long DescribeStatement may wait for the statement to end (WaitTimeSeconds, at most 30). */
export function parseWait(body: Body): number {
  const v = body.WaitTimeSeconds;
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 30)
    throw validationErrors([problem('waitTimeSeconds', 'Member must have value between 0 and 30')]);
  return v;
}

export function parseBody(text: string): Body {
  if (text.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new DataApiError('SerializationException', 'Request body is not valid JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new DataApiError('SerializationException', 'Request body must be a JSON object');
  return value as Body;
}

/** A page token: where the next page starts, bound to its statement so it cannot be reused elsewhere. */
export function pageToken(id: string, offset: number): string {
  return Buffer.from(JSON.stringify({ id, offset })).toString('base64url');
}

export function readPageToken(token: string, id: string): number {
  try {
    const parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as {
      id?: unknown;
      offset?: unknown;
    };
    if (
      parsed.id === id &&
      typeof parsed.offset === 'number' &&
      Number.isInteger(parsed.offset) &&
      parsed.offset >= 0
    )
      return parsed.offset;
  } catch {
    // falls through to the error below
  }
  throw validation('Invalid NextToken');
}
