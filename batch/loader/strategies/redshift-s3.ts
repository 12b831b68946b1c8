import type { CopyStep, Step } from '#adapters/warehouse';
import { CsvRowEncoder } from '../../encoders.ts';
import { createTypedSql, markNewSql, REJECTED_COLUMNS, TYPED_TABLE } from '../../sql.ts';
import { STAGING_PREFIX } from '../objects.ts';
import type { TypedRows } from '../rows.ts';
import { mergeClosing, openingSteps, REJECTED_TABLE } from './steps.ts';
import type { LoadJob, LoadWay } from './way.ts';

function s3Copy(table: string, columns: ReadonlyArray<string>, uri: string): CopyStep {
  return {
    kind: 'copy',
    table,
    columns,
    format: 'csv',
    encoding: 'UTF8',
    s3: { uri, gzip: true, skipHeader: false },
  };
}

/** The rejected rows staged beside the typed ones, and their COPY; none when there are none. */
async function stagedRejects(job: LoadJob, rows: TypedRows): Promise<Step[]> {
  if (rows.lines.rejects.count === 0) return [];
  const uri = await job.stage(
    `${STAGING_PREFIX}${job.loadId}.rejected.csv.gz`,
    await rows.lines.rejects.readable(),
  );
  return [s3Copy(REJECTED_TABLE, REJECTED_COLUMNS, uri)];
}

/**
 * Redshift: COPY FROM S3 reads objects, not streams, so the typed rows (CSV) and the rejected ones
 * are staged under staging/ first; then one batch, the merge way (Redshift enforces no keys). A
 * batch is submitted whole: nothing in it may be decided half-way (no deferred steps).
 */
export const redshiftS3: LoadWay = {
  intoFact: false,
  name: 'redshift-s3',
  encoder: () => new CsvRowEncoder(),
  async load(job, rows) {
    const typed = await job.stage(`${STAGING_PREFIX}${job.loadId}.csv.gz`, rows.rows);
    await job.staged();
    const result = await job.warehouse.transaction([
      ...openingSteps(job),
      { sql: createTypedSql() },
      s3Copy(TYPED_TABLE, rows.columns, typed),
      { sql: markNewSql() },
      ...mergeClosing(job, rows, await stagedRejects(job, rows)),
    ]);
    return result.committed;
  },
};
