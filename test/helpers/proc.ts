import fs from 'node:fs/promises';

/** A Linux process's nice value: field 19 of /proc/<pid>/stat (counted after the command's closing parenthesis). */
export async function niceOf(pid: number): Promise<number> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}
