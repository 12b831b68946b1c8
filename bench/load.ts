/**
 * Load: N concurrent clients POST invoices to the local API (the whole pipeline running) for S
 * seconds; then every accepted line must reconcile in DynamoDB and the warehouse.
 *
 *   node --import tsx bench/load.ts [--clients 200] [--seconds 60] [--lines 10]
 */

import { fork } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { loadConfig } from '#adapters/config';
import { createLogger } from '#adapters/logger';
import { dynamoLineSource, type ReconcileReport, reconcile, warehouseLineSource } from '#batch/reconcile';
import { startPipeline } from '#cli/pipeline';
import type { InvoiceLineInput } from '#core/invoice-line';
import { percentile } from '#core/percentile';
import { EPHEMERAL_PORTS, scratchDataDir } from '#local/scratch';
import { newRunId, openRunLog } from '#producer/run-log';
import { cpuMeter, emulatorPids, timeCommands } from './stream.ts';

export interface LoadOptions {
  clients?: number;
  seconds?: number;
  /** Lines per request (one invoice per request). */
  linesPerRequest?: number;
  /** How long the stores may take to catch up after the last request. */
  settleTimeoutMs?: number;
  progress?: (message: string) => void;
}

interface ClientSpec {
  apiUrl: string;
  clients: number;
  seconds: number;
  perRequest: number;
}

type ClientMessage =
  | { t: 'accepted'; lines: InvoiceLineInput[] }
  | { t: 'done'; latencies: number[]; statuses: Record<string, number> };

/**
 * The clients run in a process of their own, as real clients would. In the pipeline's process they
 * measured themselves: with clients and server on one event loop, a busy loop served some keep-alive
 * connections over and over while others waited for the whole run (p99 = run length, in a 30-line
 * repro too); Node 20's fetch (undici) did the same even to an idle server. Plain CommonJS run with
 * `node -e`, so the child needs no TypeScript loader.
 */
const CLIENT_SOURCE = `
const http = require('node:http');
const spec = JSON.parse(process.env.RP_LOAD_SPEC);
const agent = new http.Agent({ keepAlive: true, maxSockets: spec.clients });
const url = new URL('/invoices', spec.apiUrl);
const latencies = [];
const statuses = {};
const post = (body) => new Promise((resolve, reject) => {
  const req = http.request(url, {
    method: 'POST', agent, timeout: 30000,
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
  }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); res.on('error', reject); });
  req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { name: 'TimeoutError' })));
  req.on('error', reject);
  req.end(body);
});
const until = performance.now() + spec.seconds * 1000;
const client = async (c) => {
  for (let k = 0; performance.now() < until; k++) {
    // Invoice numbers of their own per client: 7 digits + client + sequence stays within 10 digits.
    const invoiceNo = String(1000000000 + c * 1000000 + k);
    const lines = Array.from({ length: spec.perRequest }, (_, i) => ({
      invoiceNo,
      lineNo: i + 1,
      stockCode: '2' + String(i).padStart(4, '0'),
      description: 'LOAD TEST ITEM',
      quantity: 1 + ((c + i) % 12),
      invoiceDate: '2011-06-01T10:00:00',
      unitPrice: (1 + (k % 9)) + '.' + String((c * 7 + i) % 1000).padStart(3, '0'),
      customerId: String(12346 + (c % 4000)),
      country: 'United Kingdom',
    }));
    const t0 = performance.now();
    let status;
    try {
      status = String(await post(JSON.stringify(lines)));
      if (status === '202') process.send({ t: 'accepted', lines });
    } catch (err) {
      status = 'error:' + err.name;
    }
    latencies.push(performance.now() - t0);
    statuses[status] = (statuses[status] || 0) + 1;
  }
};
Promise.all(Array.from({ length: spec.clients }, (_, c) => client(c))).then(() => {
  agent.destroy();
  process.send({ t: 'done', latencies, statuses }, () => process.disconnect());
});
`;

function runClients(
  spec: ClientSpec,
  onAccepted: (lines: InvoiceLineInput[]) => void,
): Promise<{ latencies: number[]; statuses: Record<string, number> }> {
  const child = fork('-e', [CLIENT_SOURCE], {
    execPath: process.execPath,
    execArgv: [],
    env: { ...process.env, RP_LOAD_SPEC: JSON.stringify(spec) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    let done: { latencies: number[]; statuses: Record<string, number> } | undefined;
    child.on('message', (m: ClientMessage) => {
      if (m.t === 'accepted') onAccepted(m.lines);
      else done = { latencies: m.latencies, statuses: m.statuses };
    });
    child.once('error', reject);
    child.once('exit', (code) =>
      done ? resolve(done) : reject(new Error(`load client process exited with code ${code}`)),
    );
  });
}

/** Whole milliseconds; null stays null (no requests measured, no latency to show). */
const roundOrNull = (ms: number | null): number | null => (ms === null ? null : Math.round(ms));

export async function runLoadBench(opts: LoadOptions = {}): Promise<Record<string, unknown>> {
  const clients = opts.clients ?? 200;
  const seconds = opts.seconds ?? 60;
  const perRequest = opts.linesPerRequest ?? 10;
  const dataDir = await scratchDataDir('rp-load-');
  const config = loadConfig({
    ...EPHEMERAL_PORTS,
    RP_DATA_DIR: dataDir,
    RP_LOG_LEVEL: 'error',
    RP_FIREHOSE_BUFFER_SECONDS: '2',
    RP_LOAD_INTERVAL_SECONDS: '2',
  });
  const pipeline = await startPipeline({ config, logger: createLogger('error', 'load') });
  try {
    const log = await openRunLog(path.join(dataDir, 'runs'), newRunId('load'), {
      kind: 'load',
      clients,
      seconds,
    });
    const commands = timeCommands(pipeline.stack.clients.kinesis);
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    loopDelay.enable();
    const cpu = cpuMeter(await emulatorPids());
    const runLog = coalescedRunLog(log);
    const started = performance.now();
    const result = await runClients({ apiUrl: pipeline.apiUrl, clients, seconds, perRequest }, runLog.append);
    const { latencies } = result;
    const statuses = new Map(Object.entries(result.statuses));
    const elapsed = (performance.now() - started) / 1000;
    loopDelay.disable();
    const cpuPercent = await cpu();
    const kinesisCalls = commands.summary();
    commands.stop();
    const acceptedLines = await runLog.close();
    const settled = await settle(pipeline, config.names.table, dataDir, acceptedLines, opts);
    const { report } = settled;
    const sorted = latencies.sort((a, b) => a - b);
    const fiveXX = [...statuses].filter(([s]) => /^5/.test(s)).reduce((n, [, v]) => n + v, 0);
    return {
      clients,
      seconds: Number(elapsed.toFixed(1)),
      linesPerRequest: perRequest,
      requests: latencies.length,
      statuses: Object.fromEntries(statuses),
      fiveXX,
      acceptedLines,
      acceptedLinesPerSecond: Math.round(acceptedLines / elapsed),
      latencyMs: {
        p50: roundOrNull(percentile(sorted, 50)),
        p95: roundOrNull(percentile(sorted, 95)),
        p99: roundOrNull(percentile(sorted, 99)),
        max: roundOrNull(sorted.at(-1) ?? null),
      },
      runLogAppends: runLog.appends(),
      eventLoopDelayMs: {
        p50: Math.round(loopDelay.percentile(50) / 1e6),
        p99: Math.round(loopDelay.percentile(99) / 1e6),
        max: Math.round(loopDelay.max / 1e6),
      },
      cpuPercent,
      kinesisCalls,
      reconciled: report.ok,
      reconcile: reconcileSummary(report),
      streamDrainedSeconds: Number(settled.drainedSeconds.toFixed(1)),
      settleSeconds: Number(settled.settleSeconds.toFixed(1)),
    };
  } finally {
    await pipeline.stop();
    await fs.rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

type RunLog = Awaited<ReturnType<typeof openRunLog>>;

/**
 * The run log is written after each 202 (the client process reports it), coalesced into one append per
 * write: a serialised append per request (tens of ms each while Firehose's WAL fsyncs hold the libuv
 * threadpool) capped the clients at ~25 requests/s when it sat in their loop.
 */
function coalescedRunLog(log: RunLog) {
  const toLog: Parameters<RunLog['appendBatch']>[0] = [];
  let logging: Promise<void> | undefined;
  let logAppends = 0;
  let acceptedLines = 0;
  const drainLog = async () => {
    while (toLog.length > 0) {
      logAppends++;
      await log.appendBatch(toLog.splice(0));
    }
    logging = undefined;
  };
  return {
    append: (lines: Parameters<RunLog['appendBatch']>[0]) => {
      acceptedLines += lines.length;
      toLog.push(...lines);
      logging ??= drainLog();
    },
    /** Waits for the last append, closes the log; resolves with the lines accepted. */
    close: async (): Promise<number> => {
      await logging;
      await log.close({ acceptedLines });
      return acceptedLines;
    },
    appends: () => logAppends,
  };
}

/**
 * The API can accept faster than dynalite absorbs: waits for the consumer to drain the stream (cheap)
 * before reading the stores, and gives a long backlog the time it needs, until the stores reconcile.
 */
async function settle(
  pipeline: Awaited<ReturnType<typeof startPipeline>>,
  table: string,
  dataDir: string,
  acceptedLines: number,
  opts: LoadOptions,
): Promise<{ report: ReconcileReport; drainedSeconds: number; settleSeconds: number }> {
  const settleStart = performance.now();
  const deadline = settleStart + (opts.settleTimeoutMs ?? Math.max(180_000, acceptedLines * 2));
  opts.progress?.(`load done: ${acceptedLines} lines accepted; waiting for the consumer to catch up`);
  await Promise.race([
    pipeline.poller.idle(),
    new Promise((r) => setTimeout(r, deadline - performance.now())),
  ]);
  const drainedSeconds = (performance.now() - settleStart) / 1000;
  let report: ReconcileReport;
  for (;;) {
    report = await reconcile({
      runLogDir: path.join(dataDir, 'runs'),
      sources: [
        dynamoLineSource({ client: pipeline.stack.clients.dynamodb, table }),
        warehouseLineSource(pipeline.warehouse),
      ],
      sampleLimit: 5,
    });
    if (report.ok || performance.now() > deadline) break;
    opts.progress?.('not reconciled yet (the warehouse loads the archive every 2 s); checking again');
    await new Promise((r) => setTimeout(r, 3000));
  }
  return { report, drainedSeconds, settleSeconds: (performance.now() - settleStart) / 1000 };
}

function reconcileSummary(report: ReconcileReport) {
  return {
    accepted: report.accepted.lines,
    revenue: report.accepted.revenue,
    stores: report.stores.map((s) => ({
      store: s.store,
      lines: s.lines,
      revenue: s.revenue,
      missing: s.missing,
      duplicated: s.duplicated,
      mismatched: s.mismatched,
      readMs: s.ms,
    })),
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? Number(process.argv[i + 1]) : undefined;
  };
  const result = await runLoadBench({
    ...(arg('clients') ? { clients: arg('clients') } : {}),
    ...(arg('seconds') ? { seconds: arg('seconds') } : {}),
    ...(arg('lines') ? { linesPerRequest: arg('lines') } : {}),
    progress: (m) => process.stderr.write(`[load] ${m}\n`),
  });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  process.exitCode = result.reconciled && result.fiveXX === 0 ? 0 : 1;
}
