import type { S3Client } from '@aws-sdk/client-s3';
import type { Logger } from '#adapters/logger';
import type { Warehouse } from '#adapters/warehouse';
import type { LineTap } from '#batch/loader/index';
import { typeObjectInto } from '#batch/typed-object';
import { crawlAfterWrite } from '#lake/crawler';
import { INVOICE_LINES_PREFIX } from '#lake/invoice-lines';
import { type Coalesce, createLakeSink } from '#lake/invoice-lines-sink';
import { createLakeStage, lakeWrites } from '#lake/invoice-lines-stage';
import { loadedSourceObjects } from '#lake/lake-manifest';

/**
 * How npm start gathers committed objects into lake writes (docs/lake.md, "Coalescing"): a day's
 * file is rewritten at most about once per `maxWaitMs` however often the stream archives, and a
 * big drop is written at once.
 */
export const LAKE_COALESCE: Coalesce = { maxWaitMs: 30_000, maxLines: 200_000 };

/**
 * The lake's invoice lines for a process that loads (docs/lake.md): the loader's line tap, and the
 * catch-up stage for what the tap could not write (or was loaded before the lake), nudged once at
 * start and after a failed write; both write through one queue, and the catalog is crawled after
 * each write (lake/crawler.ts, crawlAfterWrite: one crawl at a time, the next one covering every
 * write since).
 */
export function startLake(deps: {
  s3: S3Client;
  bucket: string;
  warehouse: Warehouse;
  logger: Logger;
  coalesce?: Coalesce;
}): {
  lines: LineTap;
  idle(): Promise<void>;
} {
  const store = { s3: deps.s3, bucket: deps.bucket };
  const serial = lakeWrites();
  let crawled: Promise<unknown> = Promise.resolve();
  const onWritten = () => {
    crawled = crawlAfterWrite(deps.s3, deps.bucket, [INVOICE_LINES_PREFIX], deps.logger).catch(
      () => undefined,
    );
  };
  const stage = createLakeStage({
    store,
    loaded: () => loadedSourceObjects(deps.warehouse),
    readLines: (object, collector) => typeObjectInto(deps.s3, deps.bucket, object, collector),
    logger: deps.logger,
    serial,
    onWritten,
  });
  const lines = createLakeSink({
    store,
    logger: deps.logger,
    serial,
    onFailure: () => stage.nudge(),
    onWritten,
    background: true,
    coalesce: deps.coalesce ?? LAKE_COALESCE,
  });
  stage.nudge();
  return {
    lines,
    async idle() {
      await lines.idle();
      await stage.idle();
      await crawled;
    },
  };
}
