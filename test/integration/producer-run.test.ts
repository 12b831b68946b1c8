import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { registerReplayCommand } from '#cli/commands/replay';
import { registerSimulateCommand } from '#cli/commands/simulate';
import { runReplay, runSimulate } from '#producer/run';
import { close, listen, producerTestApp, RecordingWriter } from '#test/fixtures/producer/api';

/** The real API over a writer that accepts everything and remembers when each line arrived. */
function sink() {
  const writer = new RecordingWriter();
  return { server: http.createServer(producerTestApp(writer)), arrivals: writer.arrivals };
}

describe('producer runs against a local sink', () => {
  const s = sink();
  let target = '';
  let tmp = '';
  beforeAll(async () => {
    target = await listen(s.server);
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'producer-run-'));
  });
  afterAll(async () => {
    await close(s.server);
    await fs.rm(tmp, { recursive: true, force: true });
  });

  // The rate a busy machine achieves is a benchmark figure (bench/producer.ts); what a test can hold is
  // causality: the pacer never lets line k out before start + k/rate (less its 4 ms minimum sleep).
  it('simulate never runs ahead of its rate: the k-th line arrives no sooner than k ms in at 1,000 lines/s', async () => {
    s.arrivals.length = 0;
    const started = performance.now();
    const summary = await runSimulate({
      target,
      rate: 1_000,
      lines: 1_500,
      seed: 3,
      progress: false,
      poster: { lingerMs: 20 },
    });
    expect(summary).toMatchObject({ produced: 1_500, accepted: 1_500, failed: 0 });
    const times = s.arrivals.map((a) => a.at).sort((a, b) => a - b);
    expect(times).toHaveLength(1_500);
    expect(times.flatMap((at, k) => (at < started + k - 4 ? [k] : []))).toEqual([]);
  });

  it('an aborted run stops early and still delivers what it produced', async () => {
    // Stopped by an event (the first 100 lines accepted), not by a timer a busy machine can outrun.
    const controller = new AbortController();
    let accepted = 0;
    const summary = await runSimulate({
      target,
      rate: 1_000,
      seed: 3,
      progress: false,
      signal: controller.signal,
      poster: {
        batchSize: 50,
        onAccepted: (lines) => {
          accepted += lines.length;
          if (accepted >= 100) controller.abort();
        },
      },
    });
    expect(summary.aborted).toBe(true);
    expect(summary.produced).toBeGreaterThanOrEqual(100);
    expect(summary.accepted).toBe(summary.produced);
  });

  it('replay --speed follows the source timeline; --limit stops early', async () => {
    const file = path.join(tmp, 'timeline.csv');
    const header = 'InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country';
    await fs.writeFile(
      file,
      [
        header,
        ...[0, 1, 2, 3].map(
          (m) => `53636${m},22633,HAND WARMER,6,12/1/2010 8:0${m * 2},1.85,,United Kingdom`,
        ),
        '',
      ].join('\n'),
    );
    s.arrivals.length = 0;
    // Source minutes 0, 2, 4, 6 at 240x: due 0, 500, 1,000, 1,500 ms after the start, never sooner.
    const started = performance.now();
    const summary = await runReplay({
      paths: file,
      speed: 240,
      target,
      progress: false,
      poster: { lingerMs: 5 },
    });
    expect(summary).toMatchObject({ produced: 4, accepted: 4, malformed: 0 });
    const arrived = new Map(s.arrivals.map((a) => [a.key, a.at - started]));
    const due = [0, 1, 2, 3].map((m) => [`53636${m}#1`, m * 500] as const);
    expect(due.filter(([key, ms]) => (arrived.get(key) ?? -1) < ms - 4)).toEqual([]);
    const limited = await runReplay({ paths: file, limit: 2, target, progress: false });
    expect(limited).toMatchObject({ produced: 2, accepted: 2 });
  });

  it('replay counts malformed rows; strict stops at the first', async () => {
    const fixture = path.resolve(import.meta.dirname, '../fixtures/producer/malformed.csv');
    const summary = await runReplay({ paths: fixture, target, progress: false });
    expect(summary).toMatchObject({ produced: 2, accepted: 2, malformed: 7 });
    await expect(runReplay({ paths: fixture, target, progress: false, strict: true })).rejects.toThrow(
      /malformed\.csv:3/,
    );
  });

  it('the CLI commands run against --target and write the run log under the data dir', async () => {
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const program = new Command().exitOverride();
      registerSimulateCommand(program);
      registerReplayCommand(program);
      await program.parseAsync(
        ['simulate', '--lines', '120', '--rate', '5000', '--target', target, '--data-dir', tmp],
        { from: 'user' },
      );
      const fixtures = path.resolve(import.meta.dirname, '../fixtures/producer/dir');
      await program.parseAsync(['replay', fixtures, '--target', target, '--data-dir', tmp], { from: 'user' });
      const printed = out.mock.calls.map((c) => String(c[0])).join('');
      expect(printed).toMatch(/accepted\s*│\s*120/);
      expect(printed).toMatch(/accepted\s*│\s*7/);
      const logs = await fs.readdir(path.join(tmp, 'runs'));
      expect(logs.filter((f) => f.startsWith('simulate-'))).toHaveLength(1);
      expect(logs.filter((f) => f.startsWith('replay-'))).toHaveLength(1);
      expect(process.exitCode ?? 0).toBe(0);
    } finally {
      out.mockRestore();
      err.mockRestore();
    }
  });
});
