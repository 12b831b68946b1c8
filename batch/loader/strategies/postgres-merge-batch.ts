import type { Step } from '#adapters/warehouse';
import { PgBinaryEncoder } from '../../encoders.ts';
import {
  BATCH_TYPED_SQL,
  batchObjectSql,
  createTypedSql,
  DROP_BATCH_REPEATS_SQL,
  markNewSql,
  NEW_ROWS_PER_OBJECT_SQL,
  TYPED_TABLE,
} from '../../sql.ts';
import type { RowEncoder } from '../../typer.ts';
import type { TypedRows } from '../rows.ts';
import {
  afterStaging,
  batchLoadedStep,
  MERGE_DROPS,
  mergeSteps,
  openingSteps,
  streamCopy,
  streamedRejects,
} from './steps.ts';
import type { LoadJob } from './way.ts';

/** A way that loads several objects in one transaction. */
export interface BatchWay {
  readonly name: 'postgres-merge-batch';
  encoder(): RowEncoder;
  /**
   * Loads the objects in one transaction, opening each (its typed rows, with this way's encoder)
   * when its COPY comes. False: another loader has one of them (nothing written).
   */
  load(jobs: readonly LoadJob[], open: (job: LoadJob) => Promise<TypedRows>): Promise<boolean>;
}

/**
 * PostgreSQL, archive objects waiting together (the loader fell behind Firehose): every object's
 * claim, its rows COPYed into one load_typed tagged with their object, then one merge (the fixed
 * cost of a load: dimensions, fact INSERT, duplicates, paid once), every object's manifest row,
 * and one commit. As if the objects had loaded one after the other, in key order: a key in two of
 * them is the first one's. Redshift keeps one object per transaction (redshift-s3.ts).
 */
export const postgresMergeBatch: BatchWay = {
  name: 'postgres-merge-batch',
  encoder: () => new PgBinaryEncoder('typed'),
  async load(jobs, open) {
    const first = jobs[0];
    if (!first) return true;
    const typed: TypedRows[] = [];
    const copies = jobs.map(
      (job, i): Step => ({
        kind: 'defer',
        async build() {
          const rows = await open(job);
          typed[i] = rows;
          return [
            { sql: batchObjectSql(i, job.objectKey) },
            streamCopy(TYPED_TABLE, rows.columns, 'binary', rows.rows),
            afterStaging(job, async () => []),
          ];
        },
      }),
    );
    const rowsOf = (i: number): TypedRows => {
      const rows = typed[i];
      if (!rows) throw new Error(`object ${i} of the batch was not staged`);
      return rows;
    };
    const result = await first.warehouse.transaction([
      ...jobs.flatMap(openingSteps),
      { sql: createTypedSql() },
      { sql: BATCH_TYPED_SQL },
      ...copies,
      { sql: `ANALYZE ${TYPED_TABLE}` },
      { sql: markNewSql() },
      ...(jobs.length > 1 ? [{ sql: DROP_BATCH_REPEATS_SQL }] : []),
      {
        kind: 'defer',
        async build() {
          return (await Promise.all(jobs.map((_, i) => streamedRejects(rowsOf(i))))).flat();
        },
      },
      ...mergeSteps(first, true),
      {
        kind: 'defer',
        async build(tx) {
          const { rows } = await tx.query<{ obj: number; n: string }>(NEW_ROWS_PER_OBJECT_SQL);
          const fresh = new Map(rows.map((r) => [Number(r.obj), Number(r.n)]));
          return jobs.map((job, i) => batchLoadedStep(job, rowsOf(i), fresh.get(i) ?? 0));
        },
      },
      ...MERGE_DROPS,
    ]);
    return result.committed;
  },
};
