import { afterAll, describe, expect, it } from 'vitest';
import { brief, faultEnv, produce, type Runner, reconcileWhenSettled, startRunner } from './harness.ts';

// Faults wait on real recoveries; on a loaded 2-core machine they need more than the default 60 s.
describe('kill -9 of the consumer mid-batch', { timeout: 240_000 }, () => {
  const runners: Runner[] = [];
  afterAll(async () => {
    for (const r of runners) await r.stop();
  });

  it('resumes after a restart on the same data dir: nothing missing, nothing twice', async () => {
    const env = await faultEnv();
    // The 8th BatchWriteItem succeeds, then the process dies before the batch is checkpointed.
    const first = await startRunner(env, 'consumer-mid-batch:8');
    runners.push(first);
    const producing = produce(first.apiUrl, env.RP_DATA_DIR as string, { lines: 3000, rate: 1500, seed: 11 });
    const { signal } = await first.exited;
    expect(signal).toBe('SIGKILL');
    await first.kill9(); // waits for its emulator process to close its databases
    // npm start again on the same data dir; the producer keeps retrying against the same URL meanwhile.
    const second = await startRunner(env);
    runners.push(second);
    const summary = await producing;
    expect(summary.failed).toBe(0);
    expect(summary.accepted).toBe(3000);
    const report = await reconcileWhenSettled(env.RP_DATA_DIR as string, second.endpoints);
    expect(report.ok, brief(report)).toBe(true);
    expect(report.accepted.lines).toBe(3000);
    for (const s of report.stores)
      expect([s.store, s.lines, s.missing, s.duplicated]).toEqual([s.store, 3000, 0, 0]);
  }, 240_000);
});
