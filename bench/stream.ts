/**
 * Stream path benchmark (issue 14). Runnable alone: `node --import tsx bench/stream.ts` (JSON on
 * stdout; BENCH_LINES, BENCH_LATENCY_SECONDS, BENCH_FULL=0 to skip (d), BENCH_ONLY=c for (c)'s floor
 * and (c) alone on a fresh pipeline after a 10 s warm-up at the same rate, BENCH_FILE), or through
 * `npm run bench -- stream`.
 *
 * (a) the bare chain: kinesalite and dynalite in child processes of their own with their data on
 *     disk (as the stack keeps it), 2 shards, PutRecords of 500 one-line records -> GetRecords ->
 *     BatchWriteItem of one ~250-byte item with 3 attributes per line into a table without index,
 *     nothing else running (measured before the pipeline starts and again after it stopped);
 * (b) end to end through `startPipeline()` (cli/pipeline.ts, what `npm start` runs, every component:
 *     API, poller, consumer, Firehose, loader, totesys): `retail-pipeline replay` of the first lines
 *     of the real file at full speed, in a process of its own as a user runs it, timed from the
 *     replay's start until /stats/countries counts every accepted line, and until fact_sales_line
 *     holds them; the billing counters (Kinesis PUT payload units, DynamoDB write request units) and
 *     the serving store's item bytes per line; warehouse-visible minus stream-visible per line;
 * (c) an offered 1,000 lines/s for 60 s: acceptedAt -> streamVisibleAt per line (read back from the
 *     Firehose archive, where the consumer puts it), p50 and p99; and its floor, (a)'s bare chain
 *     alone at the same offer (driveBareChainAtRate), measured before the pipeline starts;
 * (d) the whole real file through a fresh pipeline, then `reconcile` of that run (batch/reconcile.ts).
 * Without the real file, (b) and (d) are skipped with a message and (a) runs on generated lines.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import {
  type AttributeValue,
  BatchWriteItemCommand,
  CreateTableCommand,
  ScanCommand,
} from '@aws-sdk/client-dynamodb';
import {
  type _Record,
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  ListShardsCommand,
  PutRecordsCommand,
} from '@aws-sdk/client-kinesis';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { type Clients, createClients } from '#adapters/clients';
import { type Config, loadConfig } from '#adapters/config';
import { INDEXES, indexEntry, itemBytes } from '#adapters/dynamo-table';
import { createLogger } from '#adapters/logger';
import { dynamoLineSource, reconcile, warehouseLineSource } from '#batch/reconcile';
import { type Pipeline, startPipeline } from '#cli/pipeline';
import { encodeLine } from '#core/avro';
import { type AcceptedLine, type InvoiceLine, invoiceLineInput } from '#core/invoice-line';
import { percentile } from '#core/percentile';
import { startEmulatorProcesses } from '#local/emulator-process';
import { EPHEMERAL_PORTS, scratchDataDir } from '#local/scratch';
import { createGenerator } from '#producer/generator';
import { replayLines } from '#producer/replay';
import {
  type ConsumerProbeReport,
  hopSplit,
  type LineTimes,
  probeMessages,
  putProbe,
  slowest,
  stallMeter,
  tailStalls,
} from './stream-probe.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PROBE_CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'stream-probe-child.ts');
export const REAL_FILE = path.resolve(repoRoot, '../shared/data/online-retail/online-retail.csv.gz');

export interface StreamBenchOptions {
  /** Lines of (a) and (b): the first lines of the real file. Default 100,000. */
  lines?: number;
  /** Duration of the latency run (c). Default 60. */
  latencySeconds?: number;
  offeredLinesPerSecond?: number;
  /** Run (d), the whole file. Default true. */
  fullFile?: boolean;
  /**
   * Only (c), on a fresh pipeline with every component running, after a warm-up (BENCH_ONLY=c):
   * ~2 min, for measuring the latency again and again. Default false.
   */
  latencyOnly?: boolean;
  /** The real file. Default ../shared/data/online-retail/online-retail.csv.gz. */
  file?: string;
  progress?: (message: string) => void;
}

export interface Metric {
  metric: string;
  value: number | string;
  target?: string;
  met?: boolean;
}

const generate = (gen: { next(): InvoiceLine }, count: number): InvoiceLine[] =>
  Array.from({ length: count }, () => gen.next());
const round2 = (x: number) => Math.round(x * 100) / 100;
const load1 = () => round1(os.loadavg()[0] ?? 0);
const sleepMs = (ms: number) => new Promise((r) => setTimeout(r, ms));

const round1 = (x: number) => Math.round(x * 10) / 10;
const roundOrNull = (x: number | null) => (x === null ? null : round1(x));

/** CPU seconds (user + system) of a process, from /proc (Linux); undefined elsewhere. */
async function procCpuSeconds(pid: number): Promise<number | undefined> {
  try {
    const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the command name; 100 ticks/s on Linux.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/** The emulator children of this process (kinesalite, dynalite, s3rver: one each) and the consumer's, found through /proc. */
export async function emulatorPids(): Promise<Record<string, number>> {
  const found: Record<string, number> = {};
  let entries: string[];
  try {
    entries = await fs.readdir('/proc');
  } catch {
    return found;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = await fs.readFile(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== process.pid) continue;
      const cmd = await fs.readFile(`/proc/${e}/cmdline`, 'utf8');
      // The stream consumer runs in a child of its own under npm start (cli/consumer-process.ts).
      if (cmd.includes('consumer-child')) found.consumer = Number(e);
      if (!cmd.includes('emulator-child')) continue;
      const env = await fs.readFile(`/proc/${e}/environ`, 'utf8');
      const spec = env.split('\0').find((v) => v.startsWith('RP_EMULATOR_SPEC='));
      const service = spec ? (JSON.parse(spec.slice(17)) as { service?: string }).service : undefined;
      found[service ?? `child-${e}`] = Number(e);
    } catch {}
  }
  return found;
}

/** CPU use of the main process and of each emulator child over a measured span, as % of one core. */
export function cpuMeter(children: Record<string, number>) {
  const t0 = performance.now();
  const main0 = process.cpuUsage();
  const before = Promise.all(Object.values(children).map((pid) => procCpuSeconds(pid)));
  return async (): Promise<Record<string, number | null>> => {
    const ms = performance.now() - t0;
    const main = process.cpuUsage(main0);
    const b = await before;
    const a = await Promise.all(Object.values(children).map((pid) => procCpuSeconds(pid)));
    const out: Record<string, number | null> = {
      main: Math.round(((main.user + main.system) / 1000 / ms) * 100),
    };
    Object.keys(children).forEach((name, i) => {
      const c0 = b[i];
      const c1 = a[i];
      out[name] = c0 === undefined || c1 === undefined ? null : Math.round((((c1 - c0) * 1000) / ms) * 100);
    });
    return out;
  };
}

/**
 * Times every call an SDK client makes, per command: count, records per call (PutRecords /
 * GetRecords) and latency percentiles, as seen from the caller (queueing for a socket included).
 */
export function timeCommands(client: { middlewareStack: object }) {
  const stack = client.middlewareStack as {
    add(middleware: unknown, options: { step: 'initialize'; name: string; priority: 'high' }): void;
    remove(name: string): boolean;
  };
  const byCommand = new Map<string, { ms: number[]; records: number }>();
  const name = `benchTimer${Math.random().toString(36).slice(2)}`;
  stack.add(
    (next: (args: unknown) => Promise<{ output?: unknown }>, context: { commandName?: string }) =>
      async (args: { input?: { Records?: unknown[] } }) => {
        const t0 = performance.now();
        const out = await next(args);
        const entry = byCommand.get(context.commandName ?? '?') ?? { ms: [], records: 0 };
        entry.ms.push(performance.now() - t0);
        const output = out.output as { Records?: unknown[] } | undefined;
        entry.records += args.input?.Records?.length ?? output?.Records?.length ?? 0;
        byCommand.set(context.commandName ?? '?', entry);
        return out;
      },
    { step: 'initialize', name, priority: 'high' },
  );
  return {
    summary() {
      return Object.fromEntries(
        [...byCommand].map(([command, { ms, records }]) => {
          const sorted = [...ms].sort((a, b) => a - b);
          return [
            command,
            {
              calls: ms.length,
              recordsPerCall: round1(records / Math.max(1, ms.length)),
              p50Ms: roundOrNull(percentile(sorted, 50)),
              p99Ms: roundOrNull(percentile(sorted, 99)),
            },
          ];
        }),
      );
    },
    stop: () => stack.remove(name),
  };
}

// ---------------------------------------------------------------------------------------------
// (a) the bare chain: its own kinesalite and dynalite, nothing else.

/** The first `count` lines of the real file the API would accept, as the replay reads them. */
async function realLines(file: string, count: number): Promise<InvoiceLine[]> {
  const out: InvoiceLine[] = [];
  const producedAt = new Date().toISOString();
  for await (const { line } of replayLines(file, { encoding: 'utf8' })) {
    const parsed = invoiceLineInput.safeParse({ ...line, producedAt });
    if (parsed.success) out.push({ ...parsed.data, producedAt });
    if (out.length >= count) break;
  }
  return out;
}

const BARE_ITEM_BYTES = 250;

/**
 * The bare chain's item for a record: pk (partition key), sk (sequence number) and d, the record's
 * data cut or zero-padded so the item is ~250 bytes (DynamoDB's size rules): built from the record
 * alone, so (a) measures the calls, not a lookup or our decoding.
 */
function bareItem(r: _Record): Record<string, AttributeValue> {
  const pk = r.PartitionKey ?? '';
  const sk = r.SequenceNumber ?? '';
  const room = Math.max(
    1,
    BARE_ITEM_BYTES - itemBytes({ pk: { S: pk }, sk: { S: sk }, d: { B: new Uint8Array() } }),
  );
  const data = Buffer.from(r.Data ?? []);
  const d =
    data.length >= room ? data.subarray(0, room) : Buffer.concat([data, Buffer.alloc(room - data.length)]);
  return { pk: { S: pk }, sk: { S: sk }, d: { B: d } };
}

async function createBareStreamAndTable(clients: Clients, name: string, shards: number): Promise<void> {
  await clients.kinesis.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
  await clients.dynamodb.send(
    new CreateTableCommand({
      TableName: name,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
    }),
  );
  for (;;) {
    const s = await clients.kinesis.send(new DescribeStreamSummaryCommand({ StreamName: name }));
    if (s.StreamDescriptionSummary?.StreamStatus === 'ACTIVE') return;
    await sleepMs(20);
  }
}

/** What the bare chain's shard readers share: `allWritten` (bareChainStart) once `expected` are written. */
interface BareState {
  stop: boolean;
  written: number;
  itemBytes: number;
  expected: number;
  onWritten: () => void;
  onAcked?: (shardId: string, records: readonly _Record[], at: number) => void;
}

/**
 * The bare chain's start: `lines` as one-line records (encoded up front: the chain measures the
 * calls; one line per record, as the issue defines it), the stream's shards, and the readers' state.
 */
async function bareChainStart(clients: Clients, name: string, lines: InvoiceLine[]) {
  const acceptedAt = new Date().toISOString();
  const entries = lines.map((l) => ({
    Data: encodeLine({ ...l, acceptedAt } as AcceptedLine),
    PartitionKey: l.invoiceNo,
  }));
  const shards = (await clients.kinesis.send(new ListShardsCommand({ StreamName: name }))).Shards ?? [];
  let done!: () => void;
  const allWritten = new Promise<void>((r) => {
    done = r;
  });
  const state: BareState = {
    stop: false,
    written: 0,
    itemBytes: 0,
    expected: entries.length,
    onWritten: () => state.written >= state.expected && done(),
  };
  return { entries, shards, state, allWritten };
}

/**
 * One reader per shard: GetRecords of up to 500, each record's item written with BatchWriteItem.
 * `onAcked` hears each call's records once its writes are acknowledged.
 */
async function readAndWriteShard(
  clients: Clients,
  name: string,
  shardId: string,
  state: BareState,
): Promise<void> {
  let iterator = (
    await clients.kinesis.send(
      new GetShardIteratorCommand({ StreamName: name, ShardId: shardId, ShardIteratorType: 'TRIM_HORIZON' }),
    )
  ).ShardIterator;
  while (!state.stop && iterator) {
    const got = await clients.kinesis.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 500 }));
    iterator = got.NextShardIterator;
    const records = got.Records ?? [];
    if (records.length === 0) {
      await sleepMs(5);
      continue;
    }
    const puts = records.map((r) => ({ PutRequest: { Item: bareItem(r) } }));
    for (const p of puts) state.itemBytes += itemBytes(p.PutRequest.Item);
    const calls = [];
    for (let i = 0; i < puts.length; i += 25) calls.push(puts.slice(i, i + 25));
    await Promise.all(
      calls.map((c) => clients.dynamodb.send(new BatchWriteItemCommand({ RequestItems: { [name]: c } }))),
    );
    state.onAcked?.(shardId, records, performance.now());
    state.written += records.length;
    state.onWritten();
  }
}

/** (a): PutRecords of 500 (4 in flight) while each shard is read and written; until all are written. */
async function driveBareChain(clients: Clients, name: string, lines: InvoiceLine[], pids: number[]) {
  const { entries, shards, state, allWritten } = await bareChainStart(clients, name, lines);
  const cpu = cpuMeter(Object.fromEntries(pids.map((pid, i) => [['kinesis', 'dynamodb', 's3'][i], pid])));
  const started = performance.now();
  const readers = shards.map((s) => readAndWriteShard(clients, name, s.ShardId ?? '', state));
  for (let i = 0; i < entries.length; i += 2000) {
    const slice = entries.slice(i, i + 2000);
    const calls = [];
    for (let o = 0; o < slice.length; o += 500) calls.push(slice.slice(o, o + 500));
    await Promise.all(
      calls.map((c) => clients.kinesis.send(new PutRecordsCommand({ StreamName: name, Records: c }))),
    );
  }
  await allWritten;
  const elapsedMs = performance.now() - started;
  const cpuPercent = await cpu();
  state.stop = true;
  await Promise.all(readers);
  return {
    lines: lines.length,
    elapsedMs: Math.round(elapsedMs),
    linesPerSecond: Math.round((lines.length / elapsedMs) * 1000),
    meanItemBytes: Math.round(state.itemBytes / Math.max(1, state.written)),
    meanRecordBytes: Math.round(
      entries.reduce((n, e) => n + e.Data.byteLength, 0) / Math.max(1, entries.length),
    ),
    cpuPercent,
    loadAverage1m: load1(),
  };
}

/** (c)'s offer: a tick every 50 ms, each of `perTick` lines. */
const OFFER_TICK_MS = 50;

/**
 * Offers `lines` as (c) does, `rate` lines a second for `seconds` (fewer if the lines run out):
 * `send` is handed each tick's lines on time, without waiting for the ticks before. Answers the
 * lines offered.
 */
async function offerAtRate<T>(
  lines: readonly T[],
  seconds: number,
  rate: number,
  send: (tickLines: T[], tick: number) => void,
): Promise<T[]> {
  const perTick = Math.max(1, Math.round((rate * OFFER_TICK_MS) / 1000));
  const ticks = Math.min(Math.round((seconds * 1000) / OFFER_TICK_MS), Math.floor(lines.length / perTick));
  const offered = lines.slice(0, ticks * perTick);
  const started = performance.now();
  for (let t = 0; t < ticks; t++) {
    const wait = started + t * OFFER_TICK_MS - performance.now();
    if (wait > 0) await sleepMs(wait);
    send(offered.slice(t * perTick, (t + 1) * perTick), t);
  }
  return offered;
}

/**
 * (c)'s floor: the bare chain of (a) offered lines at (c)'s rate and pattern (offerAtRate: a PutRecords
 * of one-line records every 50 ms), each line timed from its PutRecords call to the acknowledgement of
 * its BatchWriteItem. The emulators alone, nothing else running: the latency the stream path's
 * emulators give on this machine before any of the pipeline's own hops (the API, the ownership read,
 * the product index) or its other processes are added.
 */
async function driveBareChainAtRate(
  clients: Clients,
  name: string,
  lines: InvoiceLine[],
  seconds: number,
  rate: number,
) {
  const { entries, shards, state, allWritten } = await bareChainStart(clients, name, lines);
  // By shard and sequence number: when its PutRecords was sent, when its item was acknowledged.
  const sentAt = new Map<string, number>();
  const ackedAt = new Map<string, number>();
  state.onAcked = (shardId, records, at) => {
    for (const r of records) ackedAt.set(`${shardId}/${r.SequenceNumber}`, at);
  };
  const readers = shards.map((s) => readAndWriteShard(clients, name, s.ShardId ?? '', state));
  const puts: Promise<void>[] = [];
  const offered = (
    await offerAtRate(entries, seconds, rate, (call) => {
      const at = performance.now();
      puts.push(
        clients.kinesis.send(new PutRecordsCommand({ StreamName: name, Records: call })).then((out) => {
          for (const r of out.Records ?? [])
            if (r.SequenceNumber) sentAt.set(`${r.ShardId}/${r.SequenceNumber}`, at);
        }),
      );
    })
  ).length;
  await Promise.all(puts);
  // A record refused would never be written: say so rather than wait for it.
  if (sentAt.size < offered)
    throw new Error(`PutRecords refused ${offered - sentAt.size} of ${offered} records`);
  state.expected = offered;
  state.onWritten();
  await allWritten;
  state.stop = true;
  await Promise.all(readers);
  // A line never acknowledged has no latency: left out before sorting (NaN has no order).
  const measured = [...sentAt]
    .map(([k, at]) => (ackedAt.get(k) ?? Number.NaN) - at)
    .filter((x) => !Number.isNaN(x))
    .sort((a, b) => a - b);
  return {
    offeredLinesPerSecond: rate,
    seconds,
    lines: offered,
    measured: measured.length,
    sentToAcknowledged: {
      p50Ms: roundOrNull(percentile(measured, 50)),
      p99Ms: roundOrNull(percentile(measured, 99)),
      maxMs: roundOrNull(measured.at(-1) ?? null),
    },
    loadAverage1m: load1(),
  };
}

/**
 * `use` on fresh emulator child processes (kinesalite, dynalite; s3rver starts with them and idles),
 * a stream of the configured shards and a table without index, both named `bench-bare`.
 */
async function withBareEmulators<T>(
  config: Config,
  use: (clients: Clients, name: string, pids: number[]) => Promise<T>,
): Promise<T> {
  const dir = await scratchDataDir('bench-bare-');
  const emulators = await startEmulatorProcesses({
    host: '127.0.0.1',
    ports: { kinesis: 0, dynamodb: 0, s3: 0 },
    directories: {
      kinesis: path.join(dir, 'kinesis'),
      dynamodb: path.join(dir, 'dynamodb'),
      s3: path.join(dir, 's3'),
    },
    buckets: ['bench-bare'],
  });
  const clients = createClients({
    region: config.region,
    local: true,
    endpoints: { kinesis: emulators.urls.kinesis, dynamodb: emulators.urls.dynamodb },
  });
  try {
    await createBareStreamAndTable(clients, 'bench-bare', config.streamShards);
    return await use(clients, 'bench-bare', emulators.pids);
  } finally {
    clients.destroy();
    await emulators.stop();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** (a) on fresh emulator child processes. */
const bareChain = (config: Config, lines: InvoiceLine[]) =>
  withBareEmulators(config, (clients, name, pids) => driveBareChain(clients, name, lines, pids));

/** (c)'s floor (driveBareChainAtRate) on fresh emulator child processes, on (c)'s kind of lines. */
function bareChainAtRate(config: Config, seconds: number, rate: number) {
  // Invoice numbers of their own; the emulators are fresh, so any would do.
  const lines = generate(createGenerator({ seed: 5, firstInvoiceNo: 700_000 }), rate * seconds + 100);
  return withBareEmulators(config, (clients, name) =>
    driveBareChainAtRate(clients, name, lines, seconds, rate),
  );
}

// ---------------------------------------------------------------------------------------------
// Through the real wiring: `retail-pipeline replay` in a process of its own, as a user runs it.

interface ReplayRun {
  runId: string;
  /** performance.now() when the replay said it started, right before its first POST. */
  startedAt: number;
  accepted: number;
  rejected: number;
  failed: number;
}

/** Reads the run log's summary row (producer/run-log.ts). */
async function runLogSummary(dataDir: string, runId: string) {
  const text = await fs.readFile(path.join(dataDir, 'runs', `${runId}.ndjson`), 'utf8');
  const last = text.trimEnd().split('\n').at(-1) ?? '{}';
  return JSON.parse(last) as { t?: string; accepted?: number; rejected?: number; failed?: number };
}

/**
 * Runs `retail-pipeline replay <file> [--limit n]` against the pipeline at full speed; `started`
 * resolves when the replay prints its `run <id>: replaying` line, `done` when it exits.
 */
function replayChild(p: Pipeline, file: string, limit: number | undefined) {
  const dataDir = p.stack.config.dataDir;
  const args = ['bin/retail-pipeline.js', 'replay', file, '--target', p.apiUrl, '--data-dir', dataDir];
  args.push('--no-progress', '--encoding', 'utf8', ...(limit ? ['--limit', String(limit)] : []));
  const child = spawn(process.execPath, args, { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  let runId: string | undefined;
  let resolveStarted!: (v: { runId: string; at: number }) => void;
  let rejectStarted!: (err: Error) => void;
  const started = new Promise<{ runId: string; at: number }>((resolve, reject) => {
    resolveStarted = resolve;
    rejectStarted = reject;
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    const at = performance.now();
    stderr += chunk;
    const m = runId ? undefined : /run (\S+): replaying/.exec(stderr);
    if (m?.[1]) {
      runId = m[1];
      resolveStarted({ runId, at });
    }
  });
  const done = new Promise<ReplayRun>((resolve, reject) => {
    child.once('exit', async (code) => {
      if (code !== 0 || !runId) {
        const err = new Error(`replay exited with code ${code}: ${stderr.slice(-2000)}`);
        rejectStarted(err);
        reject(err);
        return;
      }
      const s = await runLogSummary(dataDir, runId).catch(() => ({}) as Record<string, number>);
      const { at } = await started;
      const { accepted = 0, rejected = 0, failed = 0 } = s;
      resolve({ runId, startedAt: at, accepted, rejected, failed });
    });
  });
  return { started, done };
}

/** Polls `check` until it is true; the time it first was. Throws after `timeoutMs`. */
async function waitFor(what: string, check: () => Promise<boolean>, everyMs: number, timeoutMs: number) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await check()) return performance.now();
    if (performance.now() > deadline)
      throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleepMs(everyMs);
  }
}

async function totalLines(apiUrl: string): Promise<number> {
  const res = await fetch(`${apiUrl}/stats/countries`);
  const body = (await res.json()) as { totals: { lines: number } };
  return body.totals.lines;
}

async function warehouseLines(p: Pipeline): Promise<number> {
  const { rows } = await p.warehouse.query<{ n: string }>('SELECT count(*) AS n FROM fact_sales_line');
  return Number(rows[0]?.n ?? 0);
}

/**
 * Replays `limit` lines (all when undefined) and times: replay start -> the aggregates count every
 * accepted line (stream) -> fact_sales_line holds them (warehouse). Counts are deltas, so an
 * earlier phase's lines do not count.
 */
async function replayThrough(p: Pipeline, file: string, limit: number | undefined, timeoutMs: number) {
  const [aggregates0, warehouse0] = [await totalLines(p.apiUrl), await warehouseLines(p)];
  const billing0 = p.billing();
  const pids = await emulatorPids();
  const run = replayChild(p, file, limit);
  let finished: ReplayRun | undefined;
  let failure: unknown;
  run.done.then(
    (r) => {
      finished = r;
    },
    (err) => {
      failure = err;
    },
  );
  const { at: startedAt } = await run.started;
  const cpu = cpuMeter(pids);
  const counted = (n: number) => {
    if (failure) throw failure;
    return finished !== undefined && n >= finished.accepted;
  };
  const [streamAt, warehouseAt] = await Promise.all([
    waitFor(
      'the aggregates',
      async () => counted((await totalLines(p.apiUrl)) - aggregates0),
      100,
      timeoutMs,
    ),
    waitFor('the warehouse', async () => counted((await warehouseLines(p)) - warehouse0), 250, timeoutMs),
  ]);
  const replay = await run.done;
  const cpuPercent = await cpu();
  const streamMs = streamAt - startedAt;
  const warehouseMs = warehouseAt - startedAt;
  return {
    replay,
    streamMs: Math.round(streamMs),
    warehouseMs: Math.round(warehouseMs),
    streamLinesPerSecond: Math.round((replay.accepted / streamMs) * 1000),
    warehouseLinesPerSecond: Math.round((replay.accepted / warehouseMs) * 1000),
    billing: billingPerLine(billing0, p.billing(), replay.accepted),
    cpuPercent,
    loadAverage1m: load1(),
  };
}

/** Per accepted line: what the API's writer and the consumer's store counted over a phase. */
function billingPerLine(
  before: ReturnType<Pipeline['billing']>,
  after: ReturnType<Pipeline['billing']>,
  lines: number,
) {
  const k0 = before.kinesis;
  const k1 = after.kinesis;
  const d0 = before.dynamodb;
  const d1 = after.dynamodb;
  const per = (x: number) => Math.round((x / Math.max(1, lines)) * 10_000) / 10_000;
  return {
    kinesis:
      k0 && k1
        ? {
            records: k1.records - k0.records,
            putPayloadUnits: k1.putPayloadUnits - k0.putPayloadUnits,
            putPayloadUnitsPerLine: per(k1.putPayloadUnits - k0.putPayloadUnits),
            linesPerRecord: round1((k1.lines - k0.lines) / Math.max(1, k1.records - k0.records)),
            putRecordsCalls: k1.calls - k0.calls,
          }
        : null,
    dynamodb:
      d0 && d1
        ? {
            writeUnits: d1.writeUnits - d0.writeUnits,
            indexWriteUnits: d1.indexWriteUnits - d0.indexWriteUnits,
            itemsWritten: d1.items - d0.items,
            writeUnitsPerLine: per(d1.writeUnits - d0.writeUnits),
            itemsPerLine: per(d1.items - d0.items),
          }
        : null,
  };
}

/** Per line: warehouse_visible_at - stream_visible_at of the lines in fact_sales_line (item 5). */
async function warehouseLag(p: Pipeline) {
  const { rows } = await p.warehouse.query<{
    n: string;
    p50: number | null;
    p99: number | null;
    max: number | null;
  }>(
    `SELECT count(*) AS n,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY lag) AS p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY lag) AS p99,
       max(lag) AS max
     FROM (SELECT EXTRACT(EPOCH FROM warehouse_visible_at - stream_visible_at) * 1000 AS lag
           FROM fact_sales_line WHERE stream_visible_at IS NOT NULL) t`,
  );
  const r = rows[0];
  const ms = (x: number | null | undefined) => (x === null || x === undefined ? null : Math.round(Number(x)));
  return { lines: Number(r?.n ?? 0), p50Ms: ms(r?.p50), p99Ms: ms(r?.p99), maxMs: ms(r?.max) };
}

const itemKind = (item: Record<string, AttributeValue>): string => {
  const pk = item.pk?.S ?? '';
  const sk = item.sk?.S ?? '';
  if (pk.startsWith('INV#'))
    return sk === 'HEADER' ? 'header' : sk.startsWith('LINES#') ? 'lineChunk' : 'invoiceOther';
  return pk.startsWith('PROD#') ? 'product' : 'other';
};

/**
 * The serving store's bytes as DynamoDB bills storage: each item's size plus 100 bytes of overhead,
 * and the same for each index entry it has. Scanned after (b), so per line of (b).
 */
async function storageBytes(p: Pipeline, lines: number) {
  const byKind: Record<string, { items: number; bytes: number; indexBytes: number }> = {};
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await p.stack.clients.dynamodb.send(
      new ScanCommand({
        TableName: p.stack.config.names.table,
        ...(start ? { ExclusiveStartKey: start } : {}),
      }),
    );
    for (const item of page.Items ?? []) {
      const kind = itemKind(item);
      const k = byKind[kind] ?? { items: 0, bytes: 0, indexBytes: 0 };
      byKind[kind] = k;
      k.items++;
      k.bytes += itemBytes(item) + 100;
      for (const index of INDEXES) {
        const entry = indexEntry(item, index);
        if (entry) k.indexBytes += itemBytes(entry) + 100;
      }
    }
    start = page.LastEvaluatedKey;
  } while (start);
  const lineKinds = ['header', 'lineChunk', 'product', 'invoiceOther'];
  const total = lineKinds.reduce((n, k) => n + (byKind[k]?.bytes ?? 0) + (byKind[k]?.indexBytes ?? 0), 0);
  return { byKind, bytesPerLine: Math.round(total / Math.max(1, lines)) };
}
function poster(apiUrl: string) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const post = (lines: readonly InvoiceLine[]) =>
    new Promise<number>((resolve, reject) => {
      const body = JSON.stringify(lines);
      const req = http.request(
        `${apiUrl}/invoices`,
        {
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  return { post, close: () => agent.destroy() };
}

interface ArchivedLine {
  invoiceNo: string;
  lineNo: number;
  sequenceNumber: string;
  producedAt: string;
  acceptedAt: string;
  streamVisibleAt: string;
}

/** Reads the Firehose archive objects not read yet and records the first copy of each line. */
async function readArchive(
  p: Pipeline,
  seen: Set<string>,
  wanted: ReadonlySet<string>,
  into: Map<string, ArchivedLine>,
): Promise<void> {
  const { s3 } = p.stack.clients;
  const bucket = p.stack.config.names.bucket;
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({
        Bucket: bucket,
        Prefix: 'archive/',
        ...(token ? { ContinuationToken: token } : {}),
      }),
    );
    for (const o of page.Contents ?? []) {
      if (!o.Key || seen.has(o.Key)) continue;
      seen.add(o.Key);
      const obj = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key }));
      const bytes = await (
        obj.Body as { transformToByteArray(): Promise<Uint8Array> }
      ).transformToByteArray();
      for (const text of gunzipSync(Buffer.from(bytes)).toString().split('\n')) {
        if (text === '') continue;
        const l = JSON.parse(text) as ArchivedLine;
        const key = `${l.invoiceNo}#${l.lineNo}`;
        if (wanted.has(key) && !into.has(key)) into.set(key, l);
      }
    }
    token = page.NextContinuationToken;
  } while (token);
}

/** Each sent line's first archived copy (streamVisibleAt travels with it); waits out Firehose's buffer. */
async function archivedTimes(p: Pipeline, sent: readonly InvoiceLine[]) {
  const wanted = new Set(sent.map((l) => `${l.invoiceNo}#${l.lineNo}`));
  const archived = new Map<string, ArchivedLine>();
  const seen = new Set<string>();
  const deadline = Date.now() + 60_000;
  for (;;) {
    await readArchive(p, seen, wanted, archived);
    if (archived.size >= wanted.size || Date.now() > deadline) break;
    await sleepMs(500);
  }
  const total: number[] = [];
  const toAccepted: number[] = [];
  const acceptedToVisible: number[] = [];
  for (const l of archived.values()) {
    const produced = Date.parse(l.producedAt);
    const acceptedAt = Date.parse(l.acceptedAt);
    const visible = Date.parse(l.streamVisibleAt);
    total.push(visible - produced);
    toAccepted.push(acceptedAt - produced);
    acceptedToVisible.push(visible - acceptedAt);
  }
  for (const a of [total, toAccepted, acceptedToVisible]) a.sort((x, y) => x - y);
  return { measured: archived.size, total, toAccepted, acceptedToVisible, lines: [...archived.values()] };
}

// (c) latency at an offered rate

/** Asks the consumer's process (bench/stream-probe-child.ts) for what its probes saw. */
function consumerReport(p: Pipeline): Promise<ConsumerProbeReport | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      off();
      resolve(undefined);
    }, 10_000);
    const off = p.consumer.onEvent((event) => {
      const m =
        event.type === 'message' ? (event.message as { type?: string; report?: ConsumerProbeReport }) : {};
      if (m.type !== probeMessages.report) return;
      clearTimeout(timer);
      off();
      resolve(m.report);
    });
    p.consumer.send({ type: probeMessages.report });
  });
}

/** Each measured line's times at every probe, joined by its record's sequence number. */
function lineTimes(
  archived: readonly ArchivedLine[],
  puts: Map<string, [number, number]>,
  consumer: ConsumerProbeReport | undefined,
): LineTimes[] {
  const seen = new Map(consumer?.seen.map(([s, at, arrived]) => [s, [at, arrived] as const]));
  const sent = new Map(consumer?.chunkSent);
  const read = new Map(consumer?.readSent);
  return archived.map((l) => {
    const put = puts.get(l.sequenceNumber);
    const got = seen.get(l.sequenceNumber);
    return {
      acceptedAt: Date.parse(l.acceptedAt),
      putSentAt: put?.[0],
      putReturnedAt: put?.[1],
      arrivedAt: got?.[1],
      seenAt: got?.[0],
      readSentAt: read.get(l.sequenceNumber),
      chunkSentAt: sent.get(l.sequenceNumber),
      visibleAt: Date.parse(l.streamVisibleAt),
    };
  });
}

/** The batch path's visible events during (c): archive objects sealed, lake and totesys files written. */
function batchEvents(p: Pipeline, since: number) {
  const events: [number, string][] = [];
  p.stack.onObjectCreated((key) => events.push([Date.now() - since, key.split('/')[0] ?? key]));
  return events;
}

async function latency(p: Pipeline, lines: InvoiceLine[], seconds: number, rate: number) {
  const { post, close } = poster(p.apiUrl);
  // Per-call latency as the pipeline's clients see it (API writer, poller, consumer, Firehose).
  const timers = {
    kinesis: timeCommands(p.stack.clients.kinesis),
    dynamodb: timeCommands(p.stack.clients.dynamodb),
    firehose: timeCommands(p.stack.clients.firehose),
  };
  const cpu = cpuMeter(await emulatorPids());
  p.consumer.send({ type: probeMessages.reset });
  const puts = putProbe(p.stack.clients.kinesis);
  const loop = stallMeter();
  const started = Date.now();
  const events = batchEvents(p, started);
  const inflight: Promise<number>[] = [];
  const sent = await offerAtRate(lines, seconds, rate, (tickLines) => {
    const producedAt = new Date().toISOString();
    inflight.push(post(tickLines.map((l) => ({ ...l, producedAt }))));
  });
  const statuses = await Promise.all(inflight);
  const offeredSpanMs = Date.now() - started;
  await p.poller.idle();
  const cpuPercent = await cpu();
  const calls = Object.fromEntries(Object.entries(timers).map(([k, t]) => [k, t.summary()]));
  for (const t of Object.values(timers)) t.stop();
  puts.stop();
  const pipelineLoop = loop.report();
  loop.stop();
  const consumer = await consumerReport(p);
  close();
  const times = await archivedTimes(p, sent);
  const pct = (a: number[], q: number) => percentile(a, q);
  const traced = lineTimes(times.lines, puts.times, consumer);
  const stalls = { pipeline: pipelineLoop.stalls, consumer: consumer?.eventLoop.stalls ?? [] };
  const loopSummary = (r: typeof pipelineLoop | undefined) =>
    r && {
      p50Ms: r.p50Ms,
      p99Ms: r.p99Ms,
      maxMs: r.maxMs,
      stalls50Ms: r.stalls.filter(([, l]) => l >= 50).length,
    };
  return {
    offeredLinesPerSecond: rate,
    achievedOfferedLinesPerSecond: Math.round((sent.length / offeredSpanMs) * 1000),
    seconds,
    lines: sent.length,
    refusedRequests: statuses.filter((s) => s !== 202).length,
    measured: times.measured,
    acceptedToVisible: {
      p50Ms: pct(times.acceptedToVisible, 50),
      p95Ms: pct(times.acceptedToVisible, 95),
      p99Ms: pct(times.acceptedToVisible, 99),
      maxMs: times.acceptedToVisible.at(-1) ?? null,
    },
    postToVisible: { p50Ms: pct(times.total, 50), p99Ms: pct(times.total, 99) },
    postToAccepted: { p50Ms: pct(times.toAccepted, 50), p99Ms: pct(times.toAccepted, 99) },
    hops: hopSplit(traced),
    eventLoop: { pipeline: loopSummary(pipelineLoop), consumer: loopSummary(consumer?.eventLoop) },
    tailStalls: tailStalls(traced, stalls),
    slowest: slowest(traced, consumer, stalls, events, started),
    batchEvents: events,
    cpuPercent,
    calls: { ...calls, consumer: consumer?.calls },
    loadAverage1m: load1(),
  };
}

function benchConfig(dataDir: string): Config {
  // RP_* settings from the environment still apply (e.g. RP_POLL_BATCH_SIZE), except where things run.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('RP_')));
  return loadConfig({
    RP_LOG_LEVEL: 'warn',
    ...env,
    ...EPHEMERAL_PORTS,
    RP_DATA_DIR: dataDir,
  });
}

/**
 * Waits until this process (the pipeline's API, consumer, Firehose, loader, totesys) has used less
 * than a quarter of a core for 2 s in a row, at most 2 minutes: right after start the totesys
 * capture extracts, transforms and loads its whole seeded source (~20-30 s of CPU), a one-off that
 * would otherwise fall inside (b) and (d).
 */
async function settled(progress: (message: string) => void): Promise<void> {
  const t0 = performance.now();
  let quiet = 0;
  while (quiet < 2 && performance.now() - t0 < 120_000) {
    const before = process.cpuUsage();
    await sleepMs(1000);
    const used = process.cpuUsage(before);
    quiet = (used.user + used.system) / 1000 < 250 ? quiet + 1 : 0;
  }
  progress(`pipeline settled after ${round1((performance.now() - t0) / 1000)} s (load ${load1()})`);
}

/** A fresh `startPipeline()` (every component, as `npm start`) on a scratch data directory. */
async function withPipeline<T>(
  prefix: string,
  progress: (message: string) => void,
  use: (p: Pipeline) => Promise<T>,
): Promise<T> {
  const dataDir = await scratchDataDir(prefix);
  const config = benchConfig(dataDir);
  const p = await startPipeline({
    config,
    logger: createLogger(config.logLevel, 'bench'),
    fresh: true,
    // The consumer's process as npm start runs it, plus the probes (c) reads (bench/stream-probe.ts).
    consumerProcess: { entry: PROBE_CHILD },
  });
  try {
    await settled(progress);
    return await use(p);
  } finally {
    await p.stop();
    await fs.rm(dataDir, { recursive: true, force: true });
  }
}

/** (d): the whole file, then reconcile of that run's lines in DynamoDB and the warehouse. */
async function wholeFile(p: Pipeline, file: string) {
  const run = await replayThrough(p, file, undefined, 30 * 60_000);
  const t0 = performance.now();
  const report = await reconcile({
    runLogDir: path.join(p.stack.config.dataDir, 'runs'),
    scope: { runIds: [run.replay.runId] },
    sources: [
      dynamoLineSource({ client: p.stack.clients.dynamodb, table: p.stack.config.names.table, mode: 'auto' }),
      warehouseLineSource(p.warehouse),
    ],
    sampleLimit: 5,
  });
  const reconcileMs = Math.round(performance.now() - t0);
  return {
    ...run,
    reconcile: {
      ok: report.ok,
      ms: reconcileMs,
      stores: report.stores.map(({ samples: _, ...s }) => s),
    },
    totalMs: run.warehouseMs + reconcileMs,
  };
}

type Bare = Awaited<ReturnType<typeof bareChain>>;
type Floor = Awaited<ReturnType<typeof bareChainAtRate>>;
type Through = Awaited<ReturnType<typeof replayThrough>>;
type Latency = Awaited<ReturnType<typeof latency>>;
type Whole = Awaited<ReturnType<typeof wholeFile>>;

interface Measured {
  bare: Bare[];
  through?: Through;
  lag?: Awaited<ReturnType<typeof warehouseLag>>;
  storage?: Awaited<ReturnType<typeof storageBytes>>;
  latency: Latency;
  /** (c)'s floor: the bare chain alone at (c)'s offer. */
  floor?: Floor;
  whole?: Whole;
  skipped: string[];
  bufferSeconds: number;
}

/** Why a phase did not run (the message given when it was skipped). */
const skippedWhy = (m: Measured, phase: '(b)' | '(d)') => {
  const why = m.skipped.find((s) => s.includes(phase));
  return why?.includes('absent') ? 'skipped: real file absent' : why ? 'skipped: fullFile false' : 'skipped';
};

/** (a), (b) and what (b) measured per line: each with its target (issue 14) and whether it was met. */
function throughputRows(m: Measured): Metric[] {
  const bareRate = Math.round(m.bare.reduce((n, b) => n + b.linesPerSecond, 0) / Math.max(1, m.bare.length));
  const t = m.through;
  const ratio = t ? round2(t.streamLinesPerSecond / bareRate) : undefined;
  const k = t?.billing.kinesis;
  const d = t?.billing.dynamodb;
  const lagTarget = (m.bufferSeconds + 2) * 1000;
  const skip = skippedWhy(m, '(b)');
  return [
    {
      metric: '(a) bare chain, lines/s (before / after the pipeline)',
      value: m.bare.map((b) => b.linesPerSecond).join(' / '),
    },
    { metric: '(b) replay -> aggregates count all, lines/s', value: t?.streamLinesPerSecond ?? skip },
    { metric: '(b) replay -> warehouse holds all, lines/s', value: t?.warehouseLinesPerSecond ?? skip },
    {
      metric: '(b)/(a) (mean of (a))',
      value: ratio ?? skip,
      target: '>= 0.7',
      ...(ratio !== undefined ? { met: ratio >= 0.7 } : {}),
    },
    {
      metric: '(b) warehouse-visible - stream-visible p50 / p99 / max ms',
      value: m.lag ? `${m.lag.p50Ms} / ${m.lag.p99Ms} / ${m.lag.maxMs}` : skip,
      target: `max <= ${lagTarget} (buffer + 2 s)`,
      ...(m.lag?.maxMs != null ? { met: m.lag.maxMs <= lagTarget } : {}),
    },
    {
      metric: '(b) Kinesis PUT payload units / line',
      value: k?.putPayloadUnitsPerLine ?? skip,
      target: '<= 0.1',
      ...(k ? { met: k.putPayloadUnitsPerLine <= 0.1 } : {}),
    },
    {
      metric: '(b) DynamoDB write request units / line',
      value: d?.writeUnitsPerLine ?? skip,
      target: '<= 0.5',
      ...(d ? { met: d.writeUnitsPerLine <= 0.5 } : {}),
    },
    {
      metric: '(b) DynamoDB bytes stored / line (items + index entries, 100 B overhead each)',
      value: m.storage?.bytesPerLine ?? skip,
    },
  ];
}

/** (c) and (d), each with its target (issue 14). */
function latencyAndWholeRows(m: Measured): Metric[] {
  const lat = m.latency.acceptedToVisible;
  const w = m.whole;
  const skip = skippedWhy(m, '(d)');
  return [
    {
      metric: `(c) ${m.latency.offeredLinesPerSecond} lines/s for ${m.latency.seconds} s: accepted -> stream-visible p50 ms`,
      value: lat.p50Ms ?? 'none measured',
    },
    {
      metric: '(c) accepted -> stream-visible p99 ms',
      value: lat.p99Ms ?? 'none measured',
      target: '<= 100',
      met: lat.p99Ms !== null && lat.p99Ms <= 100 && m.latency.measured === m.latency.lines,
    },
    { metric: '(c) lines measured / sent', value: `${m.latency.measured} / ${m.latency.lines}` },
    ...(m.floor
      ? [
          {
            metric: `(c)'s floor: the bare chain alone at the same offer, PutRecords sent -> item acknowledged p50 / p99 / max ms`,
            value: `${m.floor.sentToAcknowledged.p50Ms} / ${m.floor.sentToAcknowledged.p99Ms} / ${m.floor.sentToAcknowledged.maxMs}`,
          },
        ]
      : []),
    {
      metric: '(d) whole file: replay -> aggregates / warehouse s',
      value: w ? `${round1(w.streamMs / 1000)} / ${round1(w.warehouseMs / 1000)}` : skip,
      target: '<= 180',
      ...(w ? { met: w.streamMs <= 180_000 } : {}),
    },
    {
      metric: '(d) reconcile of that run: result, s; replay start -> reconciled s',
      value: w
        ? `${w.reconcile.ok ? 'clean' : 'DIFFERENCES'}, ${round1(w.reconcile.ms / 1000)}; ${round1(w.totalMs / 1000)}`
        : skip,
      ...(w ? { met: w.reconcile.ok } : {}),
    },
  ];
}

/** (b), then the store's bytes and the warehouse lag of (b)'s lines, then (c), on one pipeline. */
async function throughAndLatency(
  p: Pipeline,
  file: string | undefined,
  o: Required<Pick<StreamBenchOptions, 'lines' | 'latencySeconds' | 'offeredLinesPerSecond'>>,
  progress: (m: string) => void,
) {
  let through: Through | undefined;
  let lag: Measured['lag'];
  let storage: Measured['storage'];
  if (file) {
    progress(`(b) replay of the first ${o.lines} lines of the real file at full speed (load ${load1()})`);
    through = await replayThrough(p, file, o.lines, 15 * 60_000);
    progress(
      `(b) ${through.streamLinesPerSecond} lines/s to the aggregates, ${through.warehouseLinesPerSecond} to the warehouse`,
    );
    lag = await warehouseLag(p);
    storage = await storageBytes(p, through.replay.accepted);
  }
  const rate = o.offeredLinesPerSecond;
  progress(`(c) ${rate} lines/s offered for ${o.latencySeconds} s (load ${load1()})`);
  // Invoice numbers past the real file's (536365-581587): none is taken for a re-send of (b)'s.
  const gen = createGenerator({ seed: 7, firstInvoiceNo: 900_000 });
  const lat = await latency(
    p,
    generate(gen, Math.ceil(rate * o.latencySeconds) + 100),
    o.latencySeconds,
    rate,
  );
  progress(
    `(c) accepted -> stream-visible p50 ${lat.acceptedToVisible.p50Ms} ms, p99 ${lat.acceptedToVisible.p99Ms} ms`,
  );
  return { through, lag, storage, latency: lat };
}

/** (c)'s floor (bareChainAtRate), with its progress lines. */
async function latencyFloor(
  config: Config,
  o: Required<Pick<StreamBenchOptions, 'latencySeconds' | 'offeredLinesPerSecond'>>,
  progress: (m: string) => void,
): Promise<Floor> {
  progress(
    `(c)'s floor: the bare chain alone, ${o.offeredLinesPerSecond} lines/s for ${o.latencySeconds} s (load ${load1()})`,
  );
  const floor = await bareChainAtRate(config, o.latencySeconds, o.offeredLinesPerSecond);
  progress(`(c)'s floor: p50 ${floor.sentToAcknowledged.p50Ms} ms, p99 ${floor.sentToAcknowledged.p99Ms} ms`);
  return floor;
}

/** Seconds of (c)'s offer before (c) alone measures (BENCH_ONLY=c). */
const WARM_UP_SECONDS = 10;

/**
 * (c) alone on a fresh pipeline (BENCH_ONLY=c). In a whole run (c) follows (b), on processes that
 * have just served 100,000 lines; on a fresh pipeline every process (the emulators, the consumer, the
 * API) is cold for its first seconds (V8 compiles as it goes: lines took ~200 ms there against ~20 ms
 * after). So the same offer runs first for WARM_UP_SECONDS, other invoices, and is reported on its
 * own row, not in (c).
 */
async function latencyOnly(
  o: Required<Pick<StreamBenchOptions, 'lines' | 'latencySeconds' | 'offeredLinesPerSecond'>>,
  progress: (m: string) => void,
): Promise<Record<string, unknown>> {
  const load0 = os.loadavg();
  const config = benchConfig(os.tmpdir());
  const rate = o.offeredLinesPerSecond;
  const floor = await latencyFloor(config, o, progress);
  const { latency: lat, warmUp } = await withPipeline('bench-stream-c-', progress, async (p) => {
    progress(`(c) warm-up: ${rate} lines/s for ${WARM_UP_SECONDS} s, not measured (load ${load1()})`);
    // Invoice numbers below (c)'s (900000 on) and past the real file's.
    const gen = createGenerator({ seed: 11, firstInvoiceNo: 800_000 });
    const warm = await latency(p, generate(gen, rate * WARM_UP_SECONDS + 100), WARM_UP_SECONDS, rate);
    return { ...(await throughAndLatency(p, undefined, o, progress)), warmUp: warm.acceptedToVisible };
  });
  const m: Measured = {
    bare: [],
    latency: lat,
    floor,
    skipped: ['(a), (b), (d): BENCH_ONLY=c'],
    bufferSeconds: 0,
  };
  const summary = latencyAndWholeRows(m).slice(0, 4);
  summary.push({
    metric: `(c) warm-up, the first ${WARM_UP_SECONDS} s of a fresh pipeline: p50 / p99 ms (not in (c))`,
    value: `${warmUp.p50Ms} / ${warmUp.p99Ms}`,
  });
  summary.push({
    metric: 'load average (1 min) before / after',
    value: `${round1(load0[0] ?? 0)} / ${load1()}`,
  });
  return {
    summary,
    machine: {
      cpus: os.cpus().length,
      loadAverageBefore: load0.map(round1),
      loadAverageAfter: os.loadavg().map(round1),
    },
    config: { shards: config.streamShards, poller: config.poller, firehose: config.firehose },
    latency: lat,
    floor,
    warmUp,
  };
}

export async function runStreamBench(options: StreamBenchOptions = {}): Promise<Record<string, unknown>> {
  const o = {
    lines: options.lines ?? 100_000,
    latencySeconds: options.latencySeconds ?? 60,
    offeredLinesPerSecond: options.offeredLinesPerSecond ?? 1000,
  };
  const progress = options.progress ?? (() => {});
  const load0 = os.loadavg();
  if (options.latencyOnly) return latencyOnly(o, progress);
  const realFile = options.file ?? REAL_FILE;
  const file = await fs.access(realFile).then(
    () => realFile,
    () => undefined,
  );
  const skipped: string[] = [];
  if (!file) {
    skipped.push(`(b) and (d) skipped: the real file ${realFile} is absent; (a) runs on generated lines`);
    progress(skipped[0] as string);
  }
  const config = benchConfig(os.tmpdir());
  const lines = file ? await realLines(file, o.lines) : generate(createGenerator({ seed: 100 }), o.lines);
  progress(`(a) bare chain, ${lines.length} lines, nothing else running (load ${load1()})`);
  const bare = [await bareChain(config, lines)];
  progress(`(a) ${bare[0]?.linesPerSecond} lines/s`);
  const floor = await latencyFloor(config, o, progress);
  const first = await withPipeline('bench-stream-', progress, (p) => throughAndLatency(p, file, o, progress));
  progress(`(a) again, after the pipeline stopped (load ${load1()})`);
  bare.push(await bareChain(config, lines));
  progress(`(a) ${bare[1]?.linesPerSecond} lines/s`);
  let whole: Whole | undefined;
  if (file && options.fullFile !== false) {
    progress(`(d) the whole real file through a fresh pipeline, then reconcile (load ${load1()})`);
    whole = await withPipeline('bench-stream-d-', progress, (p) => wholeFile(p, file));
    progress(
      `(d) ${round1(whole.streamMs / 1000)} s to the aggregates, reconcile ${whole.reconcile.ok ? 'clean' : 'NOT clean'}`,
    );
  } else if (file) skipped.push('(d) skipped: fullFile false (BENCH_FULL=0)');
  const measured: Measured = {
    bare,
    ...first,
    floor,
    ...(whole ? { whole } : {}),
    skipped,
    bufferSeconds: config.firehose.bufferSeconds,
  };
  const summary = [...throughputRows(measured), ...latencyAndWholeRows(measured)];
  summary.push({
    metric: 'load average (1 min) before / after',
    value: `${round1(load0[0] ?? 0)} / ${load1()}`,
  });
  return {
    summary,
    machine: {
      cpus: os.cpus().length,
      loadAverageBefore: load0.map(round1),
      loadAverageAfter: os.loadavg().map(round1),
    },
    config: {
      shards: config.streamShards,
      poller: config.poller,
      firehose: config.firehose,
      file: file ?? null,
    },
    ...measured,
  };
}

const invokedDirectly = process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  const env = process.env;
  const result = await runStreamBench({
    ...(env.BENCH_LINES ? { lines: Number(env.BENCH_LINES) } : {}),
    ...(env.BENCH_LATENCY_SECONDS ? { latencySeconds: Number(env.BENCH_LATENCY_SECONDS) } : {}),
    ...(env.BENCH_FULL === '0' ? { fullFile: false } : {}),
    ...(env.BENCH_ONLY === 'c' ? { latencyOnly: true } : {}),
    ...(env.BENCH_FILE ? { file: env.BENCH_FILE } : {}),
    progress: (m) => process.stderr.write(`[stream ${new Date().toISOString().slice(11, 19)}] ${m}\n`),
  });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
