import {
  BatchExecuteStatementCommand,
  DescribeStatementCommand,
  ExecuteStatementCommand,
  GetStatementResultCommand,
  RedshiftDataClient,
} from '@aws-sdk/client-redshift-data';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { WarehouseError } from '#adapters/warehouse';
import {
  createRedshiftWarehouse,
  inlineParams,
  redshiftCopySql,
  sqlLiteral,
} from '#adapters/warehouse-redshift';

const mock = mockClient(RedshiftDataClient);
const client = new RedshiftDataClient({ region: 'us-east-1' });
const warehouse = () =>
  createRedshiftWarehouse({
    client,
    database: 'retail',
    workgroupName: 'wg',
    secretArn: 'arn:secret',
    copyRoleArn: 'arn:aws:iam::1:role/copy',
    pollIntervalMs: 1,
    sleep: async () => {},
  });

beforeEach(() => mock.reset());

describe('Redshift Data API warehouse', () => {
  it('runs a query, polls it to completion and maps the result set', async () => {
    mock.on(ExecuteStatementCommand).resolves({ Id: 'q1' });
    mock
      .on(DescribeStatementCommand)
      .resolvesOnce({ Status: 'STARTED' })
      .resolves({ Status: 'FINISHED', HasResultSet: true });
    mock.on(GetStatementResultCommand).resolves({
      ColumnMetadata: [{ name: 'status' }, { name: 'n' }],
      Records: [
        [{ stringValue: 'loaded' }, { longValue: 3 }],
        [{ isNull: true }, { longValue: 0 }],
      ],
    });

    const res = await warehouse().query('SELECT status, n FROM load_manifest WHERE object_key = $1', [
      "it's",
    ]);

    expect(res.rows).toEqual([
      { status: 'loaded', n: 3 },
      { status: null, n: 0 },
    ]);
    const sent = mock.commandCalls(ExecuteStatementCommand)[0]?.args[0].input;
    expect(sent).toMatchObject({ Database: 'retail', WorkgroupName: 'wg', SecretArn: 'arn:secret' });
    expect(sent?.Sql).toBe("SELECT status, n FROM load_manifest WHERE object_key = 'it''s'");
    expect(mock.commandCalls(DescribeStatementCommand)).toHaveLength(2);
  });

  it('runs a transaction as one batch with COPY FROM S3 under the IAM role', async () => {
    mock.on(BatchExecuteStatementCommand).resolves({ Id: 'b1' });
    mock.on(DescribeStatementCommand).resolves({
      Status: 'FINISHED',
      SubStatements: [
        { Id: 'b1:1', ResultRows: 1 },
        { Id: 'b1:2', ResultRows: 42 },
      ],
    });

    const res = await warehouse().transaction([
      { sql: 'UPDATE load_manifest SET status = $1 WHERE attempts < $2', params: ['staged', 5] },
      {
        kind: 'copy',
        table: 'stg_load_ab',
        columns: ['row_no', 'c1'],
        format: 'csv',
        encoding: 'UTF8',
        s3: { uri: 's3://bucket/staging/ab.csv.gz', gzip: true, skipHeader: false },
      },
    ]);

    expect(res).toEqual({ committed: true, rowCounts: [1, 42] });
    const sqls = mock.commandCalls(BatchExecuteStatementCommand)[0]?.args[0].input.Sqls;
    expect(sqls?.[0]).toBe("UPDATE load_manifest SET status = 'staged' WHERE attempts < 5");
    expect(sqls?.[1]).toBe(
      "COPY stg_load_ab (row_no, c1) FROM 's3://bucket/staging/ab.csv.gz' IAM_ROLE 'arn:aws:iam::1:role/copy' FORMAT AS CSV GZIP TIMEFORMAT AS 'auto' EMPTYASNULL",
    );
  });

  it('reports a batch whose requireRows step matched nothing as not committed (it ran to its end)', async () => {
    mock.on(BatchExecuteStatementCommand).resolves({ Id: 'b3' });
    mock.on(DescribeStatementCommand).resolves({
      Status: 'FINISHED',
      SubStatements: [
        { Id: 'b3:1', ResultRows: 0 },
        { Id: 'b3:2', ResultRows: 0 },
      ],
    });
    const claim = { sql: "UPDATE load_manifest SET attempts = attempts + 1 WHERE status = 'pending'" };

    const lost = await warehouse().transaction([{ ...claim, requireRows: true }, { sql: 'DELETE FROM t' }]);
    const unchecked = await warehouse().transaction([claim, { sql: 'DELETE FROM t' }]);

    expect(lost).toEqual({ committed: false, rowCounts: [0, 0] });
    expect(unchecked).toEqual({ committed: true, rowCounts: [0, 0] });
  });

  it("surfaces a failed statement as a WarehouseError with Redshift's message", async () => {
    mock.on(BatchExecuteStatementCommand).resolves({ Id: 'b2' });
    mock.on(DescribeStatementCommand).resolves({
      Status: 'FAILED',
      SubStatements: [
        { Id: 'b2:1', Status: 'FAILED', Error: 'ERROR: Load into table failed', QueryString: 'COPY x' },
      ],
    });

    const err = await warehouse()
      .transaction([{ sql: 'SELECT 1' }])
      .catch((e: unknown) => e);

    expect(err).toBeInstanceOf(WarehouseError);
    expect((err as WarehouseError).message).toBe('ERROR: Load into table failed');
    expect((err as WarehouseError).details.statement).toBe('COPY x');
  });
});

describe('inline parameters', () => {
  it('quotes strings, keeps numbers and NULL, and leaves $ inside literals alone', () => {
    expect(sqlLiteral("a'b\\c")).toBe("'a''b\\\\c'");
    expect(inlineParams("SELECT $1, $2, '$1', $10", [null, 2, 3, 4, 5, 6, 7, 8, 9, true])).toBe(
      "SELECT NULL, 2, '$1', TRUE",
    );
    expect(() => inlineParams('SELECT $2', [1])).toThrow(WarehouseError);
  });

  it('reads the archive lines with control-character delimiters and accepts Latin-1 bytes', () => {
    const sql = redshiftCopySql(
      {
        kind: 'copy',
        table: 'stg_load_cd',
        columns: ['doc'],
        format: 'lines',
        encoding: 'LATIN1',
        s3: { uri: 's3://b/archive/x.gz', gzip: true, skipHeader: false },
      },
      'arn:role',
    );
    expect(sql).toContain("DELIMITER '\\002' FORMAT AS CSV QUOTE AS '\\001' GZIP ACCEPTINVCHARS AS '?'");
  });
});
