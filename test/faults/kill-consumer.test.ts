import { afterAll, describe, expect, it } from 'vitest';
import { aggregatesAfterDrain } from './aggregates.ts';
import { brief, faultEnv, produce, type Runner, reconcileWhenSettled, startRunner } from './harness.ts';

// Faults wait on real recoveries; on a loaded 2-core machine they need more than the default 60 s.
describe('kill -9 of the consumer process mid-batch', { timeout: 240_000 }, () => {
  const runners: Runner[] = [];
  afterAll(async () => {
    for (const r of runners) await r.stop();
  });

  /**
   * Posts 3,000 lines while the consumer process (cli/consumer-child.ts, its own process as in
   * `npm start`) kills itself at `kill`; the pipeline notices, restarts it on the same checkpoints,
   * and the rest of the pipeline (API, Firehose, loader) keeps running throughout. Then checks both
   * stores and the aggregates.
   */
  async function killAndResume(kill: string, seed: number): Promise<void> {
    const env = await faultEnv();
    const runner = await startRunner(env, kill);
    runners.push(runner);
    try {
      await resumeChecked(runner, env, seed);
    } finally {
      // Not left running beside the next test's pipeline: a busy machine starts that one slowly.
      await runner.stop();
    }
  }

  async function resumeChecked(runner: Runner, env: Record<string, string>, seed: number): Promise<void> {
    const producing = produce(runner.apiUrl, env.RP_DATA_DIR as string, { lines: 3000, rate: 1500, seed });
    const exited = await runner.done('consumer-exited', 120_000);
    expect([exited.signal, exited.next]).toEqual(['SIGKILL', 'restart']);
    const restarted = await runner.done('consumer-restarted', 120_000);
    expect(restarted.pid).not.toBe(exited.pid);
    const summary = await producing;
    expect(summary.failed).toBe(0);
    expect(summary.accepted).toBe(3000);
    const report = await reconcileWhenSettled(env.RP_DATA_DIR as string, runner.endpoints);
    expect(report.ok, brief(report)).toBe(true);
    expect(report.accepted.lines).toBe(3000);
    for (const s of report.stores)
      expect([s.store, s.lines, s.missing, s.mismatched]).toEqual([s.store, 3000, 0, 0]);
    const agg = await aggregatesAfterDrain(env.RP_DATA_DIR as string, runner.endpoints, runner.apiUrl);
    expect([agg.accepted, agg.unlogged]).toEqual([3000, 0]);
    expect(agg.served).toEqual(agg.aggregates);
  }

  it('after a line write (written, not counted, not checkpointed): nothing missing, nothing counted twice', async () => {
    // The 8th BatchWriteItem succeeds, then the consumer process dies before the batch is checkpointed.
    await killAndResume('consumer-mid-batch:8', 11);
  }, 240_000);

  it('after an aggregate update (counted, not checkpointed): the redelivery is not counted again', async () => {
    // The 3rd aggregate UpdateItem succeeds, then the consumer process dies: its batch is delivered
    // again and only the high-water marks keep its lines from being added a second time.
    await killAndResume('consumer-after-aggregate:3', 12);
  }, 240_000);
});
