import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ProgressSaver } from '#consumers/progress';
import type { LineSink } from '#core/serving';

/** A store's progress writes, each answered when the test says. */
function store() {
  const written: string[] = [];
  const waiting: { mark: string; answer: (err?: Error) => void }[] = [];
  const sink: Pick<LineSink, 'setShardProgress'> = {
    setShardProgress: (_shardId, mark) =>
      new Promise<void>((resolve, reject) => {
        waiting.push({
          mark,
          answer: (err) => {
            if (err) reject(err);
            else {
              written.push(mark);
              resolve();
            }
          },
        });
      }),
  };
  const answerAll = async (err?: Error) => {
    for (const w of waiting.splice(0)) w.answer(err);
    await vi.advanceTimersByTimeAsync(0);
  };
  return { sink, written, waiting, answerAll };
}

describe('shard progress writes', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('writes the first mark at once, then the highest mark once per interval', async () => {
    const s = store();
    const saver = new ProgressSaver(s.sink, pino({ level: 'silent' }), 1000);
    saver.save('shard-0', '100');
    expect(s.waiting.map((w) => w.mark)).toEqual(['100']);
    await s.answerAll();
    saver.save('shard-0', '200');
    saver.save('shard-0', '300');
    await vi.advanceTimersByTimeAsync(999);
    expect(s.waiting).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(s.waiting.map((w) => w.mark)).toEqual(['300']);
    await s.answerAll();
    expect(s.written).toEqual(['100', '300']);
    // Nothing pending: no more writes.
    await vi.advanceTimersByTimeAsync(5000);
    expect(s.waiting).toEqual([]);
  });

  it('keeps shards apart, never overlaps a shard’s writes, and never moves a mark back', async () => {
    const s = store();
    const saver = new ProgressSaver(s.sink, pino({ level: 'silent' }), 1000);
    saver.save('shard-0', '100');
    saver.save('shard-1', '150');
    expect(s.waiting.map((w) => w.mark)).toEqual(['100', '150']);
    await vi.advanceTimersByTimeAsync(2000);
    saver.save('shard-0', '300');
    saver.save('shard-0', '200');
    // The first write has not answered: the next waits for it.
    expect(s.waiting.map((w) => w.mark)).toEqual(['100', '150']);
    await s.answerAll();
    expect(s.waiting.map((w) => w.mark)).toEqual(['300']);
    await s.answerAll();
    expect(s.written).toEqual(['100', '150', '300']);
  });

  it('logs a write that failed and still writes the next mark', async () => {
    const s = store();
    const logger = pino({ level: 'silent' });
    const warn = vi.spyOn(logger, 'warn');
    const saver = new ProgressSaver(s.sink, logger, 1000);
    saver.save('shard-0', '100');
    await s.answerAll(new Error('throttled'));
    expect(warn).toHaveBeenCalledWith(
      { shardId: 'shard-0', err: 'Error: throttled' },
      'shard progress not saved',
    );
    saver.save('shard-0', '200');
    await vi.advanceTimersByTimeAsync(1000);
    await s.answerAll();
    expect(s.written).toEqual(['200']);
  });
});
