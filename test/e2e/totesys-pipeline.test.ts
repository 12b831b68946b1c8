import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '#adapters/logger';
import { createManifest } from '#batch/loader/manifest';
import { readStageRecord } from '#cdc/stage-record';
import { ingestionKey, ingestionMarkerKey, newRunId } from '#cdc/totesys/layout';
import { SEED_COUNTS } from '#cdc/totesys/seed';
import { type CaptureStatus, captureStatus, statusFails } from '#cdc/totesys/status';
import { s3Zone } from '#cdc/zone';
import { renderStatus } from '#cli/commands/totesys';
import { type Pipeline, startPipeline } from '#cli/pipeline';
import { eventually, testConfig } from '#test/helpers/stack';

/**
 * The totesys path through the whole local pipeline (`npm start`'s startPipeline): the seeded
 * source, its capture every second, transform and load on events and sweeps. A source update lands
 * in its star beside the version before it; a run the transform cannot read is one failure episode
 * (one log line, a record `totesys status` shows) that ends by itself once the run is readable.
 */
let pipeline: Pipeline;
let source: pg.Client;
const logLines: Array<{ level: number; msg: string; [k: string]: unknown }> = [];

beforeAll(async () => {
  // The simulator off: the only changes are the test's.
  const config = await testConfig({
    RP_TOTESYS_EXTRACT_SECONDS: '1',
    RP_LOAD_INTERVAL_SECONDS: '1',
    RP_TOTESYS_SIMULATE_RATE: '0',
  });
  const logger = createLogger('info', 'totesys-e2e', {
    format: 'json',
    destination: { write: (l: string) => logLines.push(JSON.parse(l)) },
  });
  pipeline = await startPipeline({ config, logger });
  source = new pg.Client({ connectionString: pipeline.stack.endpoints.totesys });
  await source.connect();
}, 120_000);

afterAll(async () => {
  await source?.end();
  await pipeline?.stop();
});

const count = async (sql: string, params: unknown[] = []) =>
  Number((await pipeline.warehouse.query<{ n: string }>(sql, params)).rows[0]?.n ?? 0);
const zone = () => s3Zone(pipeline.stack.clients.s3, pipeline.stack.config.names.bucket);
const messages = (msg: string) => logLines.filter((l) => l.msg === msg);
/**
 * `retail-pipeline totesys status` as a user runs it against the running pipeline: exit code and
 * output; `why` is what a failed expectation on it shows (its output, and what the pipeline logged at
 * warn and above).
 */
async function statusCli(...args: string[]): Promise<{ code: number; stdout: string; why: string }> {
  const bin = path.resolve('bin/retail-pipeline.js');
  const argv = [bin, 'totesys', 'status', '--data-dir', pipeline.stack.config.dataDir, ...args];
  try {
    const out = await promisify(execFile)(process.execPath, argv, {
      env: { ...process.env, RP_LOG_LEVEL: 'warn' },
    });
    return { code: 0, stdout: out.stdout, why: '' };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    const logged = logLines.filter((l) => l.level >= 40).map((l) => JSON.stringify(l));
    const why = [`stdout: ${e.stdout}`, `stderr: ${e.stderr}`, 'pipeline warnings:', ...logged].join('\n');
    return { code: e.code, stdout: e.stdout ?? '', why };
  }
}

/** Whether `totesys status --json` output reports a failing capture, transform or load. */
function reportsFailure(stdout: string): boolean {
  try {
    return statusFails(JSON.parse(stdout) as CaptureStatus);
  } catch {
    return false;
  }
}

describe('totesys through the local pipeline', () => {
  it('an updated source row becomes a second fact version in its star, the first kept', async () => {
    // The seed is the first extraction: wait for all of it in the stars before changing anything.
    await eventually(
      async () =>
        (await count('SELECT COUNT(*) AS n FROM totesys.fact_sales_order')) === SEED_COUNTS.sales_order
          ? true
          : undefined,
      { timeoutMs: 180_000, intervalMs: 500, what: 'the seeded sales orders in the star' },
    );
    const before = (await source.query('SELECT units_sold FROM sales_order WHERE sales_order_id = 7'))
      .rows[0];
    const { rows } = await source.query<{ units_sold: number; last_updated: string }>(
      `UPDATE sales_order SET units_sold = units_sold + 11 WHERE sales_order_id = 7
       RETURNING units_sold, to_char(last_updated, 'YYYY-MM-DD') AS last_updated`,
    );
    const updated = rows[0];
    if (!updated || !before) throw new Error('sales_order 7 is not in the seed');

    const versions = await eventually(
      async () => {
        const r = await pipeline.warehouse.query<{ units_sold: number; last_updated_date: string }>(
          `SELECT units_sold, to_char(last_updated_date, 'YYYY-MM-DD') AS last_updated_date
           FROM totesys.fact_sales_order WHERE sales_order_id = 7 ORDER BY last_updated_date, last_updated_time`,
        );
        return r.rows.length === 2 ? r.rows : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 200, what: 'the second version of sales order 7' },
    );
    expect(versions.map((v) => Number(v.units_sold))).toEqual([
      Number(before.units_sold),
      updated.units_sold,
    ]);
    expect(versions[1]?.last_updated_date).toBe(updated.last_updated);
    // Every other order still has its one version: nothing loaded twice.
    expect(await count('SELECT COUNT(*) AS n FROM totesys.fact_sales_order')).toBe(
      SEED_COUNTS.sales_order + 1,
    );

    const status = await captureStatus(zone(), {
      manifest: () => createManifest(pipeline.warehouse).cdcObjects(),
    });
    const sales = status.warehouseTables?.find((t) => t.table === 'fact_sales_order');
    expect(sales).toMatchObject({ failed: 0, rowsLoaded: SEED_COUNTS.sales_order + 1 });
    expect(status.tables.find((t) => t.table === 'sales_order')).toMatchObject({
      rowsExtracted: SEED_COUNTS.sales_order + 1,
      rowsTransformed: SEED_COUNTS.sales_order + 1,
    });
    expect(status.stages).toEqual({ transform: {}, load: {} });
    // The capture runs every second here; on a loaded machine one of its runs can fail (the source's
    // connection timing out) and the next one recover. Status reports such an episode and exits 1,
    // as it should: asked again while it reports one, it must answer 0 once nothing fails. An exit
    // without a reported failure ends the wait at once and fails below with its output.
    const cli = await eventually(
      async () => {
        const r = await statusCli('--json');
        return r.code === 0 || !reportsFailure(r.stdout) ? r : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500, what: 'totesys status --json to exit 0 once no stage fails' },
    );
    expect(cli.code, cli.why).toBe(0);
    const json = JSON.parse(cli.stdout) as typeof status;
    expect(json.warehouseTables?.find((t) => t.table === 'fact_sales_order')?.rowsLoaded).toBe(
      SEED_COUNTS.sales_order + 1,
    );
  }, 300_000);

  it('a run the transform cannot read: one warning, a record status shows, then it recovers by itself', async () => {
    // A completed extraction whose CSV has another table's header (as a broken writer would leave it).
    const runId = newRunId(new Date());
    const csvKey = ingestionKey('staff', runId);
    const marker = (tables: Record<string, unknown>) =>
      JSON.stringify({ runId, source: 'totesys', startedAt: '', finishedAt: '', tables });
    await zone().put(csvKey, 'department_id,department_name\n1,x\n', 'text/csv');
    await zone().put(
      ingestionMarkerKey(runId),
      marker({ staff: { key: csvKey, rows: 1, from: null, to: '2026-01-01T00:00:00.000000' } }),
      'application/json',
    );

    const failing = await eventually(
      async () => {
        const r = await readStageRecord(zone(), 'transform');
        return r.failure && r.failure.episodeAttempts >= 3 ? r.failure : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 200, what: 'three failed attempts on the broken run' },
    );
    expect(failing).toMatchObject({ subject: runId, message: expect.stringContaining('staff: header is') });
    expect(
      messages('totesys transform failing; retried with a cool-down (see: retail-pipeline totesys status)'),
    ).toHaveLength(1);
    const status = await captureStatus(zone(), {
      manifest: () => createManifest(pipeline.warehouse).cdcObjects(),
    });
    expect(status.runs.oldestPending).toBe(runId);
    expect(renderStatus(status)).toContain(`transform FAILING since ${failing.since} on ${runId}`);
    const cli = await statusCli();
    expect(cli.code).toBe(1);
    expect(cli.stdout).toContain(`transform FAILING since ${failing.since} on ${runId}`);

    // Mended in place (the run had no change after all): the next try transforms it and the later runs.
    await zone().put(ingestionMarkerKey(runId), marker({}), 'application/json');
    const recovered = await eventually(
      async () => {
        const r = await readStageRecord(zone(), 'transform');
        return r.failure ? undefined : r;
      },
      // After five attempts the run rests by the loader's cool-down (30 s) before the next try.
      { timeoutMs: 90_000, intervalMs: 200, what: 'the transform to recover' },
    );
    expect(recovered.lastOutage).toMatchObject({ subject: runId, since: failing.since });
    expect(messages('totesys transform recovered')).toHaveLength(1);
    expect(
      messages('totesys transform failing; retried with a cool-down (see: retail-pipeline totesys status)'),
    ).toHaveLength(1);
    const after = await eventually(
      async () => {
        const s = await captureStatus(zone());
        return s.runs.oldestPending === null || s.runs.oldestPending > runId ? s : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: 'the runs after the broken one to be transformed' },
    );
    expect(renderStatus(after)).toContain(`transform last outage ${failing.since}`);
  }, 240_000);
});
