import { readFileSync, readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';

/**
 * The nice value of background work on a machine the stream path shares (local mode: every
 * component on one host): the lake's encoder thread and the warehouse's mart rebuilds give way to
 * the API, the consumer and the emulators they call, and to the loads the warehouse lag waits for.
 */
export const BACKGROUND_NICE = 10;

/**
 * Lowers a process's or a Linux thread's priority to BACKGROUND_NICE. False where it is not
 * allowed or there is no such process: the same work then runs at the usual priority.
 */
export function lowerPriority(id: number): boolean {
  try {
    setPriority(id, BACKGROUND_NICE);
    return true;
  } catch {
    return false;
  }
}

/** The calling thread's own priority (Linux: its id from /proc/thread-self; elsewhere nothing). */
export function lowerThreadPriority(): boolean {
  try {
    return lowerPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()));
  } catch {
    return false;
  }
}

/**
 * Lowers a local PostgreSQL server process (a session's backend) to background priority: only where
 * the server is on this machine (a loopback host) and the id is a `postgres` process here, so a
 * remote server's process id never reaches an unrelated local process.
 */
export function lowerLocalPostgresPriority(host: string | undefined, pid: number): boolean {
  if (!isLoopback(host) || !Number.isInteger(pid) || pid <= 0) return false;
  try {
    if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'postgres') return false;
  } catch {
    return false;
  }
  return lowerPriority(pid);
}

function isLoopback(host: string | undefined): boolean {
  if (!host) return false;
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\./.test(h);
}
