import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { type Endpoints, readEndpoints } from '#local/endpoints';
import { eventually } from '#test/helpers/stack';
import { aggregatesAfterDrain } from './aggregates.ts';
import { brief, faultEnv, reconcileWhenSettled } from './harness.ts';

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/retail-pipeline.js');

function start(
  env: Record<string, string>,
  args: string[],
): { child: ChildProcess; exited: Promise<unknown> } {
  const child = spawn(process.execPath, [bin, 'start', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return {
    child,
    exited: new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))),
  };
}

async function acceptedSoFar(dataDir: string): Promise<number> {
  const dir = path.join(dataDir, 'runs');
  let n = 0;
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
    for (const row of (await fs.readFile(path.join(dir, name), 'utf8')).split('\n')) {
      const m = /^\{"t":"batch","at":"[^"]+","n":(\d+)/.exec(row);
      if (m) n += Number(m[1]);
    }
  }
  return n;
}

/** endpoints.json of the process `pid` once its API is published. */
function endpointsOf(dataDir: string, pid: number): Promise<Endpoints> {
  return eventually(
    async () => {
      const e = await readEndpoints(dataDir);
      return e.pid === pid && e.api ? e : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 250, what: `endpoints.json of pid ${pid}` },
  );
}

// Faults wait on real recoveries; on a loaded 2-core machine they need more than the default 60 s.
describe('kill -9 of the whole `npm start` while the simulator runs', { timeout: 240_000 }, () => {
  const children: ChildProcess[] = [];
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGINT');
    await Promise.all(
      children.map(
        (c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(0) : c.once('exit', r))),
      ),
    );
  });

  it('`npm start` again on the same data dir delivers every accepted line exactly once', async () => {
    const env = await faultEnv();
    const dataDir = env.RP_DATA_DIR as string;
    const first = start(env, ['--rate', '500', '--demo-seconds', '30', '--seed', '7']);
    children.push(first.child);
    await endpointsOf(dataDir, first.child.pid as number);
    // Kill while lines flow through every stage: at least 1,500 accepted.
    await eventually(async () => ((await acceptedSoFar(dataDir)) >= 1500 ? true : undefined), {
      timeoutMs: 60_000,
      intervalMs: 100,
      what: '1,500 accepted lines',
    });
    first.child.kill('SIGKILL');
    await first.exited;
    const acceptedBeforeKill = await acceptedSoFar(dataDir);

    const second = start(env, ['--no-simulate']);
    children.push(second.child);
    const endpoints = await endpointsOf(dataDir, second.child.pid as number);
    const report = await reconcileWhenSettled(dataDir, endpoints, 120_000);
    expect(report.ok, brief(report)).toBe(true);
    expect(report.accepted.lines).toBe(acceptedBeforeKill);
    for (const s of report.stores) {
      expect([s.store, s.lines, s.missing, s.mismatched]).toEqual([s.store, acceptedBeforeKill, 0, 0]);
    }
    // The producer died with the pipeline: lines the API took whose 202 was never logged are stored
    // and counted too; each must be a line the simulator sent (aggregates.ts checks that).
    const agg = await aggregatesAfterDrain(dataDir, endpoints, endpoints.api as string);
    expect(agg.accepted).toBe(acceptedBeforeKill);
    expect(agg.served).toEqual(agg.aggregates);
    second.child.kill('SIGINT');
    expect(await second.exited).toEqual({ code: 0, signal: null });
  }, 300_000);
});
