import type { CopyStep, Step } from '#adapters/warehouse';
import { CsvRowEncoder } from '../../encoders.ts';
import { createTypedSql, markNewSql, REJECTED_COLUMNS, TYPED_TABLE } from '../../sql.ts';
import { stillClaimed, unlessClaimedStep } from '../manifest.ts';
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

/** Where a batch COPYs its rejected rows, to move them on only while it holds its claim. */
const REJECTED_STAGE = 'load_rejected_stage';

/**
 * The rejected rows staged beside the typed ones, COPYed into a temporary table and moved into
 * load_rejected_row only while the batch holds its claim (a COPY cannot be conditioned; Redshift
 * enforces no primary key, so a second copy of them would stay); none when there are none.
 */
async function stagedRejects(job: LoadJob, rows: TypedRows): Promise<Step[]> {
  if (rows.lines.rejects.count === 0) return [];
  const uri = await job.stage(
    `${STAGING_PREFIX}${job.loadId}.rejected.csv.gz`,
    await rows.lines.rejects.readable(),
  );
  const columns = REJECTED_COLUMNS.join(', ');
  const held = stillClaimed(job.objectKey, job.etag, 1);
  return [
    { sql: `CREATE TEMP TABLE ${REJECTED_STAGE} (LIKE ${REJECTED_TABLE})` },
    s3Copy(REJECTED_STAGE, REJECTED_COLUMNS, uri),
    {
      sql: `INSERT INTO ${REJECTED_TABLE} (${columns}) SELECT ${columns} FROM ${REJECTED_STAGE} WHERE ${held.sql}`,
      params: held.params,
    },
    { sql: `DROP TABLE ${REJECTED_STAGE}` },
  ];
}

/**
 * Redshift: COPY FROM S3 reads objects, not streams, so the typed rows (CSV) and the rejected ones
 * are staged under staging/ first; then one batch, the merge way (Redshift enforces no keys). A
 * batch is submitted whole: nothing in it may be decided half-way (no deferred steps), and it runs
 * to its end even when its claim matched nothing (another loader has the object). So every write
 * checks the claim: the typed rows are deleted unless it holds (every dimension and fact statement
 * reads them), the rejected rows and the manifest row check it themselves. The adapter then reports
 * the batch not committed (the claim's `requireRows`).
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
      unlessClaimedStep(TYPED_TABLE, job.objectKey, job.etag),
      { sql: markNewSql() },
      ...mergeClosing(job, rows, await stagedRejects(job, rows)),
    ]);
    return result.committed;
  },
};
