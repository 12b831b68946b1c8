import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, envSchema, loadConfig } from '#adapters/config';

describe('loadConfig', () => {
  it('gives working local defaults from an empty environment', () => {
    const config = loadConfig({});
    expect(config.mode).toBe('local');
    expect(config.dataDir).toBe(path.resolve('.data'));
    expect(config.host).toBe('127.0.0.1');
    expect(config.names).toEqual({
      stream: 'invoice-lines',
      table: 'retail-pipeline',
      bucket: 'retail-pipeline',
      deliveryStream: 'invoice-lines-archive',
      database: 'retail',
    });
    expect(config.api.apiKey).toBeUndefined();
    expect(config.logFormat).toBe('auto');
  });

  it('reads and coerces every kind of value', () => {
    const config = loadConfig({
      RP_MODE: 'local',
      RP_API_PORT: '0',
      RP_STREAM_SHARDS: '4',
      RP_POLL_BISECT_ON_ERROR: 'false',
      RP_FIREHOSE_BUFFER_SECONDS: '0',
      RP_DATA_DIR: '/tmp/rp-x',
      RP_LOG_FORMAT: 'json',
    });
    expect(config.api.port).toBe(0);
    expect(config.streamShards).toBe(4);
    expect(config.poller.bisectOnError).toBe(false);
    expect(config.firehose.bufferSeconds).toBe(0);
    expect(config.dataDir).toBe('/tmp/rp-x');
    expect(config.logFormat).toBe('json');
  });

  it.each([
    ['RP_MODE', 'cloud'],
    ['RP_API_PORT', '70000'],
    ['RP_KINESIS_PORT', 'abc'],
    ['RP_BUCKET', 'Not_A_Bucket'],
    ['RP_STREAM_SHARDS', '0'],
    ['RP_KINESIS_ENDPOINT', 'not a url'],
    ['RP_API_KEY', 'short'],
    ['RP_POLL_BISECT_ON_ERROR', 'maybe'],
    ['RP_LOG_FORMAT', 'yaml'],
  ])('names the variable when %s=%s is invalid', (variable, value) => {
    expect(() => loadConfig({ [variable]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [variable]: value })).toThrow(new RegExp(`${variable}=`));
  });

  it('names every missing variable that aws mode requires', () => {
    expect(() => loadConfig({ RP_MODE: 'aws' })).toThrow(
      /RP_REDSHIFT_WORKGROUP: required.*RP_REDSHIFT_DATABASE: required/,
    );
  });

  it('treats an empty value as unset', () => {
    expect(loadConfig({ RP_API_PORT: '' }).api.port).toBe(3000);
  });

  it('documents every variable in .env.example and the README', async () => {
    const fs = await import('node:fs/promises');
    const example = await fs.readFile('.env.example', 'utf8');
    const readme = await fs.readFile('README.md', 'utf8');
    for (const variable of Object.keys(envSchema.shape)) {
      expect(example, `.env.example lacks ${variable}`).toMatch(new RegExp(`^#? ?${variable}=`, 'm'));
      expect(readme, `README lacks ${variable}`).toContain(`\`${variable}\``);
    }
  });
});
