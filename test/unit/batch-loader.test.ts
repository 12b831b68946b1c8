import { describe, expect, it } from 'vitest';
import { coolDownMs } from '#batch/loader';

describe('coolDownMs', () => {
  it('doubles from the base with each failure past the fast retries, up to the cap', () => {
    const waits = [5, 6, 7, 8, 9, 10, 50, 5000].map((attempts) => coolDownMs(attempts, 5, 30_000, 600_000));
    expect(waits).toEqual([30_000, 60_000, 120_000, 240_000, 480_000, 600_000, 600_000, 600_000]);
  });
});
