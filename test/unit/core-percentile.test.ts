import { describe, expect, it } from 'vitest';
import { nearestRank, percentile } from '#core/percentile';

describe('percentile', () => {
  it('is the nearest-rank value: always one that was measured', () => {
    const sorted = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
    expect(percentile(sorted, 50)).toBe(50);
    expect(percentile(sorted, 90)).toBe(90);
    expect(percentile(sorted, 91)).toBe(100);
    expect(percentile(sorted, 99)).toBe(100);
    expect(percentile(sorted, 100)).toBe(100);
    expect(percentile(sorted, 0)).toBe(10);
    expect(percentile([7], 99)).toBe(7);
  });

  it('has none for no values: null, not a 0 that reads as a measurement', () => {
    expect(percentile([], 50)).toBeNull();
    expect(nearestRank(0, 50)).toBe(0);
  });

  it('ranks from 1 to the count', () => {
    expect([0, 1, 50, 99, 100].map((p) => nearestRank(200, p))).toEqual([1, 2, 100, 198, 200]);
  });
});
