import { describe, expect, it } from 'vitest';
import { runLoadBench } from '../../bench/load.ts';

describe('load (short): 50 concurrent clients for 10 s against the whole local pipeline', () => {
  it('answers no 5xx and every accepted line reconciles in DynamoDB and the warehouse', async () => {
    const r = await runLoadBench({ clients: 50, seconds: 10, settleTimeoutMs: 90_000 });
    expect(r.fiveXX, JSON.stringify(r)).toBe(0);
    expect(Object.keys(r.statuses as object)).toEqual(['202']);
    expect(r.acceptedLines as number).toBeGreaterThan(1000);
    expect(r.reconciled, JSON.stringify(r.reconcile)).toBe(true);
  }, 180_000);
});
