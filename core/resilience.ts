/**
 * The project's one retry policy: backoff with jitter, a partial-batch retry (the send returns the
 * failed subset), and one sleep that a stop interrupts. Every retry loop (stream adapters, producer,
 * local Firehose, poller, loader) reads these; none writes its own formula.
 */

export interface RetryPolicy {
  /** Attempts in all, the first one included. */
  maxAttempts: number;
  /** The first retry's backoff ceiling; doubles each attempt. */
  baseMs: number;
  /** The largest backoff ceiling. */
  maxMs: number;
  /**
   * How the wait is drawn under its ceiling: `full` uniform in [0, ceiling) (AWS's "full jitter",
   * the default: it spreads retrying clients best), `equal` in [ceiling/2, ceiling) (a floor
   * between tries, for a caller that must not hammer a server), `none` the ceiling itself.
   */
  jitter?: Jitter;
  /** Injected so unit tests do not wait. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export type Jitter = 'full' | 'equal' | 'none';

/**
 * The stream adapters' policy: waits under 40, 80, ... 1,000 ms, at most about 3 s over the 7 retries: long
 * enough to ride out a throttled second on a Kinesis shard or a DynamoDB partition.
 */
export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 8, baseMs: 40, maxMs: 1_000 };

export function retryPolicy(overrides: Partial<RetryPolicy> = {}): RetryPolicy {
  return { ...DEFAULT_RETRY, ...overrides };
}

/**
 * The wait before retry number `retry` (1 for the first retry): the ceiling
 * `min(maxMs, baseMs * 2^(retry-1))`, jittered by the policy.
 */
export function backoffMs(
  retry: number,
  policy: Pick<RetryPolicy, 'baseMs' | 'maxMs' | 'jitter'>,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, retry - 1));
  switch (policy.jitter ?? 'full') {
    case 'full':
      return random() * ceiling;
    case 'equal':
      return ceiling / 2 + random() * (ceiling / 2);
    case 'none':
      return ceiling;
  }
}

/**
 * Waits `ms`, or less when `signal` aborts (a stop): it resolves either way and never rejects, so a
 * retry loop wakes, sees that it is stopping, and gives up or shortens its remaining tries.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Waits the policy's backoff before retry number `retry` (1 for the first retry). */
export function pause(retry: number, policy: RetryPolicy, signal?: AbortSignal): Promise<void> {
  return (policy.sleep ?? sleep)(backoffMs(retry, policy), signal);
}

/**
 * An error as one line of text. `Name: message` for a log, a manifest row or a dead letter, where the
 * class says which layer failed; `{ name: false }` gives the message alone, for text that already
 * says what failed (`undecodable: ...`) or that a person reads (`retail-pipeline: ...`). An error
 * without a message is its name either way; anything thrown that is not an Error is its string.
 */
export function errorMessage(err: unknown, options: { name?: boolean } = {}): string {
  if (!(err instanceof Error)) return String(err);
  if (err.message === '') return err.name;
  return options.name === false ? err.message : `${err.name}: ${err.message}`;
}

/** What one send of a partial batch answers: the items that failed (a subset of those sent), and why. */
export interface PartialResult<T> {
  failed: readonly T[];
  reason?: string;
}

export interface PartialRetryOptions {
  /** Whether a thrown error is worth another try (throttling, 5xx, network); default: no. */
  retryable?: (err: unknown) => boolean;
  /** A stop: the retries end after the current send and the rest is reported failed. */
  signal?: AbortSignal;
  /** Called before each retry, for a debug log. */
  onRetry?: (e: { retry: number; pending: number; reason: string }) => void;
}

export interface PartialRetryOutcome<T> {
  /** Items still failing when the attempts ran out (empty when all went through). */
  failed: T[];
  /** The last reason they failed for. */
  reason?: string;
  /** Sends made. */
  attempts: number;
  /** The last error thrown by a send, for a `cause`. */
  cause?: unknown;
}

/**
 * Sends `items`, then after a backoff sends again only those the previous send reported failed,
 * until none fail, the attempts run out, a send throws an error that is not retryable, or the
 * signal stops it. A send that throws a retryable error retries everything it was given.
 * Never throws: what failed comes back with its reason, so no caller can lose it by accident.
 */
export async function retryPartial<T>(
  items: readonly T[],
  send: (pending: readonly T[], attempt: number) => Promise<PartialResult<T>>,
  policy: RetryPolicy,
  options: PartialRetryOptions = {},
): Promise<PartialRetryOutcome<T>> {
  let pending: readonly T[] = items;
  let reason: string | undefined;
  let cause: unknown;
  let attempts = 0;
  while (pending.length > 0 && attempts < policy.maxAttempts) {
    if (attempts > 0) {
      if (options.signal?.aborted) break;
      options.onRetry?.({ retry: attempts, pending: pending.length, reason: reason ?? 'unknown' });
      await pause(attempts, policy, options.signal);
    }
    attempts++;
    try {
      const result = await send(pending, attempts - 1);
      reason = result.reason ?? (result.failed.length > 0 ? 'unknown' : reason);
      pending = result.failed;
    } catch (err) {
      cause = err;
      reason = errorMessage(err);
      if (!(options.retryable?.(err) ?? false)) break;
    }
  }
  const outcome: PartialRetryOutcome<T> = { failed: [...pending], attempts };
  if (pending.length > 0 && reason !== undefined) outcome.reason = reason;
  if (cause !== undefined) outcome.cause = cause;
  return outcome;
}

export interface RetryCallOptions {
  /** Whether a thrown error is worth another try (throttling, 5xx, network); default: no. */
  retryable?: (err: unknown) => boolean;
  /** A stop: no further attempt starts once it aborts; the last error is thrown. */
  signal?: AbortSignal;
  /** Called before each retry, for a debug log. */
  onRetry?: (e: { retry: number; reason: string }) => void;
}

/**
 * One call under the policy: calls again after a backoff while it throws a retryable error, until it
 * answers or the attempts run out; then the last error is thrown (the caller names what failed).
 * For a call whose answer is whole or nothing; a batch that can half succeed is retryPartial's.
 */
export async function retryCall<T>(
  call: (attempt: number) => Promise<T>,
  policy: RetryPolicy,
  options: RetryCallOptions = {},
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call(attempt);
    } catch (err) {
      const last = attempt + 1 >= policy.maxAttempts || options.signal?.aborted === true;
      if (last || !(options.retryable?.(err) ?? false)) throw err;
      options.onRetry?.({ retry: attempt + 1, reason: errorMessage(err) });
      await pause(attempt + 1, policy, options.signal);
      if (options.signal?.aborted) throw err;
    }
  }
}
