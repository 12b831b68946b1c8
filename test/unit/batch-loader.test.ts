import { describe, expect, it } from 'vitest';
import { coolDownMs, type RetryRule, whyNotNow } from '#batch/loader/scheduler';

const rule: RetryRule = { maxAttempts: 5, coolDown: { baseMs: 30_000, maxMs: 600_000 } };

describe('coolDownMs', () => {
  it('doubles from the base with each failure past the fast retries, up to the cap', () => {
    const waits = [5, 6, 7, 8, 9, 10, 50, 5000].map((attempts) => coolDownMs(attempts, rule));
    expect(waits).toEqual([30_000, 60_000, 120_000, 240_000, 480_000, 600_000, 600_000, 600_000]);
  });

  it('stays 0 with a base of 0, however many the failures', () => {
    expect(coolDownMs(10_000, { maxAttempts: 1, coolDown: { baseMs: 0, maxMs: 1_000 } })).toBe(0);
  });
});

describe('whyNotNow', () => {
  it('tries a pending object, and a failed one while it has fast retries left', () => {
    expect(whyNotNow({ status: 'pending', attempts: 0, rested_ms: null }, rule)).toBeUndefined();
    expect(whyNotNow({ status: 'failed', attempts: 4, rested_ms: '0' }, rule)).toBeUndefined();
  });

  it('never tries a loaded or quarantined object again', () => {
    expect(whyNotNow({ status: 'loaded', attempts: 1, rested_ms: '9999999' }, rule)).toBe('already loaded');
    expect(whyNotNow({ status: 'quarantined', attempts: 1, rested_ms: null }, rule)).toBe(
      'already quarantined',
    );
  });

  it('lets a failed object rest its cool-down by the warehouse clock, then tries it', () => {
    const failed = { status: 'failed', attempts: 6, error: 'connection refused' };
    expect(whyNotNow({ ...failed, rested_ms: '59000' }, rule)).toBe(
      'failed 6 times, next retry in 1 s: connection refused',
    );
    expect(whyNotNow({ ...failed, rested_ms: 60_000 }, rule)).toBeUndefined();
  });
});
