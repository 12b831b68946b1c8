import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isAlive } from '#local/pid-lock';

/**
 * Every temp file of a test run lives under one directory, removed when the run ends.
 *
 * Each stack a test starts keeps its emulators' data, a PostgreSQL cluster and the lake under a data
 * dir of its own (tens to hundreds of MB). Left in the system temp dir, a few dozen runs of the suite
 * filled the disk, and the next run failed in `npm ci`. Workers inherit TMPDIR, so `os.tmpdir()`
 * (and with it `scratchDataDir`) points into this run's directory. A run that was killed leaves
 * its directory behind: the next run removes it, once the process named in it is gone.
 */
const PREFIX = 'rp-vitest-';
const LOW_DISK_BYTES = 4 * 1024 ** 3;

export default async function setup(): Promise<() => Promise<void>> {
  const base = os.tmpdir();
  await removeOrphans(base);
  const dir = await fs.mkdtemp(path.join(base, `${PREFIX}${process.pid}-`));
  // The postgres user must reach clusters below it when the tests run as root (see scratchDataDir).
  await fs.chmod(dir, 0o755);
  await warnIfLowOnDisk(dir);
  process.env.TMPDIR = dir;
  return async () => {
    process.env.TMPDIR = base;
    await fs.rm(dir, { recursive: true, force: true, maxRetries: 3 });
  };
}

/** The pid a run's directory is named after, or undefined for any other name. */
export function ownerPid(name: string): number | undefined {
  const match = new RegExp(`^${PREFIX}(\\d+)-`).exec(name);
  return match ? Number(match[1]) : undefined;
}

async function removeOrphans(base: string): Promise<void> {
  for (const name of await fs.readdir(base)) {
    const pid = ownerPid(name);
    if (pid === undefined || pid === process.pid || isAlive(pid)) continue;
    await fs.rm(path.join(base, name), { recursive: true, force: true, maxRetries: 3 });
  }
}

async function warnIfLowOnDisk(dir: string): Promise<void> {
  const stats = await fs.statfs(dir);
  const free = stats.bavail * stats.bsize;
  if (free < LOW_DISK_BYTES) {
    process.stderr.write(
      `warning: ${(free / 1024 ** 3).toFixed(1)} GiB free under ${dir}; a run of the suite holds ~2 GiB at its peak\n`,
    );
  }
}
