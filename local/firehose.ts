import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Logger } from '#adapters/logger';
import { backoffMs, sleep } from '#core/resilience';
import { readAwsJsonBody, sendAwsJson } from './aws-json.ts';
import {
  ACCOUNT_ID,
  FirehoseApiError,
  isValidStreamName,
  type PutInput,
  parseBody,
  parseDescribe,
  parseList,
  parsePutRecord,
  parsePutRecordBatch,
  streamNotFound,
  TARGET_PREFIX,
} from './firehose-protocol.ts';
import {
  appendDurably,
  createSegment,
  encodeFrame,
  lockWal,
  type OpenSegment,
  objectKey,
  readSegmentPayload,
  recoverSegments,
  type Segment,
} from './firehose-wal.ts';

const gzip = promisify(gzipCallback);

export interface DeliveryStreamConfig {
  name: string;
  /** Prepended to Firehose's `YYYY/MM/dd/HH/` time prefix, e.g. 'archive/'. */
  prefix: string;
  bufferMiB: number;
  /** 0 delivers right after each acknowledged call. */
  bufferSeconds: number;
}

export interface RetryOptions {
  /** First delay after a failed S3 write; doubles up to maxDelayMs. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Attempts per object once stop() began; after them the WAL is kept for the next start. */
  attemptsOnStop?: number;
  /** Waits between attempts; injected so a test can see each retry happen. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export interface LocalFirehoseOptions {
  host?: string;
  /** 0 = ephemeral. */
  port: number;
  s3: S3Client;
  bucket: string;
  /** The write-ahead log lives under `<dataDir>/firehose/<stream>/`. */
  dataDir: string;
  deliveryStreams: DeliveryStreamConfig[];
  logger: Logger;
  onObjectWritten?: (key: string) => void;
  region?: string;
  retry?: RetryOptions;
}

export interface LocalFirehose {
  url: string;
  port: number;
  /** Delivers everything buffered so far to S3 (waits, retrying, while S3 is down). */
  flush(): Promise<void>;
  /** Stops accepting, flushes everything (bounded retries; undeliverable data stays in the WAL), closes. */
  stop(): Promise<void>;
}

export class LocalFirehoseError extends Error {
  override name = 'LocalFirehoseError';
}

const MAX_BODY_BYTES = 32 * 1024 * 1024;
const PUT_OBJECT_TIMEOUT_MS = 60_000;

/** Once stop() began, retries are this far apart at most, so its bounded attempts end soon. */
const MAX_DELAY_ON_STOP_MS = 1_000;

interface Shared {
  s3: S3Client;
  bucket: string;
  logger: Logger;
  onObjectWritten: ((key: string) => void) | undefined;
  baseDelayMs: number;
  maxDelayMs: number;
  attemptsOnStop: number;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  stopping: boolean;
  /** Aborted by stop(): cuts short a retry's backoff begun before the stop. */
  stop: AbortController;
}

interface PendingAppend {
  frame: Buffer;
  payload: Buffer;
  records: number;
  arrivalMs: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * One delivery stream: appends go through a single pump (group commit: every append waiting while a
 * write+fdatasync runs is written by the next one), so frames never interleave; sealed segments are
 * delivered to S3 one after the other, oldest first, and deleted only after their PutObject succeeded.
 */
class Lane {
  private nextSeq = 1;
  private open: OpenSegment | undefined;
  private readonly pending: PendingAppend[] = [];
  private sealWaiters: (() => void)[] = [];
  private sealRequested = false;
  private pumping = false;
  private pumpRun: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private readonly queue: Segment[] = [];
  private delivering = false;
  private idleWaiters: (() => void)[] = [];
  readonly createdAt = Date.now();

  constructor(
    readonly config: DeliveryStreamConfig,
    private readonly dir: string,
    private readonly shared: Shared,
  ) {}

  private get bufferBytes(): number {
    return this.config.bufferMiB * 1024 * 1024;
  }

  /** Queues what a previous run left behind ahead of anything new. */
  async recover(): Promise<void> {
    const { segments, nextSeq, truncated } = await recoverSegments(this.dir);
    this.nextSeq = nextSeq;
    for (const file of truncated) {
      this.shared.logger.warn(
        { stream: this.config.name, file },
        'firehose: cut torn WAL tail (unacknowledged)',
      );
    }
    if (segments.length > 0) {
      this.shared.logger.info(
        {
          stream: this.config.name,
          segments: segments.length,
          records: segments.reduce((n, s) => n + s.records, 0),
        },
        'firehose: delivering WAL left by a previous run',
      );
    }
    for (const segment of segments) this.enqueue(segment);
  }

  /** Resolves once the records are durable in the WAL. */
  append(records: Buffer[], arrivalMs: number): Promise<void> {
    const { frame, payload } = encodeFrame(records, arrivalMs);
    return new Promise((resolve, reject) => {
      this.pending.push({ frame, payload, records: records.length, arrivalMs, resolve, reject });
      void this.pump();
    });
  }

  /** Seals the open segment (it becomes an S3 object) and resolves when that is queued. */
  seal(): Promise<void> {
    return new Promise((resolve) => {
      this.sealWaiters.push(resolve);
      void this.pump();
    });
  }

  /** Resolves when every queued segment was delivered (or, during stop, given up on). */
  drained(): Promise<void> {
    if (!this.delivering && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  wakeDelivery(): void {
    if (this.queue.length > 0) void this.deliverAll();
  }

  private pump(): Promise<void> {
    if (!this.pumping) {
      this.pumping = true;
      this.pumpRun = this.runPump();
    }
    return this.pumpRun;
  }

  private async runPump(): Promise<void> {
    for (;;) {
      // A seal the buffer asked for (size or interval) goes first: under a steady stream appends are
      // always pending, and sealing only once none were left grew objects to 8-12 MiB over 10-30 s
      // (measured, buffer 1 MiB / 5 s). Callers of seal() wait for the appends queued before them.
      if (this.sealRequested) {
        this.sealRequested = false;
        await this.sealOpen();
      } else if (this.pending.length > 0) {
        await this.commit(this.pending.splice(0));
      } else if (this.sealWaiters.length > 0) {
        const waiters = this.sealWaiters;
        this.sealWaiters = [];
        this.sealRequested = false;
        await this.sealOpen();
        for (const w of waiters) w();
      } else {
        // No await between the emptiness check and this: an append arriving later starts a new run.
        this.pumping = false;
        return;
      }
    }
  }

  private async commit(batch: PendingAppend[]): Promise<void> {
    let segment = this.open;
    try {
      segment ??= this.open = await createSegment(this.dir, this.nextSeq++);
      const buf = batch.length === 1 && batch[0] ? batch[0].frame : Buffer.concat(batch.map((p) => p.frame));
      await appendDurably(segment, buf);
    } catch (cause) {
      this.shared.logger.error({ err: cause, stream: this.config.name }, 'firehose: WAL append failed');
      const err = new FirehoseApiError('ServiceUnavailableException', 'Write-ahead log unavailable.', 503, {
        cause,
      });
      for (const p of batch) p.reject(err);
      // The file may now end in a partial frame: later frames would be unreadable after it, so start afresh.
      if (segment) await this.sealOpen();
      return;
    }
    for (const p of batch) {
      if (segment.records === 0) {
        segment.firstArrivalMs = p.arrivalMs;
        if (this.config.bufferSeconds > 0) {
          this.timer = setTimeout(() => {
            this.sealRequested = true;
            void this.pump();
          }, this.config.bufferSeconds * 1000);
          this.timer.unref();
        }
      }
      segment.chunks?.push(p.payload);
      segment.bytes += p.payload.length;
      segment.records += p.records;
    }
    if (this.config.bufferSeconds === 0 || segment.bytes >= this.bufferBytes) this.sealRequested = true;
    for (const p of batch) p.resolve();
  }

  private async sealOpen(): Promise<void> {
    const segment = this.open;
    if (!segment) return;
    this.open = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
    try {
      await segment.handle.close();
    } catch (err) {
      this.shared.logger.warn({ err, file: segment.file }, 'firehose: closing WAL segment failed');
    }
    if (segment.records === 0) {
      await fs.rm(segment.file, { force: true }).catch((err: unknown) => {
        this.shared.logger.warn(
          { err, file: segment.file },
          'firehose: removing an empty WAL segment failed',
        );
      });
      return;
    }
    const { handle: _handle, fileBytes: _fileBytes, ...sealed } = segment;
    this.enqueue(sealed);
  }

  private enqueue(segment: Segment): void {
    this.queue.push(segment);
    // While S3 is down the backlog waits on disk, not in memory.
    if (this.queue.length > 2) segment.chunks = undefined;
    void this.deliverAll();
  }

  private async deliverAll(): Promise<void> {
    if (this.delivering) return;
    this.delivering = true;
    try {
      for (let segment = this.queue[0]; segment; segment = this.queue[0]) {
        if (!(await this.deliver(segment))) break;
        this.queue.shift();
      }
    } finally {
      this.delivering = false;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Writes one segment's object, retrying; false only when stop() gave up on it (its WAL stays). */
  private async deliver(segment: Segment): Promise<boolean> {
    const { s3, bucket, logger } = this.shared;
    const key = objectKey(this.config.prefix, this.config.name, segment.firstArrivalMs, segment.uuid);
    let body: Buffer | undefined;
    let failures = 0;
    let failuresWhileStopping = 0;
    for (;;) {
      try {
        body ??= await gzip(
          segment.chunks ? Buffer.concat(segment.chunks) : await readSegmentPayload(segment.file),
        );
        await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }), {
          abortSignal: AbortSignal.timeout(PUT_OBJECT_TIMEOUT_MS),
        });
        break;
      } catch (err) {
        failures++;
        if (this.shared.stopping && ++failuresWhileStopping >= this.shared.attemptsOnStop) {
          logger.error(
            { err, stream: this.config.name, key, records: segment.records, wal: segment.file },
            'firehose: delivery still failing at stop; records kept in the WAL for the next start',
          );
          return false;
        }
        const { stopping, baseDelayMs, maxDelayMs } = this.shared;
        // Equal jitter: a floor between tries, so a recovering S3 is not hammered by the backlog.
        const delayMs = backoffMs(failures, {
          baseMs: baseDelayMs,
          maxMs: stopping ? Math.min(maxDelayMs, MAX_DELAY_ON_STOP_MS) : maxDelayMs,
          jitter: 'equal',
        });
        logger.warn(
          { err, stream: this.config.name, key, failures, delayMs: Math.round(delayMs) },
          'firehose: delivery failed, retrying',
        );
        // Once stopping, the short waits run their course: an aborted signal would skip them all.
        await this.shared.sleep(delayMs, stopping ? undefined : this.shared.stop.signal);
      }
    }
    try {
      await fs.rm(segment.file, { force: true });
    } catch (err) {
      // Harmless beyond disk use: a redelivery writes the same key again.
      logger.error({ err, wal: segment.file }, 'firehose: removing a delivered WAL segment failed');
    }
    logger.debug(
      { stream: this.config.name, key, records: segment.records, bytes: segment.bytes },
      'firehose: object written',
    );
    try {
      this.shared.onObjectWritten?.(key);
    } catch (err) {
      logger.warn({ err, key }, 'firehose: onObjectWritten threw');
    }
    return true;
  }
}

function sharedOf(opts: LocalFirehoseOptions): Shared {
  return {
    s3: opts.s3,
    bucket: opts.bucket,
    logger: opts.logger,
    onObjectWritten: opts.onObjectWritten,
    baseDelayMs: opts.retry?.baseDelayMs ?? 200,
    maxDelayMs: opts.retry?.maxDelayMs ?? 5_000,
    attemptsOnStop: opts.retry?.attemptsOnStop ?? 3,
    sleep: opts.retry?.sleep ?? sleep,
    stopping: false,
    stop: new AbortController(),
  };
}

/** One lane per configured delivery stream; a bad or repeated configuration stops the start. */
function lanesOf(opts: LocalFirehoseOptions, shared: Shared): Map<string, Lane> {
  const lanes = new Map<string, Lane>();
  for (const config of opts.deliveryStreams) {
    if (!isValidStreamName(config.name)) {
      throw new LocalFirehoseError(`invalid delivery stream name: ${JSON.stringify(config.name)}`);
    }
    if (lanes.has(config.name))
      throw new LocalFirehoseError(`delivery stream configured twice: ${config.name}`);
    if (!(config.bufferMiB > 0) || !(config.bufferSeconds >= 0)) {
      throw new LocalFirehoseError(
        `delivery stream ${config.name}: bufferMiB must be > 0 and bufferSeconds >= 0`,
      );
    }
    lanes.set(config.name, new Lane(config, path.join(opts.dataDir, 'firehose', config.name), shared));
  }
  return lanes;
}

/** DescribeDeliveryStream's answer for one lane, in Firehose's shape. */
function describeLane(lane: Lane, bucket: string, region: string) {
  const { name, prefix, bufferMiB, bufferSeconds } = lane.config;
  const s3Destination = {
    RoleARN: `arn:aws:iam::${ACCOUNT_ID}:role/firehose-local`,
    BucketARN: `arn:aws:s3:::${bucket}`,
    Prefix: prefix,
    BufferingHints: { SizeInMBs: bufferMiB, IntervalInSeconds: bufferSeconds },
    CompressionFormat: 'GZIP',
    EncryptionConfiguration: { NoEncryptionConfig: 'NoEncryption' },
  };
  return {
    DeliveryStreamDescription: {
      DeliveryStreamName: name,
      DeliveryStreamARN: `arn:aws:firehose:${region}:${ACCOUNT_ID}:deliverystream/${name}`,
      DeliveryStreamStatus: 'ACTIVE',
      DeliveryStreamType: 'DirectPut',
      DeliveryStreamEncryptionConfiguration: { Status: 'DISABLED' },
      VersionId: '1',
      CreateTimestamp: lane.createdAt / 1000,
      Destinations: [
        {
          DestinationId: 'destinationId-000000000001',
          S3DestinationDescription: s3Destination,
          ExtendedS3DestinationDescription: { ...s3Destination, S3BackupMode: 'Disabled' },
        },
      ],
      HasMoreDestinations: false,
    },
  };
}

type Dispatch = (operation: string, body: Record<string, unknown>, arrivalMs: number) => Promise<unknown>;

/** The Firehose API subset over the lanes: one answer per operation, or a FirehoseApiError. */
function createDispatch(lanes: Map<string, Lane>, bucket: string, region: string): Dispatch {
  const recordIdPrefix = randomBytes(12).toString('base64url');
  let recordCounter = 0;

  const laneFor = (name: string): Lane => {
    const lane = lanes.get(name);
    if (!lane) throw streamNotFound(name);
    return lane;
  };

  const put = async (input: PutInput, arrivalMs: number): Promise<string[]> => {
    await laneFor(input.deliveryStreamName).append(input.records, arrivalMs);
    return input.records.map(() => `${recordIdPrefix}${(recordCounter++).toString(36).padStart(10, '0')}`);
  };

  return async (operation, body, arrivalMs) => {
    switch (operation) {
      case 'PutRecord': {
        const [recordId] = await put(parsePutRecord(body), arrivalMs);
        return { RecordId: recordId, Encrypted: false };
      }
      case 'PutRecordBatch': {
        const ids = await put(parsePutRecordBatch(body), arrivalMs);
        return {
          FailedPutCount: 0,
          Encrypted: false,
          RequestResponses: ids.map((RecordId) => ({ RecordId })),
        };
      }
      case 'DescribeDeliveryStream':
        return describeLane(laneFor(parseDescribe(body)), bucket, region);
      case 'ListDeliveryStreams': {
        const { limit, exclusiveStart } = parseList(body);
        const type = body.DeliveryStreamType;
        const names = [...lanes.keys()]
          .sort()
          .filter(
            (n) => (exclusiveStart === undefined || n > exclusiveStart) && (!type || type === 'DirectPut'),
          );
        return { DeliveryStreamNames: names.slice(0, limit), HasMoreDeliveryStreams: names.length > limit };
      }
      default:
        throw new FirehoseApiError(
          'UnknownOperationException',
          `Unknown operation ${TARGET_PREFIX}${operation}`,
        );
    }
  };
}

function sendJson(
  res: http.ServerResponse,
  shared: Shared,
  status: number,
  payload: unknown,
  errorType?: string,
): void {
  sendAwsJson(res, status, payload, { errorType, close: shared.stopping });
}

/** Answers one HTTP request: the operation's result, or its error in Firehose's shape. */
async function handleRequest(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  shared: Shared,
  dispatch: Dispatch,
): Promise<void> {
  const target = req.headers['x-amz-target'];
  try {
    if (shared.stopping)
      throw new FirehoseApiError('ServiceUnavailableException', 'Firehose is stopping.', 503);
    const text = await readAwsJsonBody(
      req,
      MAX_BODY_BYTES,
      () => new FirehoseApiError('SerializationException', 'Request body too large', 413),
    );
    const arrivalMs = Date.now();
    if (req.method !== 'POST' || typeof target !== 'string' || !target.startsWith(TARGET_PREFIX)) {
      throw new FirehoseApiError('UnknownOperationException', `Unknown operation ${String(target ?? '')}`);
    }
    const result = await dispatch(target.slice(TARGET_PREFIX.length), parseBody(text), arrivalMs);
    sendJson(res, shared, 200, result);
  } catch (err) {
    if (res.headersSent || res.destroyed) return;
    if (err instanceof FirehoseApiError) {
      shared.logger.debug({ target, type: err.type, message: err.message }, 'firehose: error answer');
      sendJson(res, shared, err.status, { __type: err.type, message: err.message }, err.type);
    } else {
      shared.logger.error({ err, target }, 'firehose: request failed');
      sendJson(
        res,
        shared,
        500,
        { __type: 'InternalFailure', message: 'Internal error.' },
        'InternalFailure',
      );
    }
  }
}

function listen(server: http.Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Starts the local Firehose: recovers its WAL, then listens. */
export async function startLocalFirehose(opts: LocalFirehoseOptions): Promise<LocalFirehose> {
  const { logger } = opts;
  const shared = sharedOf(opts);
  const lanes = lanesOf(opts, shared);
  const walRoot = path.join(opts.dataDir, 'firehose');
  const unlock = await lockWal(walRoot);
  try {
    for (const lane of lanes.values()) await lane.recover();
  } catch (err) {
    await unlock();
    throw err;
  }

  const dispatch = createDispatch(lanes, opts.bucket, opts.region ?? 'us-east-1');
  const inflight = new Set<Promise<void>>();
  const server = http.createServer((req, res) => {
    const run = handleRequest(req, res, shared, dispatch).finally(() => inflight.delete(run));
    inflight.add(run);
  });
  try {
    await listen(server, opts.port, opts.host ?? '127.0.0.1');
  } catch (err) {
    // Recovered segments may be mid-delivery: stop bounds it, and what is not delivered stays in the WAL.
    shared.stopping = true;
    shared.stop.abort();
    await Promise.all([...lanes.values()].map((lane) => lane.drained()));
    await unlock();
    throw err;
  }
  const address = server.address() as AddressInfo;
  const hostForUrl = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${hostForUrl}:${address.port}`;
  logger.info({ url, streams: [...lanes.keys()] }, 'firehose: listening');

  const flush = async (): Promise<void> => {
    await Promise.all(
      [...lanes.values()].map(async (lane) => {
        await lane.seal();
        await lane.drained();
      }),
    );
  };

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      shared.stopping = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await Promise.allSettled([...inflight]);
      // A retry loop asleep on a long backoff must start counting its bounded attempts now.
      shared.stop.abort();
      for (const lane of lanes.values()) lane.wakeDelivery();
      await flush();
      server.closeAllConnections();
      await closed;
      await unlock();
      logger.info({ url }, 'firehose: stopped');
    })();
    return stopped;
  };

  return { url, port: address.port, flush, stop };
}
