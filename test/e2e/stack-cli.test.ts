import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify, stripVTControlCharacters } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '#adapters/logger';
import { createPostgresWarehouse } from '#adapters/warehouse-postgres';
import { refreshMarts } from '#analytics/marts';
import { migrate } from '#batch/migrate';
import { endpointsSchema } from '#local/endpoints';
import { eventually } from '#test/helpers/stack';

const run = promisify(execFile);
const bin = path.resolve('bin/retail-pipeline.js');
const ESC = '\x1b';

describe('retail-pipeline stack up / status (as a user runs it)', () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rp-e2e-'));
  const env = {
    ...process.env,
    RP_DATA_DIR: dataDir,
    RP_LOG_LEVEL: 'warn',
    RP_KINESIS_PORT: '0',
    RP_DYNAMODB_PORT: '0',
    RP_S3_PORT: '0',
    RP_FIREHOSE_PORT: '0',
    RP_POSTGRES_PORT: '0',
  };
  // Whatever the terminal running the tests asked for, the CLI below decides colour by itself.
  const plainEnv: NodeJS.ProcessEnv = { ...env };
  delete plainEnv.FORCE_COLOR;
  delete plainEnv.NO_COLOR;
  afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  it('starts, reports every service healthy, and leaves no process after Ctrl-C', async () => {
    const child = spawn(process.execPath, [bin, 'stack', 'up'], {
      env: plainEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const endpoints = await eventually(
        async () =>
          fs.existsSync(path.join(dataDir, 'endpoints.json'))
            ? endpointsSchema.parse(JSON.parse(fs.readFileSync(path.join(dataDir, 'endpoints.json'), 'utf8')))
            : undefined,
        // A deadline, not a measurement: a first start on a 2-core machine other suites share can take 30 s.
        { timeoutMs: 150_000, what: 'endpoints.json' },
      );
      expect(endpoints.pid).toBe(child.pid);
      await eventually(async () => (out.includes('Ctrl-C stops everything') ? true : undefined), {
        timeoutMs: 60_000,
        what: 'the banner',
      });
      expect(out).toContain('kinesis list-streams');
      expect(out).toMatch(/psql 'postgresql:\/\/retail:retail@127\.0\.0\.1:\d+\/retail'/);
      // Output into a pipe, as in `retail-pipeline stack up | tee`: tables and logs without escape codes.
      expect(out).toContain('│ kinesis');
      expect(out).not.toContain(ESC);

      // `stack status | cat`: a plain table, times as date and time in UTC; colour only when forced.
      const table = await run(process.execPath, [bin, 'stack', 'status'], { env: plainEnv });
      expect(table.stdout).toMatch(/^stack pid \d+, started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\n/);
      expect(table.stdout).toMatch(/│ postgres +│ up +│/);
      expect(table.stdout).not.toContain(ESC);
      const forced = await run(process.execPath, [bin, 'stack', 'status'], {
        env: { ...plainEnv, FORCE_COLOR: '1' },
      });
      expect(forced.stdout).toContain(ESC);
      expect(stripVTControlCharacters(forced.stdout)).toMatch(/│ postgres +│ up +│/);

      // `report sales | cat` over the stack's warehouse (migrated and its marts built, as `start` does).
      const warehouse = createPostgresWarehouse({ connectionString: endpoints.postgres, max: 1 });
      try {
        await migrate(warehouse, createLogger('silent'));
        await refreshMarts(warehouse);
      } finally {
        await warehouse.close();
      }
      const sales = await run(process.execPath, [bin, 'report', 'sales'], { env: plainEnv });
      expect(sales.stdout).toMatch(/│ marts refreshed at \(UTC\) +│ +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d │/);
      expect(sales.stdout).not.toContain(ESC);
      const loads = await run(process.execPath, [bin, 'warehouse', 'status'], { env: plainEnv });
      expect(loads.stdout).toContain('│ last finished (UTC) │');
      expect(loads.stdout).not.toContain(ESC);

      const status = await run(process.execPath, [bin, 'stack', 'status', '--json'], { env });
      const report = JSON.parse(status.stdout) as { health: Array<{ service: string; ok: boolean }> };
      expect(report.health.map((h) => [h.service, h.ok])).toEqual([
        ['kinesis', true],
        ['dynamodb', true],
        ['s3', true],
        ['firehose', true],
        ['postgres', true],
      ]);

      const processes = async () =>
        (await run('ps', ['-eo', 'pid=,ppid=,args='])).stdout.split('\n').map((l) => {
          const [pid = '', ppid = '', ...args] = l.trim().split(/\s+/);
          return { pid: Number(pid), ppid: Number(ppid), args: args.join(' ') };
        });
      // A child is identified by pid and command line: a pid alone may be reused by then on a busy machine.
      const children = (await processes())
        .filter((p) => p.ppid === child.pid)
        .map((p) => `${p.pid} ${p.args}`);
      expect(children.length).toBeGreaterThan(0); // the emulator process and postgres

      child.kill('SIGINT');
      expect(await exited).toBe(0);
      expect(fs.existsSync(path.join(dataDir, 'endpoints.json'))).toBe(false);
      const ps = await run('ps', ['-eo', 'pid,args']);
      expect(ps.stdout.split('\n').filter((l) => l.includes(dataDir))).toEqual([]);
      const now = new Set((await processes()).map((p) => `${p.pid} ${p.args}`));
      const alive = children.filter((c) => now.has(c));
      expect(alive, 'child processes left behind').toEqual([]);
      for (const url of [endpoints.kinesis, endpoints.dynamodb, endpoints.s3, endpoints.firehose]) {
        await expect(
          fetch(url).then(
            () => 'answered',
            () => 'refused',
          ),
          url,
        ).resolves.toBe('refused');
      }
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 300_000);

  it('status explains that no stack is running', async () => {
    const err = await run(process.execPath, [bin, 'stack', 'status'], { env }).catch((e) => e);
    expect(err.code).toBe(1);
    expect(err.stderr).toMatch(
      /no local stack found: .*endpoints\.json does not exist \(start it with: npm start\)/,
    );
  });
});
