import path from 'node:path';
import { z } from 'zod';

/**
 * Every setting the pipeline reads from the environment, validated once.
 * Each key is the environment variable's name, so an error names the variable.
 */
const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);
const name = (fallback: string) =>
  z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,128}$/, 'letters, digits, dot, dash or underscore (1-128)')
    .default(fallback);
const optionalUrl = z.url().optional();
/** How logs are written: `auto` is readable lines when standard error is a terminal, JSON otherwise. */
export const LOG_FORMATS = ['json', 'pretty', 'auto'] as const;

const flag = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

export const envSchema = z.object({
  RP_MODE: z.enum(['local', 'aws']).default('local'),
  RP_DATA_DIR: z.string().min(1).default('.data'),
  RP_HOST: z.string().min(1).default('127.0.0.1'),
  RP_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  RP_LOG_FORMAT: z.enum(LOG_FORMATS).default('auto'),
  AWS_REGION: z.string().min(1).default('us-east-1'),

  RP_API_PORT: port(3000),
  RP_API_KEY: z.string().min(8, 'at least 8 characters').optional(),
  RP_API_MAX_LINES: z.coerce.number().int().positive().default(5000),
  RP_API_MAX_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(5 * 1024 * 1024),

  RP_KINESIS_PORT: port(4567),
  RP_DYNAMODB_PORT: port(4568),
  RP_S3_PORT: port(4569),
  RP_FIREHOSE_PORT: port(4573),
  RP_POSTGRES_PORT: port(5433),

  RP_STREAM_NAME: name('invoice-lines'),
  RP_STREAM_SHARDS: z.coerce.number().int().min(1).max(64).default(2),
  RP_TABLE_NAME: name('retail-pipeline'),
  RP_BUCKET: z
    .string()
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'a valid S3 bucket name')
    .default('retail-pipeline'),
  RP_DELIVERY_STREAM: name('invoice-lines-archive'),
  RP_FIREHOSE_BUFFER_MIB: z.coerce.number().min(0.001).max(128).default(1),
  RP_FIREHOSE_BUFFER_SECONDS: z.coerce.number().min(0).max(900).default(5),

  RP_DB_NAME: name('retail'),
  RP_DB_USER: name('retail'),
  RP_DB_PASSWORD: z.string().min(1).default('retail'),
  RP_LOAD_INTERVAL_SECONDS: z.coerce.number().min(0.1).default(10),

  RP_POLL_BATCH_SIZE: z.coerce.number().int().min(1).max(10000).default(500),
  RP_POLL_BATCH_WINDOW_MS: z.coerce.number().int().min(0).max(300000).default(0),
  RP_POLL_MAX_RETRIES: z.coerce.number().int().min(0).max(10000).default(5),
  RP_POLL_MAX_RECORD_AGE_SECONDS: z.coerce.number().int().min(-1).default(-1),
  RP_POLL_BISECT_ON_ERROR: flag.default(true),

  // aws mode: endpoints override the SDK defaults (set them to point at the local stack from outside)
  RP_KINESIS_ENDPOINT: optionalUrl,
  RP_DYNAMODB_ENDPOINT: optionalUrl,
  RP_S3_ENDPOINT: optionalUrl,
  RP_FIREHOSE_ENDPOINT: optionalUrl,
  RP_REDSHIFT_WORKGROUP: z.string().min(1).optional(),
  RP_REDSHIFT_DATABASE: z.string().min(1).optional(),
  RP_REDSHIFT_SECRET_ARN: z.string().min(1).optional(),
  RP_REDSHIFT_COPY_ROLE_ARN: z.string().min(1).optional(),

  // totesys change data capture: the source (default: the local stack's seeded `totesys` database)
  RP_TOTESYS_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'a postgresql:// connection string')
    .optional(),
  RP_TOTESYS_SECRET_ARN: z.string().min(1).optional(),
  RP_TOTESYS_DB_NAME: name('totesys'),
  RP_TOTESYS_SEED: z.coerce.number().int().default(1),
  /** Extract interval; the freshness target is p99 <= 60 s end to end. */
  RP_TOTESYS_EXTRACT_SECONDS: z.coerce.number().min(0.1).default(10),
  /** How far below the watermark each read starts: longer than the source's longest transaction. */
  RP_TOTESYS_OVERLAP_SECONDS: z.coerce.number().min(0).default(60),
  /** Business changes per second the local simulator makes while `npm start` runs; 0 turns it off. */
  RP_TOTESYS_SIMULATE_RATE: z.coerce.number().min(0).default(1),
});

export type Env = z.infer<typeof envSchema>;

export interface Config {
  mode: 'local' | 'aws';
  dataDir: string;
  host: string;
  logLevel: Env['RP_LOG_LEVEL'];
  logFormat: Env['RP_LOG_FORMAT'];
  region: string;
  api: { port: number; apiKey: string | undefined; maxLines: number; maxBytes: number };
  ports: { kinesis: number; dynamodb: number; s3: number; firehose: number; postgres: number };
  names: {
    stream: string;
    table: string;
    bucket: string;
    deliveryStream: string;
    database: string;
  };
  streamShards: number;
  firehose: { bufferMiB: number; bufferSeconds: number };
  db: { user: string; password: string };
  loadIntervalSeconds: number;
  poller: {
    batchSize: number;
    batchWindowMs: number;
    maxRetries: number;
    maxRecordAgeSeconds: number;
    bisectOnError: boolean;
  };
  endpoints: { kinesis?: string; dynamodb?: string; s3?: string; firehose?: string };
  redshift: { workgroup?: string; database?: string; secretArn?: string; copyRoleArn?: string };
  totesys: {
    url?: string;
    secretArn?: string;
    database: string;
    seed: number;
    extractSeconds: number;
    overlapSeconds: number;
    simulateRate: number;
  };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Reads and validates the environment; throws a ConfigError naming each bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const raw = Object.fromEntries(
    Object.keys(envSchema.shape).map((key) => [key, env[key] === '' ? undefined : env[key]]),
  );
  const parsed = envSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const variable = String(issue.path[0] ?? '?');
      return `${variable}=${JSON.stringify(raw[variable] ?? null)}: ${issue.message}`;
    });
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  if (e.RP_MODE === 'aws') {
    const missing = (['RP_REDSHIFT_WORKGROUP', 'RP_REDSHIFT_DATABASE'] as const).filter((k) => !e[k]);
    if (missing.length > 0) {
      throw new ConfigError(
        `invalid configuration: ${missing.map((k) => `${k}: required when RP_MODE=aws`).join('; ')}`,
      );
    }
  }
  return {
    mode: e.RP_MODE,
    dataDir: path.resolve(e.RP_DATA_DIR),
    host: e.RP_HOST,
    logLevel: e.RP_LOG_LEVEL,
    logFormat: e.RP_LOG_FORMAT,
    region: e.AWS_REGION,
    api: {
      port: e.RP_API_PORT,
      apiKey: e.RP_API_KEY,
      maxLines: e.RP_API_MAX_LINES,
      maxBytes: e.RP_API_MAX_BYTES,
    },
    ports: {
      kinesis: e.RP_KINESIS_PORT,
      dynamodb: e.RP_DYNAMODB_PORT,
      s3: e.RP_S3_PORT,
      firehose: e.RP_FIREHOSE_PORT,
      postgres: e.RP_POSTGRES_PORT,
    },
    names: {
      stream: e.RP_STREAM_NAME,
      table: e.RP_TABLE_NAME,
      bucket: e.RP_BUCKET,
      deliveryStream: e.RP_DELIVERY_STREAM,
      database: e.RP_DB_NAME,
    },
    streamShards: e.RP_STREAM_SHARDS,
    firehose: { bufferMiB: e.RP_FIREHOSE_BUFFER_MIB, bufferSeconds: e.RP_FIREHOSE_BUFFER_SECONDS },
    db: { user: e.RP_DB_USER, password: e.RP_DB_PASSWORD },
    loadIntervalSeconds: e.RP_LOAD_INTERVAL_SECONDS,
    poller: {
      batchSize: e.RP_POLL_BATCH_SIZE,
      batchWindowMs: e.RP_POLL_BATCH_WINDOW_MS,
      maxRetries: e.RP_POLL_MAX_RETRIES,
      maxRecordAgeSeconds: e.RP_POLL_MAX_RECORD_AGE_SECONDS,
      bisectOnError: e.RP_POLL_BISECT_ON_ERROR,
    },
    endpoints: {
      ...(e.RP_KINESIS_ENDPOINT ? { kinesis: e.RP_KINESIS_ENDPOINT } : {}),
      ...(e.RP_DYNAMODB_ENDPOINT ? { dynamodb: e.RP_DYNAMODB_ENDPOINT } : {}),
      ...(e.RP_S3_ENDPOINT ? { s3: e.RP_S3_ENDPOINT } : {}),
      ...(e.RP_FIREHOSE_ENDPOINT ? { firehose: e.RP_FIREHOSE_ENDPOINT } : {}),
    },
    redshift: {
      ...(e.RP_REDSHIFT_WORKGROUP ? { workgroup: e.RP_REDSHIFT_WORKGROUP } : {}),
      ...(e.RP_REDSHIFT_DATABASE ? { database: e.RP_REDSHIFT_DATABASE } : {}),
      ...(e.RP_REDSHIFT_SECRET_ARN ? { secretArn: e.RP_REDSHIFT_SECRET_ARN } : {}),
      ...(e.RP_REDSHIFT_COPY_ROLE_ARN ? { copyRoleArn: e.RP_REDSHIFT_COPY_ROLE_ARN } : {}),
    },
    totesys: {
      ...(e.RP_TOTESYS_URL ? { url: e.RP_TOTESYS_URL } : {}),
      ...(e.RP_TOTESYS_SECRET_ARN ? { secretArn: e.RP_TOTESYS_SECRET_ARN } : {}),
      database: e.RP_TOTESYS_DB_NAME,
      seed: e.RP_TOTESYS_SEED,
      extractSeconds: e.RP_TOTESYS_EXTRACT_SECONDS,
      overlapSeconds: e.RP_TOTESYS_OVERLAP_SECONDS,
      simulateRate: e.RP_TOTESYS_SIMULATE_RATE,
    },
  };
}

let cached: Config | undefined;
/** The process-wide config, read once. */
export function config(): Config {
  cached ??= loadConfig();
  return cached;
}
