import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import {
  DescribeDeliveryStreamCommand,
  type FirehoseClient,
  FirehoseServiceException,
  InvalidArgumentException,
  ListDeliveryStreamsCommand,
  PutRecordBatchCommand,
  PutRecordCommand,
  ResourceNotFoundException,
} from '@aws-sdk/client-firehose';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Clients, createClients } from '#adapters/clients';
import { createLogger } from '#adapters/logger';
import { sleep } from '#core/resilience';
import { type DeliveryStreamConfig, type LocalFirehose, startLocalFirehose } from '#local/firehose';
import { parseSegment } from '#local/firehose-wal';

const REGION = 'us-east-1';
const BUCKET = 'firehose-test';
const HOST = '127.0.0.1';
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const logger = createLogger('silent');

let root: string;
let s3Dir: string;
let s3Port: number;
let s3rver: S3rver | undefined;
let s3Clients: Clients;
let s3: S3Client;
const cleanups: Array<() => Promise<void> | void> = [];

async function startS3(port: number): Promise<number> {
  const server = new S3rver({
    address: HOST,
    port,
    silent: true,
    directory: s3Dir,
    configureBuckets: [{ name: BUCKET, configs: [] }],
  });
  const address = await server.run();
  s3rver = server;
  return address.port;
}

async function stopS3(): Promise<void> {
  const server = s3rver;
  s3rver = undefined;
  await server?.close();
}

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'firehose-it-'));
  s3Dir = path.join(root, 's3');
  await fs.mkdir(s3Dir);
  s3Port = await startS3(0);
  s3Clients = createClients({ region: REGION, endpoints: { s3: `http://${HOST}:${s3Port}` }, local: true });
  s3 = s3Clients.s3;
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(async () => {
  s3Clients?.destroy();
  await stopS3();
  if (root) await fs.rm(root, { recursive: true, force: true });
});

interface Started {
  firehose: LocalFirehose;
  client: FirehoseClient;
  written: string[];
  dataDir: string;
}

let streamCounter = 0;
/** A stream name and prefix of its own, so each test lists only its objects. */
function stream(overrides: Partial<DeliveryStreamConfig> = {}): DeliveryStreamConfig {
  streamCounter++;
  return {
    name: `lines-${streamCounter}`,
    prefix: `t${streamCounter}/archive/`,
    bufferMiB: 1,
    bufferSeconds: 60,
    ...overrides,
  };
}

async function start(
  streams: DeliveryStreamConfig[],
  dataDir?: string,
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>,
): Promise<Started> {
  const dir = dataDir ?? (await fs.mkdtemp(path.join(root, 'data-')));
  const written: string[] = [];
  const firehose = await startLocalFirehose({
    host: HOST,
    port: 0,
    s3,
    bucket: BUCKET,
    dataDir: dir,
    deliveryStreams: streams,
    logger,
    onObjectWritten: (key) => written.push(key),
    retry: { baseDelayMs: 50, maxDelayMs: 200, attemptsOnStop: 2, ...(sleep ? { sleep } : {}) },
  });
  const clients = createClients({
    region: REGION,
    endpoints: { firehose: firehose.url },
    local: true,
    maxAttempts: 1,
  });
  cleanups.push(
    () => clients.destroy(),
    () => firehose.stop(),
  );
  return { firehose, client: clients.firehose, written, dataDir: dir };
}

function records(from: number, count: number, padBytes = 40): Buffer[] {
  return Array.from({ length: count }, (_, k) =>
    Buffer.from(`${JSON.stringify({ line: from + k, pad: 'x'.repeat(padBytes) })}\n`),
  );
}

const putBatch = (client: FirehoseClient, name: string, data: Buffer[]) =>
  client.send(
    new PutRecordBatchCommand({ DeliveryStreamName: name, Records: data.map((Data) => ({ Data })) }),
  );

async function listKeys(prefix: string): Promise<string[]> {
  const out = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
  return (out.Contents ?? []).map((o) => o.Key ?? '').sort();
}

async function readObject(key: string): Promise<Buffer> {
  const out = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  const bytes = await out.Body?.transformToByteArray();
  return gunzipSync(Buffer.from(bytes ?? new Uint8Array()));
}

async function waitFor(
  what: string,
  predicate: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function walFiles(dataDir: string, name: string): Promise<string[]> {
  try {
    return (await fs.readdir(path.join(dataDir, 'firehose', name))).filter((f) => f.endsWith('.wal'));
  } catch {
    return [];
  }
}

/** Every line of the given objects, to compare with what was put (order-insensitive, duplicates kept). */
async function linesOf(keys: string[]): Promise<string[]> {
  const bodies = await Promise.all(keys.map(readObject));
  return bodies.flatMap((b) => b.toString('utf8').split('\n').filter(Boolean)).sort();
}
const linesFrom = (data: Buffer[]) => data.map((b) => b.toString('utf8').trimEnd()).sort();

const KEY =
  /^(.*)(\d{4})\/(\d{2})\/(\d{2})\/(\d{2})\/(.+)-1-(\d{4})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-[0-9a-f-]{36}\.gz$/;

describe('local Firehose', () => {
  it('delivers a PutRecordBatch after the buffer interval as one gzip object named like Firehose', async () => {
    const cfg = stream({ bufferSeconds: 1 });
    const { client, written, dataDir } = await start([cfg]);
    const data = records(0, 200);
    const before = Date.now();

    const out = await putBatch(client, cfg.name, data);
    const acked = Date.now();

    expect(out.FailedPutCount).toBe(0);
    expect(out.RequestResponses).toHaveLength(200);
    expect(new Set(out.RequestResponses?.map((r) => r.RecordId)).size).toBe(200);
    expect(await listKeys(cfg.prefix)).toEqual([]);
    await waitFor('the object', () => written.length === 1);
    expect(Date.now() - before).toBeGreaterThanOrEqual(900);
    const keys = await listKeys(cfg.prefix);
    expect(keys).toEqual(written);
    const m = KEY.exec(keys[0] ?? '');
    expect(m).not.toBeNull();
    const [, prefix, y, mo, d, h, name, y2, mo2, d2, h2, mi, s] = m ?? [];
    expect(prefix).toBe(cfg.prefix);
    expect(name).toBe(cfg.name);
    expect([y2, mo2, d2, h2]).toEqual([y, mo, d, h]);
    const stamp = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
    expect(stamp).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
    expect(stamp).toBeLessThanOrEqual(acked);
    expect(await readObject(keys[0] ?? '')).toEqual(Buffer.concat(data));
    expect(await walFiles(dataDir, cfg.name)).toEqual([]);
  });

  it('writes an object as soon as the size buffer overflows, long before the interval', async () => {
    const cfg = stream({ bufferMiB: 0.01, bufferSeconds: 60 });
    const { client, written } = await start([cfg]);
    const first = records(0, 50, 60);
    const second = records(50, 100, 60);

    await putBatch(client, cfg.name, first);
    expect(written).toEqual([]);
    await putBatch(client, cfg.name, second);
    // The interval is 60 s, far beyond waitFor's bound: an object now can only be the size trigger.
    await waitFor('the overflowing object', () => written.length === 1);

    // One object holding both batches: the first, under the size buffer, was not flushed alone.
    expect(await linesOf(written)).toEqual(linesFrom([...first, ...second]));
  });

  it('keeps objects near the size buffer while appends never stop arriving', async () => {
    const cfg = stream({ bufferMiB: 0.01, bufferSeconds: 60 });
    const { firehose, client, written } = await start([cfg]);
    const batches = Array.from({ length: 40 }, (_, k) => records(k * 20, 20, 80));
    const batchBytes = Math.max(...batches.map((b) => Buffer.concat(b).length));
    // Two requests in flight at all times: while one append is written and synced the next waits,
    // so there is always an append pending when a write ends (a steady stream, as the consumer sends).
    let next = 0;
    const lane = async () => {
      for (let k = next++; k < batches.length; k = next++) await putBatch(client, cfg.name, batches[k] ?? []);
    };
    await Promise.all([lane(), lane()]);
    await firehose.stop();

    const keys = await listKeys(cfg.prefix);
    const sizes = await Promise.all(keys.map(async (k) => (await readObject(k)).length));
    // Sealed once the buffer is reached, before more is appended: at most the buffer plus the one
    // write (up to both requests' batches) that crossed it. Before: one object of every batch.
    expect(Math.max(...sizes)).toBeLessThanOrEqual(0.01 * 1024 * 1024 + 2 * batchBytes);
    expect(written).toHaveLength(keys.length);
    expect(await linesOf(keys)).toEqual(linesFrom(batches.flat()));
  });

  it('stop() flushes what is buffered', async () => {
    const cfg = stream({ bufferSeconds: 60 });
    const { firehose, client, written, dataDir } = await start([cfg]);
    const data = records(0, 30);
    await putBatch(client, cfg.name, data);
    expect(written).toEqual([]);

    await firehose.stop();

    expect(written).toHaveLength(1);
    expect(await linesOf(await listKeys(cfg.prefix))).toEqual(linesFrom(data));
    expect(await walFiles(dataDir, cfg.name)).toEqual([]);
    await expect(putBatch(client, cfg.name, data)).rejects.toThrow();
  });

  it('keeps concurrent calls whole: one intact WAL frame per call, every record once in the object', async () => {
    const cfg = stream({ bufferSeconds: 60 });
    const { firehose, client, written, dataDir } = await start([cfg]);
    const batches = Array.from({ length: 20 }, (_, i) => records(i * 100, 100));

    await Promise.all(batches.map((b) => putBatch(client, cfg.name, b)));

    const [wal] = await walFiles(dataDir, cfg.name);
    const parsed = parseSegment(await fs.readFile(path.join(dataDir, 'firehose', cfg.name, wal ?? '')));
    expect(parsed.torn).toBe(false);
    const framed = parsed.frames.map((f) => f.payload.toString()).sort();
    expect(framed).toEqual(batches.map((b) => Buffer.concat(b).toString()).sort());
    await firehose.flush();
    expect(written).toHaveLength(1);
    expect(await linesOf(written)).toEqual(linesFrom(batches.flat()));
  });

  it('PutRecord works, records of exactly 1,000 KiB included', async () => {
    const cfg = stream({ bufferSeconds: 0 });
    const { client, written } = await start([cfg]);
    const big = Buffer.alloc(1_024_000, 'a');

    const out = await client.send(
      new PutRecordCommand({ DeliveryStreamName: cfg.name, Record: { Data: big } }),
    );
    await client.send(
      new PutRecordCommand({ DeliveryStreamName: cfg.name, Record: { Data: Buffer.from('tail\n') } }),
    );

    expect(out.RecordId).toEqual(expect.any(String));
    await waitFor('two objects', () => written.length === 2);
    const [first, second] = await Promise.all([...written].map(readObject));
    // Buffer.equals: a deep toEqual over a million bytes takes seconds.
    expect(first?.equals(big)).toBe(true);
    expect(second?.toString()).toBe('tail\n');
  });

  it('answers DescribeDeliveryStream and ListDeliveryStreams', async () => {
    const a = stream({ bufferMiB: 2, bufferSeconds: 7 });
    const b = stream();
    const { client } = await start([b, a]);

    const described = await client.send(new DescribeDeliveryStreamCommand({ DeliveryStreamName: a.name }));
    const listed = await client.send(new ListDeliveryStreamsCommand({}));
    const limited = await client.send(new ListDeliveryStreamsCommand({ Limit: 1 }));

    const d = described.DeliveryStreamDescription;
    expect(d?.DeliveryStreamName).toBe(a.name);
    expect(d?.DeliveryStreamStatus).toBe('ACTIVE');
    expect(d?.DeliveryStreamARN).toBe(`arn:aws:firehose:us-east-1:000000000000:deliverystream/${a.name}`);
    const s3Dest = d?.Destinations?.[0]?.ExtendedS3DestinationDescription;
    expect(s3Dest?.BucketARN).toBe(`arn:aws:s3:::${BUCKET}`);
    expect(s3Dest?.Prefix).toBe(a.prefix);
    expect(s3Dest?.BufferingHints).toEqual({ SizeInMBs: 2, IntervalInSeconds: 7 });
    expect(s3Dest?.CompressionFormat).toBe('GZIP');
    expect(d?.CreateTimestamp).toBeInstanceOf(Date);
    expect(listed.DeliveryStreamNames).toEqual([a.name, b.name].sort());
    expect(listed.HasMoreDeliveryStreams).toBe(false);
    expect(limited.DeliveryStreamNames).toHaveLength(1);
    expect(limited.HasMoreDeliveryStreams).toBe(true);
    await expect(
      client.send(new DescribeDeliveryStreamCommand({ DeliveryStreamName: 'nope' })),
    ).rejects.toBeInstanceOf(ResourceNotFoundException);
  });

  it('surfaces each error answer in the SDK as the exception Firehose raises, and keeps nothing', async () => {
    const cfg = stream({ bufferSeconds: 0 });
    const { firehose, client, written, dataDir } = await start([cfg]);
    const catchErr = (p: Promise<unknown>) =>
      p.then(
        () => expect.fail('expected an error'),
        (e: unknown) => e,
      );

    const unknown = await catchErr(putBatch(client, 'no-such-stream', records(0, 1)));
    const tooMany = await catchErr(putBatch(client, cfg.name, records(0, 501)));
    const tooBig = await catchErr(
      putBatch(
        client,
        cfg.name,
        Array.from({ length: 5 }, () => Buffer.alloc(900_000)),
      ),
    );
    const hugeRecord = await catchErr(
      putBatch(client, cfg.name, [Buffer.from('ok\n'), Buffer.alloc(1_024_001)]),
    );
    const hugeSingle = await catchErr(
      client.send(
        new PutRecordCommand({ DeliveryStreamName: cfg.name, Record: { Data: Buffer.alloc(1_024_001) } }),
      ),
    );

    expect(unknown).toBeInstanceOf(ResourceNotFoundException);
    expect((unknown as Error).message).toBe('Firehose no-such-stream not found under account 000000000000.');
    for (const e of [tooMany, hugeRecord, hugeSingle]) {
      expect(e).toBeInstanceOf(FirehoseServiceException);
      expect(e).not.toBeInstanceOf(InvalidArgumentException);
      expect((e as FirehoseServiceException).name).toBe('ValidationException');
      expect((e as FirehoseServiceException).$metadata.httpStatusCode).toBe(400);
    }
    expect((tooMany as Error).message).toMatch(/at 'records' .*less than or equal to 500/);
    expect((hugeRecord as Error).message).toMatch(
      /at 'records\.2\.member\.data' .*less than or equal to 1024000/,
    );
    expect((hugeSingle as Error).message).toMatch(/at 'record\.data' .*less than or equal to 1024000/);
    expect(tooBig).toBeInstanceOf(InvalidArgumentException);
    expect((tooBig as Error).message).toBe('Records size exceeds 4 MB limit');

    const raw = await fetch(firehose.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-amz-json-1.1',
        'x-amz-target': 'Firehose_20150804.DeleteDeliveryStream',
      },
      body: JSON.stringify({ DeliveryStreamName: cfg.name }),
    });
    expect(raw.status).toBe(400);
    expect(await raw.json()).toMatchObject({ __type: 'UnknownOperationException' });
    const garbage = await fetch(firehose.url, {
      method: 'POST',
      headers: { 'x-amz-target': 'Firehose_20150804.PutRecord' },
      body: '{not json',
    });
    expect(garbage.status).toBe(400);
    expect(await garbage.json()).toMatchObject({ __type: 'SerializationException' });

    // Still serving, and none of the rejected records went anywhere.
    await putBatch(client, cfg.name, records(0, 1));
    await waitFor('the one good object', () => written.length === 1);
    expect(await linesOf(written)).toEqual(linesFrom(records(0, 1)));
    expect(await walFiles(dataDir, cfg.name)).toEqual([]);
  });

  it('loses nothing through an S3 outage', async () => {
    const cfg = stream({ bufferSeconds: 0 });
    let retries = 0;
    const countedSleep = (ms: number, signal?: AbortSignal) => {
      retries++;
      return sleep(ms, signal);
    };
    const { client, written, dataDir } = await start([cfg], undefined, countedSleep);
    await stopS3();
    const batches = [records(0, 100), records(100, 100), records(200, 100)];

    for (const b of batches) await putBatch(client, cfg.name, b);
    // Delivery was tried and failed more than once: the outage is seen, not just waited out.
    await waitFor('delivery retries', () => retries >= 2);
    expect(written).toEqual([]);
    expect(await walFiles(dataDir, cfg.name)).toHaveLength(3);
    await startS3(s3Port);

    await waitFor('all three objects', () => written.length === 3);
    expect(await linesOf(await listKeys(cfg.prefix))).toEqual(linesFrom(batches.flat()));
    expect(await walFiles(dataDir, cfg.name)).toEqual([]);
  });

  it('keeps the WAL when S3 is still down at stop, and delivers it on the next start', async () => {
    const cfg = stream({ bufferSeconds: 60 });
    const first = await start([cfg]);
    const data = records(0, 50);
    await putBatch(first.client, cfg.name, data);
    await stopS3();
    try {
      await first.firehose.stop();
      expect(first.written).toEqual([]);
      expect(await walFiles(first.dataDir, cfg.name)).toHaveLength(1);
    } finally {
      await startS3(s3Port);
    }

    const second = await start([cfg], first.dataDir);

    await waitFor('the recovered object', () => second.written.length === 1);
    expect(await linesOf(await listKeys(cfg.prefix))).toEqual(linesFrom(data));
    expect(await walFiles(first.dataDir, cfg.name)).toEqual([]);
  });

  it('delivers the WAL a crashed process left, without repeating what it had delivered', async () => {
    const cfg = stream({ bufferMiB: 0.05, bufferSeconds: 3600 });
    const dataDir = await fs.mkdtemp(path.join(root, 'crash-'));
    const child = await startChild(cfg, dataDir);
    const clients = createClients({
      region: REGION,
      endpoints: { firehose: child.url },
      local: true,
      maxAttempts: 1,
    });
    cleanups.push(() => clients.destroy());
    const delivered = records(0, 100, 600); // > 0.05 MiB: sealed and delivered before the crash
    const buffered = records(100, 20);

    await putBatch(clients.firehose, cfg.name, delivered);
    await waitFor('the first object', () => child.written.length === 1);
    await putBatch(clients.firehose, cfg.name, buffered);
    child.process.kill('SIGKILL');
    await new Promise((r) => child.process.once('exit', r));
    expect(await walFiles(dataDir, cfg.name)).toHaveLength(1);

    const next = await start([cfg], dataDir);

    await waitFor('the recovered object', () => next.written.length === 1);
    expect(next.written).not.toContain(child.written[0]);
    const keys = await listKeys(cfg.prefix);
    expect(keys).toHaveLength(2);
    expect(await linesOf(keys)).toEqual(linesFrom([...delivered, ...buffered]));
    expect(await walFiles(dataDir, cfg.name)).toEqual([]);
  });

  it('refuses to start on a WAL another instance is using', async () => {
    const cfg = stream();
    const { dataDir } = await start([cfg]);

    await expect(start([cfg], dataDir)).rejects.toThrow(/in use/);
  });
});

interface Child {
  process: ChildProcess;
  url: string;
  written: string[];
}

/** A Firehose in its own process, so it can really crash (SIGKILL) with records only in its WAL. */
async function startChild(cfg: DeliveryStreamConfig, dataDir: string): Promise<Child> {
  const script = `
    import { createClients } from '#adapters/clients';
    import { createLogger } from '#adapters/logger';
    import { startLocalFirehose } from '#local/firehose';
    const cfg = JSON.parse(process.env.FIREHOSE_CHILD);
    const { s3 } = createClients({ region: 'us-east-1', endpoints: { s3: cfg.s3 }, local: true });
    const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
    const fh = await startLocalFirehose({
      port: 0, s3, bucket: cfg.bucket, dataDir: cfg.dataDir, deliveryStreams: [cfg.stream],
      logger: createLogger('silent'), onObjectWritten: (key) => say({ written: key }),
    });
    say({ url: fh.url });
  `;
  const env = {
    ...process.env,
    FIREHOSE_CHILD: JSON.stringify({ s3: `http://${HOST}:${s3Port}`, bucket: BUCKET, dataDir, stream: cfg }),
  };
  const proc = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: repoRoot,
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  cleanups.push(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  const written: string[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`child exited early with ${code}`)));
    readline.createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      const msg = JSON.parse(line) as { url?: string; written?: string };
      if (msg.url) resolve(msg.url);
      if (msg.written) written.push(msg.written);
    });
  });
  return { process: proc, url, written };
}
