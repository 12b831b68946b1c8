import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { scratchDataDir } from '#local/scratch';
import { ownerPid } from '#test/global-setup';

describe('test temp files', () => {
  it('live under the run directory that the global setup removes at the end', async () => {
    const runDir = os.tmpdir();
    expect(path.basename(runDir)).toMatch(/^rp-vitest-\d+-/);
    const dir = await scratchDataDir('rp-test-');
    expect(path.dirname(dir)).toBe(runDir);
    expect((await fs.stat(dir)).mode & 0o777).toBe(0o755);
    await fs.rm(dir, { recursive: true });
  });

  it('names the run directory after the process that owns it', () => {
    expect(ownerPid('rp-vitest-4242-Ab12Cd')).toBe(4242);
    expect(ownerPid('rp-test-4242-Ab12Cd')).toBeUndefined();
    expect(ownerPid('rp-vitest-x-Ab12Cd')).toBeUndefined();
  });
});
