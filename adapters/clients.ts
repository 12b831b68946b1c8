import http from 'node:http';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { FirehoseClient } from '@aws-sdk/client-firehose';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { RedshiftDataClient } from '@aws-sdk/client-redshift-data';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { Config } from './config.ts';

/** Where each service answers; absent means the SDK's AWS default. */
export interface ServiceEndpoints {
  kinesis?: string;
  dynamodb?: string;
  s3?: string;
  firehose?: string;
}

export interface Clients {
  kinesis: KinesisClient;
  dynamodb: DynamoDBClient;
  doc: DynamoDBDocumentClient;
  s3: S3Client;
  firehose: FirehoseClient;
  redshiftData: RedshiftDataClient;
  destroy(): void;
}

export interface ClientOptions {
  region: string;
  endpoints?: ServiceEndpoints;
  /** Local emulators accept any key pair; s3rver only its own, so this is the one we use. */
  local?: boolean;
  maxAttempts?: number;
}

/** The key pair s3rver knows; the other emulators accept anything. Not a secret. */
export const LOCAL_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

/** Builds every SDK client the pipeline uses, with the settings the local emulators need. */
export function createClients(options: ClientOptions): Clients {
  const { region, endpoints = {}, local = false } = options;
  const common = {
    region,
    ...(local ? { credentials: LOCAL_CREDENTIALS } : {}),
    ...(options.maxAttempts ? { maxAttempts: options.maxAttempts } : {}),
  };
  // HTTP/1.1 keep-alive with a generous socket pool: the emulators are plain HTTP/1.1 servers.
  const handler = () =>
    new NodeHttpHandler({ httpAgent: new http.Agent({ keepAlive: true, maxSockets: 64 }) });
  const kinesis = new KinesisClient({
    ...common,
    ...(endpoints.kinesis ? { endpoint: endpoints.kinesis } : {}),
    requestHandler: handler(),
  });
  const dynamodb = new DynamoDBClient({
    ...common,
    ...(endpoints.dynamodb ? { endpoint: endpoints.dynamodb } : {}),
    ...(local ? { requestHandler: handler() } : {}),
  });
  const doc = DynamoDBDocumentClient.from(dynamodb, {
    marshallOptions: { removeUndefinedValues: true },
  });
  const s3 = new S3Client({
    ...common,
    ...(endpoints.s3 ? { endpoint: endpoints.s3, forcePathStyle: true } : {}),
    ...(local
      ? {
          forcePathStyle: true,
          requestChecksumCalculation: 'WHEN_REQUIRED' as const,
          responseChecksumValidation: 'WHEN_REQUIRED' as const,
          requestHandler: handler(),
        }
      : {}),
  });
  const firehose = new FirehoseClient({
    ...common,
    ...(endpoints.firehose ? { endpoint: endpoints.firehose } : {}),
    ...(local ? { requestHandler: handler() } : {}),
  });
  const redshiftData = new RedshiftDataClient(common);
  return {
    kinesis,
    dynamodb,
    doc,
    s3,
    firehose,
    redshiftData,
    destroy() {
      for (const c of [kinesis, dynamodb, s3, firehose, redshiftData]) c.destroy();
    },
  };
}

/**
 * The clients a Lambda entry builds from its config: the region and the RP_*_ENDPOINT overrides, the
 * same for every entry (the SDK's own AWS_ENDPOINT_URL_<SERVICE> applies underneath either way).
 */
export function clientsFromConfig(cfg: Pick<Config, 'region' | 'endpoints'>): Clients {
  return createClients({ region: cfg.region, endpoints: cfg.endpoints });
}
