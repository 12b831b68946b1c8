import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import {
  BatchExecuteStatementCommand,
  DescribeStatementCommand,
  ExecuteStatementCommand,
  type Field,
  GetStatementResultCommand,
  RedshiftDataClient,
} from '@aws-sdk/client-redshift-data';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '#adapters/logger';
import { createRedshiftWarehouse } from '#adapters/warehouse-redshift';
import { createLoader, loadIdOf } from '#batch/loader/index';
import { TYPED_COLUMNS } from '#batch/typer';
import { CSV_HEADER, csvRow, inputLine } from '#test/helpers/lines';

/**
 * The loader's Redshift path with both services mocked: rows typed in Node, staged to S3 as gzipped
 * CSV, then one BatchExecuteStatement (COPY FROM S3 + the merge). The Data API side answers the
 * manifest queries from a small in-memory manifest, as Redshift would.
 */

const BUCKET = 'retail-bucket';
const ETAG = 'etag-0001';
const ROLE = 'arn:aws:iam::123456789012:role/redshift-copy';

/** The typed CSV's column order, written out: COPY's column list and the encoder must agree with it. */
const EXPECTED_TYPED_COLUMNS = [
  'invoice_no',
  'line_no',
  'date_key',
  'invoice_date',
  'stock_code',
  'description',
  'customer_id',
  'country_name',
  'quantity',
  'unit_price',
  'line_total',
  'is_cancellation',
  'is_adjustment',
  'is_non_product',
  'is_duplicate_row',
  'produced_at',
  'accepted_at',
  'stream_visible_at',
];

const LANDING_CSV = [
  CSV_HEADER,
  csvRow(),
  csvRow({ StockCode: '71053', Description: '"WHITE METAL LANTERN, BIG"', UnitPrice: '3.39' }),
  csvRow(), // the same row again: a duplicate row of the source
  '536366,22633,HAND WARMER UNION JACK,six,12/1/2010 8:28,1.85,17850,United Kingdom',
  'C536379,D,Discount,-1,12/1/2010 9:41,27.5,14527,United Kingdom',
  '536367,84406B,CREAM CUPID HEARTS COAT HANGER,8,12/1/2010 8:34,2.75,,France',
  'A563185,B,Adjust bad debt,1,8/12/2011 14:50,11062.06,,United Kingdom',
  '',
].join('\n');

const archiveLine = (lineNo: number, extra: Record<string, unknown>) =>
  JSON.stringify({
    ...inputLine({ lineNo, description: 'MUG' }),
    producedAt: '2026-01-01T10:00:00.000Z',
    acceptedAt: '2026-01-01T10:00:00.100Z',
    streamVisibleAt: '2026-01-01T10:00:00.300Z',
    ...extra,
  });

const ARCHIVE_KEY = 'archive/2026/01/01/10/s-1.gz';
const ARCHIVE_BODY = gzipSync(
  `${archiveLine(1, {})}\n${archiveLine(2, { stockCode: 'POST', description: 'POSTAGE', quantity: 1, unitPrice: '18', customerId: null, producedAt: '2026-01-01T10:00:01.000Z', acceptedAt: '2026-01-01T10:00:01.250Z', streamVisibleAt: '2026-01-01T10:00:02.000Z' })}\n`,
);

interface ManifestEntry {
  status: string;
  attempts: number;
  rows_read: number | null;
  rows_loaded: number | null;
  rows_new: number | null;
  rows_rejected: number | null;
  header: string | null;
  error: string | null;
}

const s3Mock = mockClient(S3Client);
const rsMock = mockClient(RedshiftDataClient);

/** What the mocked services saw and hold. */
interface World {
  objects: Map<string, Buffer>;
  /** Objects written (PutObject, or assembled multipart uploads), by key. */
  written: Map<string, Buffer>;
  manifest: Map<string, ManifestEntry>;
  /** Every ExecuteStatement's SQL, in order. */
  queries: string[];
  /** Every BatchExecuteStatement's Sqls. */
  batches: string[][];
  copies: Array<{ from: string; to: string }>;
  deleted: string[];
}

function bodyBytes(body: unknown): Buffer {
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (body instanceof Uint8Array) return Buffer.from(body);
  throw new Error(`unexpected body type ${Object.prototype.toString.call(body)}`);
}

const field = (v: string | number | null): Field =>
  v === null ? { isNull: true } : typeof v === 'number' ? { longValue: v } : { stringValue: v };

/** The counts the 'loaded' UPDATE inlines (`rows_read = CAST(6 AS bigint)`). */
function inlinedCount(sql: string, column: string): number {
  const m = new RegExp(`${column} = CAST\\((-?\\d+) AS bigint\\)`).exec(sql);
  if (!m?.[1]) throw new Error(`no ${column} in ${sql}`);
  return Number(m[1]);
}

function setUpWorld(objects: Record<string, Buffer | string>): World {
  const world: World = {
    objects: new Map(Object.entries(objects).map(([k, v]) => [k, bodyBytes(v)])),
    written: new Map(),
    manifest: new Map(),
    queries: [],
    batches: [],
    copies: [],
    deleted: [],
  };

  s3Mock.on(HeadObjectCommand).callsFake((input: { Key: string }) => {
    const body = world.objects.get(input.Key);
    if (!body) throw Object.assign(new Error('NotFound'), { name: 'NotFound' });
    return { ETag: `"${ETAG}"`, ContentLength: body.length };
  });
  s3Mock.on(GetObjectCommand).callsFake((input: { Key: string; IfMatch?: string }) => {
    const body = world.objects.get(input.Key);
    if (!body) throw Object.assign(new Error('NoSuchKey'), { name: 'NoSuchKey' });
    if (input.IfMatch !== `"${ETAG}"`) throw new Error(`IfMatch ${input.IfMatch} does not match`);
    // The loader only pipes the body: a plain Readable stands in for the SDK's stream mixin.
    return { Body: Readable.from([body]) as unknown as GetObjectCommandOutput['Body'], ETag: `"${ETAG}"` };
  });
  s3Mock.on(PutObjectCommand).callsFake((input: { Key: string; Body: unknown }) => {
    world.written.set(input.Key, bodyBytes(input.Body));
    return { ETag: '"put"' };
  });
  // lib-storage goes multipart only past 5 MiB; kept honest in case that threshold ever moves.
  const parts = new Map<string, Map<number, Buffer>>();
  s3Mock.on(CreateMultipartUploadCommand).callsFake((input: { Key: string }) => {
    parts.set(input.Key, new Map());
    return { UploadId: `up-${input.Key}` };
  });
  s3Mock.on(UploadPartCommand).callsFake((input: { Key: string; PartNumber: number; Body: unknown }) => {
    parts.get(input.Key)?.set(input.PartNumber, bodyBytes(input.Body));
    return { ETag: `"part-${input.PartNumber}"` };
  });
  s3Mock.on(CompleteMultipartUploadCommand).callsFake((input: { Key: string }) => {
    const byNumber = parts.get(input.Key) ?? new Map<number, Buffer>();
    const ordered = [...byNumber.entries()].sort((a, b) => a[0] - b[0]).map(([, b]) => b);
    world.written.set(input.Key, Buffer.concat(ordered));
    return { ETag: '"complete"' };
  });
  s3Mock.on(AbortMultipartUploadCommand).resolves({});
  s3Mock.on(CopyObjectCommand).callsFake((input: { Key: string; CopySource: string }) => {
    world.copies.push({ from: input.CopySource, to: input.Key });
    return {};
  });
  s3Mock.on(DeleteObjectCommand).callsFake((input: { Key: string }) => {
    world.deleted.push(input.Key);
    return {};
  });

  // Redshift Data API: statements finish at once; results come from what each statement asked.
  const results = new Map<string, { columns: string[]; rows: Array<Array<string | number | null>> }>();
  let nextId = 0;
  const entryOf = (sql: string): [string, ManifestEntry | undefined] => {
    const m = /object_key = '([^']*)' AND etag = '([^']*)'/.exec(sql);
    if (!m) throw new Error(`no manifest key in ${sql}`);
    const id = `${m[1]}\n${m[2]}`;
    return [id, world.manifest.get(id)];
  };
  rsMock.on(ExecuteStatementCommand).callsFake((input: { Sql: string }) => {
    const sql = input.Sql;
    world.queries.push(sql);
    const id = `q${++nextId}`;
    if (sql.startsWith('INSERT INTO load_manifest')) {
      const [key, existing] = entryOf(sql);
      if (!existing)
        world.manifest.set(key, {
          status: 'pending',
          attempts: 0,
          rows_read: null,
          rows_loaded: null,
          rows_new: null,
          rows_rejected: null,
          header: null,
          error: null,
        });
    } else if (sql.startsWith('SELECT object_key, etag, status, attempts')) {
      const [key, e] = entryOf(sql);
      const [objectKey, etag] = key.split('\n') as [string, string];
      results.set(id, {
        columns: [
          'object_key',
          'etag',
          'status',
          'attempts',
          'rested_ms',
          'header',
          'rows_read',
          'rows_loaded',
          'rows_new',
          'rows_rejected',
          'extra_columns',
          'error',
        ],
        rows: e
          ? [
              [
                objectKey,
                etag,
                e.status,
                e.attempts,
                null,
                e.header,
                e.rows_read,
                e.rows_loaded,
                e.rows_new,
                e.rows_rejected,
                null,
                e.error,
              ],
            ]
          : [],
      });
    } else if (sql.startsWith('SELECT line_number, reason')) {
      // What COPY load_rejected_row would have put there: the staged rejects, as text.
      const m = /load_id = '([0-9a-f]+)'/.exec(sql);
      const staged = world.written.get(`staging/${m?.[1]}.rejected.csv.gz`);
      const rows = staged
        ? gunzipSync(staged)
            .toString('utf8')
            .trimEnd()
            .split('\n')
            .map((l) => {
              const cells = parseCsvLine(l);
              return [Number(cells[2]), ...cells.slice(3, 12)] as Array<string | number | null>;
            })
        : [];
      results.set(id, {
        columns: [
          'line_number',
          'reason',
          'invoice_no',
          'stock_code',
          'description',
          'quantity',
          'invoice_date',
          'unit_price',
          'customer_id',
          'country',
        ],
        rows,
      });
    } else if (sql.startsWith("UPDATE load_manifest SET status = 'failed'")) {
      const [, e] = entryOf(sql);
      if (e) {
        e.status = 'failed';
        e.attempts++;
        e.error = /error = '((?:[^']|'')*)'/.exec(sql)?.[1] ?? 'failed';
      }
    } else if (!sql.startsWith('UPDATE load_manifest SET stage_ms')) {
      throw new Error(`the fake Redshift does not know this statement: ${sql}`);
    }
    return { Id: id };
  });
  rsMock.on(BatchExecuteStatementCommand).callsFake((input: { Sqls: string[] }) => {
    world.batches.push(input.Sqls);
    const loaded = input.Sqls.find((s) => s.startsWith("UPDATE load_manifest SET status = 'loaded'"));
    if (!loaded) throw new Error('the batch does not mark the object loaded');
    const [, e] = entryOf(loaded);
    if (!e) throw new Error('the batch loads an object that was never registered');
    e.status = 'loaded';
    e.attempts++;
    e.rows_read = inlinedCount(loaded, 'rows_read');
    e.rows_loaded = inlinedCount(loaded, 'rows_loaded');
    e.rows_rejected = inlinedCount(loaded, 'rows_rejected');
    // rows_new is counted in SQL (is_new after the merge): the fake's fact table is empty.
    e.rows_new = e.rows_loaded;
    return { Id: `b${++nextId}` };
  });
  rsMock.on(DescribeStatementCommand).callsFake((input: { Id: string }) => ({
    Id: input.Id,
    Status: 'FINISHED',
    HasResultSet: results.has(input.Id),
    ResultRows: results.get(input.Id)?.rows.length ?? 1,
  }));
  rsMock.on(GetStatementResultCommand).callsFake((input: { Id: string }) => {
    const r = results.get(input.Id);
    if (!r) throw new Error(`no result set for ${input.Id}`);
    return {
      ColumnMetadata: r.columns.map((name) => ({ name })),
      Records: r.rows.map((row) => row.map(field)),
      TotalNumRows: r.rows.length,
    };
  });
  return world;
}

/** RFC 4180 line -> cells ('' unquoted -> null, the way COPY reads an empty CSV field). */
function parseCsvLine(line: string): Array<string | null> {
  const cells: Array<string | null> = [];
  let i = 0;
  for (;;) {
    if (line[i] === '"') {
      let value = '';
      let j = i + 1;
      for (;;) {
        const q = line.indexOf('"', j);
        if (q === -1) throw new Error(`unclosed quote in ${line}`);
        value += line.slice(j, q);
        if (line[q + 1] === '"') {
          value += '"';
          j = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      cells.push(value);
    } else {
      const end = line.indexOf(',', i);
      const raw = end === -1 ? line.slice(i) : line.slice(i, end);
      cells.push(raw === '' ? null : raw);
      i = end === -1 ? line.length : end;
    }
    if (i >= line.length) return cells;
    if (line[i] !== ',') throw new Error(`text after a quoted field in ${line}`);
    i++;
    if (i === line.length) {
      cells.push(null);
      return cells;
    }
  }
}

const client = new RedshiftDataClient({
  region: 'eu-west-1',
  credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
});
const s3 = new S3Client({ region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });

function makeLoader() {
  const warehouse = createRedshiftWarehouse({
    client,
    database: 'retail',
    workgroupName: 'retail-wg',
    copyRoleArn: ROLE,
    pollIntervalMs: 0,
    sleep: async () => {},
  });
  return createLoader({ s3, bucket: BUCKET, warehouse, logger: createLogger('silent') });
}

/** SQL with its quoted literals blanked: what is left is syntax, not data. */
const syntaxOf = (sql: string) => sql.replace(/'(?:[^']|'')*'/g, "''");

/** The statement order of a Redshift load, as prefixes (`lineage` for archive objects). */
/** The claim checked again: the object still pending, failed or staged (inlined key and ETag). */
const HELD =
  "EXISTS \\(SELECT 1 FROM load_manifest WHERE object_key = '[^']+' AND etag = '[^']+' AND status IN \\('pending', 'failed', 'staged'\\)\\)";

function expectedOrder(opts: { rejects: boolean; lineage: boolean }): RegExp[] {
  return [
    /^UPDATE load_manifest SET attempts = attempts \+ 1, started_at = GETDATE\(\), error = NULL\nWHERE object_key = '[^']+' AND etag = '[^']+' AND status IN \('pending', 'failed', 'staged'\)$/,
    /^CREATE TEMP TABLE load_typed \(/,
    /^COPY load_typed \(/,
    // Every later write checks the claim (a batch runs on past a claim that matched nothing).
    new RegExp(`^DELETE FROM load_typed WHERE NOT ${HELD}$`),
    /^UPDATE load_typed SET is_new = false FROM fact_sales_line /,
    ...(opts.rejects
      ? [
          /^CREATE TEMP TABLE load_rejected_stage \(LIKE load_rejected_row\)$/,
          /^COPY load_rejected_stage \(/,
          new RegExp(
            `^INSERT INTO load_rejected_row \\([^)]*\\) SELECT [^;]* FROM load_rejected_stage WHERE ${HELD}$`,
          ),
          /^DROP TABLE load_rejected_stage$/,
        ]
      : []),
    /^CREATE TEMP TABLE load_counts /,
    /^INSERT INTO load_counts /,
    /^INSERT INTO dim_country /,
    ...['load_product_description', 'dim_product', 'load_customer_country', 'dim_customer'].flatMap(
      (target) => [
        /^CREATE TEMP TABLE load_merge_source AS SELECT /,
        new RegExp(`^MERGE INTO ${target} USING load_merge_source s`),
        /^DROP TABLE load_merge_source$/,
      ],
    ),
    /^INSERT INTO fact_sales_line \([^)]*\)\nSELECT [\s\S]* WHERE s\.is_new$/,
    ...(opts.lineage
      ? [/^UPDATE fact_sales_line f SET produced_at = COALESCE\(f\.produced_at, s\.produced_at\)/]
      : []),
    /^UPDATE fact_sales_line SET is_duplicate_row = x\.dup FROM \(/,
    /^UPDATE load_manifest SET status = 'loaded'[\s\S]* AND status IN \('pending', 'failed', 'staged'\)$/,
    /^DROP TABLE load_counts$/,
    /^DROP TABLE load_typed$/,
  ];
}

function expectRedshiftSyntax(sqls: string[]): void {
  for (const sql of sqls) {
    const syntax = syntaxOf(sql);
    expect(syntax, sql).not.toMatch(/::/);
    expect(syntax, sql).not.toMatch(/statement_timestamp|ON CONFLICT|FREEZE|FORMAT binary|FROM STDIN/i);
    expect(syntax, sql).not.toMatch(/\$\d/);
  }
}

const copySql = (table: string, columns: string, key: string) =>
  `COPY ${table} (${columns}) FROM 's3://${BUCKET}/${key}' IAM_ROLE '${ROLE}' FORMAT AS CSV GZIP TIMEFORMAT AS 'auto' EMPTYASNULL`;

beforeEach(() => {
  s3Mock.reset();
  rsMock.reset();
});
afterEach(() => {
  s3Mock.reset();
  rsMock.reset();
});

describe('loader on Redshift (COPY FROM S3)', () => {
  it('types a landing CSV in Node, stages it gzipped and loads it in one batch', async () => {
    const key = 'landing/x.csv';
    const world = setUpWorld({ [key]: LANDING_CSV });
    const loadId = loadIdOf(key, ETAG);

    const res = await makeLoader().loadKey(key);

    expect(res).toMatchObject({
      key,
      etag: ETAG,
      status: 'loaded',
      rowsRead: 7,
      rowsLoaded: 6,
      rowsNew: 6,
      rowsRejected: 1,
    });
    expect(res.detail).toBeUndefined();

    // 1. The typed rows: TYPED_COLUMNS order, line_no per invoice, exact money, t/f, empty = NULL.
    expect([...TYPED_COLUMNS]).toEqual(EXPECTED_TYPED_COLUMNS);
    const typed = world.written.get(`staging/${loadId}.csv.gz`);
    expect(typed, 'typed rows staged').toBeDefined();
    expect(
      gunzipSync(typed as Buffer)
        .toString('utf8')
        .split('\n'),
    ).toEqual([
      '536365,1,20101201,2010-12-01 08:26:00,85123A,WHITE HANGING HEART T-LIGHT HOLDER,17850,United Kingdom,6,2.550,15.300,f,f,f,f,,,',
      '536365,2,20101201,2010-12-01 08:26:00,71053,"WHITE METAL LANTERN, BIG",17850,United Kingdom,6,3.390,20.340,f,f,f,f,,,',
      '536365,3,20101201,2010-12-01 08:26:00,85123A,WHITE HANGING HEART T-LIGHT HOLDER,17850,United Kingdom,6,2.550,15.300,f,f,f,t,,,',
      'C536379,1,20101201,2010-12-01 09:41:00,D,Discount,14527,United Kingdom,-1,27.500,-27.500,t,f,t,f,,,',
      '536367,1,20101201,2010-12-01 08:34:00,84406B,CREAM CUPID HEARTS COAT HANGER,,France,8,2.750,22.000,f,f,f,f,,,',
      'A563185,1,20110812,2011-08-12 14:50:00,B,Adjust bad debt,,United Kingdom,1,11062.060,11062.060,f,t,t,f,,,',
      '',
    ]);

    // ... and the bad row, with its physical line number and reason, to its own staging object.
    const rejected = world.written.get(`staging/${loadId}.rejected.csv.gz`);
    expect(rejected, 'rejected rows staged').toBeDefined();
    const rejectLines = gunzipSync(rejected as Buffer)
      .toString('utf8')
      .trimEnd()
      .split('\n');
    expect(rejectLines).toHaveLength(1);
    const cells = parseCsvLine(rejectLines[0] as string);
    expect(cells.slice(0, 12)).toEqual([
      loadId,
      key,
      '5',
      'Quantity "six" is not a whole number',
      '536366',
      '22633',
      'HAND WARMER UNION JACK',
      'six',
      '12/1/2010 8:28',
      '1.85',
      '17850',
      'United Kingdom',
    ]);
    expect(cells[12]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(cells).toHaveLength(13);

    // 2. One batch: the claim first, then the load in order, all Redshift SQL with values inlined.
    expect(world.batches).toHaveLength(1);
    const sqls = world.batches[0] as string[];
    const order = expectedOrder({ rejects: true, lineage: false });
    expect(sqls.map((s, i) => `${i}: ${s.slice(0, 60)}`)).toHaveLength(order.length);
    order.forEach((re, i) => {
      expect(sqls[i], `statement ${i}`).toMatch(re);
    });
    expect(sqls[0]).toContain(`object_key = '${key}' AND etag = '${ETAG}'`);
    expect(sqls[2]).toBe(
      copySql('load_typed', EXPECTED_TYPED_COLUMNS.join(', '), `staging/${loadId}.csv.gz`),
    );
    expect(sqls[6]).toBe(
      copySql(
        'load_rejected_stage',
        'load_id, object_key, line_number, reason, invoice_no, stock_code, description, quantity, invoice_date, unit_price, customer_id, country, rejected_at',
        `staging/${loadId}.rejected.csv.gz`,
      ),
    );
    const fact = sqls.find((s) => s.startsWith('INSERT INTO fact_sales_line')) as string;
    expect(fact).toContain(`GETDATE(), CAST('file' AS varchar(6)), CAST('${key}' AS varchar(1024))`);
    const loaded = sqls.find((s) => s.startsWith("UPDATE load_manifest SET status = 'loaded'")) as string;
    expect(loaded).toContain('rows_new = (SELECT count(*) FROM load_typed WHERE is_new)');
    expect(loaded).toContain("encoding = CAST('UTF8' AS varchar(8))");
    expectRedshiftSyntax(sqls);
    expect(sqls.some((s) => /LOCK TABLE|TRUNCATE|ANALYZE|stg_load_/.test(s))).toBe(false);

    // The manifest: registered, read, timed, read again; the rejects written beside the quarantine.
    expect(world.queries.map((q) => q.split(/\s/, 3).join(' '))).toEqual([
      'INSERT INTO load_manifest',
      'SELECT object_key, etag,',
      'UPDATE load_manifest SET',
      'SELECT object_key, etag,',
      'SELECT line_number, reason,',
    ]);
    expectRedshiftSyntax(world.queries);
    const report = world.written.get(`quarantine/${key}.rejected.csv`)?.toString('utf8');
    expect(report).toBe(
      'line,reason,InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n' +
        '5,"Quantity ""six"" is not a whole number",536366,22633,HAND WARMER UNION JACK,six,12/1/2010 8:28,1.85,17850,United Kingdom\n',
    );
    // A file with a bad row still loads: nothing is moved to quarantine.
    expect(world.copies).toEqual([]);
    expect(world.deleted).toEqual([]);
  });

  it('loads an NDJSON archive object the same way, with its lineage instants and the lineage UPDATE', async () => {
    const world = setUpWorld({ [ARCHIVE_KEY]: ARCHIVE_BODY });
    const loadId = loadIdOf(ARCHIVE_KEY, ETAG);

    const res = await makeLoader().loadKey(ARCHIVE_KEY);

    expect(res).toMatchObject({
      key: ARCHIVE_KEY,
      status: 'loaded',
      rowsRead: 2,
      rowsLoaded: 2,
      rowsNew: 2,
      rowsRejected: 0,
    });
    const typed = world.written.get(`staging/${loadId}.csv.gz`);
    expect(typed, 'typed rows staged').toBeDefined();
    expect(
      gunzipSync(typed as Buffer)
        .toString('utf8')
        .split('\n'),
    ).toEqual([
      '536365,1,20101201,2010-12-01 08:26:00,85123A,MUG,17850,United Kingdom,6,2.550,15.300,f,f,f,f,2026-01-01T10:00:00.000Z,2026-01-01T10:00:00.100Z,2026-01-01T10:00:00.300Z',
      '536365,2,20101201,2010-12-01 08:26:00,POST,POSTAGE,,United Kingdom,1,18.000,18.000,f,f,t,f,2026-01-01T10:00:01.000Z,2026-01-01T10:00:01.250Z,2026-01-01T10:00:02.000Z',
      '',
    ]);
    // No bad line: no rejects object, no COPY of rejects.
    expect(world.written.has(`staging/${loadId}.rejected.csv.gz`)).toBe(false);

    expect(world.batches).toHaveLength(1);
    const sqls = world.batches[0] as string[];
    const order = expectedOrder({ rejects: false, lineage: true });
    expect(sqls).toHaveLength(order.length);
    order.forEach((re, i) => {
      expect(sqls[i], `statement ${i}`).toMatch(re);
    });
    expect(sqls[2]).toBe(
      copySql('load_typed', EXPECTED_TYPED_COLUMNS.join(', '), `staging/${loadId}.csv.gz`),
    );
    const fact = sqls.find((s) => s.startsWith('INSERT INTO fact_sales_line')) as string;
    expect(fact).toContain(`CAST('stream' AS varchar(6)), CAST('${ARCHIVE_KEY}' AS varchar(1024))`);
    const lineage = sqls.find((s) => s.startsWith('UPDATE fact_sales_line f SET')) as string;
    expect(lineage).toContain('WHERE NOT s.is_new AND f.invoice_no = s.invoice_no AND f.line_no = s.line_no');
    expectRedshiftSyntax(sqls);
    // No rejected rows: the loader does not read load_rejected_row back.
    expect(world.queries.some((q) => q.includes('load_rejected_row'))).toBe(false);
  });

  it('skips an object the manifest already has loaded, without a batch', async () => {
    const key = 'landing/x.csv';
    const world = setUpWorld({ [key]: LANDING_CSV });
    const loader = makeLoader();
    await loader.loadKey(key);

    const again = await loader.loadKey(key);

    expect(again).toMatchObject({ status: 'skipped', detail: 'already loaded', rowsLoaded: 6 });
    expect(world.batches).toHaveLength(1);
  });

  it('loads archive objects found together one per transaction (no batch way on Redshift)', async () => {
    const second = 'archive/2026/01/01/10/s-2.gz';
    const world = setUpWorld({ [ARCHIVE_KEY]: ARCHIVE_BODY, [second]: ARCHIVE_BODY });

    const results = await makeLoader().loadKeys([second, ARCHIVE_KEY]);

    expect(results.map((r) => [r.key, r.status])).toEqual([
      [ARCHIVE_KEY, 'loaded'],
      [second, 'loaded'],
    ]);
    expect(world.batches).toHaveLength(2);
    for (const [i, key] of [ARCHIVE_KEY, second].entries()) {
      const fact = world.batches[i]?.find((s) => s.startsWith('INSERT INTO fact_sales_line')) ?? '';
      expect(fact).toContain(`CAST('${key}' AS varchar(1024))`);
    }
  });

  it('uses only MERGE forms Redshift accepts (a table as the source)', async () => {
    const world = setUpWorld({ [ARCHIVE_KEY]: ARCHIVE_BODY });

    await makeLoader().loadKey(ARCHIVE_KEY);

    const merges = (world.batches[0] ?? []).filter((s) => s.startsWith('MERGE INTO'));
    expect(merges).toHaveLength(4);
    // Redshift's MERGE takes only a temporary or permanent table as source_table ("source_table can't be
    // a view or a subquery", https://docs.aws.amazon.com/redshift/latest/dg/r_MERGE.html).
    for (const sql of merges) expect(sql, sql).toMatch(/^MERGE INTO \w+ USING \w+( AS)? \w+\s+ON /);
  });
});
