/**
 * Cooperative time slicing for long CPU work in a process that also serves I/O. `npm start` runs the
 * totesys transform next to the stream path and the extract: a first transform of the seeded source
 * (48k rows) held the event loop for seconds, long enough for the extract's connection timeout to
 * fire on a source that was up. Work that loops over many rows asks the slicer after each step and
 * gives the loop a turn once the slice has run for its budget. What the work computes never depends
 * on where the turns fall.
 */
export class TimeSlicer {
  private sliceStart: number;

  /** `budgetMs`: how long one slice may run; `now`: the clock (tests pass their own). */
  constructor(
    private readonly budgetMs = 20,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.sliceStart = now();
  }

  /** True once this slice has used its budget: the caller should `await turn()` before going on. */
  get due(): boolean {
    return this.now() - this.sliceStart >= this.budgetMs;
  }

  /** Lets timers and I/O callbacks run (setImmediate: after the poll phase), then starts a new slice. */
  async turn(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.sliceStart = this.now();
  }

  /** `fn` over every item, in order, turning the event loop whenever a slice is due. */
  async map<T, U>(items: readonly T[], fn: (item: T, index: number) => U): Promise<U[]> {
    const out = new Array<U>(items.length);
    for (let i = 0; i < items.length; i++) {
      if (this.due) await this.turn();
      out[i] = fn(items[i] as T, i);
    }
    return out;
  }
}
