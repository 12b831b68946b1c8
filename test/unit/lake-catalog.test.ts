import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import {
  GetObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import {
  boolean,
  date,
  decimal,
  int32,
  int64,
  type ParquetSchema,
  string,
  writeParquet,
} from '#adapters/parquet-writer';
import { CATALOG_KEY, readCatalog } from '#lake/catalog';
import { widenType } from '#lake/catalog-merge';
import type { LakeObject, LakeObjects } from '#lake/catalog-objects';
import { crawlAfterWrite, crawlLake, createCrawlScheduler } from '#lake/crawler';
import { duckType } from '#lake/query';
import { acceptedLine } from '#test/helpers/lines';
import { renderCrawl, renderTables } from '../../cli/commands/lake.ts';

const BUCKET = 'lake-test';

/** An in-memory bucket answering LakeObjects' contract: sorted listings, ETags, inclusive ranges. */
function memoryBucket() {
  const store = new Map<string, Uint8Array>();
  const gets: string[] = [];
  const objects: LakeObjects = {
    async list(prefix) {
      return [...store.keys()]
        .filter((k) => k.startsWith(prefix))
        .sort()
        .map((key): LakeObject => {
          const bytes = store.get(key) as Uint8Array;
          return { key, etag: createHash('md5').update(bytes).digest('hex'), size: bytes.length };
        });
    },
    async get(key, range) {
      const bytes = store.get(key);
      if (!bytes) return undefined;
      gets.push(key);
      return range ? bytes.slice(range.start, range.end + 1) : bytes;
    },
    async put(key, body) {
      store.set(key, new TextEncoder().encode(body));
    },
  };
  const put = (key: string, bytes: Uint8Array) => store.set(key, bytes);
  return { objects, put, gets, store };
}

const LINE_SCHEMA: ParquetSchema = [
  { name: 'invoice_no', type: string, nullable: false },
  { name: 'line_no', type: int32, nullable: false },
  { name: 'quantity', type: int32, nullable: false },
  { name: 'unit_price', type: decimal(12, 3), nullable: false },
  { name: 'line_total', type: decimal(18, 3), nullable: false },
  { name: 'invoice_date', type: date, nullable: false },
  { name: 'is_cancellation', type: boolean, nullable: false },
  { name: 'size', type: int64, nullable: true },
];
const lineRow = (n: number) => ({
  invoice_no: `5363${n}`,
  line_no: 1,
  quantity: 6,
  unit_price: '2.550',
  line_total: '15.300',
  invoice_date: '2010-12-01',
  is_cancellation: false,
  size: null,
});

const TOTESYS_SCHEMA: ParquetSchema = [
  { name: 'currency_id', type: int32, nullable: false },
  { name: 'currency_code', type: string, nullable: false },
];

function seedLake(bucket: ReturnType<typeof memoryBucket>) {
  bucket.put(
    'processed/invoice_lines/year=2010/month=12/day=01/part-0.parquet',
    writeParquet(LINE_SCHEMA, [lineRow(1)]),
  );
  bucket.put(
    'processed/invoice_lines/year=2010/month=12/day=02/part-0.parquet',
    writeParquet(LINE_SCHEMA, [lineRow(2)]),
  );
  bucket.put(
    'processed/totesys/dim_currency/2024/11/05/run-a.parquet',
    writeParquet(TOTESYS_SCHEMA, [{ currency_id: 1, currency_code: 'GBP' }]),
  );
  // Markers and state beside the tables are not tables (hidden by the `_` rule).
  bucket.put('processed/totesys/_runs/2024/11/05/run-a.json', new TextEncoder().encode('{"runId":"run-a"}'));
  bucket.put('processed/totesys/_state/address.json', new TextEncoder().encode('{}'));
  const archived = [acceptedLine(), acceptedLine({ lineNo: 2, quantity: 12, customerId: null })];
  bucket.put(
    'archive/2026/12/06/07/invoice-lines-archive-1-2026-12-06-07-00-01-uuid.gz',
    gzipSync(archived.map((l) => `${JSON.stringify({ ...l, shardId: 'shardId-000000000000' })}\n`).join('')),
  );
}

describe('lake crawler: tables, columns, types and partitions', () => {
  it('finds what was written, in the Glue catalog shape, and stores it', async () => {
    const bucket = memoryBucket();
    seedLake(bucket);
    const report = await crawlLake({
      objects: bucket.objects,
      bucket: BUCKET,
      now: () => new Date('2026-12-06T10:00:00Z'),
    });

    const c = report.catalog;
    expect(c.Tables.map((t) => t.Name)).toEqual(['archive', 'invoice_lines', 'totesys_dim_currency']);
    const lines = c.Tables.find((t) => t.Name === 'invoice_lines');
    expect(lines?.StorageDescriptor.Columns).toEqual([
      { Name: 'invoice_no', Type: 'string' },
      { Name: 'line_no', Type: 'int' },
      { Name: 'quantity', Type: 'int' },
      { Name: 'unit_price', Type: 'decimal(12,3)' },
      { Name: 'line_total', Type: 'decimal(18,3)' },
      { Name: 'invoice_date', Type: 'date' },
      { Name: 'is_cancellation', Type: 'boolean' },
      { Name: 'size', Type: 'bigint' },
    ]);
    expect(lines?.PartitionKeys).toEqual([
      { Name: 'year', Type: 'string' },
      { Name: 'month', Type: 'string' },
      { Name: 'day', Type: 'string' },
    ]);
    expect(lines?.StorageDescriptor.Location).toBe(`s3://${BUCKET}/processed/invoice_lines/`);
    expect(lines?.StorageDescriptor.SerdeInfo.SerializationLibrary).toBe(
      'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe',
    );
    expect(lines?.Parameters).toMatchObject({ classification: 'parquet', objectCount: '2' });
    expect(c.Partitions.invoice_lines?.map((p) => [p.Values, p.StorageDescriptor.Location])).toEqual([
      [['2010', '12', '01'], `s3://${BUCKET}/processed/invoice_lines/year=2010/month=12/day=01/`],
      [['2010', '12', '02'], `s3://${BUCKET}/processed/invoice_lines/year=2010/month=12/day=02/`],
    ]);

    const currency = c.Tables.find((t) => t.Name === 'totesys_dim_currency');
    expect(currency?.PartitionKeys.map((k) => k.Name)).toEqual(['partition_0', 'partition_1', 'partition_2']);
    expect(currency?.StorageDescriptor.Columns).toEqual([
      { Name: 'currency_id', Type: 'int' },
      { Name: 'currency_code', Type: 'string' },
    ]);
    expect(c.Partitions.totesys_dim_currency?.map((p) => p.Values)).toEqual([['2024', '11', '05']]);

    const archive = c.Tables.find((t) => t.Name === 'archive');
    expect(archive?.Parameters).toMatchObject({ classification: 'json', compressionType: 'gzip' });
    expect(archive?.PartitionKeys.map((k) => k.Name)).toEqual([
      'partition_0',
      'partition_1',
      'partition_2',
      'partition_3',
    ]);
    const types = Object.fromEntries(
      archive?.StorageDescriptor.Columns.map((col) => [col.Name, col.Type]) ?? [],
    );
    // JSON money is text in the archive, and stays text: never guessed into a float.
    expect(types).toMatchObject({
      invoiceno: 'string',
      lineno: 'int',
      quantity: 'int',
      unitprice: 'string',
      customerid: 'string',
      shardid: 'string',
    });
    expect(archive?.StorageDescriptor.SerdeInfo.Parameters['mapping.invoiceno']).toBe('invoiceNo');
    expect(c.Partitions.archive?.map((p) => p.Values)).toEqual([['2026', '12', '06', '07']]);
    expect(report.changes.filter((ch) => ch.kind === 'table added')).toHaveLength(3);

    // Stored where the next process finds it, the same as the report's.
    expect(bucket.store.has(CATALOG_KEY)).toBe(true);
    expect(await readCatalog(bucket.objects)).toEqual(c);
  });

  it("reads only the new object of a partition that gained one (a totesys run in today's folder)", async () => {
    const bucket = memoryBucket();
    seedLake(bucket);
    const run = (id: string, code: string) =>
      bucket.put(
        `processed/totesys/dim_currency/2024/11/05/run-${id}.parquet`,
        writeParquet(TOTESYS_SCHEMA, [{ currency_id: id.charCodeAt(0), currency_code: code }]),
      );
    for (const [id, code] of [
      ['b', 'EUR'],
      ['c', 'USD'],
      ['d', 'CHF'],
    ])
      run(id as string, code as string);
    const first = await crawlLake({ objects: bucket.objects, bucket: BUCKET });
    // The first object and the three newest of the folder (run-a..d), the other tables' objects.
    expect(first.objectsRead).toBe(7);
    run('e', 'JPY');
    const next = await crawlLake({ objects: bucket.objects, bucket: BUCKET });
    expect(next.objectsRead).toBe(1);
    expect(next.changes).toEqual([]);
    // Another store (another process) has read nothing yet: it reads the folder's sample again.
    run('f', 'SEK');
    const elsewhere = await crawlLake({ objects: { ...bucket.objects }, bucket: BUCKET });
    expect(elsewhere.objectsRead).toBe(4);
  });

  it('re-crawl adds a partition and a column, keeps what was there, reads only what changed', async () => {
    const bucket = memoryBucket();
    seedLake(bucket);
    const first = await crawlLake({ objects: bucket.objects, bucket: BUCKET });
    const again = await crawlLake({ objects: bucket.objects, bucket: BUCKET });
    expect(again.changes).toEqual([]);
    expect(again.objectsRead).toBe(0);

    const wider: ParquetSchema = [...LINE_SCHEMA, { name: 'source', type: string, nullable: false }];
    bucket.put(
      'processed/invoice_lines/year=2010/month=12/day=03/part-0.parquet',
      writeParquet(wider, [{ ...lineRow(3), source: 'file' }]),
    );
    const third = await crawlLake({ objects: bucket.objects, bucket: BUCKET });
    expect(third.changes).toEqual([
      { table: 'invoice_lines', kind: 'column added', detail: 'source string' },
      { table: 'invoice_lines', kind: 'partitions added', detail: '1' },
    ]);
    expect(third.objectsRead).toBe(1);
    const lines = third.catalog.Tables.find((t) => t.Name === 'invoice_lines');
    expect(lines?.StorageDescriptor.Columns.map((col) => col.Name)).toEqual([
      ...LINE_SCHEMA.map((s) => s.name),
      'source',
    ]);
    expect(third.catalog.Partitions.invoice_lines?.map((p) => p.Values.join('-'))).toEqual([
      '2010-12-01',
      '2010-12-02',
      '2010-12-03',
    ]);
    // The old partitions keep their own columns; the new one has the new column.
    expect(third.catalog.Partitions.invoice_lines?.[0]?.StorageDescriptor.Columns).toHaveLength(
      LINE_SCHEMA.length,
    );
    expect(third.catalog.Partitions.invoice_lines?.[2]?.StorageDescriptor.Columns).toHaveLength(wider.length);
    // Other tables untouched.
    expect(third.catalog.Tables.find((t) => t.Name === 'archive')).toEqual(
      first.catalog.Tables.find((t) => t.Name === 'archive'),
    );
  });

  it('reports a type change: widened where one type holds the other, a conflict kept otherwise', async () => {
    const bucket = memoryBucket();
    seedLake(bucket);
    await crawlLake({ objects: bucket.objects, bucket: BUCKET });
    const changed: ParquetSchema = [
      { name: 'currency_id', type: int64, nullable: false },
      { name: 'currency_code', type: int32, nullable: false },
    ];
    bucket.put(
      'processed/totesys/dim_currency/2024/11/06/run-b.parquet',
      writeParquet(changed, [{ currency_id: 2, currency_code: 3 }]),
    );
    const report = await crawlLake({ objects: bucket.objects, bucket: BUCKET });
    expect(report.changes).toEqual([
      { table: 'totesys_dim_currency', kind: 'column type widened', detail: 'currency_id int -> bigint' },
      {
        table: 'totesys_dim_currency',
        kind: 'column type conflict',
        detail: 'currency_code is string in the catalog, int in new data (kept string)',
      },
      { table: 'totesys_dim_currency', kind: 'partitions added', detail: '1' },
    ]);
  });

  it('skips what does not fit a table and says why; a crawl limited to a prefix leaves the rest alone', async () => {
    const bucket = memoryBucket();
    seedLake(bucket);
    bucket.put('processed/invoice_lines/year=2010/notes.txt', new TextEncoder().encode('x'));
    bucket.put('processed/invoice_lines/2010/12/04/part-0.parquet', writeParquet(LINE_SCHEMA, [lineRow(4)]));
    const report = await crawlLake(
      { objects: bucket.objects, bucket: BUCKET },
      { prefixes: ['processed/invoice_lines/'] },
    );
    expect(report.tables.map((t) => t.name)).toEqual(['invoice_lines']);
    expect(report.catalog.Tables.map((t) => t.Name)).toEqual(['invoice_lines']);
    expect(report.skipped).toEqual([
      {
        key: 'processed/invoice_lines/2010/12/04/part-0.parquet',
        reason: expect.stringMatching(/not the table's partitions \(year\/month\/day\)/),
      },
      {
        key: 'processed/invoice_lines/year=2010/notes.txt',
        reason: expect.stringMatching(/not a parquet object/),
      },
    ]);
  });

  it('keeps a partition whose objects are gone, and says so (Glue LOG delete behaviour)', async () => {
    const bucket = memoryBucket();
    seedLake(bucket);
    await crawlLake({ objects: bucket.objects, bucket: BUCKET });
    bucket.store.delete('processed/invoice_lines/year=2010/month=12/day=02/part-0.parquet');
    const report = await crawlLake({ objects: bucket.objects, bucket: BUCKET });
    expect(report.changes).toEqual([
      { table: 'invoice_lines', kind: 'partitions gone (kept)', detail: '2010/12/02' },
    ]);
    expect(report.catalog.Partitions.invoice_lines).toHaveLength(2);
  });

  it('refuses a stored catalog that is not one', async () => {
    const bucket = memoryBucket();
    await bucket.objects.put(CATALOG_KEY, '{"Tables": 3}', 'application/json');
    await expect(readCatalog(bucket.objects)).rejects.toThrow(/not a catalog/);
    await bucket.objects.put(CATALOG_KEY, 'nope', 'application/json');
    await expect(crawlLake({ objects: bucket.objects, bucket: BUCKET })).rejects.toThrow(/not JSON/);
  });
});

describe('lake catalog types', () => {
  it('widens numbers and decimals; text absorbs anything only in JSON', () => {
    expect(widenType('int', 'bigint', 'parquet')).toBe('bigint');
    expect(widenType('int', 'double', 'parquet')).toBe('double');
    expect(widenType('decimal(12,3)', 'decimal(18,2)', 'parquet')).toBe('decimal(19,3)');
    expect(widenType('int', 'decimal(12,3)', 'parquet')).toBe('decimal(13,3)');
    expect(widenType('string', 'int', 'parquet')).toBeUndefined();
    expect(widenType('string', 'int', 'json')).toBe('string');
  });

  it('maps Hive types to DuckDB types, nested ones included', () => {
    expect(duckType('decimal(18,3)')).toBe('DECIMAL(18,3)');
    expect(duckType('string')).toBe('VARCHAR');
    expect(duckType('array<struct<a:int,b:map<string,bigint>>>')).toBe(
      'STRUCT("a" INTEGER, "b" MAP(VARCHAR, BIGINT))[]',
    );
    expect(() => duckType('interval')).toThrow(/does not know: interval/);
  });
});

describe('crawl after writes', () => {
  it('runs one crawl at a time: writes during a crawl share one more crawl, of every prefix they named', async () => {
    const bucket = memoryBucket();
    seedLake(bucket);
    const listed: string[] = [];
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const objects: LakeObjects = {
      ...bucket.objects,
      async list(prefix) {
        listed.push(prefix);
        if (listed.length === 1) await held;
        return bucket.objects.list(prefix);
      },
    };
    const scheduler = createCrawlScheduler({ objects, bucket: BUCKET });
    const first = scheduler.crawlAfterWrite(['processed/invoice_lines/']);
    await new Promise((r) => setImmediate(r));
    const second = scheduler.crawlAfterWrite(['processed/invoice_lines/year=2010/']);
    const third = scheduler.crawlAfterWrite(['archive/2026/12/06/07/']);
    expect(third).toBe(second);
    release();
    const [a, b] = await Promise.all([first, second]);
    expect(listed).toEqual(['processed/invoice_lines/', 'processed/invoice_lines/', 'archive/']);
    expect(a.tables.map((t) => t.name)).toEqual(['invoice_lines']);
    expect(b.catalog.Tables.map((t) => t.Name)).toEqual(['archive', 'invoice_lines']);
  });
});

describe('lake tables and lake crawl output', () => {
  it('prints plain lines for a pipe, the stored shape as JSON, and names the tables for an unknown one', async () => {
    const bucket = memoryBucket();
    seedLake(bucket);
    const report = await crawlLake({ objects: bucket.objects, bucket: BUCKET });
    const plain = renderTables(report.catalog, 'invoice_lines', 'plain').split('\n');
    expect(plain[0]).toBe(`invoice_lines (parquet, s3://${BUCKET}/processed/invoice_lines/)`);
    expect(plain).toContain('unit_price\tdecimal(12,3)\t');
    expect(plain).toContain('year\tstring\tyes');
    expect(plain).toContain(
      `2010\t12\t01\ts3://${BUCKET}/processed/invoice_lines/year=2010/month=12/day=01/\t1\t${bucket.store.get('processed/invoice_lines/year=2010/month=12/day=01/part-0.parquet')?.length}`,
    );
    expect(JSON.parse(renderTables(report.catalog, 'ARCHIVE', 'json'))).toEqual({
      Table: report.catalog.Tables.find((t) => t.Name === 'archive'),
      Partitions: report.catalog.Partitions.archive,
    });
    expect(() => renderTables(report.catalog, 'nope', 'plain')).toThrow(
      'no table nope in the lake catalog; it has: archive, invoice_lines, totesys_dim_currency',
    );
    expect(renderCrawl(report, 'plain')).toMatch(/^archive\ttable added\ts3:\/\/lake-test\/archive\/$/m);
    expect(renderCrawl(report, 'table')).toMatch(
      /│ invoice_lines +│ s3:\/\/lake-test\/processed\/invoice_lines\/ +│ 8 +│ 2 +│ 2 +│/,
    );
  });
});

describe('crawl after write', () => {
  /** An empty bucket behind its own client, answering with the SDK's own shapes; counts its calls. */
  function emptyBucketClient() {
    const calls: string[] = [];
    const client = {
      async send(command: unknown) {
        calls.push((command as object).constructor.name);
        if (command instanceof ListObjectsV2Command) return { Contents: [], IsTruncated: false };
        if (command instanceof GetObjectCommand)
          throw new NoSuchKey({ message: 'The specified key does not exist.', $metadata: {} });
        if (command instanceof PutObjectCommand) return { ETag: '"e"' };
        throw new Error(`unexpected ${(command as object).constructor.name}`);
      },
    };
    return { client: client as unknown as S3Client, calls };
  }

  it("crawls through the writer's own client: a second stack in the process has a new client for the same bucket", async () => {
    const first = emptyBucketClient();
    const second = emptyBucketClient();
    await crawlAfterWrite(first.client, BUCKET, ['processed/invoice_lines/']);
    const before = first.calls.length;
    await crawlAfterWrite(second.client, BUCKET, ['processed/invoice_lines/']);
    expect(second.calls).toContain('ListObjectsV2Command');
    expect(first.calls.length).toBe(before);
  });
});
