import { configure } from '@codegenie/serverless-express';
import { clientsFromConfig } from '#adapters/clients';
import { config } from '#adapters/config';
import { logger } from '#adapters/logger';
import { createApp } from '../app.ts';
import { createApiDeps } from '../deps.ts';

// Built once per container: config is read (and validated) at cold start, clients are reused.
const cfg = config();
const app = createApp(createApiDeps(cfg, clientsFromConfig(cfg), logger()));

/** API Gateway (REST or HTTP API) -> the same express app that runs locally. */
export const handler = configure({ app });
