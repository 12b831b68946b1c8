import { gzipSync } from 'node:zlib';
import {
  DeleteObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '#adapters/logger';
import { createLoader } from '#batch/loader/index';
import { createManifest } from '#batch/loader/manifest';
import { reconcileWith, warehouseLineSource } from '#batch/reconcile';
import { typeObjectInto } from '#batch/typed-object';
import { startLake } from '#cli/lake-stage';
import { type LoadPhase, type LoadPhaseEvent, onLoadPhase } from '#core/load-phases';
import { readCatalog } from '#lake/catalog';
import { s3LakeObjects } from '#lake/catalog-objects';
import { INVOICE_LINES_PREFIX, LAKE_STATE_PREFIX, readLakeTotals } from '#lake/invoice-lines';
import { lakeLineSource } from '#lake/invoice-lines-reconcile';
import { createLakeSink } from '#lake/invoice-lines-sink';
import { catchUpLake } from '#lake/invoice-lines-stage';
import { loadedSourceObjects } from '#lake/lake-manifest';
import { acceptedLine, CSV_HEADER, csvRow } from '#test/helpers/lines';
import { type LoaderEnv, startLoaderEnv } from '#test/helpers/loader-env';

const BUCKET = 'lake';
const logger = createLogger('silent');
let env: LoaderEnv;

beforeAll(async () => {
  env = await startLoaderEnv(BUCKET, 'lake-lines-');
});
afterAll(() => env?.stop());

const store = () => ({ s3: env.clients.s3, bucket: BUCKET });
const put = (key: string, body: Buffer) =>
  env.clients.s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
const keys = async (prefix: string) =>
  ((await env.clients.s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }))).Contents ?? [])
    .map((o) => o.Key as string)
    .sort();
const lakeAgainstWarehouse = () =>
  reconcileWith({ reference: warehouseLineSource(env.warehouse), sources: [lakeLineSource(store())] });
const stageDeps = () => ({
  store: store(),
  loaded: () => loadedSourceObjects(env.warehouse),
  readLines: (o: Parameters<typeof typeObjectInto>[2], c: Parameters<typeof typeObjectInto>[3]) =>
    typeObjectInto(env.clients.s3, BUCKET, o, c),
});

/** A CSV drop: exact prices, a cancellation, a line at 00:30 London summer time, the year's end. */
const DROP = gzipSync(
  [
    CSV_HEADER,
    csvRow({ InvoiceNo: '536365', UnitPrice: '0.001', Quantity: 3 }),
    csvRow({ InvoiceNo: '536365', StockCode: '71053', UnitPrice: '38970.00', Quantity: 12540 }),
    csvRow({ InvoiceNo: 'C536379', StockCode: 'D', UnitPrice: '27.50', Quantity: -1 }),
    csvRow({ InvoiceNo: '555000', InvoiceDate: '6/1/2011 0:30', CustomerID: '' }),
    csvRow({ InvoiceNo: '581587', InvoiceDate: '12/31/2011 23:59' }),
    csvRow({ InvoiceNo: '581588', InvoiceDate: '1/1/2012 0:00' }),
  ].join('\n'),
);
const archived = (invoiceNo: string, lineNo: number, invoiceDate = '2011-06-01T10:00:00') =>
  JSON.stringify({
    ...acceptedLine({ invoiceNo, lineNo, invoiceDate }),
    streamVisibleAt: '2026-12-06T07:00:00.300Z',
  });

beforeEach(async () => {
  await createManifest(env.warehouse).forgetAllLoads();
  for (const prefix of ['landing/', 'archive/', INVOICE_LINES_PREFIX, LAKE_STATE_PREFIX])
    for (const key of await keys(prefix))
      await env.clients.s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }));
});

describe('the lake as the loader writes it', () => {
  it('holds every loaded line once, a drop and archive objects, partitioned by London month', async () => {
    await put('landing/drop.csv.gz', DROP);
    await put(
      'archive/2026/12/06/07/a.gz',
      gzipSync([archived('560001', 1), archived('560001', 2)].join('\n')),
    );
    await put(
      'archive/2026/12/06/07/b.gz',
      gzipSync([archived('560001', 2), archived('560002', 1)].join('\n')),
    );
    const loader = createLoader({
      s3: env.clients.s3,
      bucket: BUCKET,
      warehouse: env.warehouse,
      logger,
      lines: createLakeSink({ store: store() }),
    });

    const results = await loader.sweep();

    expect(results.map((r) => r.status)).toEqual(['loaded', 'loaded', 'loaded']);
    const report = await lakeAgainstWarehouse();
    expect(report.ok).toBe(true);
    expect(report.stores[0]).toMatchObject({
      lines: 9,
      revenue: report.accepted.revenue,
      quantity: report.accepted.quantity,
    });
    const files = await keys(INVOICE_LINES_PREFIX);
    expect(files.map((k) => k.slice(INVOICE_LINES_PREFIX.length, k.lastIndexOf('/') + 1))).toEqual([
      'year=2010/month=12/',
      'year=2011/month=06/',
      'year=2011/month=12/',
      'year=2012/month=01/',
    ]);
    // Every loaded object has its marker: the catch-up has nothing to do.
    expect(await catchUpLake(stageDeps())).toMatchObject({ objects: 0 });
  });

  it("reports a load's phases in order: typed, the lake's files encoded, committed, the lake written", async () => {
    await put('landing/drop.csv.gz', DROP);
    const heard: LoadPhaseEvent[] = [];
    const stop = onLoadPhase((e) => heard.push(e));
    try {
      await createLoader({
        s3: env.clients.s3,
        bucket: BUCKET,
        warehouse: env.warehouse,
        logger,
        lines: createLakeSink({ store: store() }),
      }).loadKey('landing/drop.csv.gz');
    } finally {
      stop();
    }
    // The lake's write starts when the lines are typed and may finish encoding after the commit.
    const at = (phase: LoadPhase) => heard.findIndex((e) => e.phase === phase);
    expect(heard.filter((e) => e.phase === 'typed' || e.phase === 'committed')).toEqual([
      expect.objectContaining({ phase: 'typed', key: 'landing/drop.csv.gz' }),
      expect.objectContaining({ phase: 'committed', key: 'landing/drop.csv.gz' }),
    ]);
    expect(at('typed')).toBeLessThan(at('lake-encoded'));
    expect(Math.max(at('lake-encoded'), at('committed'))).toBeLessThan(at('lake-written'));
    // Nobody listening: nothing is heard.
    heard.length = 0;
    await createManifest(env.warehouse).forgetAllLoads();
    await createLoader({ s3: env.clients.s3, bucket: BUCKET, warehouse: env.warehouse, logger }).loadKey(
      'landing/drop.csv.gz',
    );
    expect(heard).toEqual([]);
  });

  it('does not duplicate a reload: the warehouse forgotten (--fresh) and the same objects loaded again', async () => {
    await put('landing/drop.csv.gz', DROP);
    const load = () =>
      createLoader({
        s3: env.clients.s3,
        bucket: BUCKET,
        warehouse: env.warehouse,
        logger,
        lines: createLakeSink({ store: store() }),
      }).sweep();
    await load();
    const before = await keys(INVOICE_LINES_PREFIX);
    await createManifest(env.warehouse).forgetAllLoads();
    await load();
    expect(await keys(INVOICE_LINES_PREFIX)).toEqual(before);
    expect((await readLakeTotals(store())).length).toBe(6);
    expect((await lakeAgainstWarehouse()).ok).toBe(true);
  });

  it('keeps the load when the lake fails; the catch-up writes the object later', async () => {
    await put('landing/drop.csv.gz', DROP);
    let failures = 0;
    // A bucket that does not exist: every lake write fails.
    const broken = { s3: env.clients.s3 as S3Client, bucket: 'no-such-lake-bucket' };
    const loader = createLoader({
      s3: env.clients.s3,
      bucket: BUCKET,
      warehouse: env.warehouse,
      logger,
      lines: createLakeSink({ store: broken, onFailure: () => failures++ }),
    });

    const [result] = await loader.sweep();

    expect(result?.status).toBe('loaded');
    expect(failures).toBe(1);
    expect(await keys(INVOICE_LINES_PREFIX)).toEqual([]);
    const report = await lakeAgainstWarehouse();
    expect(report.stores[0]).toMatchObject({ missing: 6 });
    expect(await catchUpLake(stageDeps())).toMatchObject({ objects: 1, added: 6 });
    expect((await lakeAgainstWarehouse()).ok).toBe(true);
  });
});

describe('the lake as npm start wires it (cli/lake-stage.ts)', () => {
  it('writes what the loader committed when stopped, and the catalog follows the write', async () => {
    // A coalescing window far longer than the test: only idle() (stop) writes.
    const lake = startLake({
      s3: env.clients.s3,
      bucket: BUCKET,
      warehouse: env.warehouse,
      logger,
      coalesce: { maxWaitMs: 3_600_000, maxLines: 1_000_000 },
    });
    const loader = createLoader({
      s3: env.clients.s3,
      bucket: BUCKET,
      warehouse: env.warehouse,
      logger,
      lines: lake.lines,
    });
    await put('landing/npm-start/drop.csv.gz', DROP);
    expect((await loader.loadKey('landing/npm-start/drop.csv.gz')).status).toBe('loaded');
    // Loaded and not yet written to the lake: reconcile says pending (the marker is absent), not missing.
    const pending = await reconcileWith({
      reference: warehouseLineSource(env.warehouse),
      sources: [lakeLineSource(store(), { warehouse: env.warehouse })],
    });
    expect(pending.stores[0]).toMatchObject({ lines: 0, missing: 0, pending: 6 });
    expect(pending.ok).toBe(true);
    // Without the warehouse to tell what is on its way, the same lines are missing.
    expect((await lakeAgainstWarehouse()).stores[0]).toMatchObject({ missing: 6 });
    await lake.idle();
    expect((await lakeAgainstWarehouse()).ok).toBe(true);
    const written = await reconcileWith({
      reference: warehouseLineSource(env.warehouse),
      sources: [lakeLineSource(store(), { warehouse: env.warehouse })],
    });
    expect(written.stores[0]).toMatchObject({ lines: 6, missing: 0, pending: 0 });
    const catalog = await readCatalog(s3LakeObjects(env.clients.s3, BUCKET));
    expect(catalog.Tables.map((t) => t.Name)).toContain('invoice_lines');
    const months = (catalog.Partitions.invoice_lines ?? []).map((p) => p.Values.join('-'));
    expect(months).toEqual(expect.arrayContaining(['2011-06', '2011-12', '2012-01']));
  });
});
