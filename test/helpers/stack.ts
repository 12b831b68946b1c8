import { type Config, loadConfig } from '#adapters/config';
import { createLogger } from '#adapters/logger';
import { EPHEMERAL_PORTS, scratchDataDir } from '#local/scratch';
import { type LocalStack, startStack } from '#local/stack';

/** A config for tests: every port ephemeral, a fresh temp data dir, quiet logs. */
export async function testConfig(env: Record<string, string> = {}): Promise<Config> {
  return loadConfig({
    ...EPHEMERAL_PORTS,
    RP_DATA_DIR: await scratchDataDir('rp-test-'),
    RP_LOG_LEVEL: 'warn',
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
