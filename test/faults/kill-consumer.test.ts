import { afterAll, describe, expect, it } from 'vitest';
import { aggregatesAfterDrain } from './aggregates.ts';
import { brief, faultEnv, produce, type Runner, reconcileWhenSettled, startRunner } from './harness.ts';

// Faults wait on real recoveries; on a loaded 2-core machine they need more than the default 60 s.
describe('kill -9 of the consumer mid-batch', { timeout: 240_000 }, () => {
  const runners: Runner[] = [];
  afterAll(async () => {
    for (const r of runners) await r.stop();
  });

  /**
   * Posts 3,000 lines while the pipeline kills itself at `kill`, starts it again on the same data
   * dir (the producer keeps retrying meanwhile), then checks both stores and the aggregates.
   */
  async function killAndResume(kill: string, seed: number): Promise<void> {
    const env = await faultEnv();
    const first = await startRunner(env, kill);
    runners.push(first);
    const producing = produce(first.apiUrl, env.RP_DATA_DIR as string, { lines: 3000, rate: 1500, seed });
    const { signal } = await first.exited;
    expect(signal).toBe('SIGKILL');
    await first.kill9(); // waits for its emulator process to close its databases
    const second = await startRunner(env);
    runners.push(second);
    const summary = await producing;
    expect(summary.failed).toBe(0);
    expect(summary.accepted).toBe(3000);
    const report = await reconcileWhenSettled(env.RP_DATA_DIR as string, second.endpoints);
    expect(report.ok, brief(report)).toBe(true);
    expect(report.accepted.lines).toBe(3000);
    for (const s of report.stores)
      expect([s.store, s.lines, s.missing, s.mismatched]).toEqual([s.store, 3000, 0, 0]);
    const agg = await aggregatesAfterDrain(env.RP_DATA_DIR as string, second.endpoints, second.apiUrl);
    expect([agg.accepted, agg.unlogged]).toEqual([3000, 0]);
    expect(agg.served).toEqual(agg.aggregates);
  }

  it('after a line write (written, not counted, not checkpointed): nothing missing, nothing counted twice', async () => {
    // The 8th BatchWriteItem succeeds, then the process dies before the batch is checkpointed.
    await killAndResume('consumer-mid-batch:8', 11);
  }, 240_000);

  it('after an aggregate update (counted, not checkpointed): the redelivery is not counted again', async () => {
    // The 3rd aggregate UpdateItem succeeds, then the process dies: its batch is delivered again
    // and only the high-water marks keep its lines from being added a second time.
    await killAndResume('consumer-after-aggregate:3', 12);
  }, 240_000);
});
