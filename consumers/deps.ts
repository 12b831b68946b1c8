import type { Clients } from '#adapters/clients';
import type { Config } from '#adapters/config';
import { S3DeadLetterSink } from '#adapters/dlq';
import { FirehoseArchiveWriter } from '#adapters/firehose-writer';
import { DynamoInvoiceStore } from '#adapters/invoice-store';
import type { Logger } from '#adapters/logger';
import type { ConsumerDeps } from './handler.ts';

/** The production wiring of the consumer's ports. */
export function createConsumerDeps(
  cfg: Config,
  clients: Pick<Clients, 'dynamodb' | 'firehose' | 's3'>,
  logger: Logger,
): ConsumerDeps {
  return {
    sink: new DynamoInvoiceStore({ client: clients.dynamodb, tableName: cfg.names.table, logger }),
    archive: new FirehoseArchiveWriter({
      client: clients.firehose,
      deliveryStreamName: cfg.names.deliveryStream,
      logger,
    }),
    dlq: new S3DeadLetterSink({ client: clients.s3, bucket: cfg.names.bucket }),
    logger,
  };
}
