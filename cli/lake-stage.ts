import type { S3Client } from '@aws-sdk/client-s3';
import type { Logger } from '#adapters/logger';
import type { Warehouse } from '#adapters/warehouse';
import { typeObjectInto } from '#batch/typed-object';
import { createLakeStage } from '#lake/invoice-lines-stage';
import { loadedSourceObjects } from '#lake/lake-manifest';

/** The lake's invoice lines stage over the pipeline's bucket and warehouse (docs/lake.md). */
export function startLakeStage(deps: { s3: S3Client; bucket: string; warehouse: Warehouse; logger: Logger }) {
  return createLakeStage({
    store: { s3: deps.s3, bucket: deps.bucket },
    loaded: () => loadedSourceObjects(deps.warehouse),
    readLines: (object, collector) => typeObjectInto(deps.s3, deps.bucket, object, collector),
    logger: deps.logger,
  });
}
