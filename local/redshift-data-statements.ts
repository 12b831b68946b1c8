import { randomUUID } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import type { Logger } from '#adapters/logger';
import { errorMessage } from '#core/resilience';
import { runS3Copy } from './redshift-data-copy.ts';
import { DataApiError, type SubmitInput, validation } from './redshift-data-protocol.ts';
import { RAW_TYPES, type ResultSet, resultSet } from './redshift-data-results.ts';
import { bindParameters, SESSION_SETTINGS, translateSql } from './redshift-dialect.ts';
import { isCopy, parseCopy } from './redshift-dialect-copy.ts';

/**
 * The statements of the local Data API: submitted, run asynchronously on a pooled PostgreSQL
 * connection (each in a fresh session state, as every Data API call is its own session), kept with
 * their results for DescribeStatement / GetStatementResult / ListStatements. A batch runs in one
 * transaction: all or nothing, as Redshift runs it.
 */

export type Status = 'SUBMITTED' | 'PICKED' | 'STARTED' | 'FINISHED' | 'FAILED' | 'ABORTED';
const TERMINAL: ReadonlySet<Status> = new Set(['FINISHED', 'FAILED', 'ABORTED']);
export const isTerminal = (s: Status) => TERMINAL.has(s);

/** How long results are kept (the Data API keeps them 24 hours). */
const RETAIN_MS = 24 * 3600 * 1000;
const CANCEL_TRIES = 20;
const CANCEL_RETRY_MS = 100;

export interface SubStatement {
  sql: string;
  status: Status;
  error?: string;
  createdAt: number;
  updatedAt: number;
  durationNs: number;
  /** Rows returned or affected; -1 while unknown. */
  resultRows: number;
  hasResultSet: boolean;
  result?: ResultSet;
  queryId: number;
}

export interface StatementRecord {
  id: string;
  input: SubmitInput;
  subs: SubStatement[];
  status: Status;
  error?: string;
  createdAt: number;
  updatedAt: number;
  pid?: number;
  cancelRequested: boolean;
  /** Settles when the statement reaches a terminal status. */
  ended: Promise<void>;
}

export interface EngineOptions {
  /** libpq connection string of one database of the local cluster. */
  connectionString(database: string): string;
  /** The names the CDK app creates: anything else is the Data API's error. */
  workgroups: readonly string[];
  clusters: readonly string[];
  databases: readonly string[];
  s3: S3Client;
  logger: Logger;
  /** Statements not yet ended at once (the Data API's quota: 500). */
  maxActive?: number;
  /** PostgreSQL connections per database. */
  maxConnections?: number;
  /** Ended statements kept (oldest forgotten first), besides the 24-hour limit. */
  retain?: number;
  /** Called when a statement submitted WithEvent ends (no EventBridge locally). */
  onEvent?: (statement: StatementRecord) => void;
}

class Cancelled extends Error {
  override name = 'Cancelled';
}

/** Redshift's error text: the server's message after its severity, as DescribeStatement shows it. */
const redshiftError = (err: unknown) => {
  // The server's own text (errorMessage would prefix pg's error class name).
  const message = err instanceof Error ? err.message : errorMessage(err);
  return /^(ERROR|FATAL):/.test(message) ? message : `ERROR: ${message}`;
};

const startupOptions = Object.entries(SESSION_SETTINGS)
  .map(([k, v]) => `-c ${k}=${v}`)
  .join(' ');

/** Marks a statement (and its sub-statements not yet ended) with a status. */
function setStatus(record: StatementRecord, status: Status, error?: string): void {
  record.status = status;
  record.updatedAt = Date.now();
  if (error !== undefined) record.error = error;
  for (const sub of record.subs) {
    if (isTerminal(sub.status)) continue;
    if (isTerminal(status)) {
      // Sub-statements that never ran end with their batch.
      sub.status = status === 'FINISHED' ? 'FINISHED' : 'ABORTED';
      sub.updatedAt = record.updatedAt;
    } else if (sub.status === 'SUBMITTED') {
      sub.status = status;
    }
  }
}

function newRecord(input: SubmitInput, now: number, queryId: () => number): StatementRecord {
  return {
    id: randomUUID(),
    input,
    subs: input.sqls.map((sql) => ({
      sql,
      status: 'SUBMITTED',
      createdAt: now,
      updatedAt: now,
      durationNs: 0,
      resultRows: -1,
      hasResultSet: false,
      queryId: queryId(),
    })),
    status: 'SUBMITTED',
    createdAt: now,
    updatedAt: now,
    cancelRequested: false,
    ended: Promise.resolve(),
  };
}

export class Engine {
  private readonly pools = new Map<string, pg.Pool>();
  private readonly statements = new Map<string, StatementRecord>();
  private readonly byToken = new Map<string, StatementRecord>();
  private queryIds = 100_000;
  private closing = false;

  constructor(private readonly opts: EngineOptions) {}

  private poolOf(database: string): pg.Pool {
    let pool = this.pools.get(database);
    if (!pool) {
      pool = new pg.Pool({
        connectionString: this.opts.connectionString(database),
        max: this.opts.maxConnections ?? 8,
        options: startupOptions,
        types: RAW_TYPES,
      });
      pool.on('error', (err) =>
        this.opts.logger.warn({ err: errorMessage(err) }, 'redshift-data: idle connection lost'),
      );
      this.pools.set(database, pool);
    }
    return pool;
  }

  private forgetOld(now: number): void {
    const ended = [...this.statements.values()].filter((s) => isTerminal(s.status));
    const over = this.statements.size - (this.opts.retain ?? 10_000);
    ended.forEach((s, i) => {
      if (i >= over && now - s.updatedAt <= RETAIN_MS) return;
      this.statements.delete(s.id);
      if (s.input.clientToken) this.byToken.delete(s.input.clientToken);
    });
  }

  private checkTarget(input: SubmitInput): void {
    const { workgroupName, clusterIdentifier } = input.target;
    const known = workgroupName
      ? this.opts.workgroups.includes(workgroupName)
      : this.opts.clusters.includes(clusterIdentifier ?? '');
    if (!known) throw validation("Redshift endpoint doesn't exist in this region.");
    const used = new Set<string>();
    for (const sql of input.sqls)
      for (const name of bindParameters(sql, input.parameters).used) used.add(name);
    const unused = input.parameters.filter((p) => !used.has(p.name)).map((p) => p.name);
    if (unused.length > 0)
      throw validation(`Parameters [${unused.join(', ')}] are not referenced by any SQL statement.`);
  }

  /** Accepts a statement (or batch) and starts it; answers at once, as the Data API does. */
  submit(input: SubmitInput): StatementRecord {
    if (this.closing)
      throw new DataApiError('InternalServerException', 'The local Redshift Data API is stopping.', 500);
    this.checkTarget(input);
    const again = input.clientToken ? this.byToken.get(input.clientToken) : undefined;
    if (again && this.statements.has(again.id)) {
      if (JSON.stringify(again.input) !== JSON.stringify(input))
        throw validation('ClientToken was already used with a different request.');
      return again;
    }
    const now = Date.now();
    this.forgetOld(now);
    const maxActive = this.opts.maxActive ?? 500;
    const active = [...this.statements.values()].filter((s) => !isTerminal(s.status)).length;
    if (active >= maxActive)
      throw new DataApiError(
        'ActiveStatementsExceededException',
        `Active statements exceeded the allowed quota (${maxActive}).`,
      );
    const record = newRecord(input, now, () => ++this.queryIds);
    this.statements.set(record.id, record);
    if (input.clientToken) this.byToken.set(input.clientToken, record);
    record.ended = this.run(record).catch((err) => {
      this.opts.logger.error({ err, id: record.id }, 'redshift-data: statement runner failed');
      setStatus(record, 'FAILED', redshiftError(err));
    });
    return record;
  }

  private async executeOne(client: pg.PoolClient, record: StatementRecord, sub: SubStatement): Promise<void> {
    const started = process.hrtime.bigint();
    sub.status = 'STARTED';
    sub.updatedAt = Date.now();
    record.status = 'STARTED';
    const bound = bindParameters(sub.sql, record.input.parameters);
    try {
      if (isCopy(bound.text)) {
        sub.resultRows = await runS3Copy(client, this.opts.s3, parseCopy(bound.text));
      } else {
        const res = await client.query({
          text: translateSql(bound.text),
          values: bound.values,
          rowMode: 'array',
        });
        const last = (Array.isArray(res) ? res.at(-1) : res) as pg.QueryResult<unknown[]>;
        sub.hasResultSet = last.fields.length > 0;
        if (sub.hasResultSet) sub.result = resultSet(last.fields, last.rows);
        sub.resultRows = sub.hasResultSet ? last.rows.length : (last.rowCount ?? 0);
      }
      if (record.cancelRequested) throw new Cancelled('Query cancelled by the user');
      sub.status = 'FINISHED';
    } catch (err) {
      sub.status = record.cancelRequested ? 'ABORTED' : 'FAILED';
      sub.error = redshiftError(err);
      throw err;
    } finally {
      sub.durationNs = Number(process.hrtime.bigint() - started);
      sub.updatedAt = Date.now();
    }
  }

  /** The statements in order, in one transaction for a batch; a failure rolls the batch back. */
  private async runAll(client: pg.PoolClient, record: StatementRecord): Promise<void> {
    const batch = record.input.batch;
    if (batch) await client.query('BEGIN');
    try {
      for (const sub of record.subs) {
        if (record.cancelRequested) throw new Cancelled('Query cancelled by the user');
        await this.executeOne(client, record, sub);
      }
      if (batch) await client.query('COMMIT');
      setStatus(record, 'FINISHED');
    } catch (err) {
      if (batch) await client.query('ROLLBACK').catch(() => {});
      const failed = record.subs.find((s) => s.error);
      setStatus(record, record.cancelRequested ? 'ABORTED' : 'FAILED', failed?.error ?? redshiftError(err));
    }
  }

  private async run(record: StatementRecord): Promise<void> {
    const { database } = record.input.target;
    if (!this.opts.databases.includes(database)) {
      setStatus(record, 'FAILED', `FATAL: database "${database}" does not exist`);
      return;
    }
    let client: pg.PoolClient;
    try {
      client = await this.poolOf(database).connect();
    } catch (err) {
      setStatus(record, 'FAILED', redshiftError(err));
      return;
    }
    let broken: Error | undefined;
    try {
      record.pid = (client as unknown as { processID: number }).processID;
      setStatus(record, 'PICKED');
      await this.runAll(client, record);
      // The next statement gets a session of its own: no temp table or setting carries over.
      await client.query('DISCARD ALL');
    } catch (err) {
      broken = err as Error;
      if (!isTerminal(record.status)) setStatus(record, 'FAILED', redshiftError(err));
    } finally {
      client.release(broken);
      if (record.input.withEvent) this.opts.onEvent?.(record);
    }
  }

  get(id: string): StatementRecord | undefined {
    return this.statements.get(id);
  }

  all(): StatementRecord[] {
    return [...this.statements.values()];
  }

  async cancel(record: StatementRecord): Promise<void> {
    if (isTerminal(record.status))
      throw validation(`Could not cancel a query that is already in ${record.status} state.`);
    record.cancelRequested = true;
    // A cancel that reaches the backend before the query does is lost: it is repeated until the
    // statement ends (a statement between its sub-statements sees the flag instead).
    for (let i = 0; i < CANCEL_TRIES && !isTerminal(record.status); i++) {
      if (record.pid !== undefined)
        await this.poolOf(record.input.target.database).query('SELECT pg_cancel_backend($1)', [record.pid]);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([record.ended, new Promise((r) => (timer = setTimeout(r, CANCEL_RETRY_MS)))]);
      clearTimeout(timer);
    }
  }

  /** Cancels what still runs, waits for it to end, closes the connections. */
  async close(): Promise<void> {
    this.closing = true;
    const running = this.all().filter((s) => !isTerminal(s.status));
    await Promise.allSettled(running.map((s) => this.cancel(s)));
    await Promise.allSettled(running.map((s) => s.ended));
    await Promise.all([...this.pools.values()].map((p) => p.end()));
    this.pools.clear();
  }
}
