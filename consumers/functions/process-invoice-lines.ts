import { createClients } from '#adapters/clients';
import { config } from '#adapters/config';
import { logger } from '#adapters/logger';
import { createConsumerDeps } from '../deps.ts';
import { createBatchHandler } from '../handler.ts';

// Built once per container; the handler keeps per-shard progress across invocations.
const cfg = config();
const deps = createConsumerDeps(
  cfg,
  createClients({ region: cfg.region, endpoints: cfg.endpoints }),
  logger(),
);

/** Kinesis event source mapping target; needs FunctionResponseTypes: ['ReportBatchItemFailures']. */
export const handler = createBatchHandler(deps);
