import type { Readable } from 'node:stream';
import type { Warehouse } from '#adapters/warehouse';
import type { LoadPlan } from '../../sql.ts';
import type { RowEncoder } from '../../typer.ts';
import type { TypedRows } from '../rows.ts';

/**
 * One way of writing an object's typed rows into the star, in one transaction. The loader picks
 * the way (./index.ts), types the rows with the way's encoder, and hands them over.
 */
export interface LoadWay {
  readonly name: WayName;
  /**
   * Rows go straight into the fact, whose key refuses one already loaded (23505): the object is then
   * loaded again the merge way.
   */
  readonly intoFact: boolean;
  /** How this way wants the rows encoded for its COPY. */
  encoder(job: LoadJob): RowEncoder;
  /** Loads the rows in one transaction. False: another loader has the object (nothing written). */
  load(job: LoadJob, rows: TypedRows): Promise<boolean>;
}

export type WayName = 'postgres-direct' | 'postgres-bulk' | 'postgres-merge' | 'redshift-s3';

/** What a way knows of the object it loads and the services it writes to. */
export interface LoadJob extends LoadPlan {
  etag: string;
  /** The manifest status the object had (`staged`: an older loader left a staging table). */
  status: string;
  warehouse: Warehouse;
  /** Writes `body` gzipped where the warehouse's COPY can read it (COPY FROM S3); answers its URI. */
  stage(key: string, body: Readable): Promise<string>;
  /**
   * To be called once the rows are staged (COPYed into the transaction, or uploaded), before the
   * dimensions, facts and manifest: the loader times the load there and runs its `afterStage` hook.
   */
  staged(): Promise<void>;
}
