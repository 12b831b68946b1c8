import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '#local/ports';
import { eventually } from '#test/helpers/stack';
import { aggregatesAfterDrain } from './aggregates.ts';
import {
  brief,
  faultEnv,
  type Produced,
  produce,
  type Runner,
  reconcileWhenSettled,
  startRunner,
} from './harness.ts';

/**
 * Faults the running pipeline must ride out by itself (no restart of the pipeline): each one hits
 * while a producer posts, then every line accepted so far (all runs) must reconcile.
 */
// Faults wait on real recoveries; on a loaded 2-core machine they need more than the default 60 s.
describe('outages the pipeline survives without a restart', { timeout: 240_000 }, () => {
  let env: Record<string, string>;
  let runner: Runner;
  let run = 0;
  const dataDir = () => env.RP_DATA_DIR as string;
  // Each run gets its own invoice range: keys never collide across runs.
  const producing = (lines: number, rate: number, onAccepted?: (n: number) => void) =>
    produce(runner.apiUrl, dataDir(), {
      lines,
      rate,
      seed: 100 + run,
      invoiceOffset: 1_000_000 * ++run,
      ...(onAccepted ? { onAccepted } : {}),
    });

  async function settled(total: number) {
    const report = await reconcileWhenSettled(dataDir(), runner.endpoints, 120_000);
    expect(report.ok, brief(report)).toBe(true);
    expect(report.accepted.lines).toBe(total);
    for (const s of report.stores) expect([s.store, s.missing, s.mismatched]).toEqual([s.store, 0, 0]);
    // Every run so far, this fault's and the earlier ones': the counters add up to the accepted lines.
    const agg = await aggregatesAfterDrain(dataDir(), runner.endpoints, runner.apiUrl);
    expect([agg.accepted, agg.unlogged]).toEqual([total, 0]);
    expect(agg.served).toEqual(agg.aggregates);
    return report;
  }
  let total = 0;
  const accepted = (p: Produced) => {
    expect(p.failed).toBe(0);
    total += p.accepted;
  };

  beforeAll(async () => {
    // Fixed emulator ports: a restarted emulator must come back where the clients look for it.
    env = await faultEnv({
      RP_KINESIS_PORT: String(await freePort()),
      RP_DYNAMODB_PORT: String(await freePort()),
      RP_S3_PORT: String(await freePort()),
    });
    runner = await startRunner(env);
  });
  afterAll(async () => {
    await runner?.stop();
  });

  it('DynamoDB throttling (exceptions and UnprocessedItems) for 100 write calls', async () => {
    runner.send({ type: 'throttle', rate: 0.3, calls: 100 });
    const p = producing(3000, 1000);
    const stats = await runner.done('throttle');
    accepted(await p);
    expect(stats.throttled as number).toBeGreaterThan(0);
    expect(stats.unprocessed as number).toBeGreaterThan(0);
    await settled(total);
  });

  it('S3 unavailable for 8 s (Firehose, loader and DLQ all refused)', async () => {
    runner.send({ type: 's3-down', ms: 8000 });
    const p = producing(3000, 1000);
    const stats = await runner.done('s3-down');
    accepted(await p);
    expect(stats.refused as number).toBeGreaterThan(0);
    await settled(total);
  });

  it('the emulator process (Kinesis, DynamoDB, S3) killed and restarted 2 s later', async () => {
    // The fault hits once lines flow through every stage.
    let flowing = 0;
    const p = producing(4000, 1000, (n) => {
      flowing += n;
    });
    await eventually(async () => (flowing >= 1000 ? true : undefined), {
      timeoutMs: 60_000,
      what: '1,000 lines accepted before the fault',
    });
    runner.send({ type: 'restart-emulators', downMs: 2000 });
    const stats = await runner.done('restart-emulators', 60_000);
    expect(stats.error).toBeUndefined();
    accepted(await p);
    await settled(total);
  });

  it('PostgreSQL crashed (immediate shutdown) in the middle of a COPY and restarted', async () => {
    runner.send({ type: 'restart-postgres-mid-copy', bytes: 30_000, downMs: 1000 });
    const p = producing(3000, 1500);
    const stats = await runner.done('restart-postgres', 90_000);
    expect(stats.error).toBeUndefined();
    accepted(await p);
    await settled(total);
  });
});
