import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { BACKGROUND_NICE, lowerLocalPostgresPriority, lowerPriority } from '#adapters/priority';
import { niceOf } from '#test/helpers/proc';

const children: ReturnType<typeof spawn>[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

async function sleeper() {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  children.push(child);
  await once(child, 'spawn');
  return child.pid as number;
}

describe('background priority', () => {
  it('lowers a process to the background nice value', async () => {
    const pid = await sleeper();
    const was = await niceOf(pid);
    expect(was).toBeLessThan(BACKGROUND_NICE);
    expect(lowerPriority(pid)).toBe(true);
    expect(await niceOf(pid)).toBe(BACKGROUND_NICE);
  });

  it('says false for a process that is not there', () => {
    // Past the kernel's largest process id (2^22).
    expect(lowerPriority(2 ** 22 + 1)).toBe(false);
  });

  it('lowers only a local postgres process: never another process, a remote host or a bad id', async () => {
    const pid = await sleeper();
    const was = await niceOf(pid);
    // A `sleep` process on this machine is not a PostgreSQL backend.
    expect(lowerLocalPostgresPriority('127.0.0.1', pid)).toBe(false);
    // A remote server's backend id means nothing here, whatever runs under that id.
    expect(lowerLocalPostgresPriority('warehouse.example.com', pid)).toBe(false);
    expect(lowerLocalPostgresPriority('10.0.0.7', pid)).toBe(false);
    expect(lowerLocalPostgresPriority(undefined, pid)).toBe(false);
    expect(lowerLocalPostgresPriority('localhost', 0)).toBe(false);
    expect(lowerLocalPostgresPriority('[::1]', -1)).toBe(false);
    expect(await niceOf(pid)).toBe(was);
  });
});
