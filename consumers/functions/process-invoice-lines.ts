import { clientsFromConfig } from '#adapters/clients';
import { config } from '#adapters/config';
import { logger } from '#adapters/logger';
import { createConsumerDeps } from '../deps.ts';
import { createBatchHandler } from '../handler.ts';

// Built once per container; the handler keeps per-shard progress across invocations.
const cfg = config();
const deps = createConsumerDeps(cfg, clientsFromConfig(cfg), logger());

/** Kinesis event source mapping target; needs FunctionResponseTypes: ['ReportBatchItemFailures']. */
export const handler = createBatchHandler(deps);
