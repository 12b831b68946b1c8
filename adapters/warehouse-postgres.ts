import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { Logger } from './logger.ts';
import { lowerLocalPostgresPriority } from './priority.ts';
import {
  type CopyStep,
  ident,
  isCopyStep,
  isDeferredStep,
  type StatementResult,
  type Step,
  type TransactionQuery,
  type TransactionResult,
  type Warehouse,
  WarehouseError,
} from './warehouse.ts';

export interface PostgresWarehouseOptions {
  connectionString: string;
  /** Pool size; the loader needs one connection per file in flight plus one for queries. */
  max?: number;
  logger?: Logger;
  /**
   * Sessions for background work (the mart rebuilds under npm start): each connection runs without
   * parallel workers, and its server process at background priority where the server is on this
   * machine (the embedded warehouse; adapters/priority.ts). The loads the warehouse lag waits for,
   * the API and the stream path's emulators then go first on a shared machine.
   */
  background?: boolean;
}

/** What a background session sets first: its work stays in its own (lowered) server process. */
const BACKGROUND_SESSION_SQL = 'SET max_parallel_workers_per_gather = 0';

/** COPY FROM STDIN options per format; `lines` uses control characters no JSON text contains. */
export function postgresCopySql(step: CopyStep): string {
  const cols = step.columns.map(ident).join(', ');
  const options =
    step.format === 'binary'
      ? `FORMAT binary${step.freeze ? ', FREEZE' : ''}`
      : step.format === 'csv'
        ? `FORMAT csv, ENCODING '${step.encoding}'`
        : `FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01', ENCODING '${step.encoding}'`;
  return `COPY ${ident(step.table)} (${cols}) FROM STDIN WITH (${options})`;
}

function wrap(err: unknown, sql: string): WarehouseError {
  if (err instanceof WarehouseError) return err;
  const e = err as { message?: string; code?: string };
  return new WarehouseError(
    e.message ?? String(err),
    { ...(e.code ? { code: e.code } : {}), statement: sql },
    { cause: err },
  );
}

/**
 * Each new connection of `pool` becomes a background session: no parallel workers, its server
 * process lowered where it is a local postgres process. The work is the same either way, so a
 * session that stays a foreground one is said, not refused.
 */
function backgroundSessions(pool: pg.Pool, logger?: Logger): void {
  pool.on('connect', (client) => {
    // Queued before any query of the session's first user.
    client
      .query(BACKGROUND_SESSION_SQL)
      .catch((err: Error) =>
        logger?.warn({ reason: err.message }, 'background warehouse session may use parallel workers'),
      );
    const pid = (client as pg.PoolClient & { processID?: number }).processID ?? 0;
    if (!lowerLocalPostgresPriority(client.host, pid))
      logger?.warn(
        { pid, host: client.host },
        'background warehouse session left at its priority (not a local postgres process, or not allowed)',
      );
  });
}

/** The warehouse port on PostgreSQL: a pg Pool, COPY FROM STDIN through pg-copy-streams. */
export function createPostgresWarehouse(options: PostgresWarehouseOptions): Warehouse {
  const pool = new pg.Pool({ connectionString: options.connectionString, max: options.max ?? 4 });
  // An idle client losing its server (postgres stopping) must not crash the process.
  // (pg hangs the whole client object on the error: log only what says why.)
  pool.on('error', (err: Error & { code?: string }) =>
    options.logger?.warn({ code: err.code, reason: err.message }, 'idle warehouse connection failed'),
  );
  if (options.background) backgroundSessions(pool, options.logger);

  return {
    dialect: 'postgres',
    copySource: 'stream',
    async query<R>(sql: string, params: ReadonlyArray<unknown> = []): Promise<StatementResult<R>> {
      try {
        const res = await pool.query(sql, params as unknown[]);
        return { rows: res.rows as R[], rowCount: res.rowCount ?? 0 };
      } catch (err) {
        throw wrap(err, sql);
      }
    },
    async transaction(steps: ReadonlyArray<Step>): Promise<TransactionResult> {
      const client = await pool.connect();
      let broken = false;
      // pg-pool listens for errors only on idle clients: a server that dies while this one is checked
      // out would emit an unhandled 'error' and take the process down. The failing query rejects anyway.
      const onError = (err: Error & { code?: string }) => {
        broken = true;
        options.logger?.warn(
          { code: err.code, reason: err.message },
          'warehouse connection lost during a transaction',
        );
      };
      client.on('error', onError);
      try {
        await client.query('BEGIN');
        const rowCounts: number[] = [];
        const tx: TransactionQuery = {
          async query<R>(sql: string, params: ReadonlyArray<unknown> = []) {
            try {
              const res = await client.query(sql, params as unknown[]);
              return { rows: res.rows as R[], rowCount: res.rowCount ?? 0 };
            } catch (err) {
              throw wrap(err, sql);
            }
          },
        };
        /** Runs steps in order; false when a `requireRows` step found nothing (rolled back). */
        const run = async (list: ReadonlyArray<Step>): Promise<boolean> => {
          for (const step of list) {
            const t0 = performance.now();
            if (isDeferredStep(step)) {
              if (!(await run(await step.build(tx)))) return false;
              continue;
            }
            if (isCopyStep(step)) {
              if (!step.stream)
                throw new WarehouseError(`COPY into ${step.table} needs a stream on PostgreSQL`);
              const sql = postgresCopySql(step);
              const sink = client.query(copyFrom(sql));
              try {
                await pipeline(step.stream(), sink);
              } catch (err) {
                throw wrap(err, sql);
              }
              rowCounts.push(Number(sink.rowCount ?? 0));
              options.logger?.debug({ ms: Math.round(performance.now() - t0), sql }, 'warehouse step');
              continue;
            }
            let count: number;
            try {
              count = (await client.query(step.sql, (step.params ?? []) as unknown[])).rowCount ?? 0;
            } catch (err) {
              throw wrap(err, step.sql);
            }
            rowCounts.push(count);
            options.logger?.debug(
              { ms: Math.round(performance.now() - t0), sql: step.sql.slice(0, 80) },
              'warehouse step',
            );
            if (step.requireRows && count === 0) return false;
          }
          return true;
        };
        if (!(await run(steps))) {
          await client.query('ROLLBACK');
          return { committed: false, rowCounts };
        }
        await client.query('COMMIT');
        return { committed: true, rowCounts };
      } catch (err) {
        try {
          await client.query('ROLLBACK');
        } catch {
          broken = true;
        }
        throw err;
      } finally {
        // A client whose COPY was cut mid-stream may be in an unknown protocol state: discard it.
        client.off('error', onError);
        client.release(broken);
      }
    },
    async close() {
      await pool.end();
    },
  };
}
