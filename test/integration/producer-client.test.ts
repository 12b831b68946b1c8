import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { KinesisWriteError } from '#adapters/kinesis-writer';
import { createPoster, PosterFatalError } from '#producer/client';
import { createGenerator } from '#producer/generator';
import { runSimulate } from '#producer/run';
import { close, listen, producerTestApp, RecordingWriter } from '#test/fixtures/producer/api';

/**
 * The real API (test/fixtures/producer/api.ts) behind a front that fails requests on a fixed rotation:
 * API Gateway's throttling 429, a dropped connection, and a stream write that throws (the API's 500).
 * The API itself answers 413 to requests of more than 60 lines and 400 naming the bad lines (quantity
 * 0.5 here), in its own words; lines count as received only when the API wrote them.
 */
function flakyServer() {
  const writer = new RecordingWriter();
  writer.failWith = (call) => (call % 4 === 3 ? new Error('the stream broke') : undefined);
  const app = producerTestApp(writer, { apiKey: 'test-key-123', maxLines: 60 });
  const statuses = new Set<number | 'dropped'>();
  let requests = 0;
  const server = http.createServer((req, res) => {
    const n = requests++;
    if (n % 6 === 0 && req.headers['x-api-key'] === 'test-key-123') {
      statuses.add(429);
      // API Gateway's own throttling answer, before the request reaches the API.
      res.writeHead(429, { 'content-type': 'application/json' }).end('{"message":"Too Many Requests"}');
      return;
    }
    if (n % 6 === 2) {
      statuses.add('dropped');
      req.socket.destroy();
      return;
    }
    res.on('finish', () => statuses.add(res.statusCode));
    app(req, res);
  });
  return { server, received: writer.writes, statuses, requests: () => requests };
}

describe('createPoster against a server that fails some requests', () => {
  let flaky: ReturnType<typeof flakyServer>;
  let target = '';
  let tmp = '';
  beforeAll(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'producer-client-'));
  });
  afterAll(async () => {
    await fs.rm(tmp, { recursive: true, force: true });
  });
  // A server per test: its failure rotation, the statuses it answered and the lines it received
  // start afresh, whichever test ran before (the 401 test's requests used to shift the rotation).
  beforeEach(async () => {
    flaky = flakyServer();
    target = await listen(flaky.server);
  });
  afterEach(() => close(flaky.server));

  it('delivers every good line exactly once, reports the bad ones, retries the rest', async () => {
    const g = createGenerator({ seed: 11 });
    const lines = Array.from({ length: 1_500 }, (_, i) => {
      const l = g.next();
      return i % 97 === 5 ? { ...l, quantity: 0.5 } : l;
    });
    const rejected: string[] = [];
    const retries: string[] = [];
    const poster = createPoster({
      target,
      apiKey: 'test-key-123',
      batchSize: 100,
      maxInFlight: 3,
      retryBaseMs: 2,
      retryMaxMs: 20,
      maxRetries: 20,
      onRejected: (e) => rejected.push(`${e.line.invoiceNo}#${e.line.lineNo}`),
      onRetry: (e) => retries.push(e.reason),
    });
    for (const l of lines) await poster.send(l);
    const summary = await poster.flush();

    const bad = lines.filter((l) => !Number.isInteger(l.quantity)).map((l) => `${l.invoiceNo}#${l.lineNo}`);
    const good = lines.filter((l) => Number.isInteger(l.quantity)).map((l) => `${l.invoiceNo}#${l.lineNo}`);
    expect(bad.length).toBeGreaterThan(10);
    expect(rejected.sort()).toEqual([...bad].sort());
    expect([...flaky.received.keys()].sort()).toEqual([...good].sort());
    expect([...flaky.received.values()].every((count) => count === 1)).toBe(true);
    expect(summary).toMatchObject({
      sent: 1_500,
      accepted: good.length,
      rejected: bad.length,
      failed: 0,
      inFlight: 0,
    });
    expect(summary.retried).toBe(retries.length);
    expect(retries.some((r) => r === 'HTTP 429')).toBe(true);
    expect(retries.some((r) => r === 'HTTP 500')).toBe(true);
    expect(retries.some((r) => r.startsWith('network error'))).toBe(true);
    expect([...flaky.statuses].sort()).toEqual([202, 400, 413, 429, 500, 'dropped']);
  });

  it('counts lines as failed once retries are exhausted, never silently dropped; honours Retry-After', async () => {
    const writer = new RecordingWriter();
    writer.failWith = () => new KinesisWriteError('PutRecords kept failing', 1);
    const down = http.createServer(producerTestApp(writer));
    const url = await listen(down);
    const failed: number[] = [];
    const waits: number[] = [];
    try {
      const poster = createPoster({
        target: url,
        batchSize: 10,
        maxRetries: 2,
        retryBaseMs: 1,
        retryMaxMs: 2,
        onFailed: (e) => failed.push(e.lines.length),
        onRetry: (e) => waits.push(e.delayMs),
      });
      const g = createGenerator({ seed: 1 });
      for (let i = 0; i < 25; i++) await poster.send(g.next());
      const summary = await poster.flush();
      expect(summary).toMatchObject({ sent: 25, accepted: 0, failed: 25, retried: 6 });
      expect(failed.reduce((a, b) => a + b, 0)).toBe(25);
      // The API's 503 says Retry-After: 1, above the 1-2 ms backoff asked for.
      expect(waits).toHaveLength(6);
      expect(waits.every((ms) => ms >= 1_000)).toBe(true);
    } finally {
      await close(down);
    }
  });

  it('a 401 is fatal: send() throws and the summary names the cause', async () => {
    const poster = createPoster({ target, apiKey: 'wrong-key-000', batchSize: 5, lingerMs: 1 });
    const g = createGenerator({ seed: 2 });
    const error = await (async () => {
      for (let i = 0; i < 1_000; i++) {
        await poster.send(g.next());
        await new Promise((r) => setTimeout(r, 1));
      }
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PosterFatalError);
    const summary = await poster.flush();
    expect(summary.fatal).toMatch(/HTTP 401 from .*: unauthorized: missing or wrong x-api-key$/);
    expect(summary.accepted).toBe(0);
    expect(summary.failed).toBe(summary.sent);
  });

  it('runSimulate writes a run log with exactly the accepted keys and exact line totals', async () => {
    const summary = await runSimulate({
      target,
      apiKey: 'test-key-123',
      rate: 20_000,
      lines: 800,
      seed: 5,
      progress: false,
      runLogDir: tmp,
      runId: 'sim-test',
      poster: { batchSize: 50, retryBaseMs: 2, retryMaxMs: 20, maxRetries: 20 },
    });
    expect(summary).toMatchObject({
      produced: 800,
      sent: 800,
      accepted: 800,
      failed: 0,
      runLog: path.join(tmp, 'sim-test.ndjson'),
    });
    const records = (await fs.readFile(path.join(tmp, 'sim-test.ndjson'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(records[0]).toMatchObject({ t: 'run', runId: 'sim-test', kind: 'simulate', seed: 5 });
    expect(records.at(-1)).toMatchObject({ t: 'summary', accepted: 800 });
    const logged = records
      .filter((r) => r.t === 'batch')
      .flatMap((r) => r.lines as [string, number, string][]);
    expect(logged.map(([no, line]) => `${no}#${line}`).sort()).toEqual([...flaky.received.keys()].sort());
    const replayed = createGenerator({ seed: 5 });
    const byKey = new Map(logged.map(([no, line, total]) => [`${no}#${line}`, total]));
    for (let i = 0; i < 800; i++) {
      const l = replayed.next();
      const expected = ((l.quantity * Math.round(Number(l.unitPrice) * 1000)) / 1000).toString();
      expect(Number(byKey.get(`${l.invoiceNo}#${l.lineNo}`))).toBeCloseTo(Number(expected), 6);
    }
  });
});
