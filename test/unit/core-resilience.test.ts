import { describe, expect, it } from 'vitest';
import {
  backoffMs,
  DEFAULT_RETRY,
  errorMessage,
  retryCall,
  retryPartial,
  retryPolicy,
  sleep,
} from '#core/resilience';

const noWait = retryPolicy({ maxAttempts: 4, baseMs: 10, maxMs: 40, sleep: async () => {} });

describe('backoffMs', () => {
  it('doubles the ceiling per retry up to maxMs, jittered as the policy says', () => {
    const p = { baseMs: 10, maxMs: 40 };
    expect([1, 2, 3, 4].map((r) => backoffMs(r, { ...p, jitter: 'none' }))).toEqual([10, 20, 40, 40]);
    expect(backoffMs(3, { ...p, jitter: 'full' }, () => 0.5)).toBe(20);
    expect(backoffMs(3, { ...p, jitter: 'equal' }, () => 0)).toBe(20);
    expect(backoffMs(3, { ...p, jitter: 'equal' }, () => 0.999)).toBeLessThan(40);
    expect(backoffMs(1, p, () => 0.999)).toBeLessThan(10);
  });
});

describe('sleep', () => {
  it('ends when the signal aborts, long before its time', async () => {
    const stop = new AbortController();
    const slept = sleep(3_600_000, stop.signal);
    stop.abort();
    await expect(slept).resolves.toBeUndefined();
  });

  it('returns at once when already stopped', async () => {
    await expect(sleep(3_600_000, AbortSignal.abort())).resolves.toBeUndefined();
  });
});

describe('retryPartial', () => {
  it('sends again only what failed, until nothing fails', async () => {
    const sent: number[][] = [];
    const out = await retryPartial(
      [1, 2, 3, 4],
      async (pending) => {
        sent.push([...pending]);
        return { failed: pending.filter((n) => n % 2 === 0 && sent.length < 3), reason: 'Throttled' };
      },
      noWait,
    );
    expect(sent).toEqual([
      [1, 2, 3, 4],
      [2, 4],
      [2, 4],
    ]);
    expect(out).toEqual({ failed: [], attempts: 3 });
  });

  it('reports what still fails after the last attempt, with the reason', async () => {
    const out = await retryPartial(
      [1, 2],
      async (p) => ({ failed: p.filter((n) => n === 2), reason: 'Busy' }),
      noWait,
    );
    expect(out.failed).toEqual([2]);
    expect(out.reason).toBe('Busy');
    expect(out.attempts).toBe(4);
  });

  it('retries a thrown retryable error with everything, and stops at one that is not', async () => {
    let calls = 0;
    const throttle = Object.assign(new Error('slow down'), { name: 'ThrottlingException' });
    const out = await retryPartial(
      ['a', 'b'],
      async () => {
        calls++;
        throw calls === 1 ? throttle : new Error('bad request');
      },
      noWait,
      { retryable: (e) => (e as Error).name === 'ThrottlingException' },
    );
    expect(calls).toBe(2);
    expect(out.failed).toEqual(['a', 'b']);
    expect(out.reason).toBe('Error: bad request');
    expect(out.cause).toBeInstanceOf(Error);
  });

  it('waits the policy backoff before each retry, and hands the sleep the stop signal', async () => {
    const waits: Array<{ ms: number; signal: AbortSignal | undefined }> = [];
    const policy = retryPolicy({
      maxAttempts: 4,
      baseMs: 10,
      maxMs: 25,
      jitter: 'none',
      sleep: async (ms, signal) => void waits.push({ ms, signal }),
    });
    const stop = new AbortController();
    await retryPartial([1], async (p) => ({ failed: p, reason: 'busy' }), policy, { signal: stop.signal });
    expect(waits.map((w) => w.ms)).toEqual([10, 20, 25]);
    expect(waits.every((w) => w.signal === stop.signal)).toBe(true);
  });

  it('stops retrying once the signal aborts', async () => {
    const stop = new AbortController();
    let calls = 0;
    const out = await retryPartial(
      [1],
      async (p) => {
        calls++;
        stop.abort();
        return { failed: p, reason: 'down' };
      },
      noWait,
      { signal: stop.signal },
    );
    expect(calls).toBe(1);
    expect(out.failed).toEqual([1]);
  });
});

describe('retryCall', () => {
  const throttle = () => Object.assign(new Error('slow down'), { name: 'ThrottlingException' });
  const retryable = (e: unknown) => (e as Error).name === 'ThrottlingException';

  it('calls again after each retryable error and answers what the call answers', async () => {
    const attempts: number[] = [];
    const retries: number[] = [];
    const out = await retryCall(
      async (attempt) => {
        attempts.push(attempt);
        if (attempt < 2) throw throttle();
        return 'done';
      },
      noWait,
      { retryable, onRetry: (e) => retries.push(e.retry) },
    );
    expect(out).toBe('done');
    expect(attempts).toEqual([0, 1, 2]);
    expect(retries).toEqual([1, 2]);
  });

  it('throws the last error when the attempts run out, and at once when it is not retryable', async () => {
    let calls = 0;
    await expect(
      retryCall(
        async () => {
          calls++;
          throw throttle();
        },
        noWait,
        { retryable },
      ),
    ).rejects.toThrow('slow down');
    expect(calls).toBe(4);
    calls = 0;
    await expect(
      retryCall(
        async () => {
          calls++;
          throw new Error('bad request');
        },
        noWait,
        { retryable },
      ),
    ).rejects.toThrow('bad request');
    expect(calls).toBe(1);
  });

  it('waits the policy backoff before each retry and stops once the signal aborts', async () => {
    const waits: number[] = [];
    const stop = new AbortController();
    const policy = retryPolicy({
      maxAttempts: 5,
      baseMs: 10,
      maxMs: 25,
      jitter: 'none',
      sleep: async (ms) => {
        waits.push(ms);
        if (waits.length === 2) stop.abort();
      },
    });
    let calls = 0;
    await expect(
      retryCall(
        async () => {
          calls++;
          throw throttle();
        },
        policy,
        { retryable, signal: stop.signal },
      ),
    ).rejects.toThrow('slow down');
    expect(waits).toEqual([10, 20]);
    expect(calls).toBe(2);
  });
});

describe('errorMessage', () => {
  it('names the error class', () => {
    expect(errorMessage(new TypeError('x'))).toBe('TypeError: x');
    expect(errorMessage('plain')).toBe('plain');
  });

  it('gives the message alone when asked, and the name when there is no message', () => {
    expect(errorMessage(new TypeError('x'), { name: false })).toBe('x');
    expect(errorMessage(Object.assign(new Error(''), { name: 'AbortError' }))).toBe('AbortError');
    expect(errorMessage(Object.assign(new Error(''), { name: 'AbortError' }), { name: false })).toBe(
      'AbortError',
    );
    expect(errorMessage(42, { name: false })).toBe('42');
  });
});

describe('DEFAULT_RETRY', () => {
  it("waits under 40, 80, ... 1,000 ms: the stream adapters' waits before the policy moved to core", () => {
    const ceilings = [1, 2, 3, 4, 5, 6, 7].map((r) => backoffMs(r, { ...DEFAULT_RETRY, jitter: 'none' }));
    expect(ceilings).toEqual([40, 80, 160, 320, 640, 1_000, 1_000]);
    expect(DEFAULT_RETRY.maxAttempts).toBe(8);
  });
});
