import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
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
import { type CopyStep, type Warehouse, WarehouseError } from '#adapters/warehouse';
import {
  checkHeader,
  controlCheckedColumns,
  decompressed,
  EmptyFileError,
  type HeaderCheck,
  RecordGuard,
  readCsvHead,
} from './source-stream.ts';
import {
  createStagingSql,
  type LoadPlan,
  mergeSteps,
  type SourceFormat,
  stagingColumns,
  stagingTableName,
} from './sql.ts';

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
  /** Called after the staging transaction committed, before the merge (tests simulate a crash here). */
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
const RETRY_COLUMNS = `status, attempts,
  CAST(EXTRACT(EPOCH FROM (CURRENT_TIMESTAMP - finished_at)) * 1000 AS bigint) AS rested_ms`;

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

function zlibError(err: unknown): { code: string; message: string } | undefined {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('Z_')) return { code, message: (e as Error).message };
  }
  return undefined;
}
const isCorruptCompression = (err: unknown) => zlibError(err) !== undefined;
const zlibMessage = (err: unknown) => zlibError(err)?.message ?? '';

export function loadIdOf(key: string, etag: string): string {
  return createHash('sha256').update(`${key}\n${etag}`).digest('hex').slice(0, 16);
}

const unquote = (etag: string) => etag.replace(/^"|"$/g, '');

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/**
 * The batch loader: finds objects under archive/ and landing/, and loads each into the star schema
 * in two transactions (stage with COPY; then type, validate, MERGE) tracked by load_manifest.
 */
export function createLoader(options: LoaderOptions): Loader {
  const { s3, bucket, warehouse, logger } = options;
  const prefixes = options.prefixes ?? [ARCHIVE_PREFIX, LANDING_PREFIX];
  const maxAttempts = options.maxAttempts ?? 5;
  const coolBaseMs = options.coolDown?.baseMs ?? 30_000;
  const coolMaxMs = options.coolDown?.maxMs ?? 600_000;

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
      `SELECT object_key, etag, ${RETRY_COLUMNS}, header, rows_read, rows_loaded, rows_new, rows_rejected,
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
           CAST($5 AS varchar(8)), 'pending', 0, CAST($6 AS bigint), CURRENT_TIMESTAMP
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
      `UPDATE load_manifest SET status = 'quarantined', error = $3, finished_at = CURRENT_TIMESTAMP, attempts = attempts + 1
       WHERE object_key = $1 AND etag = $2`,
      [key, etag, String(reason.reason).slice(0, 4000)],
    );
  }

  /** Stage the object (status pending|failed -> staged). Returns false when another loader has it. */
  async function stage(
    key: string,
    etag: string,
    format: SourceFormat,
    encoding?: 'UTF8' | 'LATIN1',
  ): Promise<boolean> {
    const loadId = loadIdOf(key, etag);
    const kind = formatOf(key);
    if (!kind) return false;
    const started = performance.now();
    const source = await openObject(key, etag);
    let plan: LoadPlan;
    let check: HeaderCheck | undefined;
    let header: string[] | undefined;
    let body: Readable = source;
    let enc: 'UTF8' | 'LATIN1' = encoding ?? 'UTF8';
    if (format === 'csv') {
      let head: Awaited<ReturnType<typeof readCsvHead>>;
      try {
        head = await readCsvHead(source);
      } catch (err) {
        if (err instanceof EmptyFileError) throw new QuarantineError('the file is empty');
        throw err;
      }
      header = head.columns;
      check = checkHeader(head.columns);
      if (!check.columnOf) {
        head.body.destroy();
        const problem = check.duplicated?.length
          ? `duplicated columns: ${check.duplicated.join(', ')}`
          : `missing required columns: ${check.missing.join(', ')}`;
        throw new QuarantineError(problem, {
          cause: { missing: check.missing, duplicated: check.duplicated ?? [], header },
        });
      }
      enc = encoding ?? head.encoding;
      body = head.body.pipe(new RecordGuard(head.columns.length, controlCheckedColumns(check.columnOf)));
      head.body.on('error', (err) => body.destroy(err));
      plan = { loadId, objectKey: key, ...kind, columnOf: check.columnOf, columnCount: head.columns.length };
    } else {
      plan = { loadId, objectKey: key, ...kind };
    }
    const table = stagingTableName(loadId);
    const copy: CopyStep = {
      kind: 'copy',
      table,
      columns: stagingColumns(plan),
      format: format === 'csv' ? 'csv' : 'lines',
      encoding: enc,
    };
    if (warehouse.copySource === 'stream') copy.stream = () => body;
    else if (format === 'csv') {
      // COPY FROM S3 reads objects, not streams: the numbered, guarded CSV goes to staging/ first.
      const stagingKey = `${STAGING_PREFIX}${loadId}.csv.gz`;
      await new Upload({
        client: s3,
        params: { Bucket: bucket, Key: stagingKey, Body: body.pipe(createGzip({ level: 1 })) },
      }).done();
      copy.s3 = { uri: `s3://${bucket}/${stagingKey}`, gzip: true, skipHeader: false };
    } else {
      body.destroy();
      copy.s3 = { uri: `s3://${bucket}/${key}`, gzip: source.gzip === true, skipHeader: false };
    }
    const res = await warehouse
      .transaction([
        {
          sql: `UPDATE load_manifest SET status = 'pending', attempts = attempts + 1, started_at = CURRENT_TIMESTAMP, error = NULL
              WHERE object_key = $1 AND etag = $2 AND status IN ('pending', 'failed')`,
          params: [key, etag],
          requireRows: true,
        },
        ...createStagingSql(warehouse.dialect, plan).map((sql) => ({ sql })),
        copy,
        {
          sql: `UPDATE load_manifest SET status = 'staged', staged_at = CURRENT_TIMESTAMP, encoding = CAST($3 AS varchar(8)),
                header = CAST($4 AS varchar(4096)), extra_columns = CAST($5 AS varchar(1024))
              WHERE object_key = $1 AND etag = $2`,
          params: [
            key,
            etag,
            enc,
            header ? JSON.stringify(header) : null,
            check && check.extra.length > 0 ? JSON.stringify(check.extra) : null,
          ],
        },
      ])
      .catch((err: unknown) => {
        // A transaction that failed before COPY read the body leaves the object's download open.
        body.destroy();
        throw err;
      });
    if (!res.committed) {
      body.destroy();
      return false;
    }
    await warehouse.query('UPDATE load_manifest SET stage_ms = $3 WHERE object_key = $1 AND etag = $2', [
      key,
      etag,
      Math.round(performance.now() - started),
    ]);
    return true;
  }

  async function merge(key: string, etag: string, row: ManifestRow): Promise<boolean> {
    const kind = formatOf(key);
    if (!kind) return false;
    const plan: LoadPlan = { loadId: loadIdOf(key, etag), objectKey: key, ...kind };
    if (kind.format === 'csv') {
      const columns = JSON.parse(row.header ?? '[]') as string[];
      const check = checkHeader(columns);
      if (!check.columnOf) throw new WarehouseError(`staged header lost its required columns: ${row.header}`);
      plan.columnOf = check.columnOf;
      plan.columnCount = columns.length;
    }
    const started = performance.now();
    const res = await warehouse.transaction(mergeSteps(warehouse.dialect, plan, etag));
    if (!res.committed) return false;
    await warehouse.query('UPDATE load_manifest SET merge_ms = $3 WHERE object_key = $1 AND etag = $2', [
      key,
      etag,
      Math.round(performance.now() - started),
    ]);
    return true;
  }

  async function writeRejects(key: string, etag: string): Promise<void> {
    const { rows } = await warehouse.query<Record<string, unknown>>(
      `SELECT line_number, reason, invoice_no, stock_code, description, quantity, invoice_date, unit_price,
         customer_id, country FROM load_rejected_row WHERE load_id = $1 ORDER BY line_number`,
      [loadIdOf(key, etag)],
    );
    if (rows.length === 0) return;
    const header = [
      'line',
      'reason',
      ...['InvoiceNo', 'StockCode', 'Description', 'Quantity', 'InvoiceDate'],
    ];
    header.push('UnitPrice', 'CustomerID', 'Country');
    const lines = [header.join(',')];
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
    // Whether this attempt's increment of `attempts` committed (with the staging transaction): a
    // failure rolls its transaction back, so the failure is counted when recorded.
    let counted = false;
    try {
      await register(key, etag, size);
      let row = await manifestRow(key, etag);
      if (!row) return result(key, etag, 'skipped', started, undefined, 'not in the manifest');
      if (TERMINAL.has(row.status))
        return result(key, etag, 'skipped', started, row, `already ${row.status}`);
      const resting = restingReason(row);
      if (resting) return result(key, etag, 'skipped', started, row, `${resting}: ${row.error ?? ''}`);
      if (row.status !== 'staged') {
        let staged: boolean;
        try {
          staged = await stage(key, etag, kind.format);
        } catch (err) {
          // Bytes that are not UTF-8 past the sniffed sample: the file is Latin-1 after all.
          if (err instanceof WarehouseError && err.details.code === '22021') {
            staged = await stage(key, etag, kind.format, 'LATIN1');
          } else throw err;
        }
        if (!staged) return result(key, etag, 'skipped', started, undefined, 'another loader has it');
        counted = true;
        await options.hooks?.afterStage?.(key);
        row = await manifestRow(key, etag);
        if (!row) throw new WarehouseError(`manifest row of ${key} vanished`);
      } else {
        logger.info({ key }, 'resuming a staged load');
      }
      if (!(await merge(key, etag, row))) {
        return result(key, etag, 'skipped', started, undefined, 'another loader merged it');
      }
      const done = await manifestRow(key, etag);
      if (done?.rows_rejected && Number(done.rows_rejected) > 0) await writeRejects(key, etag);
      const out = result(key, etag, 'loaded', started, done);
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
      await warehouse
        .query(
          `UPDATE load_manifest SET status = 'failed', error = $3, finished_at = CURRENT_TIMESTAMP,
             attempts = attempts + $4
           WHERE object_key = $1 AND etag = $2 AND status NOT IN ('loaded', 'quarantined')`,
          [key, etag, message.slice(0, 4000), counted ? 0 : 1],
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
      `SELECT object_key, etag, ${RETRY_COLUMNS} FROM load_manifest`,
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
