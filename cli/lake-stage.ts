import type { S3Client } from '@aws-sdk/client-s3';
import type { Logger } from '#adapters/logger';
import type { Warehouse } from '#adapters/warehouse';
import type { LineTap } from '#batch/loader/index';
import { typeObjectInto } from '#batch/typed-object';
import { createLakeSink } from '#lake/invoice-lines-sink';
import { createLakeStage, lakeWrites } from '#lake/invoice-lines-stage';
import { loadedSourceObjects } from '#lake/lake-manifest';

/**
 * The lake's invoice lines for a process that loads (docs/lake.md): the loader's line tap, and the
 * catch-up stage for what the tap could not write (or was loaded before the lake), nudged once at
 * start and after a failed write; both write through one queue.
 */
export function startLake(deps: { s3: S3Client; bucket: string; warehouse: Warehouse; logger: Logger }): {
  lines: LineTap;
  idle(): Promise<void>;
} {
  const store = { s3: deps.s3, bucket: deps.bucket };
  const serial = lakeWrites();
  const stage = createLakeStage({
    store,
    loaded: () => loadedSourceObjects(deps.warehouse),
    readLines: (object, collector) => typeObjectInto(deps.s3, deps.bucket, object, collector),
    logger: deps.logger,
    serial,
  });
  const lines = createLakeSink({
    store,
    logger: deps.logger,
    serial,
    onFailure: () => stage.nudge(),
    background: true,
  });
  stage.nudge();
  return {
    lines,
    async idle() {
      await lines.idle();
      await stage.idle();
    },
  };
}
