import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** Environment that gives every local service an ephemeral port, so stacks can run side by side. */
export const EPHEMERAL_PORTS = {
  RP_API_PORT: '0',
  RP_KINESIS_PORT: '0',
  RP_DYNAMODB_PORT: '0',
  RP_S3_PORT: '0',
  RP_FIREHOSE_PORT: '0',
  RP_POSTGRES_PORT: '0',
} as const;

/**
 * A new data directory under the system temp dir, for tests and benchmarks. mkdtemp makes it 0700;
 * as root the postgres user could not reach a cluster there, which would then live in /var/tmp and
 * outlive the caller's clean-up, so it is opened to traversal.
 */
export async function scratchDataDir(prefix: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  await fs.chmod(dir, 0o755);
  return dir;
}
