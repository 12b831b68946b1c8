import type { Warehouse } from '#adapters/warehouse';
import type { SourceFormat } from '../../sql.ts';
import { factIsEmpty, postgresBulk } from './postgres-bulk.ts';
import { postgresDirect } from './postgres-direct.ts';
import { postgresMerge } from './postgres-merge.ts';
import type { BatchWay } from './postgres-merge-batch.ts';
import { postgresMergeBatch } from './postgres-merge-batch.ts';
import { redshiftS3 } from './redshift-s3.ts';
import type { LoadWay } from './way.ts';

export { FactFilledError } from './postgres-bulk.ts';
export type { BatchWay } from './postgres-merge-batch.ts';
export type { LoadJob, LoadWay, WayName } from './way.ts';
export { postgresBulk, postgresDirect, postgresMerge, postgresMergeBatch, redshiftS3 };

interface Situation {
  format: SourceFormat;
  /** A load the way straight into the fact met a key already there: merge instead. */
  mergeOnly: boolean;
}

/** Per way the warehouse's COPY reads its rows, how an object is loaded. */
const PICK: Record<Warehouse['copySource'], (warehouse: Warehouse, s: Situation) => Promise<LoadWay>> = {
  // Redshift: COPY reads S3 objects and the warehouse enforces no key: always staged, then merged.
  s3: async () => redshiftS3,
  // PostgreSQL: archive objects merge (they lend lineage to keys already there); a CSV goes straight
  // into the fact, the bulk way when it is empty (checked again under its lock).
  stream: async (warehouse, { format, mergeOnly }) => {
    if (format === 'ndjson' || mergeOnly) return postgresMerge;
    return (await factIsEmpty(warehouse)) ? postgresBulk : postgresDirect;
  },
};

export function pickWay(warehouse: Warehouse, situation: Situation): Promise<LoadWay> {
  return PICK[warehouse.copySource](warehouse, situation);
}

/**
 * The way that loads several archive objects in one transaction, where the warehouse has one:
 * PostgreSQL. Redshift's batch is submitted whole and its COPY reads S3, so a batch there would
 * need the object of every row staged with it; it loads one object per transaction.
 */
export function batchWayOf(warehouse: Pick<Warehouse, 'copySource'>): BatchWay | undefined {
  return warehouse.copySource === 'stream' ? postgresMergeBatch : undefined;
}
