import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import {
  ActiveStatementsExceededException,
  BatchExecuteStatementCommand,
  CancelStatementCommand,
  DescribeStatementCommand,
  type DescribeStatementResponse,
  ExecuteStatementCommand,
  type ExecuteStatementInput,
  GetStatementResultCommand,
  ListStatementsCommand,
  RedshiftDataClient,
  ResourceNotFoundException,
  ValidationException,
} from '@aws-sdk/client-redshift-data';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_CREDENTIALS } from '#adapters/clients';
import { createLogger } from '#adapters/logger';
import {
  decimal,
  int32,
  type ParquetType,
  type ParquetValue,
  string,
  writeParquet,
} from '#adapters/parquet-writer';
import type { Warehouse } from '#adapters/warehouse';
import { createRedshiftWarehouse } from '#adapters/warehouse-redshift';
import { createLoader, loadIdOf } from '#batch/loader/index';
import { createManifest } from '#batch/loader/manifest';
import { migrate, migrationSteps, readMigrations } from '#batch/migrate';
import { CDC_KIND, loadProcessedObject, loadSteps } from '#cdc/load';
import { processedObjectKey } from '#cdc/transform';
import { WAREHOUSE_TABLES, type WarehouseTable } from '#cdc/transform-model';
import { LOCAL_WORKGROUP, type LocalRedshiftData, startLocalRedshiftData } from '#local/redshift-data';
import type { LocalStack } from '#local/stack';
import { acceptedLine, CSV_HEADER, csvRow, FIRST_LINE } from '#test/helpers/lines';
import { startTestStack } from '#test/helpers/stack';

let stack: LocalStack;
let client: RedshiftDataClient;

const target = () => ({
  WorkgroupName: LOCAL_WORKGROUP,
  Database: stack.config.names.database,
  SecretArn: 'arn:aws:secretsmanager:us-east-1:000000000000:secret:rp-admin',
});

beforeAll(async () => {
  stack = await startTestStack();
  client = new RedshiftDataClient({
    region: 'us-east-1',
    endpoint: stack.endpoints.redshiftData as string,
    credentials: LOCAL_CREDENTIALS,
  });
});

afterAll(async () => {
  client?.destroy();
  await stack?.stop();
});

/** Waits for the statement's end the way a client does: DescribeStatement until it is terminal. */
async function settled(id: string): Promise<DescribeStatementResponse> {
  for (;;) {
    const d = await client.send(new DescribeStatementCommand({ Id: id, WaitTimeSeconds: 5 }));
    if (d.Status === 'FINISHED' || d.Status === 'FAILED' || d.Status === 'ABORTED') return d;
  }
}

async function execute(sql: string, extra: Partial<ExecuteStatementInput> = {}) {
  const { Id } = await client.send(new ExecuteStatementCommand({ ...target(), Sql: sql, ...extra }));
  return settled(Id as string);
}

describe('ExecuteStatement, DescribeStatement, GetStatementResult', () => {
  it('runs a statement asynchronously and answers typed records with column metadata', async () => {
    const out = await client.send(
      new ExecuteStatementCommand({
        ...target(),
        Sql: "SELECT 42 AS n, CAST(1.250 AS numeric(12, 3)) AS price, 'it''s' AS s, true AS b, CAST(NULL AS varchar(4)) AS z, CAST(0.5 AS float8) AS f",
        StatementName: 'typed-probe',
      }),
    );
    expect(out.Id).toMatch(/^[a-z0-9]{8}(-[a-z0-9]{4}){3}-[a-z0-9]{12}$/);
    expect(out).toMatchObject({ WorkgroupName: LOCAL_WORKGROUP, Database: 'retail' });

    const d = await settled(out.Id as string);
    expect(d).toMatchObject({ Status: 'FINISHED', HasResultSet: true, ResultRows: 1 });
    expect(d.Duration).toBeGreaterThan(0);
    expect(d.QueryString).toContain('SELECT 42');

    const r = await client.send(new GetStatementResultCommand({ Id: out.Id }));
    expect(r.TotalNumRows).toBe(1);
    expect(r.Records).toEqual([
      [
        { longValue: 42 },
        { stringValue: '1.250' },
        { stringValue: "it's" },
        { booleanValue: true },
        { isNull: true },
        { doubleValue: 0.5 },
      ],
    ]);
    expect(r.ColumnMetadata?.map((c) => [c.name, c.typeName])).toEqual([
      ['n', 'int4'],
      ['price', 'numeric'],
      ['s', 'text'],
      ['b', 'bool'],
      ['z', 'varchar'],
      ['f', 'float8'],
    ]);
    expect(r.ColumnMetadata?.[1]).toMatchObject({ precision: 12, scale: 3 });
  });
});

describe('statements and batches', () => {
  it('pages a large result with NextToken; every page says the total', async () => {
    const { Id } = await client.send(
      new ExecuteStatementCommand({
        ...target(),
        Sql: 'SELECT n FROM generate_series(1, 2500) n ORDER BY n',
      }),
    );
    expect(await settled(Id as string)).toMatchObject({ Status: 'FINISHED', ResultRows: 2500 });
    const pages: number[][] = [];
    let token: string | undefined;
    do {
      const page = await client.send(new GetStatementResultCommand({ Id, NextToken: token }));
      expect(page.TotalNumRows).toBe(2500);
      pages.push((page.Records ?? []).map((r) => Number(r[0]?.longValue)));
      token = page.NextToken;
    } while (token);
    expect(pages.map((p) => p.length)).toEqual([1000, 1000, 500]);
    expect(pages.flat()).toEqual(Array.from({ length: 2500 }, (_, i) => i + 1));
    await expect(
      client.send(new GetStatementResultCommand({ Id, NextToken: 'bm90LWEtdG9rZW4' })),
    ).rejects.toBeInstanceOf(ValidationException);
  });

  it('binds named parameters as untyped text the server converts; an unreferenced one is refused', async () => {
    const d = await execute(
      'SELECT :word AS word, CAST(:n AS integer) + 1 AS next, CAST(:n AS integer) AS again',
      {
        Parameters: [
          { name: 'word', value: "it's \\ here" },
          { name: 'n', value: '41' },
        ],
      },
    );
    expect(d).toMatchObject({ Status: 'FINISHED', QueryParameters: [{ name: 'word' }, { name: 'n' }] });
    const r = await client.send(new GetStatementResultCommand({ Id: d.Id }));
    expect(r.Records).toEqual([[{ stringValue: "it's \\ here" }, { longValue: 42 }, { longValue: 41 }]]);

    await expect(
      client.send(
        new ExecuteStatementCommand({
          ...target(),
          Sql: 'SELECT 1',
          Parameters: [{ name: 'x', value: '1' }],
        }),
      ),
    ).rejects.toBeInstanceOf(ValidationException);
  });

  it('a failing statement ends FAILED with the PostgreSQL message, and has no result', async () => {
    const d = await execute('SELECT missing_column FROM no_such_table');

    expect(d.Status).toBe('FAILED');
    expect(d.Error).toBe('ERROR: relation "no_such_table" does not exist');
    await expect(client.send(new GetStatementResultCommand({ Id: d.Id }))).rejects.toBeInstanceOf(
      ResourceNotFoundException,
    );
  });

  it('runs a batch as one transaction: a failure rolls back the statements before it', async () => {
    expect((await execute('CREATE TABLE batch_probe (id integer PRIMARY KEY, note varchar(8))')).Status).toBe(
      'FINISHED',
    );
    const failed = await client.send(
      new BatchExecuteStatementCommand({
        ...target(),
        Sqls: [
          "INSERT INTO batch_probe VALUES (1, 'a')",
          "INSERT INTO batch_probe VALUES (2, 'b')",
          "INSERT INTO batch_probe VALUES (1, 'again')",
          "INSERT INTO batch_probe VALUES (3, 'c')",
        ],
      }),
    );
    const f = await settled(failed.Id as string);
    expect(f.Status).toBe('FAILED');
    expect(f.Error).toContain('duplicate key value violates unique constraint "batch_probe_pkey"');
    expect(f.SubStatements?.map((s) => [s.Id, s.Status])).toEqual([
      [`${failed.Id}:1`, 'FINISHED'],
      [`${failed.Id}:2`, 'FINISHED'],
      [`${failed.Id}:3`, 'FAILED'],
      [`${failed.Id}:4`, 'ABORTED'],
    ]);
    const count = await execute('SELECT count(*) AS n FROM batch_probe');
    const counted = await client.send(new GetStatementResultCommand({ Id: count.Id }));
    expect(counted.Records).toEqual([[{ longValue: 0 }]]);

    const ok = await client.send(
      new BatchExecuteStatementCommand({
        ...target(),
        Sqls: [
          "INSERT INTO batch_probe VALUES (1, 'a'), (2, 'b')",
          'SELECT id, note FROM batch_probe ORDER BY id',
        ],
      }),
    );
    const d = await settled(ok.Id as string);
    expect(d).toMatchObject({ Status: 'FINISHED', HasResultSet: true });
    expect(d.SubStatements?.map((s) => [s.Status, s.ResultRows, s.HasResultSet])).toEqual([
      ['FINISHED', 2, false],
      ['FINISHED', 2, true],
    ]);
    await expect(client.send(new GetStatementResultCommand({ Id: ok.Id }))).rejects.toBeInstanceOf(
      ValidationException,
    );
    const rows = await client.send(new GetStatementResultCommand({ Id: `${ok.Id}:2` }));
    expect(rows.Records).toEqual([
      [{ longValue: 1 }, { stringValue: 'a' }],
      [{ longValue: 2 }, { stringValue: 'b' }],
    ]);
    const sub = await client.send(new DescribeStatementCommand({ Id: `${ok.Id}:1` }));
    expect(sub).toMatchObject({ Id: `${ok.Id}:1`, Status: 'FINISHED', ResultRows: 2 });
  });

  it('gives every statement a session of its own: a temp table does not outlive its statement', async () => {
    expect((await execute('CREATE TEMP TABLE session_probe (x integer)')).Status).toBe('FINISHED');
    const d = await execute('SELECT x FROM session_probe');
    expect(d.Error).toBe('ERROR: relation "session_probe" does not exist');
  });

  it('cancels a running statement (ABORTED); a finished one cannot be cancelled', async () => {
    const { Id } = await client.send(
      new ExecuteStatementCommand({ ...target(), Sql: 'SELECT pg_sleep(60)' }),
    );
    for (;;) {
      const d = await client.send(new DescribeStatementCommand({ Id }));
      if (d.Status === 'STARTED') break;
      expect(['SUBMITTED', 'PICKED']).toContain(d.Status);
    }
    expect(await client.send(new CancelStatementCommand({ Id }))).toMatchObject({ Status: true });
    const d = await settled(Id as string);
    expect(d.Status).toBe('ABORTED');
    expect(d.Error).toContain('canceling statement due to user request');
    await expect(client.send(new CancelStatementCommand({ Id }))).rejects.toBeInstanceOf(ValidationException);
  });

  it('lists statements by name prefix and status, newest first', async () => {
    await execute('SELECT 1', { StatementName: 'list-probe-a' });
    await execute('SELECT 2', { StatementName: 'list-probe-b' });
    await execute('SELECT nope', { StatementName: 'list-probe-c' });
    const listed = await client.send(
      new ListStatementsCommand({ StatementName: 'list-probe', Status: 'FINISHED' }),
    );
    expect(listed.Statements?.map((s) => [s.StatementName, s.QueryString, s.IsBatchStatement])).toEqual([
      ['list-probe-b', 'SELECT 2', false],
      ['list-probe-a', 'SELECT 1', false],
    ]);
    const paged = await client.send(
      new ListStatementsCommand({ StatementName: 'list-probe', MaxResults: 2 }),
    );
    expect(paged.Statements?.map((s) => s.StatementName)).toEqual(['list-probe-c', 'list-probe-b']);
    const rest = await client.send(
      new ListStatementsCommand({ StatementName: 'list-probe', MaxResults: 2, NextToken: paged.NextToken }),
    );
    expect(rest.Statements?.map((s) => s.StatementName)).toEqual(['list-probe-a']);
    expect(rest.NextToken).toBeUndefined();
  });
});

describe('errors in the Data API shapes', () => {
  it('refuses an unknown workgroup, a missing target, a malformed id; an unknown id is not found', async () => {
    const refused = client.send(
      new ExecuteStatementCommand({ ...target(), WorkgroupName: 'someone-elses', Sql: 'SELECT 1' }),
    );
    await expect(refused).rejects.toBeInstanceOf(ValidationException);
    await expect(refused).rejects.toThrow("Redshift endpoint doesn't exist in this region.");
    await expect(
      client.send(new ExecuteStatementCommand({ Database: 'retail', Sql: 'SELECT 1' })),
    ).rejects.toThrow('Either ClusterIdentifier or WorkgroupName needs to be specified.');
    await expect(client.send(new DescribeStatementCommand({ Id: 'not-an-id' }))).rejects.toBeInstanceOf(
      ValidationException,
    );
    await expect(
      client.send(new DescribeStatementCommand({ Id: '00000000-0000-0000-0000-000000000000' })),
    ).rejects.toBeInstanceOf(ResourceNotFoundException);
  });

  it('fails a statement on a database the CDK app does not create', async () => {
    const d = await execute('SELECT 1', { Database: 'dev' });
    expect(d).toMatchObject({ Status: 'FAILED', Error: 'FATAL: database "dev" does not exist' });
  });

  it('refuses statements beyond the active quota with ActiveStatementsExceededException', async () => {
    const pg = new URL(stack.endpoints.postgres);
    const small: LocalRedshiftData = await startLocalRedshiftData({
      port: 0,
      connectionString: (database) => Object.assign(new URL(pg), { pathname: `/${database}` }).toString(),
      database: 'retail',
      s3: stack.clients.s3,
      logger: createLogger('silent'),
      maxActive: 1,
    });
    const other = new RedshiftDataClient({
      region: 'us-east-1',
      endpoint: small.url,
      credentials: LOCAL_CREDENTIALS,
    });
    try {
      const { Id } = await other.send(
        new ExecuteStatementCommand({ ...target(), Sql: 'SELECT pg_sleep(60)' }),
      );
      await expect(
        other.send(new ExecuteStatementCommand({ ...target(), Sql: 'SELECT 1' })),
      ).rejects.toBeInstanceOf(ActiveStatementsExceededException);
      await other.send(new CancelStatementCommand({ Id }));
    } finally {
      other.destroy();
      await small.stop();
    }
  });
});

describe('the Redshift dialect', () => {
  it('creates a table with distribution, sort, encoding, identity and GETDATE() and uses it', async () => {
    const ddl = await execute(`CREATE TABLE dialect_probe (
  id bigint GENERATED BY DEFAULT AS IDENTITY(10, 5),
  code varchar(8) NOT NULL ENCODE zstd DISTKEY,
  seen timestamp DEFAULT GETDATE() ENCODE az64,
  note varchar(16) ENCODE lzo SORTKEY
) DISTSTYLE KEY COMPOUND SORTKEY (code, seen) BACKUP NO`);
    expect(ddl).toMatchObject({ Status: 'FINISHED' });
    const insert = await execute(
      "INSERT INTO dialect_probe (code, note) VALUES ('a', 'ENCODE zstd'), ('b', NULL)",
    );
    expect(insert).toMatchObject({ Status: 'FINISHED', ResultRows: 2 });
    const d = await execute(
      "SELECT id, code, note, seen <= GETDATE() AS past, seen > GETDATE() - INTERVAL '1 hour' AS recent FROM dialect_probe ORDER BY id",
    );
    const r = await client.send(new GetStatementResultCommand({ Id: d.Id }));
    expect(r.Records).toEqual([
      [
        { longValue: 10 },
        { stringValue: 'a' },
        { stringValue: 'ENCODE zstd' },
        { booleanValue: true },
        { booleanValue: true },
      ],
      [
        { longValue: 15 },
        { stringValue: 'b' },
        { isNull: true },
        { booleanValue: true },
        { booleanValue: true },
      ],
    ]);
  });

  it('reads backslash escapes in literals as Redshift does', async () => {
    const d = await execute("SELECT 'a\\\\b' AS one_backslash, 'it\\'s' AS quote");
    const r = await client.send(new GetStatementResultCommand({ Id: d.Id }));
    expect(r.Records).toEqual([[{ stringValue: 'a\\b' }, { stringValue: "it's" }]]);
  });
});

describe('COPY from the local S3', () => {
  const bucket = () => stack.config.names.bucket;
  const put = (key: string, body: Uint8Array | string) =>
    stack.clients.s3.send(new PutObjectCommand({ Bucket: bucket(), Key: key, Body: body }));
  const role = "IAM_ROLE 'arn:aws:iam::000000000000:role/copy'";
  const rowsOf = async (sql: string) =>
    (await client.send(new GetStatementResultCommand({ Id: (await execute(sql)).Id }))).Records;

  beforeAll(async () => {
    const d = await execute('CREATE TABLE copy_target (a varchar(32), b integer, c numeric(10, 2))');
    expect(d.Status).toBe('FINISHED');
  });

  it('loads every gzipped CSV object under the prefix, headers skipped, Latin-1 bytes replaced', async () => {
    await execute('TRUNCATE copy_target');
    await put('copy-probe/csv/part-1.csv.gz', gzipSync('a,b,c\n"x, quoted",1,1.50\n"",2,\n'));
    await put(
      'copy-probe/csv/part-2.csv.gz',
      gzipSync(
        Buffer.concat([
          Buffer.from('a,b,c\n'),
          Buffer.from('caf\xe9,3,3\n', 'latin1'),
          Buffer.from(',4,4.25\n'),
        ]),
      ),
    );

    const d = await execute(
      `COPY copy_target (a, b, c) FROM 's3://${bucket()}/copy-probe/csv/' ${role} FORMAT AS CSV IGNOREHEADER 1 GZIP ACCEPTINVCHARS AS '?' TIMEFORMAT AS 'auto' EMPTYASNULL`,
    );

    expect(d).toMatchObject({ Status: 'FINISHED', ResultRows: 4, HasResultSet: false });
    expect(await rowsOf('SELECT a, b, c FROM copy_target ORDER BY b')).toEqual([
      [{ stringValue: 'x, quoted' }, { longValue: 1 }, { stringValue: '1.50' }],
      [{ stringValue: '' }, { longValue: 2 }, { isNull: true }],
      [{ stringValue: 'caf?' }, { longValue: 3 }, { stringValue: '3.00' }],
      [{ isNull: true }, { longValue: 4 }, { stringValue: '4.25' }],
    ]);
  });

  it("loads JSON objects by key with 'auto', missing keys NULL", async () => {
    await execute('TRUNCATE copy_target');
    await put(
      'copy-probe/json/lines.json',
      '{"a":"x","b":1,"extra":true}\n{"b":2,"c":2.5}\n  {"A":"case","b":3}',
    );

    const d = await execute(
      `COPY copy_target FROM 's3://${bucket()}/copy-probe/json/' ${role} FORMAT AS JSON 'auto'`,
    );

    expect(d).toMatchObject({ Status: 'FINISHED', ResultRows: 3 });
    expect(await rowsOf('SELECT a, b, c FROM copy_target ORDER BY b')).toEqual([
      [{ stringValue: 'x' }, { longValue: 1 }, { isNull: true }],
      [{ isNull: true }, { longValue: 2 }, { stringValue: '2.50' }],
      [{ isNull: true }, { longValue: 3 }, { isNull: true }],
    ]);
  });

  it('loads Parquet by column position, decimals exact', async () => {
    await execute('TRUNCATE copy_target');
    const schema = [
      { name: 'name', type: string, nullable: true },
      { name: 'qty', type: int32, nullable: false },
      { name: 'price', type: decimal(10, 2), nullable: true },
    ];
    await put(
      'copy-probe/parquet/rows.parquet',
      writeParquet(schema, [
        { name: 'p', qty: 7, price: '12345678.91' },
        { name: null, qty: 8, price: null },
      ]),
    );

    const d = await execute(
      `COPY copy_target FROM 's3://${bucket()}/copy-probe/parquet/rows.parquet' ${role} FORMAT AS PARQUET`,
    );

    expect(d).toMatchObject({ Status: 'FINISHED', ResultRows: 2 });
    expect(await rowsOf('SELECT a, b, c FROM copy_target ORDER BY b')).toEqual([
      [{ stringValue: 'p' }, { longValue: 7 }, { stringValue: '12345678.91' }],
      [{ isNull: true }, { longValue: 8 }, { isNull: true }],
    ]);
  });

  it('fails the statement when nothing is under the prefix, or an option is not translated', async () => {
    const none = await execute(
      `COPY copy_target FROM 's3://${bucket()}/copy-probe/none/' ${role} FORMAT AS CSV`,
    );
    expect(none).toMatchObject({ Status: 'FAILED' });
    expect(none.Error).toContain("The specified S3 prefix 'copy-probe/none/' does not exist");
    const odd = await execute(
      `COPY copy_target FROM 's3://${bucket()}/copy-probe/csv/' ${role} CSV FILLRECORD`,
    );
    expect(odd.Error).toContain('COPY option FILLRECORD is not translated by the local Redshift Data API');
  });
});

describe('the aws-mode loader (Redshift adapter, redshift-s3 way) against the local Data API', () => {
  const logger = createLogger('silent');
  let warehouse: Warehouse;
  const bucket = () => stack.config.names.bucket;
  const put = async (key: string, body: Uint8Array | string) =>
    (
      await stack.clients.s3.send(new PutObjectCommand({ Bucket: bucket(), Key: key, Body: body }))
    ).ETag?.replaceAll('"', '') ?? '';
  const loader = () => createLoader({ s3: stack.clients.s3, bucket: bucket(), warehouse, logger });
  const archiveLine = (invoiceNo: string, lineNo: number, stockCode: string) =>
    JSON.stringify({
      ...acceptedLine({ invoiceNo, lineNo, stockCode }),
      streamVisibleAt: '2026-12-06T07:00:00.300Z',
    });

  beforeAll(async () => {
    warehouse = createRedshiftWarehouse({
      client,
      database: stack.config.names.database,
      workgroupName: LOCAL_WORKGROUP,
      secretArn: target().SecretArn,
      copyRoleArn: 'arn:aws:iam::000000000000:role/copy',
      pollIntervalMs: 10,
    });
    // The Redshift migrations (the .redshift.sql ones and the shared ones) through the Data API.
    await migrate(warehouse, logger);
  });

  it('loads a CSV drop and an archive object into the star; rejected rows COPY into load_rejected_row', async () => {
    const csv = [
      CSV_HEADER,
      csvRow({
        InvoiceNo: '970001',
        StockCode: '85123A',
        Description: '"HEART, WHITE"',
        CustomerID: '17850',
      }),
      csvRow({ InvoiceNo: '970001', StockCode: '71053', Description: '', Quantity: 2 }),
      csvRow({ InvoiceNo: '970001', StockCode: '84406B', Quantity: 'many' }),
      '',
    ].join('\n');
    const csvEtag = await put('landing/redshift-e2e/drop-1.csv', csv);
    await put(
      'archive/2026/12/06/07/redshift-e2e-1.gz',
      gzipSync([archiveLine('970002', 1, '22423'), archiveLine('970002', 2, '22424')].join('\n')),
    );

    const results = await loader().sweep();

    expect(results.map((r) => [r.key, r.status, r.rowsLoaded, r.rowsNew, r.rowsRejected])).toEqual([
      ['archive/2026/12/06/07/redshift-e2e-1.gz', 'loaded', 2, 2, 0],
      ['landing/redshift-e2e/drop-1.csv', 'loaded', 2, 2, 1],
    ]);
    const facts = await warehouse.query(
      `SELECT invoice_no, line_no, stock_code, description, source, stream_visible_at IS NOT NULL AS streamed
       FROM fact_sales_line WHERE invoice_no IN ('970001', '970002') ORDER BY invoice_no, line_no`,
    );
    expect(facts.rows).toEqual([
      {
        invoice_no: '970001',
        line_no: 1,
        stock_code: '85123A',
        description: 'HEART, WHITE',
        source: 'file',
        streamed: false,
      },
      {
        invoice_no: '970001',
        line_no: 2,
        stock_code: '71053',
        description: null,
        source: 'file',
        streamed: false,
      },
      {
        invoice_no: '970002',
        line_no: 1,
        stock_code: '22423',
        description: FIRST_LINE.description,
        source: 'stream',
        streamed: true,
      },
      {
        invoice_no: '970002',
        line_no: 2,
        stock_code: '22424',
        description: FIRST_LINE.description,
        source: 'stream',
        streamed: true,
      },
    ]);
    const rejected = await warehouse.query(
      'SELECT line_number, quantity FROM load_rejected_row WHERE object_key = $1 AND load_id = $2',
      ['landing/redshift-e2e/drop-1.csv', loadIdOf('landing/redshift-e2e/drop-1.csv', csvEtag)],
    );
    expect(rejected.rows).toEqual([{ line_number: 4, quantity: 'many' }]);
    const products = await warehouse.query(
      "SELECT stock_code FROM dim_product WHERE stock_code IN ('85123A', '71053', '22423', '22424') ORDER BY stock_code",
    );
    expect(products.rows.map((r) => r.stock_code)).toEqual(['22423', '22424', '71053', '85123A']);
  });

  it('loads processed totesys Parquet into a dimension and a fact (COPY FORMAT AS PARQUET, MERGE, identity, GETDATE)', async () => {
    const runId = '20261206T070000000Z-abcdef';
    const sample = (type: ParquetType, i: number): ParquetValue =>
      type.kind === 'int32' || type.kind === 'int64'
        ? i
        : type.kind === 'boolean'
          ? true
          : type.kind === 'date'
            ? '2026-12-06'
            : type.kind === 'time'
              ? '07:00:00.000000'
              : type.kind === 'decimal'
                ? '12.34'
                : `value ${i}`;
    const deps = {
      s3: stack.clients.s3,
      bucket: bucket(),
      warehouse,
      logger,
      copyRoleArn: 'arn:aws:iam::000000000000:role/copy',
    };
    for (const name of ['dim_currency', 'fact_payment']) {
      const table = WAREHOUSE_TABLES.find((t) => t.name === name) as WarehouseTable;
      const rows = [1, 2].map((i) =>
        Object.fromEntries(table.columns.map((c) => [c.name, sample(c.type, i)])),
      );
      const key = processedObjectKey(name, runId);
      const etag = await put(key, writeParquet(table.columns, rows));

      expect(await loadProcessedObject(deps, { key, etag })).toMatchObject({ status: 'loaded', rowsRead: 2 });
    }
    const currencies = await warehouse.query(
      'SELECT currency_id, currency_code FROM totesys.dim_currency ORDER BY 1',
    );
    expect(currencies.rows).toEqual([
      { currency_id: 1, currency_code: 'value 1' },
      { currency_id: 2, currency_code: 'value 2' },
    ]);
    const payments = await warehouse.query(
      `SELECT payment_record_id, payment_amount, warehouse_visible_at IS NOT NULL AS visible, source_key
       FROM totesys.fact_payment ORDER BY payment_record_id`,
    );
    expect(payments.rows).toEqual([
      {
        payment_record_id: 1,
        payment_amount: '12.34',
        visible: true,
        source_key: processedObjectKey('fact_payment', runId),
      },
      {
        payment_record_id: 2,
        payment_amount: '12.34',
        visible: true,
        source_key: processedObjectKey('fact_payment', runId),
      },
    ]);
  });

  it('a totesys load that lost its claim changes nothing (the batch runs on past it)', async () => {
    const table = WAREHOUSE_TABLES.find((t) => t.name === 'dim_currency') as WarehouseTable;
    const rows = [71, 72].map((i) => ({
      currency_id: i,
      currency_code: `L${i}`,
      currency_name: `lost ${i}`,
    }));
    const key = processedObjectKey('dim_currency', '20261206T080000000Z-abcdef');
    const etag = await put(key, writeParquet(table.columns, rows));
    const deps = { bucket: bucket(), warehouse, copyRoleArn: 'arn:aws:iam::000000000000:role/copy' };
    // Another loader took the object between loadProcessedObject's look at the manifest and the batch.
    await createManifest(warehouse).register({ key, etag }, CDC_KIND);
    await warehouse.query("UPDATE load_manifest SET status = 'loaded' WHERE object_key = $1", [key]);

    const result = await warehouse.transaction(loadSteps(deps, { key, etag }, table, rows));

    expect(result.committed).toBe(false);
    const lost = await warehouse.query('SELECT currency_id FROM totesys.dim_currency WHERE currency_id > 70');
    expect(lost.rows).toEqual([]);
  });

  /** A migrations directory of two: a table, then a row in it (a seed, as 0002 seeds the calendar). */
  const migrationsDir = (first: number) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rp-migrations-'));
    fs.writeFileSync(path.join(dir, `${first}_table.sql`), `CREATE TABLE mig_${first} (n integer);\n`);
    fs.writeFileSync(path.join(dir, `${first + 1}_seed.sql`), `INSERT INTO mig_${first} VALUES (1);\n`);
    return dir;
  };
  const seeded = async (first: number) =>
    (await warehouse.query<{ n: number }>(`SELECT n FROM mig_${first}`)).rows.map((r) => Number(r.n));

  it('a migration whose claim another process took is not applied again (the batch fails its check)', async () => {
    const dir = migrationsDir(9001);
    expect(await migrate(warehouse, logger, dir)).toEqual([9001, 9002]);
    const seed = (await readMigrations('redshift', dir)).find((m) => m.version === 9002);
    if (!seed) throw new Error('no seed migration');

    // As a second loader's cold start that read schema_migrations before the first committed 9002.
    await expect(warehouse.transaction(migrationSteps('redshift', seed, 'claim late'))).rejects.toThrow(
      'migration 9002 was applied by another process',
    );

    expect(await seeded(9001)).toEqual([1]);
    const rows = await warehouse.query<{ name: string }>(
      'SELECT name FROM schema_migrations WHERE version IN (9001, 9002) ORDER BY version',
    );
    expect(rows.rows.map((r) => r.name)).toEqual(['table', 'seed']);
  });

  it('two migrators at once apply each migration once', async () => {
    const dir = migrationsDir(9101);
    const [a, b] = await Promise.all([migrate(warehouse, logger, dir), migrate(warehouse, logger, dir)]);
    expect([...(a ?? []), ...(b ?? [])].sort()).toEqual([9101, 9102]);
    expect(await seeded(9101)).toEqual([1]);
  });

  it('reports a statement that fails in the batch: the object is failed with the error, nothing of it loaded', async () => {
    await warehouse.query('ALTER TABLE dim_product RENAME TO dim_product_away');
    try {
      const key = 'landing/redshift-e2e/drop-2.csv';
      const etag = await put(key, [CSV_HEADER, csvRow({ InvoiceNo: '970003' }), ''].join('\n'));

      const results = await loader().sweep();

      const result = results.find((r) => r.key === key);
      expect(result).toMatchObject({ status: 'failed' });
      expect(result?.detail).toContain('relation "dim_product" does not exist');
      const manifest = await warehouse.query<{ status: string; error: string }>(
        'SELECT status, error FROM load_manifest WHERE object_key = $1 AND etag = $2',
        [key, etag],
      );
      expect(manifest.rows).toEqual([
        { status: 'failed', error: expect.stringContaining('relation "dim_product" does not exist') },
      ]);
      const facts = await warehouse.query("SELECT 1 FROM fact_sales_line WHERE invoice_no = '970003'");
      expect(facts.rows).toEqual([]);
    } finally {
      await warehouse.query('ALTER TABLE dim_product_away RENAME TO dim_product');
    }
  });
});

const AWS_CLI = '/usr/bin/aws';
const hasAwsCli = fs.existsSync(AWS_CLI);
if (!hasAwsCli)
  console.warn(`redshift-data-api.test.ts: ${AWS_CLI} is absent, the AWS CLI checks are skipped`);

describe.skipIf(!hasAwsCli)("Debian's AWS CLI (aws redshift-data) against the local Data API", () => {
  const run = promisify(execFile);
  const aws = async (...args: string[]) => {
    const { stdout } = await run(
      AWS_CLI,
      [
        'redshift-data',
        ...args,
        '--endpoint-url',
        stack.endpoints.redshiftData as string,
        '--output',
        'json',
      ],
      {
        env: {
          PATH: process.env.PATH,
          HOME: stack.config.dataDir,
          AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
          AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
          AWS_DEFAULT_REGION: 'us-east-1',
          AWS_CONFIG_FILE: '/dev/null',
          AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
          AWS_PAGER: '',
        },
      },
    );
    return JSON.parse(stdout) as Record<string, unknown>;
  };
  const submit = (sql: string) =>
    aws(
      'execute-statement',
      '--workgroup-name',
      LOCAL_WORKGROUP,
      '--database',
      stack.config.names.database,
      '--secret-arn',
      target().SecretArn,
      '--sql',
      sql,
    );
  const ended = async (id: string) => {
    for (;;) {
      const d = await aws('describe-statement', '--id', id);
      if (['FINISHED', 'FAILED', 'ABORTED'].includes(d.Status as string)) return d;
    }
  };

  it('execute-statement, describe-statement, get-statement-result; a failure is FAILED with its message', async () => {
    const { Id } = await submit("SELECT n, 'line ' || n AS label FROM generate_series(1, 3) n ORDER BY n");
    expect(await ended(Id as string)).toMatchObject({
      Status: 'FINISHED',
      HasResultSet: true,
      ResultRows: 3,
    });
    const result = await aws('get-statement-result', '--id', Id as string);
    expect(result.Records).toEqual([
      [{ longValue: 1 }, { stringValue: 'line 1' }],
      [{ longValue: 2 }, { stringValue: 'line 2' }],
      [{ longValue: 3 }, { stringValue: 'line 3' }],
    ]);
    expect(result.TotalNumRows).toBe(3);

    const failed = await submit('SELECT * FROM no_such_table');
    expect(await ended(failed.Id as string)).toMatchObject({
      Status: 'FAILED',
      Error: 'ERROR: relation "no_such_table" does not exist',
    });
  });
});
