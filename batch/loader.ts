import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { Logger } from '#adapters/logger';
import {
  type CopyStep,
  type Statement,
  type Step,
  type Warehouse,
  WarehouseError,
} from '#adapters/warehouse';
import type { ColumnMap } from '#core/source-row';
import { CsvTyper } from './csv-typer.ts';
import { CsvRowEncoder, PgBinaryEncoder } from './encoders.ts';
import { checkHeader, decompressed, EmptyFileError, readCsvHead } from './source-stream.ts';
import {
  BULK_AFTER,
  bulkBefore,
  COUNTS_COLUMNS,
  COUNTS_TABLE,
  CSV_FIELDS,
  claimStep,
  countNewRowsSql,
  createCountsSql,
  createTypedSql,
  dialectOf,
  dimensionSteps,
  duplicateFixStep,
  type LoadCounts,
  type LoadPlan,
  legacyStagingTable,
  loadedStep,
  markNewSql,
  mergeFactSteps,
  REJECTED_COLUMNS,
  type SourceFormat,
  TYPED_TABLE,
} from './sql.ts';
import { csvCell, LineTyper, NdjsonTyper, NotUtf8Error, type RowEncoder } from './typer.ts';

export const ARCHIVE_PREFIX = 'archive/';
export const LANDING_PREFIX = 'landing/';
export const QUARANTINE_PREFIX = 'quarantine/';
/** Where the Redshift path puts the prepared copy of a CSV for COPY FROM S3. */
export const STAGING_PREFIX = 'staging/';

export type LoadStatus = 'loaded' | 'quarantined' | 'failed' | 'skipped';

export interface LoadResult {
  key: string;
  etag: string;
  status: LoadStatus;
  /** Why it was skipped / failed / quarantined. */
  detail?: string;
  rowsRead?: number;
  rowsLoaded?: number;
  rowsNew?: number;
  rowsRejected?: number;
  extraColumns?: string[];
  ms: number;
}

export interface LoaderHooks {
  /**
   * Called inside the load's transaction once its rows are COPYed, before the dimensions, facts
   * (merge way) and manifest: a test makes the loader die here, between staging and MERGE.
   */
  afterStage?: (key: string) => Promise<void>;
  /** Called after each object that loaded (e.g. to refresh marts); errors are logged, not thrown. */
  afterLoad?: (result: LoadResult) => void | Promise<void>;
}

export interface LoaderOptions {
  s3: S3Client;
  bucket: string;
  warehouse: Warehouse;
  logger: Logger;
  prefixes?: string[];
  /** A failed object is retried by every sweep (and on notify) until it has made this many attempts. */
  maxAttempts?: number;
  /**
   * After `maxAttempts`, a failed object is retried by a sweep once it has rested `baseMs * 2^(attempts -
   * maxAttempts)` since its last attempt, at most `maxMs` (default 30 s doubling, capped at 10 min), so an
   * outage longer than the fast retries heals by itself.
   */
  coolDown?: { baseMs?: number; maxMs?: number };
  hooks?: LoaderHooks;
}

export interface Loader {
  sweep(): Promise<LoadResult[]>;
  /** Loads one object now (or reports why not). */
  loadKey(key: string): Promise<LoadResult>;
  /** An object was created: load it soon (S3 event notification). */
  notify(key: string): void;
  start(intervalSeconds: number): void;
  stop(): Promise<void>;
}

export class QuarantineError extends Error {
  override name = 'QuarantineError';
}

class FactFilledError extends Error {
  override name = 'FactFilledError';
}

interface ManifestRow extends RetryState {
  object_key: string;
  etag: string;
  header: string | null;
  rows_read: string | null;
  rows_loaded: string | null;
  rows_new: string | null;
  rows_rejected: string | null;
  extra_columns: string | null;
  error: string | null;
}

const TERMINAL = new Set(['loaded', 'quarantined']);

interface RetryState {
  status: string;
  attempts: number;
  /** Milliseconds since the last attempt finished, by the warehouse's clock (NULL: never finished). */
  rested_ms: string | number | null;
}

/** The manifest columns `RetryState` needs; `rested_ms` measured by the warehouse clock, one clock for all loaders. */
const retryColumns = (now: string) => `status, attempts,
  CAST(EXTRACT(EPOCH FROM (${now} - finished_at)) * 1000 AS bigint) AS rested_ms`;

/** How long an object that used up its fast retries rests before the next one. */
export function coolDownMs(attempts: number, maxAttempts: number, baseMs: number, maxMs: number): number {
  const over = Math.max(0, attempts - maxAttempts);
  // 2^over overflows nothing below 2^53: cap the exponent, the cap on the result does the rest.
  return Math.min(maxMs, baseMs * 2 ** Math.min(over, 40));
}

export function formatOf(key: string): { format: SourceFormat; source: 'stream' | 'file' } | undefined {
  if (key.endsWith('/')) return undefined;
  if (key.startsWith(ARCHIVE_PREFIX)) return { format: 'ndjson', source: 'stream' };
  if (key.startsWith(LANDING_PREFIX)) return { format: 'csv', source: 'file' };
  return undefined;
}

/** The error or the first of its causes that matches. */
function findCause(err: unknown, test: (e: unknown) => boolean): unknown {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++)
    if (test(e)) return e;
  return undefined;
}
const causedBy = (err: unknown, test: (e: unknown) => boolean) => findCause(err, test) !== undefined;

function zlibError(err: unknown): Error | undefined {
  return findCause(err, (e) => {
    const code = (e as { code?: unknown }).code;
    return typeof code === 'string' && code.startsWith('Z_');
  }) as Error | undefined;
}
const isCorruptCompression = (err: unknown) => zlibError(err) !== undefined;
const zlibMessage = (err: unknown) => zlibError(err)?.message ?? '';

export function loadIdOf(key: string, etag: string): string {
  return createHash('sha256').update(`${key}\n${etag}`).digest('hex').slice(0, 16);
}

const unquote = (etag: string) => etag.replace(/^"|"$/g, '');

/**
 * The batch loader: finds objects under archive/ and landing/, and loads each into the star schema
 * in one transaction (rows typed on their way into COPY, then dimensions and manifest), tracked by
 * load_manifest.
 */
export function createLoader(options: LoaderOptions): Loader {
  const { s3, bucket, warehouse, logger } = options;
  const prefixes = options.prefixes ?? [ARCHIVE_PREFIX, LANDING_PREFIX];
  const maxAttempts = options.maxAttempts ?? 5;
  const coolBaseMs = options.coolDown?.baseMs ?? 30_000;
  const coolMaxMs = options.coolDown?.maxMs ?? 600_000;
  const now = dialectOf(warehouse.dialect).now;

  /** Why a failed object is not retried now, or undefined when it may be. */
  function restingReason(m: RetryState): string | undefined {
    if (m.status !== 'failed' || m.attempts < maxAttempts) return undefined;
    const wait = coolDownMs(m.attempts, maxAttempts, coolBaseMs, coolMaxMs);
    const rested = m.rested_ms === null ? Number.POSITIVE_INFINITY : Number(m.rested_ms);
    if (rested >= wait) return undefined;
    return `failed ${m.attempts} times, next retry in ${Math.ceil((wait - rested) / 1000)} s`;
  }

  // One object at a time: a load is CPU- and I/O-bound in the database, parallel loads only contend.
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = chain.then(fn, fn);
    chain = next.catch(() => undefined);
    return next;
  };

  async function manifestRow(key: string, etag: string): Promise<ManifestRow | undefined> {
    const { rows } = await warehouse.query<ManifestRow>(
      `SELECT object_key, etag, ${retryColumns(now)}, header, rows_read, rows_loaded, rows_new, rows_rejected,
         extra_columns, error FROM load_manifest WHERE object_key = $1 AND etag = $2`,
      [key, etag],
    );
    return rows[0];
  }

  async function register(key: string, etag: string, size: number | undefined): Promise<void> {
    const kind = formatOf(key);
    if (!kind) return;
    try {
      await warehouse.query(
        `INSERT INTO load_manifest (object_key, etag, load_id, source, format, status, attempts, size_bytes, discovered_at)
         SELECT CAST($1 AS varchar(1024)), CAST($2 AS varchar(128)), CAST($3 AS varchar(32)), CAST($4 AS varchar(6)),
           CAST($5 AS varchar(8)), 'pending', 0, CAST($6 AS bigint), ${now}
         WHERE NOT EXISTS (SELECT 1 FROM load_manifest WHERE object_key = $1 AND etag = $2)`,
        [key, etag, loadIdOf(key, etag), kind.source, kind.format, size ?? null],
      );
    } catch (err) {
      // Two loaders registering the same object at once: the other insert won, which is fine.
      if (!(err instanceof WarehouseError && err.details.code === '23505')) throw err;
    }
  }

  function result(
    key: string,
    etag: string,
    status: LoadStatus,
    started: number,
    row?: ManifestRow,
    detail?: string,
  ) {
    const n = (v: string | null | undefined) => (v === null || v === undefined ? undefined : Number(v));
    const out: LoadResult = { key, etag, status, ms: Math.round(performance.now() - started) };
    const text = detail ?? row?.error ?? undefined;
    if (text) out.detail = text;
    const counts = {
      rowsRead: n(row?.rows_read),
      rowsLoaded: n(row?.rows_loaded),
      rowsNew: n(row?.rows_new),
      rowsRejected: n(row?.rows_rejected),
    };
    for (const [k, v] of Object.entries(counts))
      if (v !== undefined) (out as unknown as Record<string, number>)[k] = v;
    if (row?.extra_columns) out.extraColumns = JSON.parse(row.extra_columns) as string[];
    return out;
  }

  async function openObject(key: string, etag: string): Promise<Readable & { gzip?: boolean }> {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, IfMatch: `"${etag}"` }));
    return decompressed(out.Body as Readable);
  }

  async function quarantine(key: string, etag: string, reason: Record<string, unknown>): Promise<void> {
    const target = `${QUARANTINE_PREFIX}${key}`;
    await s3.send(
      new CopyObjectCommand({
        Bucket: bucket,
        Key: target,
        CopySource: `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`,
      }),
    );
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: `${target}.reason.json`,
        Body: `${JSON.stringify({ key, etag, quarantinedAt: new Date().toISOString(), ...reason }, null, 2)}\n`,
        ContentType: 'application/json',
      }),
    );
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    await warehouse.query(
      `UPDATE load_manifest SET status = 'quarantined', error = $3, finished_at = ${now}, attempts = attempts + 1
       WHERE object_key = $1 AND etag = $2`,
      [key, etag, String(reason.reason).slice(0, 4000)],
    );
  }

  /** The object's rows on their way to the warehouse, typed by `encoder`. */
  interface Prepared {
    lines: LineTyper;
    rows: Readable;
    header: string[] | undefined;
    extra: string[];
    encoding: 'UTF8' | 'LATIN1';
    close(): void;
  }

  async function prepare(
    key: string,
    etag: string,
    format: SourceFormat,
    encoder: RowEncoder,
    encoding?: 'UTF8' | 'LATIN1',
  ): Promise<Prepared> {
    const source = await openObject(key, etag);
    const lines = new LineTyper({ loadId: loadIdOf(key, etag), objectKey: key, encoder });
    if (format === 'ndjson') {
      const rows = source.pipe(new NdjsonTyper(lines));
      source.on('error', (err) => rows.destroy(err));
      return { lines, rows, header: undefined, extra: [], encoding: 'UTF8', close: () => source.destroy() };
    }
    let head: Awaited<ReturnType<typeof readCsvHead>>;
    try {
      head = await readCsvHead(source);
    } catch (err) {
      if (err instanceof EmptyFileError) throw new QuarantineError('the file is empty');
      throw err;
    }
    const check = checkHeader(head.columns);
    if (!check.columnOf) {
      head.body.destroy();
      const problem = check.duplicated?.length
        ? `duplicated columns: ${check.duplicated.join(', ')}`
        : `missing required columns: ${check.missing.join(', ')}`;
      throw new QuarantineError(problem, {
        cause: { missing: check.missing, duplicated: check.duplicated ?? [], header: head.columns },
      });
    }
    const columnOf = check.columnOf;
    const columns = Object.fromEntries(CSV_FIELDS.map((f) => [f, columnOf[f] - 1])) as ColumnMap;
    const enc = encoding ?? head.encoding;
    const rows = head.body.pipe(new CsvTyper(lines, columns, enc === 'UTF8' ? 'utf8' : 'latin1'));
    head.body.on('error', (err) => rows.destroy(err));
    return {
      lines,
      rows,
      header: head.columns,
      extra: check.extra,
      encoding: enc,
      close: () => head.body.destroy(),
    };
  }

  /**
   * `direct` (PostgreSQL, CSV): typed rows COPY straight into the fact; the primary key refuses a
   * key already there (the caller then loads again the `merge` way). `merge`: typed rows COPY into
   * a temporary table; new keys are inserted, archive lines lend lineage to keys that lack it.
   */
  type Mode = 'direct' | 'merge';

  /** Loads the object in one transaction. False when another loader has it. */
  async function loadObject(
    key: string,
    etag: string,
    row: ManifestRow,
    mode: Mode,
    encoding?: 'UTF8' | 'LATIN1',
  ): Promise<boolean> {
    const kind = formatOf(key);
    if (!kind) return false;
    const loadId = loadIdOf(key, etag);
    const plan: LoadPlan = { loadId, objectKey: key, ...kind };
    const started = performance.now();
    let stagedAt = started;
    const pg = warehouse.copySource === 'stream';
    // Checked outside the transaction (no lock taken); confirmed under an exclusive lock inside it.
    const mayBeEmpty =
      mode === 'direct' && (await warehouse.query('SELECT 1 FROM fact_sales_line LIMIT 1')).rows.length === 0;
    const bulk = mode === 'direct' && mayBeEmpty;
    const encoder: RowEncoder = !pg
      ? new CsvRowEncoder()
      : mode === 'merge'
        ? new PgBinaryEncoder('typed')
        : bulk
          ? new PgBinaryEncoder('bulk')
          : new PgBinaryEncoder('fact', { visibleAtMs: Date.now(), source: kind.source, sourceKey: key });
    const p = await prepare(key, etag, kind.format, encoder, encoding);
    const counts = (): LoadCounts => ({
      rowsRead: p.lines.rowsRead,
      rowsLoaded: p.lines.rowsLoaded,
      rowsRejected: p.lines.rejects.count,
      ...(mode === 'direct' ? { rowsNew: p.lines.rowsLoaded } : {}),
      encoding: p.encoding,
      header: p.header ? JSON.stringify(p.header) : null,
      extraColumns: p.extra.length > 0 ? JSON.stringify(p.extra) : null,
    });
    const csvCopy = (table: string, columns: ReadonlyArray<string>, stream: Readable): CopyStep => ({
      kind: 'copy',
      table,
      columns,
      format: 'csv',
      encoding: 'UTF8',
      stream: () => stream,
    });
    const writeSteps = (): Statement[] => [
      ...dimensionSteps(),
      ...(mode === 'merge' ? mergeFactSteps(warehouse.dialect, plan) : []),
      ...(mode === 'merge'
        ? [duplicateFixStep()]
        : p.lines.reopened.size > 0
          ? [duplicateFixStep([...p.lines.reopened])]
          : []),
      loadedStep(warehouse.dialect, key, etag, counts()),
      { sql: `DROP TABLE ${COUNTS_TABLE}` },
      ...(mode === 'merge' ? [{ sql: `DROP TABLE ${TYPED_TABLE}` }] : []),
    ];
    const head: Step[] = [
      claimStep(warehouse.dialect, key, etag),
      ...(row.status === 'staged' ? [{ sql: `DROP TABLE IF EXISTS ${legacyStagingTable(loadId)}` }] : []),
    ];
    try {
      if (pg) {
        const steps: Step[] = [...head];
        if (mode === 'direct') {
          const factCopy = (columns: ReadonlyArray<string>, freeze: boolean): CopyStep => ({
            kind: 'copy',
            table: 'fact_sales_line',
            columns,
            format: 'binary',
            encoding: 'UTF8',
            freeze,
            stream: () => p.rows,
          });
          steps.push({
            kind: 'defer',
            async build(tx) {
              if (!bulk) return [factCopy(encoder.columns, false)];
              await tx.query('LOCK TABLE fact_sales_line IN ACCESS EXCLUSIVE MODE');
              if ((await tx.query('SELECT 1 FROM fact_sales_line LIMIT 1')).rows.length > 0)
                throw new FactFilledError('the fact table filled while this load waited for it');
              return [
                ...bulkBefore(kind.source, key, Date.now()).map((sql) => ({ sql })),
                factCopy(encoder.columns, true),
                ...BULK_AFTER.map((sql) => ({ sql })),
              ];
            },
          });
        } else {
          steps.push(
            { sql: createTypedSql() },
            {
              kind: 'copy',
              table: TYPED_TABLE,
              columns: encoder.columns,
              format: 'binary',
              encoding: 'UTF8',
              stream: () => p.rows,
            },
            // The planner knows nothing of a fresh temp table; without statistics it picks nested loops.
            { sql: `ANALYZE ${TYPED_TABLE}` },
            { sql: markNewSql(kind.format === 'csv') },
          );
        }
        steps.push({
          kind: 'defer',
          async build() {
            stagedAt = performance.now();
            await options.hooks?.afterStage?.(key);
            const out: Step[] = [];
            if (p.lines.rejects.count > 0)
              out.push(csvCopy('load_rejected_row', REJECTED_COLUMNS, await p.lines.rejects.readable()));
            out.push({ sql: createCountsSql() });
            if (mode === 'direct')
              out.push(csvCopy(COUNTS_TABLE, COUNTS_COLUMNS, Readable.from([p.lines.countsCsv()])));
            else out.push({ sql: countNewRowsSql() });
            return [...out, ...writeSteps()];
          },
        });
        const res = await warehouse.transaction(steps);
        if (!res.committed) return false;
      } else {
        // COPY FROM S3 reads objects, not streams: the typed rows (and the rejected ones) go to staging/.
        const typedKey = `${STAGING_PREFIX}${loadId}.csv.gz`;
        await new Upload({
          client: s3,
          params: { Bucket: bucket, Key: typedKey, Body: p.rows.pipe(createGzip({ level: 1 })) },
        }).done();
        stagedAt = performance.now();
        await options.hooks?.afterStage?.(key);
        const s3Copy = (table: string, columns: ReadonlyArray<string>, objectKey: string): CopyStep => ({
          kind: 'copy',
          table,
          columns,
          format: 'csv',
          encoding: 'UTF8',
          s3: { uri: `s3://${bucket}/${objectKey}`, gzip: true, skipHeader: false },
        });
        const steps: Step[] = [
          ...head,
          { sql: createTypedSql() },
          s3Copy(TYPED_TABLE, encoder.columns, typedKey),
          { sql: markNewSql() },
        ];
        if (p.lines.rejects.count > 0) {
          const rejectsKey = `${STAGING_PREFIX}${loadId}.rejected.csv.gz`;
          await new Upload({
            client: s3,
            params: {
              Bucket: bucket,
              Key: rejectsKey,
              Body: (await p.lines.rejects.readable()).pipe(createGzip({ level: 1 })),
            },
          }).done();
          steps.push(s3Copy('load_rejected_row', REJECTED_COLUMNS, rejectsKey));
        }
        steps.push({ sql: createCountsSql() }, { sql: countNewRowsSql() }, ...writeSteps());
        const res = await warehouse.transaction(steps);
        if (!res.committed) return false;
      }
    } finally {
      p.close();
      await p.lines.rejects.discard();
    }
    const now = performance.now();
    await warehouse.query(
      'UPDATE load_manifest SET stage_ms = $3, merge_ms = $4 WHERE object_key = $1 AND etag = $2',
      [key, etag, Math.round(stagedAt - started), Math.round(now - stagedAt)],
    );
    return true;
  }

  async function writeRejects(key: string, etag: string): Promise<void> {
    const { rows } = await warehouse.query<Record<string, string | number | null>>(
      `SELECT line_number, reason, invoice_no, stock_code, description, quantity, invoice_date, unit_price,
         customer_id, country FROM load_rejected_row WHERE load_id = $1 ORDER BY line_number`,
      [loadIdOf(key, etag)],
    );
    if (rows.length === 0) return;
    const lines = [['line', 'reason', ...CSV_FIELDS].join(',')];
    for (const r of rows) lines.push(Object.values(r).map(csvCell).join(','));
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: `${QUARANTINE_PREFIX}${key}.rejected.csv`,
        Body: `${lines.join('\n')}\n`,
        ContentType: 'text/csv',
      }),
    );
  }

  async function load(key: string, etag: string, size?: number): Promise<LoadResult> {
    const started = performance.now();
    const kind = formatOf(key);
    if (!kind) return result(key, etag, 'skipped', started, undefined, 'not under archive/ or landing/');
    try {
      await register(key, etag, size);
      const row = await manifestRow(key, etag);
      if (!row) return result(key, etag, 'skipped', started, undefined, 'not in the manifest');
      if (TERMINAL.has(row.status))
        return result(key, etag, 'skipped', started, row, `already ${row.status}`);
      const resting = restingReason(row);
      if (resting) return result(key, etag, 'skipped', started, row, `${resting}: ${row.error ?? ''}`);
      let mode: Mode = kind.format === 'csv' && warehouse.copySource === 'stream' ? 'direct' : 'merge';
      let encoding: 'UTF8' | 'LATIN1' | undefined;
      let loaded: boolean;
      for (;;) {
        try {
          loaded = await loadObject(key, etag, row, mode, encoding);
          break;
        } catch (err) {
          // Bytes that are not UTF-8 past the sniffed sample: the file is Latin-1 after all.
          if (encoding === undefined && causedBy(err, (e) => e instanceof NotUtf8Error)) {
            encoding = 'LATIN1';
            continue;
          }
          // Another load wrote the fact between the emptiness check and the lock: copy the usual way.
          if (causedBy(err, (e) => e instanceof FactFilledError)) continue;
          // A key already in the fact (the same lines came by the stream, or in another file).
          if (mode === 'direct' && causedBy(err, (e) => (e as { code?: unknown }).code === '23505')) {
            logger.info({ key }, 'keys already loaded: merging instead of copying straight into the fact');
            mode = 'merge';
            continue;
          }
          throw err;
        }
      }
      if (!loaded) return result(key, etag, 'skipped', started, undefined, 'another loader has it');
      const done = await manifestRow(key, etag);
      // The object is loaded: the rejected-rows file is a copy of load_rejected_row for people, so
      // failing to write it must not report the load failed; the result says so instead.
      let rejectsProblem: string | undefined;
      if (done?.rows_rejected && Number(done.rows_rejected) > 0) {
        await writeRejects(key, etag).catch((err: unknown) => {
          logger.error({ err, key }, 'could not write the rejected rows file');
          rejectsProblem = `loaded; its rejected rows are in load_rejected_row, but writing ${QUARANTINE_PREFIX}${key}.rejected.csv failed: ${err instanceof Error ? err.message : String(err)}`;
        });
      }
      const out = result(key, etag, 'loaded', started, done, rejectsProblem);
      logger.info({ ...out }, 'object loaded');
      try {
        await options.hooks?.afterLoad?.(out);
      } catch (err) {
        logger.error({ err, key }, 'afterLoad hook failed');
      }
      return out;
    } catch (caught) {
      // A compressed object that does not inflate (truncated, corrupt) fails the same way every time.
      const err = isCorruptCompression(caught)
        ? new QuarantineError(`not a valid gzip stream: ${zlibMessage(caught)}`)
        : caught;
      if (err instanceof QuarantineError) {
        await quarantine(key, etag, { reason: err.message, ...(err.cause as object) });
        logger.warn({ key, reason: err.message }, 'object quarantined');
        return result(key, etag, 'quarantined', started, undefined, err.message);
      }
      const message = err instanceof Error ? err.message : String(err);
      logger.error({ err, key }, 'object load failed');
      // The attempt's own increment rolled back with its transaction: the failure counts it.
      await warehouse
        .query(
          `UPDATE load_manifest SET status = 'failed', error = $3, finished_at = ${now},
             attempts = attempts + 1
           WHERE object_key = $1 AND etag = $2 AND status NOT IN ('loaded', 'quarantined')`,
          [key, etag, message.slice(0, 4000)],
        )
        .catch((e: unknown) => logger.error({ err: e, key }, 'could not record the failure'));
      return result(key, etag, 'failed', started, undefined, message);
    }
  }

  async function listAll(): Promise<Array<{ key: string; etag: string; size?: number }>> {
    const out: Array<{ key: string; etag: string; size?: number }> = [];
    for (const prefix of prefixes) {
      let token: string | undefined;
      do {
        const page = await s3.send(
          new ListObjectsV2Command({
            Bucket: bucket,
            Prefix: prefix,
            ...(token ? { ContinuationToken: token } : {}),
          }),
        );
        for (const o of page.Contents ?? []) {
          if (o.Key && o.ETag && formatOf(o.Key)) {
            out.push({
              key: o.Key,
              etag: unquote(o.ETag),
              ...(o.Size !== undefined ? { size: o.Size } : {}),
            });
          }
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    }
    return out;
  }

  async function sweepOnce(): Promise<LoadResult[]> {
    const objects = await listAll();
    const { rows } = await warehouse.query<RetryState & { object_key: string; etag: string }>(
      `SELECT object_key, etag, ${retryColumns(now)} FROM load_manifest`,
    );
    const known = new Map(rows.map((r) => [`${r.object_key}\n${r.etag}`, r]));
    const results: LoadResult[] = [];
    // Oldest first by key: archive keys sort by time, so the stream's order is kept.
    for (const o of objects.sort((a, b) => a.key.localeCompare(b.key))) {
      const m = known.get(`${o.key}\n${o.etag}`);
      if (m && (TERMINAL.has(m.status) || restingReason(m))) continue;
      results.push(await load(o.key, o.etag, o.size));
    }
    return results;
  }

  async function loadKeyNow(key: string): Promise<LoadResult> {
    const started = performance.now();
    let head: { ETag?: string; ContentLength?: number };
    try {
      head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    } catch (err) {
      return result(
        key,
        '',
        'skipped',
        started,
        undefined,
        `cannot read the object: ${(err as Error).message}`,
      );
    }
    return load(key, unquote(head.ETag ?? ''), head.ContentLength);
  }

  let timer: NodeJS.Timeout | undefined;
  let sweeping: Promise<LoadResult[]> | undefined;
  let stopped = false;
  const inflight = new Set<Promise<unknown>>();
  const track = <T>(p: Promise<T>): Promise<T> => {
    inflight.add(p);
    p.finally(() => inflight.delete(p)).catch(() => undefined);
    return p;
  };

  const loader: Loader = {
    sweep() {
      // Overlapping sweeps (timer + caller) share one run.
      sweeping ??= track(serial(sweepOnce)).finally(() => {
        sweeping = undefined;
      });
      return sweeping;
    },
    loadKey(key) {
      return track(serial(() => loadKeyNow(key)));
    },
    notify(key) {
      if (stopped || !formatOf(key) || !prefixes.some((p) => key.startsWith(p))) return;
      loader.loadKey(key).catch((err: unknown) => logger.error({ err, key }, 'notified load failed'));
    },
    start(intervalSeconds) {
      if (timer) return;
      stopped = false;
      const tick = () => loader.sweep().catch((err: unknown) => logger.error({ err }, 'loader sweep failed'));
      void tick();
      timer = setInterval(tick, Math.max(100, intervalSeconds * 1000));
      timer.unref?.();
    },
    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      timer = undefined;
      await Promise.allSettled([...inflight]);
    },
  };
  return loader;
}
