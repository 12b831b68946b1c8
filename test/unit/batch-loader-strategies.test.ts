import { Readable } from 'node:stream';
import {
  GetObjectCommand,
  type GetObjectCommandOutput,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '#adapters/logger';
import {
  type Dialect,
  isCopyStep,
  isDeferredStep,
  type StatementResult,
  type Step,
  type TransactionQuery,
  type TransactionResult,
  type Warehouse,
  WarehouseError,
} from '#adapters/warehouse';
import { loadObject } from '#batch/loader/attempt';
import { createManifest } from '#batch/loader/manifest';
import { loadIdOf } from '#batch/loader/objects';
import { typedRows } from '#batch/loader/rows';
import {
  FactFilledError,
  type LoadJob,
  type LoadWay,
  pickWay,
  postgresBulk,
  postgresDirect,
  postgresMerge,
  redshiftS3,
} from '#batch/loader/strategies/index';
import { BINARY_HEADER, BINARY_TRAILER } from '#batch/pg-binary';
import type { SourceFormat } from '#batch/sql';
import { acceptedLine, CSV_HEADER, csvRow } from '#test/helpers/lines';

/**
 * Each way into the star against a fake warehouse: it implements the warehouse port, runs the
 * steps in order as the adapters do (deferred steps built inside the transaction, COPY streams read
 * to their end, a `requireRows` step that finds nothing rolls back), records what it ran, and
 * answers with the port's own result shapes.
 */

type Event =
  | { kind: 'begin' | 'commit' | 'rollback' | 'staged' }
  | { kind: 'sql'; sql: string; params: ReadonlyArray<unknown>; inTx: boolean }
  | {
      kind: 'copy';
      table: string;
      columns: readonly string[];
      format: string;
      freeze: boolean;
      text: string;
      rows: number;
    }
  | { kind: 'copy-s3'; table: string; columns: readonly string[]; uri: string };

type Answer = (sql: string, params: ReadonlyArray<unknown>) => StatementResult | undefined;

/** PostgreSQL's binary COPY: the tuples between the header and the trailer. */
function binaryTuples(bytes: Buffer): number {
  expect(bytes.subarray(0, BINARY_HEADER.length)).toEqual(BINARY_HEADER);
  expect(bytes.subarray(bytes.length - BINARY_TRAILER.length)).toEqual(BINARY_TRAILER);
  let at = BINARY_HEADER.length;
  let tuples = 0;
  for (let fields = bytes.readInt16BE(at); fields !== -1; fields = bytes.readInt16BE(at)) {
    at += 2;
    for (let f = 0; f < fields; f++) {
      const length = bytes.readInt32BE(at);
      at += 4 + Math.max(0, length);
    }
    tuples++;
  }
  return tuples;
}

class FakeWarehouse implements Warehouse {
  readonly events: Event[] = [];
  /** Answers a statement; none: no rows, and one affected (a claim finds its manifest row). */
  answer: Answer = () => undefined;
  /** Fails the COPY into this table with this SQLSTATE (a key already there: 23505). */
  failCopy: { table: string; code: string } | undefined;

  constructor(
    readonly dialect: Dialect,
    readonly copySource: 'stream' | 's3',
  ) {}

  async query<R>(
    sql: string,
    params: ReadonlyArray<unknown> = [],
    inTx = false,
  ): Promise<StatementResult<R>> {
    this.events.push({ kind: 'sql', sql, params, inTx });
    return (this.answer(sql, params) ?? { rows: [], rowCount: 1 }) as StatementResult<R>;
  }

  async transaction(steps: ReadonlyArray<Step>): Promise<TransactionResult> {
    this.events.push({ kind: 'begin' });
    const rowCounts: number[] = [];
    const tx: TransactionQuery = { query: (sql, params) => this.query(sql, params, true) };
    const run = async (list: ReadonlyArray<Step>): Promise<boolean> => {
      for (const step of list) {
        if (isDeferredStep(step)) {
          if (this.copySource === 's3')
            throw new WarehouseError('a Redshift batch cannot run deferred steps');
          if (!(await run(await step.build(tx)))) return false;
        } else if (isCopyStep(step)) {
          rowCounts.push(await this.copy(step));
        } else {
          const { rowCount } = await this.query(step.sql, step.params, true);
          rowCounts.push(rowCount);
          if (step.requireRows && rowCount === 0) return false;
        }
      }
      return true;
    };
    try {
      const committed = await run(steps);
      this.events.push({ kind: committed ? 'commit' : 'rollback' });
      return { committed, rowCounts };
    } catch (err) {
      this.events.push({ kind: 'rollback' });
      throw err;
    }
  }

  private async copy(step: Extract<Step, { kind: 'copy' }>): Promise<number> {
    if (this.copySource === 's3') {
      if (!step.s3 || step.stream)
        throw new WarehouseError(`COPY into ${step.table} must read S3 on Redshift`);
      this.events.push({ kind: 'copy-s3', table: step.table, columns: step.columns, uri: step.s3.uri });
      return 0;
    }
    if (!step.stream) throw new WarehouseError(`COPY into ${step.table} needs a stream on PostgreSQL`);
    const chunks: Buffer[] = [];
    for await (const chunk of step.stream()) chunks.push(Buffer.from(chunk as Buffer));
    const bytes = Buffer.concat(chunks);
    if (this.failCopy?.table === step.table)
      throw new WarehouseError('duplicate key value violates unique constraint', {
        code: this.failCopy.code,
      });
    const binary = step.format === 'binary';
    const text = binary ? '' : bytes.toString('utf8');
    const rows = binary ? binaryTuples(bytes) : text.split('\n').filter((l) => l !== '').length;
    const freeze = step.freeze ?? false;
    this.events.push({
      kind: 'copy',
      table: step.table,
      columns: step.columns,
      format: step.format,
      freeze,
      text,
      rows,
    });
    return rows;
  }

  async close(): Promise<void> {}

  /** What ran inside transactions, one line each: statements by their first words, COPYs by table. */
  get script(): string[] {
    return this.events.flatMap((e) => {
      if (e.kind === 'sql') return e.inTx ? [e.sql.split(/\s+/).slice(0, 4).join(' ')] : [];
      if (e.kind === 'copy')
        return [`COPY ${e.table} ${e.format}${e.freeze ? ' FREEZE' : ''} (${e.rows} rows)`];
      if (e.kind === 'copy-s3') return [`COPY ${e.table} FROM ${e.uri}`];
      return [e.kind.toUpperCase()];
    });
  }

  statement(prefix: string): Extract<Event, { kind: 'sql' }> {
    const found = this.events.find((e) => e.kind === 'sql' && e.sql.startsWith(prefix));
    if (found?.kind !== 'sql') throw new Error(`no statement starting ${prefix}`);
    return found;
  }
}

const KEY = 'landing/drop.csv';
const ETAG = 'etag-1';

/** Two good rows of one invoice and a bad one (line 4). */
const CSV = [
  CSV_HEADER,
  csvRow(),
  csvRow({ StockCode: '71053', Description: 'WHITE METAL LANTERN' }),
  csvRow({ Quantity: 'six' }),
  '',
].join('\n');

const ARCHIVE = [
  JSON.stringify({ ...acceptedLine(), streamVisibleAt: '2026-12-06T07:00:00.300Z' }),
  JSON.stringify({ ...acceptedLine({ lineNo: 2, stockCode: 'POST', description: 'POSTAGE' }) }),
  '',
].join('\n');

interface Staged {
  key: string;
  text: string;
}

function jobFor(
  warehouse: FakeWarehouse,
  format: SourceFormat,
  options: { key?: string; status?: string; staged?: Staged[] } = {},
): LoadJob {
  const key = options.key ?? (format === 'csv' ? KEY : 'archive/2026/12/06/07/s-1');
  return {
    loadId: loadIdOf(key, ETAG),
    objectKey: key,
    etag: ETAG,
    source: format === 'csv' ? 'file' : 'stream',
    format,
    status: options.status ?? 'pending',
    warehouse,
    async stage(stagingKey, body) {
      const chunks: Buffer[] = [];
      for await (const chunk of body) chunks.push(Buffer.from(chunk as Buffer));
      options.staged?.push({ key: stagingKey, text: Buffer.concat(chunks).toString('utf8') });
      return `s3://bucket/${stagingKey}`;
    },
    async staged() {
      warehouse.events.push({ kind: 'staged' });
    },
  };
}

async function run(way: LoadWay, job: LoadJob, body: string): Promise<boolean> {
  const rows = await typedRows(Readable.from([Buffer.from(body)]), { ...job, encoder: way.encoder(job) });
  try {
    return await way.load(job, rows);
  } finally {
    await rows.close();
  }
}

const DIMENSIONS = [
  'INSERT INTO dim_country (country_name,',
  ...['load_product_description', 'dim_product', 'load_customer_country', 'dim_customer'].flatMap((t) => [
    'CREATE TEMP TABLE load_merge_source',
    `MERGE INTO ${t} USING`,
    'DROP TABLE load_merge_source',
  ]),
];
const CLAIM = 'UPDATE load_manifest SET attempts';
const LOADED = "UPDATE load_manifest SET status = 'loaded',";
/** The same statement as `script` lists it. */
const LOADED_STEP = 'UPDATE load_manifest SET status';

describe('postgres-direct', () => {
  it('copies the typed rows straight into the fact, then the rejects, counts, dimensions and manifest', async () => {
    const warehouse = new FakeWarehouse('postgres', 'stream');

    const loaded = await run(postgresDirect, jobFor(warehouse, 'csv'), CSV);

    expect(loaded).toBe(true);
    expect(warehouse.script).toEqual([
      'BEGIN',
      CLAIM,
      'COPY fact_sales_line binary (2 rows)',
      'STAGED',
      'COPY load_rejected_row csv (1 rows)',
      'CREATE TEMP TABLE load_counts',
      'COPY load_counts csv (4 rows)',
      ...DIMENSIONS,
      LOADED_STEP,
      'DROP TABLE load_counts',
      'COMMIT',
    ]);
    // Every row went in: all are new, counted in Node.
    expect(warehouse.statement(LOADED).params).toEqual([
      KEY,
      ETAG,
      3,
      2,
      1,
      'UTF8',
      JSON.stringify(CSV_HEADER.split(',')),
      null,
      2,
    ]);
    const rejected = warehouse.events.find((e) => e.kind === 'copy' && e.table === 'load_rejected_row');
    expect(rejected).toMatchObject({
      text: expect.stringContaining(`${KEY},4,"Quantity ""six"" is not a whole number",536365,`),
    });
  });

  it('stops at the claim when another loader has the object: nothing copied, rolled back', async () => {
    const warehouse = new FakeWarehouse('postgres', 'stream');
    warehouse.answer = (sql) => (sql.startsWith(CLAIM) ? { rows: [], rowCount: 0 } : undefined);

    const loaded = await run(postgresDirect, jobFor(warehouse, 'csv'), CSV);

    expect(loaded).toBe(false);
    expect(warehouse.script).toEqual(['BEGIN', CLAIM, 'ROLLBACK']);
  });
});

describe('postgres-bulk', () => {
  it('locks the fact, confirms it empty, copies frozen rows without its key, then builds the key', async () => {
    const warehouse = new FakeWarehouse('postgres', 'stream');

    const loaded = await run(postgresBulk, jobFor(warehouse, 'csv'), CSV);

    expect(loaded).toBe(true);
    expect(warehouse.script).toEqual([
      'BEGIN',
      CLAIM,
      'LOCK TABLE fact_sales_line IN',
      'SELECT 1 FROM fact_sales_line',
      'TRUNCATE fact_sales_line',
      'ALTER TABLE fact_sales_line DROP',
      'ALTER TABLE fact_sales_line ALTER',
      'COPY fact_sales_line binary FREEZE (2 rows)',
      'ALTER TABLE fact_sales_line ALTER',
      'SET LOCAL maintenance_work_mem =',
      'ALTER TABLE fact_sales_line ADD',
      'STAGED',
      'COPY load_rejected_row csv (1 rows)',
      'CREATE TEMP TABLE load_counts',
      'COPY load_counts csv (4 rows)',
      ...DIMENSIONS,
      LOADED_STEP,
      'DROP TABLE load_counts',
      'COMMIT',
    ]);
    // The stamp the rows do not carry comes from the defaults: this file's source and key.
    expect(
      warehouse.statement('ALTER TABLE fact_sales_line ALTER COLUMN warehouse_visible_at SET').sql,
    ).toContain(`source_key SET DEFAULT '${KEY}'`);
  });

  it('gives way when the fact filled before its lock: FactFilledError, rolled back, nothing copied', async () => {
    const warehouse = new FakeWarehouse('postgres', 'stream');
    warehouse.answer = (sql) =>
      sql.startsWith('SELECT 1 FROM fact_sales_line')
        ? { rows: [{ '?column?': 1 }], rowCount: 1 }
        : undefined;

    await expect(run(postgresBulk, jobFor(warehouse, 'csv'), CSV)).rejects.toBeInstanceOf(FactFilledError);

    expect(warehouse.script).toEqual([
      'BEGIN',
      CLAIM,
      'LOCK TABLE fact_sales_line IN',
      'SELECT 1 FROM fact_sales_line',
      'ROLLBACK',
    ]);
  });
});

describe('postgres-merge', () => {
  const merged = (markNew: string, lineage: string[], rejects: string[]) => [
    'BEGIN',
    CLAIM,
    'CREATE TEMP TABLE load_typed',
    'COPY load_typed binary (2 rows)',
    'ANALYZE load_typed',
    markNew,
    'STAGED',
    ...rejects,
    'CREATE TEMP TABLE load_counts',
    'INSERT INTO load_counts (kind,',
    ...DIMENSIONS,
    'INSERT INTO fact_sales_line (invoice_no,',
    ...lineage,
    'UPDATE fact_sales_line SET is_duplicate_row',
    LOADED_STEP,
    'DROP TABLE load_counts',
    'DROP TABLE load_typed',
    'COMMIT',
  ];

  it('merges an archive object: new keys in, lineage lent to keys already there', async () => {
    const warehouse = new FakeWarehouse('postgres', 'stream');

    expect(await run(postgresMerge, jobFor(warehouse, 'ndjson'), ARCHIVE)).toBe(true);

    expect(warehouse.script).toEqual(
      merged('UPDATE load_typed SET is_new', ['UPDATE fact_sales_line f SET'], []),
    );
    // New rows are counted in SQL, after the merge decided which are new.
    const loaded = warehouse.statement(LOADED);
    expect(loaded.sql).toContain('rows_new = (SELECT count(*) FROM load_typed WHERE is_new)');
    expect(loaded.params).toHaveLength(8);
    expect(warehouse.statement('INSERT INTO fact_sales_line').params).toEqual([
      'stream',
      'archive/2026/12/06/07/s-1',
    ]);
  });

  it("drops a CSV's rows whose keys are loaded, and an older loader's staging table", async () => {
    const warehouse = new FakeWarehouse('postgres', 'stream');
    const job = jobFor(warehouse, 'csv', { status: 'staged' });

    expect(await run(postgresMerge, job, CSV)).toBe(true);

    const expected = merged('DELETE FROM load_typed USING', [], ['COPY load_rejected_row csv (1 rows)']);
    // Right after the claim, before anything of this load.
    expected.splice(2, 0, 'DROP TABLE IF EXISTS');
    expect(warehouse.script).toEqual(expected);
    expect(warehouse.statement('DROP TABLE IF EXISTS').sql).toBe(
      `DROP TABLE IF EXISTS stg_load_${job.loadId}`,
    );
  });
});

describe('redshift-s3', () => {
  it('stages the typed and rejected rows, then submits one batch that COPYs them from S3 and merges', async () => {
    const warehouse = new FakeWarehouse('redshift', 's3');
    const staged: Staged[] = [];
    const job = jobFor(warehouse, 'csv', { staged });

    expect(await run(redshiftS3, job, CSV)).toBe(true);

    const typedUri = `s3://bucket/staging/${job.loadId}.csv.gz`;
    const rejectsUri = `s3://bucket/staging/${job.loadId}.rejected.csv.gz`;
    expect(staged.map((s) => s.key)).toEqual([
      `staging/${job.loadId}.csv.gz`,
      `staging/${job.loadId}.rejected.csv.gz`,
    ]);
    expect(staged[0]?.text.split('\n')).toEqual([
      '536365,1,20101201,2010-12-01 08:26:00,85123A,WHITE HANGING HEART T-LIGHT HOLDER,17850,United Kingdom,6,2.550,15.300,f,f,f,f,,,',
      '536365,2,20101201,2010-12-01 08:26:00,71053,WHITE METAL LANTERN,17850,United Kingdom,6,2.550,15.300,f,f,f,f,,,',
      '',
    ]);
    expect(staged[1]?.text).toContain(`${KEY},4,"Quantity ""six"" is not a whole number",536365,`);
    expect(warehouse.script).toEqual([
      // Staged (the afterStage point) before the batch is submitted: COPY FROM S3 reads objects.
      'STAGED',
      'BEGIN',
      'UPDATE load_manifest SET attempts',
      'CREATE TEMP TABLE load_typed',
      `COPY load_typed FROM ${typedUri}`,
      // The claim checked by every later write: a batch runs on past a claim that matched nothing.
      'DELETE FROM load_typed WHERE',
      'UPDATE load_typed SET is_new',
      'CREATE TEMP TABLE load_rejected_stage',
      `COPY load_rejected_stage FROM ${rejectsUri}`,
      'INSERT INTO load_rejected_row (load_id,',
      'DROP TABLE load_rejected_stage',
      'CREATE TEMP TABLE load_counts',
      'INSERT INTO load_counts (kind,',
      ...DIMENSIONS,
      'INSERT INTO fact_sales_line (invoice_no,',
      'UPDATE fact_sales_line SET is_duplicate_row',
      LOADED_STEP,
      'DROP TABLE load_counts',
      'DROP TABLE load_typed',
      'COMMIT',
    ]);
    // Redshift's clock in the manifest's claim and in the fact's visible time.
    expect(warehouse.statement(CLAIM).sql).toContain('started_at = GETDATE()');
    expect(warehouse.statement('INSERT INTO fact_sales_line').sql).toContain('GETDATE()');
  });
});

describe('pickWay', () => {
  const factWith = (rows: number) => {
    const warehouse = new FakeWarehouse('postgres', 'stream');
    warehouse.answer = (sql) =>
      sql.startsWith('SELECT 1 FROM fact_sales_line')
        ? { rows: Array(rows).fill({}), rowCount: rows }
        : undefined;
    return warehouse;
  };

  it('picks by how the warehouse COPY reads, the format and the fact', async () => {
    const redshift = new FakeWarehouse('redshift', 's3');
    expect((await pickWay(redshift, { format: 'csv', mergeOnly: false })).name).toBe('redshift-s3');
    expect((await pickWay(redshift, { format: 'ndjson', mergeOnly: false })).name).toBe('redshift-s3');
    expect((await pickWay(factWith(0), { format: 'ndjson', mergeOnly: false })).name).toBe('postgres-merge');
    expect((await pickWay(factWith(0), { format: 'csv', mergeOnly: false })).name).toBe('postgres-bulk');
    expect((await pickWay(factWith(1), { format: 'csv', mergeOnly: false })).name).toBe('postgres-direct');
    expect((await pickWay(factWith(0), { format: 'csv', mergeOnly: true })).name).toBe('postgres-merge');
  });
});

describe('loadObject: starting over in another way', () => {
  const s3Mock = mockClient(S3Client);
  const s3 = new S3Client({ region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
  beforeEach(() => {
    s3Mock.reset();
    s3Mock.on(GetObjectCommand).callsFake(() => ({
      Body: Readable.from([Buffer.from(CSV)]) as unknown as GetObjectCommandOutput['Body'],
    }));
    s3Mock.on(PutObjectCommand).rejects(new Error('nothing is staged on PostgreSQL'));
  });
  afterEach(() => s3Mock.reset());

  const load = (warehouse: FakeWarehouse) =>
    loadObject(
      {
        s3,
        bucket: 'bucket',
        warehouse,
        manifest: createManifest(warehouse),
        logger: createLogger('silent'),
      },
      { key: KEY, etag: ETAG },
      { format: 'csv', source: 'file' },
      'pending',
    );
  const transactions = (warehouse: FakeWarehouse) =>
    warehouse.script
      .join('\n')
      .split('BEGIN\n')
      .slice(1)
      .map((t) => t.split('\n').filter((l) => l.startsWith('COPY') || l === 'COMMIT' || l === 'ROLLBACK'));

  it('merges when the direct COPY meets a key already in the fact', async () => {
    const warehouse = new FakeWarehouse('postgres', 'stream');
    warehouse.answer = (sql) =>
      sql.startsWith('SELECT 1 FROM fact_sales_line') ? { rows: [{}], rowCount: 1 } : undefined;
    warehouse.failCopy = { table: 'fact_sales_line', code: '23505' };

    expect(await load(warehouse)).toBe(true);

    expect(transactions(warehouse)).toEqual([
      ['ROLLBACK'],
      ['COPY load_typed binary (2 rows)', 'COPY load_rejected_row csv (1 rows)', 'COMMIT'],
    ]);
    // After the commit, the time split is recorded.
    expect(warehouse.events.at(-1)).toMatchObject({
      kind: 'sql',
      sql: expect.stringMatching(/^UPDATE load_manifest SET stage_ms/),
    });
  });

  it('copies the direct way when the fact filled before the bulk way locked it', async () => {
    const warehouse = new FakeWarehouse('postgres', 'stream');
    // Empty when the way is picked, a row once the lock is held; from then on, a row.
    let looks = 0;
    warehouse.answer = (sql) =>
      sql.startsWith('SELECT 1 FROM fact_sales_line') && ++looks > 1
        ? { rows: [{}], rowCount: 1 }
        : undefined;

    expect(await load(warehouse)).toBe(true);

    expect(transactions(warehouse)).toEqual([
      ['ROLLBACK'],
      [
        'COPY fact_sales_line binary (2 rows)',
        'COPY load_rejected_row csv (1 rows)',
        'COPY load_counts csv (4 rows)',
        'COMMIT',
      ],
    ]);
  });

  it('does not hide an error that no other way can avoid', async () => {
    const warehouse = new FakeWarehouse('postgres', 'stream');
    warehouse.answer = (sql) =>
      sql.startsWith('SELECT 1 FROM fact_sales_line') ? { rows: [{}], rowCount: 1 } : undefined;
    warehouse.failCopy = { table: 'fact_sales_line', code: '53100' };

    await expect(load(warehouse)).rejects.toMatchObject({ details: { code: '53100' } });
    expect(transactions(warehouse)).toEqual([['ROLLBACK']]);
  });
});
