import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Logger } from '#adapters/logger';
import { readAwsJsonBody, sendAwsJson } from './aws-json.ts';
import {
  DataApiError,
  notFound,
  pageToken,
  parseBatch,
  parseBody,
  parseExecute,
  parseId,
  parseNextToken,
  parseWait,
  readPageToken,
  TARGET_PREFIX,
  validation,
} from './redshift-data-protocol.ts';
import { Engine, isTerminal, type StatementRecord, type SubStatement } from './redshift-data-statements.ts';

/**
 * The local Redshift Data API: the JSON protocol of `redshift-data` (ExecuteStatement,
 * BatchExecuteStatement, DescribeStatement, GetStatementResult, CancelStatement, ListStatements)
 * over the embedded PostgreSQL, so the aws-mode warehouse adapter, `@aws-sdk/client-redshift-data`
 * and `aws redshift-data` run here unchanged. The Redshift dialect is translated
 * (local/redshift-dialect*.ts); what that leaves unchecked is listed in docs/aws.md.
 */

/** The Serverless workgroup the CDK app creates (infra/pipeline-stack.ts' default name). */
export const LOCAL_WORKGROUP = 'retail-pipeline';

export interface LocalRedshiftDataOptions {
  host?: string;
  /** 0 picks a free port. */
  port: number;
  connectionString(database: string): string;
  /** The database the CDK app creates (RP_DB_NAME locally, 'retail' on AWS). */
  database: string;
  workgroups?: readonly string[];
  clusters?: readonly string[];
  s3: S3Client;
  logger: Logger;
  maxActive?: number;
  /** Records per GetStatementResult page. */
  pageRows?: number;
  onEvent?: (statement: StatementRecord) => void;
}

export interface LocalRedshiftData {
  url: string;
  port: number;
  stop(): Promise<void>;
}

const MAX_BODY_BYTES = 5 * 1024 * 1024;
const MAX_LIST = 100;
const seconds = (ms: number) => ms / 1000;

function targetMembers(s: StatementRecord) {
  const t = s.input.target;
  return {
    Database: t.database,
    ...(t.workgroupName ? { WorkgroupName: t.workgroupName } : {}),
    ...(t.clusterIdentifier ? { ClusterIdentifier: t.clusterIdentifier } : {}),
    ...(t.secretArn ? { SecretArn: t.secretArn } : {}),
    ...(t.dbUser ? { DbUser: t.dbUser } : {}),
  };
}

function subData(s: StatementRecord, sub: SubStatement, index: number) {
  return {
    Id: `${s.id}:${index + 1}`,
    Status: sub.status,
    ...(sub.error ? { Error: sub.error } : {}),
    CreatedAt: seconds(sub.createdAt),
    UpdatedAt: seconds(sub.updatedAt),
    Duration: sub.durationNs,
    QueryString: sub.sql,
    ResultRows: sub.resultRows,
    ResultSize: sub.result ? sub.result.bytes : isTerminal(sub.status) ? 0 : -1,
    RedshiftQueryId: sub.queryId,
    HasResultSet: sub.hasResultSet,
  };
}

/** DescribeStatement's answer for a statement, or for one sub-statement of a batch (`<id>:<n>`). */
function describe(s: StatementRecord, subIndex: number | undefined) {
  const parameters = s.input.parameters.length > 0 ? { QueryParameters: s.input.parameters } : {};
  const common = { ...targetMembers(s), ...parameters, RedshiftPid: s.pid ?? 0, ResultFormat: 'JSON' };
  if (subIndex !== undefined) {
    const sub = s.subs[subIndex] as SubStatement;
    return { ...common, ...subData(s, sub, subIndex) };
  }
  if (!s.input.batch) {
    const sub = s.subs[0] as SubStatement;
    return {
      ...common,
      ...subData(s, sub, 0),
      Id: s.id,
      Status: s.status,
      ...(s.error ? { Error: s.error } : {}),
    };
  }
  return {
    ...common,
    Id: s.id,
    Status: s.status,
    ...(s.error ? { Error: s.error } : {}),
    CreatedAt: seconds(s.createdAt),
    UpdatedAt: seconds(s.updatedAt),
    Duration: s.subs.reduce((n, x) => n + x.durationNs, 0),
    QueryString: s.subs.map((x) => x.sql).join('; '),
    HasResultSet: s.subs.some((x) => x.hasResultSet),
    ResultRows: -1,
    ResultSize: -1,
    SubStatements: s.subs.map((sub, i) => subData(s, sub, i)),
  };
}

function statementData(s: StatementRecord) {
  return {
    Id: s.id,
    ...(s.input.batch ? { QueryStrings: s.input.sqls } : { QueryString: s.input.sqls[0] }),
    ...(s.input.target.secretArn ? { SecretArn: s.input.target.secretArn } : {}),
    Status: s.status,
    ...(s.input.statementName ? { StatementName: s.input.statementName } : {}),
    CreatedAt: seconds(s.createdAt),
    UpdatedAt: seconds(s.updatedAt),
    ...(s.input.parameters.length > 0 ? { QueryParameters: s.input.parameters } : {}),
    IsBatchStatement: s.input.batch,
    ResultFormat: 'JSON',
  };
}

type Dispatch = (operation: string, body: Record<string, unknown>) => Promise<unknown>;

/** The statement and sub-statement an Id names; the Data API's errors when there is none. */
function lookup(
  engine: Engine,
  body: Record<string, unknown>,
): { s: StatementRecord; sub: number | undefined } {
  const { id, sub } = parseId(body);
  const s = engine.get(id);
  if (!s) throw notFound('Query does not exist.');
  if (sub === undefined) return { s, sub: undefined };
  if (!s.input.batch || sub < 1 || sub > s.subs.length) throw notFound('Query does not exist.');
  return { s, sub: sub - 1 };
}

async function waitFor(s: StatementRecord, waitSeconds: number): Promise<void> {
  if (waitSeconds === 0 || isTerminal(s.status)) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([s.ended, new Promise<void>((r) => (timer = setTimeout(r, waitSeconds * 1000)))]);
  clearTimeout(timer);
}

function result(engine: Engine, body: Record<string, unknown>, pageRows: number) {
  const { s, sub } = lookup(engine, body);
  if (s.input.batch && sub === undefined)
    throw validation(`${s.id} is a batch: ask for the result of one of its sub-statements (${s.id}:<n>).`);
  const one = s.subs[sub ?? 0] as SubStatement;
  if (one.status !== 'FINISHED' || !one.result)
    throw notFound('Query does not have result. Please check query status with DescribeStatement.');
  const id = sub === undefined ? s.id : `${s.id}:${sub + 1}`;
  const token = parseNextToken(body);
  const offset = token ? readPageToken(token, id) : 0;
  const records = one.result.records;
  const end = Math.min(records.length, offset + pageRows);
  return {
    Records: records.slice(offset, end),
    ColumnMetadata: one.result.columns,
    TotalNumRows: records.length,
    ...(end < records.length ? { NextToken: pageToken(id, end) } : {}),
  };
}

function list(engine: Engine, body: Record<string, unknown>) {
  const max = body.MaxResults ?? MAX_LIST;
  if (typeof max !== 'number' || !Number.isInteger(max) || max < 0 || max > MAX_LIST)
    throw validation(`MaxResults must be between 0 and ${MAX_LIST}.`);
  const status = body.Status ?? 'ALL';
  const name = typeof body.StatementName === 'string' ? body.StatementName : undefined;
  const matches = engine
    .all()
    .filter(
      (s) =>
        (status === 'ALL' || s.status === status) &&
        (name === undefined || (s.input.statementName ?? '').startsWith(name)) &&
        (body.Database === undefined || s.input.target.database === body.Database) &&
        (body.WorkgroupName === undefined || s.input.target.workgroupName === body.WorkgroupName) &&
        (body.ClusterIdentifier === undefined || s.input.target.clusterIdentifier === body.ClusterIdentifier),
    )
    .sort((a, b) => b.createdAt - a.createdAt);
  const token = parseNextToken(body);
  const offset = token ? readPageToken(token, 'list') : 0;
  const size = max === 0 ? MAX_LIST : max;
  const end = Math.min(matches.length, offset + size);
  return {
    Statements: matches.slice(offset, end).map(statementData),
    ...(end < matches.length ? { NextToken: pageToken('list', end) } : {}),
  };
}

function submitted(s: StatementRecord) {
  return {
    Id: s.id,
    CreatedAt: seconds(s.createdAt),
    ...targetMembers(s),
    ...(s.input.batch ? {} : { Status: s.status }),
  };
}

function createDispatch(engine: Engine, pageRows: number): Dispatch {
  return async (operation, body) => {
    switch (operation) {
      case 'ExecuteStatement':
        return submitted(engine.submit(parseExecute(body)));
      case 'BatchExecuteStatement':
        return submitted(engine.submit(parseBatch(body)));
      case 'DescribeStatement': {
        const wait = parseWait(body);
        const { s, sub } = lookup(engine, body);
        await waitFor(s, wait);
        return describe(s, sub);
      }
      case 'GetStatementResult':
        return result(engine, body, pageRows);
      case 'CancelStatement': {
        const { s } = lookup(engine, body);
        await engine.cancel(s);
        return { Status: true };
      }
      case 'ListStatements':
        return list(engine, body);
      default:
        throw new DataApiError('UnknownOperationException', `Unknown operation ${TARGET_PREFIX}${operation}`);
    }
  };
}

function sendJson(res: http.ServerResponse, status: number, payload: unknown, errorType?: string): void {
  sendAwsJson(res, status, payload, { errorType });
}

async function handleRequest(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  dispatch: Dispatch,
  logger: Logger,
): Promise<void> {
  const target = req.headers['x-amz-target'];
  try {
    const text = await readAwsJsonBody(
      req,
      MAX_BODY_BYTES,
      () => new DataApiError('SerializationException', 'Request body too large', 413),
    );
    if (req.method !== 'POST' || typeof target !== 'string' || !target.startsWith(TARGET_PREFIX))
      throw new DataApiError('UnknownOperationException', `Unknown operation ${String(target ?? '')}`);
    sendJson(res, 200, await dispatch(target.slice(TARGET_PREFIX.length), parseBody(text)));
  } catch (err) {
    if (res.headersSent || res.destroyed) return;
    if (err instanceof DataApiError) {
      logger.debug({ target, type: err.type, message: err.message }, 'redshift-data: error answer');
      const body = { __type: err.type, message: err.message, Message: err.message, ...err.members };
      sendJson(res, err.status, body, err.type);
    } else {
      logger.error({ err, target }, 'redshift-data: request failed');
      sendJson(
        res,
        500,
        { __type: 'InternalServerException', message: 'Internal error.' },
        'InternalServerException',
      );
    }
  }
}

/** Starts the local Data API; stop() cancels what still runs and closes its connections. */
export async function startLocalRedshiftData(opts: LocalRedshiftDataOptions): Promise<LocalRedshiftData> {
  const { logger } = opts;
  const engine = new Engine({
    connectionString: opts.connectionString,
    workgroups: opts.workgroups ?? [LOCAL_WORKGROUP],
    clusters: opts.clusters ?? [],
    databases: [opts.database],
    s3: opts.s3,
    logger,
    ...(opts.maxActive ? { maxActive: opts.maxActive } : {}),
    ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
  });
  const dispatch = createDispatch(engine, opts.pageRows ?? 1000);
  const server = http.createServer((req, res) => void handleRequest(req, res, dispatch, logger));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  logger.info({ url, database: opts.database }, 'redshift-data: listening');
  let stopped: Promise<void> | undefined;
  return {
    url,
    port: address.port,
    stop() {
      stopped ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        await engine.close();
        server.closeAllConnections();
        await closed;
        logger.info({ url }, 'redshift-data: stopped');
      })();
      return stopped;
    },
  };
}
