import { describe, expect, it } from 'vitest';
import { TimeSlicer } from '#core/time-slice';

describe('TimeSlicer', () => {
  it('is due once a slice has run for its budget, and a turn starts a new slice', async () => {
    let clock = 0;
    const slicer = new TimeSlicer(20, () => clock);
    clock = 19;
    expect(slicer.due).toBe(false);
    clock = 20;
    expect(slicer.due).toBe(true);
    await slicer.turn();
    expect(slicer.due).toBe(false);
  });

  it('map keeps order and lets work queued on the event loop run between slices', async () => {
    let clock = 0;
    const slicer = new TimeSlicer(20, () => clock);
    const ranAt: number[] = [];
    setImmediate(() => ranAt.push(clock));
    // Each item takes 10 ms of the slicer's clock: a slice holds two items.
    const out = await slicer.map([1, 2, 3, 4, 5], (n, i) => {
      clock += 10;
      return `${i}:${n * 2}`;
    });
    expect(out).toEqual(['0:2', '1:4', '2:6', '3:8', '4:10']);
    // The queued callback ran at the first turn, after two items, not after all five.
    expect(ranAt).toEqual([20]);
  });

  it('map with a budget never reached runs without turning', async () => {
    const slicer = new TimeSlicer(20, () => 0);
    let ran = false;
    setImmediate(() => {
      ran = true;
    });
    expect(await slicer.map([1, 2, 3], (n) => n)).toEqual([1, 2, 3]);
    expect(ran).toBe(false);
  });
});
