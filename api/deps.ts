import type { Clients } from '#adapters/clients';
import type { Config } from '#adapters/config';
import { DynamoInvoiceStore } from '#adapters/invoice-store';
import { KinesisLineWriter } from '#adapters/kinesis-writer';
import type { Logger } from '#adapters/logger';
import type { ApiDeps } from './app.ts';

/** The production wiring of the API's ports (local and aws differ only by the clients' endpoints). */
export function createApiDeps(
  cfg: Config,
  clients: Pick<Clients, 'kinesis' | 'dynamodb'>,
  logger: Logger,
): ApiDeps {
  return {
    store: new DynamoInvoiceStore({ client: clients.dynamodb, tableName: cfg.names.table, logger }),
    writer: new KinesisLineWriter({ client: clients.kinesis, streamName: cfg.names.stream, logger }),
    logger,
    limits: { maxLines: cfg.api.maxLines, maxBytes: cfg.api.maxBytes },
    apiKey: cfg.api.apiKey,
  };
}
