import {
  BatchExecuteStatementCommand,
  DescribeStatementCommand,
  type DescribeStatementResponse,
  ExecuteStatementCommand,
  type Field,
  GetStatementResultCommand,
  type RedshiftDataClient,
} from '@aws-sdk/client-redshift-data';
import { sleep as coreSleep } from '#core/resilience';
import {
  type CopyStep,
  ident,
  isCopyStep,
  isDeferredStep,
  type StatementResult,
  type Step,
  type TransactionResult,
  type Warehouse,
  WarehouseError,
} from './warehouse.ts';

export interface RedshiftWarehouseOptions {
  client: RedshiftDataClient;
  database: string;
  /** Redshift Serverless workgroup, or a provisioned cluster (with secretArn or dbUser). */
  workgroupName?: string;
  clusterIdentifier?: string;
  secretArn?: string;
  dbUser?: string;
  /** The IAM role COPY assumes to read S3. */
  copyRoleArn?: string;
  pollIntervalMs?: number;
  timeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

/**
 * A value as SQL literal text. BatchExecuteStatement takes no parameters, so a transaction's
 * statements carry their values inline; strings are quoted with '' doubling and backslashes doubled
 * (Redshift reads backslash escapes in literals).
 */
export function sqlLiteral(value: unknown): string {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new WarehouseError(`cannot inline the number ${value}`);
    return String(value);
  }
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'boolean') return value ? 'TRUE' : 'FALSE';
  if (value instanceof Date) return `'${value.toISOString()}'`;
  return `'${String(value).replaceAll('\\', '\\\\').replaceAll("'", "''")}'`;
}

/** Replaces `$n` placeholders (outside quoted text) by literals. */
export function inlineParams(sql: string, params: ReadonlyArray<unknown> = []): string {
  let out = '';
  let quoted = false;
  for (let i = 0; i < sql.length; i++) {
    const ch = sql[i] as string;
    if (ch === "'") quoted = !quoted;
    if (!quoted && ch === '$' && /[0-9]/.test(sql[i + 1] ?? '')) {
      let j = i + 1;
      while (j < sql.length && /[0-9]/.test(sql[j] as string)) j++;
      const n = Number(sql.slice(i + 1, j));
      if (n < 1 || n > params.length) throw new WarehouseError(`no value for $${n}`, { statement: sql });
      out += sqlLiteral(params[n - 1]);
      i = j - 1;
      continue;
    }
    out += ch;
  }
  return out;
}

/** COPY FROM S3 for a staging step. */
export function redshiftCopySql(step: CopyStep, roleArn: string): string {
  if (!step.s3) throw new WarehouseError(`COPY into ${step.table} needs an S3 object on Redshift`);
  if (step.format === 'binary') throw new WarehouseError('Redshift has no binary COPY: stage CSV');
  const cols = step.columns.map(ident).join(', ');
  const options =
    step.format === 'csv'
      ? ['FORMAT AS CSV', ...(step.s3.skipHeader ? ['IGNOREHEADER 1'] : [])]
      : ["DELIMITER '\\002'", "FORMAT AS CSV QUOTE AS '\\001'"];
  if (step.s3.gzip) options.push('GZIP');
  // Latin-1 bytes are not UTF-8: Redshift replaces them instead of failing the whole file.
  if (step.encoding === 'LATIN1') options.push("ACCEPTINVCHARS AS '?'");
  options.push("TIMEFORMAT AS 'auto'", 'EMPTYASNULL');
  return `COPY ${ident(step.table)} (${cols}) FROM ${sqlLiteral(step.s3.uri)} IAM_ROLE ${sqlLiteral(roleArn)} ${options.join(' ')}`;
}

function fieldValue(f: Field): unknown {
  if (f.isNull) return null;
  if (f.stringValue !== undefined) return f.stringValue;
  if (f.longValue !== undefined) return f.longValue;
  if (f.doubleValue !== undefined) return f.doubleValue;
  if (f.booleanValue !== undefined) return f.booleanValue;
  if (f.blobValue !== undefined) return f.blobValue;
  return null;
}

/**
 * The warehouse port on the Redshift Data API: statements are submitted, then polled with
 * DescribeStatement until they finish; a failure becomes a WarehouseError carrying Redshift's own
 * message. A transaction is one BatchExecuteStatement (the Data API runs a batch as one transaction):
 * it cannot stop at a `requireRows` step that matched nothing, so it reports such a batch not
 * committed, and the steps after one must check it themselves (batch/loader/manifest.ts).
 */
export function createRedshiftWarehouse(options: RedshiftWarehouseOptions): Warehouse {
  const { client } = options;
  const pollMs = options.pollIntervalMs ?? 250;
  const timeoutMs = options.timeoutMs ?? 15 * 60_000;
  const sleep = options.sleep ?? coreSleep;
  const target = {
    Database: options.database,
    ...(options.workgroupName ? { WorkgroupName: options.workgroupName } : {}),
    ...(options.clusterIdentifier ? { ClusterIdentifier: options.clusterIdentifier } : {}),
    ...(options.secretArn ? { SecretArn: options.secretArn } : {}),
    ...(options.dbUser ? { DbUser: options.dbUser } : {}),
  };

  async function waitFor(id: string, sql: string): Promise<DescribeStatementResponse> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const d = await client.send(new DescribeStatementCommand({ Id: id }));
      if (d.Status === 'FINISHED') return d;
      if (d.Status === 'FAILED' || d.Status === 'ABORTED') {
        const sub = d.SubStatements?.find((x) => x.Error);
        throw new WarehouseError(d.Error ?? sub?.Error ?? `statement ${d.Status}`, {
          statement: sub?.QueryString ?? sql,
        });
      }
      if (Date.now() > deadline)
        throw new WarehouseError(`statement ${id} still ${d.Status} after ${timeoutMs} ms`, {
          statement: sql,
        });
      await sleep(pollMs);
    }
  }

  return {
    dialect: 'redshift',
    copySource: 's3',
    async query<R>(sql: string, params: ReadonlyArray<unknown> = []): Promise<StatementResult<R>> {
      const text = inlineParams(sql, params);
      const { Id } = await client.send(new ExecuteStatementCommand({ ...target, Sql: text }));
      if (!Id) throw new WarehouseError('ExecuteStatement returned no id', { statement: text });
      const done = await waitFor(Id, text);
      const rows: R[] = [];
      if (done.HasResultSet) {
        let token: string | undefined;
        do {
          const page = await client.send(
            new GetStatementResultCommand({ Id, ...(token ? { NextToken: token } : {}) }),
          );
          const names = (page.ColumnMetadata ?? []).map((c) => c.name ?? c.label ?? '');
          for (const record of page.Records ?? []) {
            rows.push(Object.fromEntries(record.map((f, i) => [names[i] ?? String(i), fieldValue(f)])) as R);
          }
          token = page.NextToken;
        } while (token);
      }
      return { rows, rowCount: done.HasResultSet ? rows.length : Number(done.ResultRows ?? 0) };
    },
    async transaction(steps: ReadonlyArray<Step>): Promise<TransactionResult> {
      const sqls = steps.map((step) => {
        if (isDeferredStep(step))
          throw new WarehouseError('a Redshift transaction is one batch: it cannot run deferred steps');
        if (isCopyStep(step)) {
          if (!options.copyRoleArn)
            throw new WarehouseError('COPY on Redshift needs copyRoleArn (RP_REDSHIFT_COPY_ROLE_ARN)');
          return redshiftCopySql(step, options.copyRoleArn);
        }
        return inlineParams(step.sql, step.params);
      });
      const { Id } = await client.send(new BatchExecuteStatementCommand({ ...target, Sqls: sqls }));
      if (!Id) throw new WarehouseError('BatchExecuteStatement returned no id');
      const done = await waitFor(Id, sqls.join(';\n'));
      const rowCounts = (done.SubStatements ?? []).map((s) => Number(s.ResultRows ?? 0));
      // The batch ran to its end and committed; a `requireRows` step that matched nothing means its
      // later statements were written to change nothing then (the loader's claim): not committed.
      const claimLost = steps.some(
        (step, i) => 'requireRows' in step && step.requireRows && rowCounts[i] === 0,
      );
      return { committed: !claimLost, rowCounts };
    },
    async close() {
      // The SDK client is owned by the caller.
    },
  };
}
