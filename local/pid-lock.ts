import fs from 'node:fs/promises';
import path from 'node:path';

/** Whether process `pid` exists (another user's process counts: signalling it fails with EPERM, not ESRCH). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Lock files held by this process: the pid inside cannot tell two holders in one process apart. */
const heldHere = new Set<string>();

/**
 * Claims a directory-level lock file holding this process's pid. A lock whose holder died (a crash,
 * kill -9) is taken over; a live holder, or another holder in this process, makes `refuse` throw.
 * Returns the release function.
 */
export async function acquirePidLock(
  file: string,
  refuse: (holder: number | 'this process') => Error,
): Promise<() => Promise<void>> {
  const resolved = path.resolve(file);
  if (heldHere.has(resolved)) throw refuse('this process');
  await fs.mkdir(path.dirname(resolved), { recursive: true });
  let holder: number | undefined;
  try {
    holder = Number.parseInt(await fs.readFile(resolved, 'utf8'), 10);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (holder !== undefined && Number.isInteger(holder) && holder !== process.pid && isAlive(holder)) {
    throw refuse(holder);
  }
  heldHere.add(resolved);
  await fs.writeFile(resolved, String(process.pid));
  return async () => {
    heldHere.delete(resolved);
    await fs.rm(resolved, { force: true });
  };
}
