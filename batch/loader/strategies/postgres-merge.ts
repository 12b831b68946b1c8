import { PgBinaryEncoder } from '../../encoders.ts';
import { createTypedSql, markNewSql, TYPED_TABLE } from '../../sql.ts';
import { afterStaging, mergeClosing, openingSteps, streamCopy, streamedRejects } from './steps.ts';
import type { LoadWay } from './way.ts';

/**
 * PostgreSQL, every archive object and a CSV whose keys are partly loaded: binary COPY into the
 * temporary load_typed, mark which keys are new (a CSV's loaded keys are deleted instead: only
 * archive lines lend lineage), then insert the new ones.
 */
export const postgresMerge: LoadWay = {
  intoFact: false,
  name: 'postgres-merge',
  encoder: () => new PgBinaryEncoder('typed'),
  async load(job, rows) {
    const result = await job.warehouse.transaction([
      ...openingSteps(job),
      { sql: createTypedSql() },
      streamCopy(TYPED_TABLE, rows.columns, 'binary', rows.rows),
      // The planner knows nothing of a fresh temp table; without statistics it picks nested loops.
      { sql: `ANALYZE ${TYPED_TABLE}` },
      { sql: markNewSql(job.format === 'csv') },
      afterStaging(job, async () => mergeClosing(job, rows, await streamedRejects(rows))),
    ]);
    return result.committed;
  },
};
