import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InvoiceLineInput } from '#core/invoice-line';
import { createPoster, PosterFatalError } from '#producer/client';
import { createGenerator } from '#producer/generator';
import { runSimulate } from '#producer/run';

/**
 * A test API that fails requests on a fixed rotation (429, 500, dropped connection, 413 for big bodies),
 * answers 400 naming the bad lines (quantity 0.5 here) and records lines only when it answers 202.
 */
function flakyServer() {
  const received = new Map<string, number>();
  const statuses = new Set<number | 'dropped'>();
  let requests = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const n = requests++;
      if (req.headers['x-api-key'] !== 'test-key-123') {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"bad api key"}');
        return;
      }
      const lines = JSON.parse(Buffer.concat(chunks).toString()) as InvoiceLineInput[];
      switch (n % 6) {
        case 0:
          statuses.add(429);
          res.writeHead(429, { 'content-type': 'application/json' }).end('{"error":"slow down"}');
          return;
        case 1:
          statuses.add(500);
          res.writeHead(500).end('{"error":"internal"}');
          return;
        case 2:
          statuses.add('dropped');
          req.socket.destroy();
          return;
        case 3:
          if (lines.length > 60) {
            statuses.add(413);
            res.writeHead(413).end('{"error":"too large"}');
            return;
          }
      }
      const bad = lines.flatMap((l, index) =>
        Number.isInteger(l.quantity) ? [] : [{ index, reason: 'quantity: not an integer' }],
      );
      if (bad.length > 0) {
        statuses.add(400);
        res
          .writeHead(400, { 'content-type': 'application/json' })
          .end(JSON.stringify({ error: 'invalid lines', lines: bad }));
        return;
      }
      for (const l of lines)
        received.set(`${l.invoiceNo}#${l.lineNo}`, (received.get(`${l.invoiceNo}#${l.lineNo}`) ?? 0) + 1);
      res
        .writeHead(202, { 'content-type': 'application/json' })
        .end(JSON.stringify({ accepted: lines.length }));
    });
  });
  return { server, received, statuses, requests: () => requests };
}

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('createPoster against a server that fails some requests', () => {
  const flaky = flakyServer();
  let target = '';
  let tmp = '';
  beforeAll(async () => {
    target = await listen(flaky.server);
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'producer-client-'));
  });
  afterAll(async () => {
    flaky.server.closeAllConnections();
    await new Promise((resolve) => flaky.server.close(resolve));
    await fs.rm(tmp, { recursive: true, force: true });
  });

  it('delivers every good line exactly once, reports the bad ones, retries the rest', async () => {
    flaky.received.clear();
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
    expect([...flaky.statuses].sort()).toEqual([400, 413, 429, 500, 'dropped']);
  });

  it('counts lines as failed once retries are exhausted, never silently dropped', async () => {
    const down = http.createServer((_req, res) => res.writeHead(503).end());
    const url = await listen(down);
    const failed: number[] = [];
    try {
      const poster = createPoster({
        target: url,
        batchSize: 10,
        maxRetries: 2,
        retryBaseMs: 1,
        retryMaxMs: 2,
        onFailed: (e) => failed.push(e.lines.length),
      });
      const g = createGenerator({ seed: 1 });
      for (let i = 0; i < 25; i++) await poster.send(g.next());
      const summary = await poster.flush();
      expect(summary).toMatchObject({ sent: 25, accepted: 0, failed: 25, retried: 6 });
      expect(failed.reduce((a, b) => a + b, 0)).toBe(25);
    } finally {
      down.closeAllConnections();
      await new Promise((resolve) => down.close(resolve));
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
    expect(summary.fatal).toMatch(/HTTP 401 .*bad api key/);
    expect(summary.accepted).toBe(0);
    expect(summary.failed).toBe(summary.sent);
  });

  it('runSimulate writes a run log with exactly the accepted keys and exact line totals', async () => {
    flaky.received.clear();
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
