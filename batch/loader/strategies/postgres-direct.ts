import { PgBinaryEncoder } from '../../encoders.ts';
import { afterStaging, directClosing, openingSteps, streamCopy, streamedRejects } from './steps.ts';
import type { LoadWay } from './way.ts';

export const FACT_TABLE = 'fact_sales_line';

/**
 * PostgreSQL, a CSV into a fact that has rows: binary COPY straight into fact_sales_line, each row
 * carrying its stamp (the visible time is the loader's clock as the load starts). The primary key
 * refuses a key already there (23505): the loader then loads the object again the merge way.
 */
export const postgresDirect: LoadWay = {
  intoFact: true,
  name: 'postgres-direct',
  encoder: (job) =>
    new PgBinaryEncoder('fact', { visibleAtMs: Date.now(), source: job.source, sourceKey: job.objectKey }),
  async load(job, rows) {
    const result = await job.warehouse.transaction([
      ...openingSteps(job),
      streamCopy(FACT_TABLE, rows.columns, 'binary', rows.rows),
      afterStaging(job, async () => directClosing(job, rows, await streamedRejects(rows))),
    ]);
    return result.committed;
  },
};
