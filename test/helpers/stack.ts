import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type Config, loadConfig } from '#adapters/config';
import { createLogger } from '#adapters/logger';
import { type LocalStack, startStack } from '#local/stack';

/** A config for tests: every port ephemeral, a fresh temp data dir, quiet logs. */
export async function testConfig(env: Record<string, string> = {}): Promise<Config> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'rp-test-'));
  return loadConfig({
    RP_DATA_DIR: dataDir,
    RP_LOG_LEVEL: 'warn',
    RP_API_PORT: '0',
    RP_KINESIS_PORT: '0',
    RP_DYNAMODB_PORT: '0',
    RP_S3_PORT: '0',
    RP_FIREHOSE_PORT: '0',
    RP_POSTGRES_PORT: '0',
    RP_FIREHOSE_BUFFER_SECONDS: '1',
    ...env,
  });
}

export async function startTestStack(config?: Config): Promise<LocalStack> {
  const cfg = config ?? (await testConfig());
  return startStack({ config: cfg, logger: createLogger(cfg.logLevel, 'test-stack') });
}

/** Polls until `probe` returns a value (not undefined) or the timeout passes. */
export async function eventually<T>(
  probe: () => Promise<T | undefined>,
  { timeoutMs = 10_000, intervalMs = 50, what = 'condition' } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: lastError });
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
