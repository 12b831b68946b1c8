/**
 * The stream consumer's process as `npm start` runs it (cli/consumer-child.ts), plus the faults that
 * hit where the consumer makes its calls: pipeline-runner.ts passes this file as the consumer
 * child's entry and forwards the consumer's fault messages to it.
 *
 *   env FAULT_KILL     `consumer-mid-batch:N`: SIGKILL this process right after the Nth BatchWriteItem
 *                      succeeded (items written, checkpoint not moved); `consumer-after-aggregate:N`:
 *                      right after the Nth aggregate UpdateItem succeeded (the batch counted,
 *                      checkpoint not moved). Only the first consumer process of the pipeline dies:
 *                      the one the pipeline restarts runs on.
 *   message {type:'throttle', rate, calls}  the next `calls` DynamoDB writes: `rate` of them throttled,
 *                                           as many BatchWriteItems answered with half of them unprocessed
 *   message {type:'s3-down', ms}            every S3 call of the consumer (dead letters) fails for ms
 * It answers {type:'done', what:'throttle', ...counts} when the throttling has run its course.
 */
import type { Clients } from '#adapters/clients';
import { type HookContext, runConsumerChild } from '#cli/consumer-child';

type Message = { type: 'throttle'; rate: number; calls: number } | { type: 's3-down'; ms: number };

const [killWhat, killAfterText] = (process.env.FAULT_KILL ?? '').split(':');
const killAfter = Number(killAfterText ?? '1');
const die = () => process.kill(process.pid, 'SIGKILL');

const dynamo = {
  batchWrites: 0,
  aggregateUpdates: 0,
  throttleRate: 0,
  /** Write calls still under the fault: counted in calls, not seconds, so a slow start cannot miss it. */
  throttleCalls: 0,
  throttled: 0,
  unprocessed: 0,
};
let s3DownUntil = 0;

/** An UpdateItem of a real-time aggregate item (docs/dynamodb.md: pk `AGG#...`). */
const isAggregateUpdate = (input: unknown) =>
  (input as { Key?: { pk?: { S?: string } } }).Key?.pk?.S?.startsWith('AGG#') === true;

class ThrottledError extends Error {
  override name = 'ProvisionedThroughputExceededException';
  readonly $fault = 'client';
  readonly $metadata = { httpStatusCode: 400 };
}
class S3UnavailableError extends Error {
  override name = 'ServiceUnavailable';
  readonly $fault = 'server';
  readonly $metadata = { httpStatusCode: 503 };
}

function injectDynamoFaults(clients: Clients, context: HookContext): void {
  const killing = context.start === 1 ? killWhat : undefined;
  clients.dynamodb.middlewareStack.add(
    (next, ctx) => async (args) => {
      const command = ctx.commandName;
      if (
        dynamo.throttleCalls > 0 &&
        (command === 'BatchWriteItemCommand' || command === 'UpdateItemCommand')
      ) {
        dynamo.throttleCalls--;
        // Reported once this call's share is counted (the code below runs before the microtask).
        if (dynamo.throttleCalls === 0)
          queueMicrotask(() => context.send({ type: 'done', what: 'throttle', ...dynamo }));
        if (Math.random() < dynamo.throttleRate) {
          dynamo.throttled++;
          throw new ThrottledError('Rate of requests exceeds the allowed throughput (injected)');
        }
        const input = args.input as { RequestItems?: Record<string, unknown[]> };
        const [table, items] = Object.entries(input.RequestItems ?? {})[0] ?? [];
        if (
          command === 'BatchWriteItemCommand' &&
          table &&
          items &&
          items.length > 1 &&
          Math.random() < 0.5
        ) {
          // What DynamoDB does under pressure: writes part of the batch and hands back the rest.
          const keep = items.slice(0, Math.ceil(items.length / 2));
          const back = items.slice(keep.length);
          dynamo.unprocessed += back.length;
          const out = await next({ ...args, input: { ...input, RequestItems: { [table]: keep } } });
          (out.output as { UnprocessedItems?: Record<string, unknown[]> }).UnprocessedItems = {
            [table]: back,
          };
          return out;
        }
      }
      const out = await next(args);
      if (command === 'BatchWriteItemCommand') {
        dynamo.batchWrites++;
        if (killing === 'consumer-mid-batch' && dynamo.batchWrites >= killAfter) die();
      }
      if (command === 'UpdateItemCommand' && isAggregateUpdate(args.input)) {
        dynamo.aggregateUpdates++;
        if (killing === 'consumer-after-aggregate' && dynamo.aggregateUpdates >= killAfter) die();
      }
      return out;
    },
    { step: 'initialize', name: 'faultDynamo' },
  );
}

function injectS3Faults(clients: Clients): void {
  clients.s3.middlewareStack.add(
    (next) => async (args) => {
      if (Date.now() < s3DownUntil) throw new S3UnavailableError('S3 is unavailable (injected)');
      return next(args);
    },
    { step: 'initialize', name: 'faultS3' },
  );
}

await runConsumerChild({
  clients(clients, context) {
    injectDynamoFaults(clients, context);
    injectS3Faults(clients);
  },
  message(raw) {
    const m = raw as Message;
    if (m.type === 'throttle') {
      dynamo.throttleRate = m.rate;
      dynamo.throttleCalls = m.calls;
    } else if (m.type === 's3-down') s3DownUntil = Date.now() + m.ms;
  },
});
