import { afterAll, describe, expect, it } from 'vitest';
import { aggregatesAfterDrain } from './aggregates.ts';
import { brief, faultEnv, produce, type Runner, reconcileWhenSettled, startRunner } from './harness.ts';

// Faults wait on real recoveries; on a loaded 2-core machine they need more than the default 60 s.
describe('kill -9 of the loader mid-file', { timeout: 240_000 }, () => {
  const runners: Runner[] = [];
  afterAll(async () => {
    for (const r of runners) await r.stop();
  });

  it('a COPY cut off half-way is loaded exactly once after the restart', async () => {
    const env = await faultEnv();
    // Dies once 40 kB of the first archive object went into COPY (the object is ~10x that).
    const first = await startRunner(env, 'loader-mid-copy:40000');
    runners.push(first);
    const produced = await produce(first.apiUrl, env.RP_DATA_DIR as string, {
      lines: 2500,
      rate: 2500,
      seed: 21,
    });
    expect(produced.accepted).toBe(2500);
    const { signal } = await first.exited;
    expect(signal).toBe('SIGKILL');
    await first.kill9();
    const second = await startRunner(env);
    runners.push(second);
    const report = await reconcileWhenSettled(env.RP_DATA_DIR as string, second.endpoints);
    expect(report.ok, brief(report)).toBe(true);
    for (const s of report.stores)
      expect([s.store, s.lines, s.missing, s.mismatched]).toEqual([s.store, 2500, 0, 0]);
    // The kill also cut the stream path short wherever it was: the counters must still be exact.
    const agg = await aggregatesAfterDrain(env.RP_DATA_DIR as string, second.endpoints, second.apiUrl);
    expect([agg.accepted, agg.unlogged]).toEqual([2500, 0]);
    expect(agg.served).toEqual(agg.aggregates);
  }, 240_000);
});
