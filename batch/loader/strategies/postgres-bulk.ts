import type { TransactionQuery } from '#adapters/warehouse';
import { PgBinaryEncoder } from '../../encoders.ts';
import { BatchError } from '../../errors.ts';
import { BULK_AFTER, bulkBefore, FACT_HAS_ROWS_SQL } from '../../sql.ts';
import { FACT_TABLE } from './postgres-direct.ts';
import { afterStaging, directClosing, openingSteps, streamCopy, streamedRejects } from './steps.ts';
import type { LoadWay } from './way.ts';

/** The fact filled between the look that chose the bulk way and its lock: the loader picks again. */
export class FactFilledError extends BatchError {
  override name = 'FactFilledError';
}

export async function factIsEmpty(db: TransactionQuery): Promise<boolean> {
  return (await db.query(FACT_HAS_ROWS_SQL)).rows.length === 0;
}

/**
 * PostgreSQL, a CSV into an empty fact (a fresh warehouse's first load): under an exclusive lock,
 * with the fact confirmed empty, TRUNCATE it and drop its key so COPY FREEZE writes the rows
 * without WAL, then build the key once (see `bulkBefore`). The stamp comes from column defaults.
 */
export const postgresBulk: LoadWay = {
  intoFact: true,
  name: 'postgres-bulk',
  encoder: () => new PgBinaryEncoder('bulk'),
  async load(job, rows) {
    const result = await job.warehouse.transaction([
      ...openingSteps(job),
      {
        kind: 'defer',
        async build(tx) {
          await tx.query(`LOCK TABLE ${FACT_TABLE} IN ACCESS EXCLUSIVE MODE`);
          if (!(await factIsEmpty(tx)))
            throw new FactFilledError('the fact table filled while this load waited for it');
          return [
            ...bulkBefore(job.source, job.objectKey, Date.now()).map((sql) => ({ sql })),
            streamCopy(FACT_TABLE, rows.columns, 'binary', rows.rows, true),
            ...BULK_AFTER.map((sql) => ({ sql })),
          ];
        },
      },
      afterStaging(job, async () => directClosing(job, rows, await streamedRejects(rows))),
    ]);
    return result.committed;
  },
};
