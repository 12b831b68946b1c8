import type { Clients } from '#adapters/clients';
import type { Config } from '#adapters/config';
import { DynamoInvoiceStore } from '#adapters/invoice-store';
import { KinesisLineWriter, type LineWriter } from '#adapters/kinesis-writer';
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

/**
 * The writer, calling `written` once a request's lines are all on the stream. `npm start` wakes
 * the local stream poller with it: a caught-up poller then reads at once instead of after its idle
 * poll (on AWS the event source mapping polls by itself, and nothing is hooked).
 */
export function withWrittenHook<W extends LineWriter>(writer: W, written: () => void): W {
  return Object.assign(Object.create(writer) as W, {
    async putLines(lines: Parameters<LineWriter['putLines']>[0]) {
      const result = await writer.putLines(lines);
      written();
      return result;
    },
  });
}
