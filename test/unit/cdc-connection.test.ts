import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '#adapters/config';
import {
  poolConfigFromSecret,
  resolveSourceConnection,
  TotesysSourceConfigError,
} from '#cdc/totesys/connection';

const ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:totesys-AbCdEf';
const sm = mockClient(SecretsManagerClient);
const rds = { host: 'db.internal', port: 5432, username: 'etl', password: 'p@ss', dbname: 'totesys' };

beforeEach(() => sm.reset());

describe('the totesys source connection', () => {
  it('takes RP_TOTESYS_URL first, without asking Secrets Manager', async () => {
    const config = loadConfig({
      RP_TOTESYS_URL: 'postgresql://u:p@h:5432/totesys',
      RP_TOTESYS_SECRET_ARN: ARN,
    });
    const source = await resolveSourceConnection(config, 'postgresql://local/totesys');
    expect(source).toEqual({ kind: 'url', connectionString: 'postgresql://u:p@h:5432/totesys' });
    expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(0);
  });

  it('reads the RDS-shaped secret, over TLS unless the secret turns it off', async () => {
    sm.on(GetSecretValueCommand, { SecretId: ARN }).resolves({ SecretString: JSON.stringify(rds) });
    const config = loadConfig({ RP_TOTESYS_SECRET_ARN: ARN });
    const source = await resolveSourceConnection(config, undefined, () => new SecretsManagerClient({}));
    expect(source).toEqual({
      kind: 'secret',
      pool: {
        host: 'db.internal',
        port: 5432,
        user: 'etl',
        password: 'p@ss',
        database: 'totesys',
        ssl: { rejectUnauthorized: true },
      },
    });
    expect(poolConfigFromSecret(JSON.stringify({ ...rds, ssl: false }), ARN).ssl).toBeUndefined();
  });

  it('names the secret and what it lacks', async () => {
    expect(() => poolConfigFromSecret('not json', ARN)).toThrow(`secret ${ARN} is not JSON`);
    expect(() => poolConfigFromSecret(JSON.stringify({ host: 'h', port: 1 }), ARN)).toThrow(
      `secret ${ARN} lacks username, password, dbname`,
    );
    sm.on(GetSecretValueCommand).resolves({});
    await expect(
      resolveSourceConnection(
        loadConfig({ RP_TOTESYS_SECRET_ARN: ARN }),
        undefined,
        () => new SecretsManagerClient({}),
      ),
    ).rejects.toThrow(TotesysSourceConfigError);
  });

  it('falls back to the local stack, and says what to set when there is none', async () => {
    const config = loadConfig({});
    await expect(resolveSourceConnection(config, 'postgresql://local/totesys')).resolves.toEqual({
      kind: 'local',
      connectionString: 'postgresql://local/totesys',
    });
    await expect(resolveSourceConnection(config, undefined)).rejects.toThrow(
      /set RP_TOTESYS_URL or RP_TOTESYS_SECRET_ARN/,
    );
  });
});
