/**
 * Retrying against the AWS SDK: which errors are worth another try, a bounded-concurrency map for
 * calls made chunk by chunk, and a command without the SDK's log filtering. The policy itself
 * (backoff, partial-batch retry, sleep) is `#core/resilience`.
 */

const RETRYABLE_NAMES = new Set([
  'ProvisionedThroughputExceededException',
  'ThrottlingException',
  'Throttling',
  'RequestLimitExceeded',
  'LimitExceededException',
  'InternalServerError',
  'InternalFailure',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'TimeoutError',
  'RequestTimeout',
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
]);

/** Throttling, 5xx and network errors are worth another try; validation errors are not. */
export function isRetryable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const e = err as Error & {
    code?: string;
    $retryable?: unknown;
    $metadata?: { httpStatusCode?: number };
  };
  if (RETRYABLE_NAMES.has(e.name) || (e.code && RETRYABLE_NAMES.has(e.code))) return true;
  if (e.$retryable) return true;
  const status = e.$metadata?.httpStatusCode;
  return status !== undefined && status >= 500;
}

/** Runs `fn` over `items` with at most `limit` in flight; results keep the input order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

const identity = <T>(x: T): T => x;

/**
 * Skips the SDK's log filtering for one command. The SDK's logger middleware walks every input and
 * output against the operation schema to mask sensitive fields before calling `logger.info`, even
 * when the logger is its no-op default: for the stream path's big calls (GetRecords of thousands of
 * records, BatchWriteItem, PutRecords) that walk was ~8% of the pipeline process's CPU in the bench
 * profile (docs/benchmarks.md). Nothing here logs SDK payloads, so the walk buys nothing.
 */
export function unfiltered<C extends { middlewareStack: object }>(command: C): C {
  const stack = command.middlewareStack as unknown as {
    add(middleware: unknown, options: { step: 'initialize'; name: string; override: boolean }): void;
  };
  stack.add(
    (next: (args: unknown) => Promise<unknown>, context: Record<string, unknown>) => (args: unknown) => {
      context.dynamoDbDocumentClientOptions = {
        ...(context.dynamoDbDocumentClientOptions as object | undefined),
        overrideInputFilterSensitiveLog: identity,
        overrideOutputFilterSensitiveLog: identity,
      };
      return next(args);
    },
    { step: 'initialize', name: 'unfilteredLog', override: true },
  );
  return command;
}
