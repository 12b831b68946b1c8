import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type pg from 'pg';
import type { Config } from '#adapters/config';

/**
 * Where the totesys source is: `RP_TOTESYS_URL` (any PostgreSQL with the 11 tables), else the
 * Secrets Manager secret `RP_TOTESYS_SECRET_ARN` (the RDS secret shape: host, port, username,
 * password, dbname), else the local stack's seeded database (endpoints.json `totesys`).
 */
export type SourceConnection =
  | { kind: 'local' | 'url'; connectionString: string }
  | { kind: 'secret'; pool: pg.PoolConfig };

export class TotesysSourceConfigError extends Error {
  override name = 'TotesysSourceConfigError';
}

interface RdsSecret {
  host?: string;
  port?: number | string;
  username?: string;
  password?: string;
  dbname?: string;
  ssl?: boolean;
}

export function poolConfigFromSecret(text: string, arn: string): pg.PoolConfig {
  let secret: RdsSecret;
  try {
    secret = JSON.parse(text) as RdsSecret;
  } catch {
    throw new TotesysSourceConfigError(`secret ${arn} is not JSON`);
  }
  const missing = (['host', 'username', 'password', 'dbname'] as const).filter((k) => !secret[k]);
  if (missing.length > 0) throw new TotesysSourceConfigError(`secret ${arn} lacks ${missing.join(', ')}`);
  return {
    host: secret.host,
    port: Number(secret.port ?? 5432),
    user: secret.username,
    password: secret.password,
    database: secret.dbname,
    // A database reached over a network: TLS unless the secret says otherwise.
    ...(secret.ssl === false ? {} : { ssl: { rejectUnauthorized: true } }),
  };
}

export async function resolveSourceConnection(
  config: Pick<Config, 'totesys' | 'region'>,
  localUrl: string | undefined,
  secrets: () => SecretsManagerClient = () => new SecretsManagerClient({ region: config.region }),
): Promise<SourceConnection> {
  if (config.totesys.url) return { kind: 'url', connectionString: config.totesys.url };
  const arn = config.totesys.secretArn;
  if (arn) {
    const client = secrets();
    try {
      const out = await client.send(new GetSecretValueCommand({ SecretId: arn }));
      if (!out.SecretString) throw new TotesysSourceConfigError(`secret ${arn} has no string value`);
      return { kind: 'secret', pool: poolConfigFromSecret(out.SecretString, arn) };
    } finally {
      client.destroy();
    }
  }
  if (!localUrl) {
    throw new TotesysSourceConfigError(
      'no totesys source: set RP_TOTESYS_URL or RP_TOTESYS_SECRET_ARN, or start the local stack (npm start)',
    );
  }
  return { kind: 'local', connectionString: localUrl };
}
