import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '#adapters/logger';
import type { RetryRule } from '#batch/loader/scheduler';
import { readStageRecord } from '#cdc/stage-record';
import { columnNames, totesysTable } from '#cdc/totesys/tables';
import { BY_HAND, loadCycle, transformCycle } from '#cdc/transform-load';
import { s3Zone } from '#cdc/zone';
import { type LoaderEnv, startLoaderEnv } from '#test/helpers/loader-env';

/**
 * The load's failures against the real warehouse: a failed object is tried until it has used its
 * fast retries, then rests by the invoice loader's rule (not tried, its manifest attempts unchanged),
 * one warning for the episode, and a recovery line once it loads.
 */
const BUCKET = 'pipeline';
const RUN = '20261201T100100000Z-cccccc';
const DAY = '2026/12/01';
const lines: Array<{ msg: string; level: number }> = [];
const logger = createLogger('info', 'cdc-failures', {
  format: 'json',
  destination: { write: (l: string) => lines.push(JSON.parse(l)) },
});
let env: LoaderEnv;

beforeAll(async () => {
  env = await startLoaderEnv(BUCKET, 'cdc-failures-');
  const cols = columnNames(totesysTable('design'));
  const csvKey = `ingestion/totesys/design/${DAY}/${RUN}.csv`;
  const row = [
    '7',
    'Wooden',
    '/usr/share',
    'wooden-20221102.json',
    '2026-12-01T09:00:00.000000',
    '2026-12-01T10:00:00.000000',
  ];
  await env.clients.s3.send(
    new PutObjectCommand({ Bucket: BUCKET, Key: csvKey, Body: `${cols.join(',')}\n${row.join(',')}\n` }),
  );
  const marker = {
    runId: RUN,
    source: 'totesys',
    startedAt: '',
    finishedAt: '',
    tables: { design: { key: csvKey, rows: 1 } },
  };
  await env.clients.s3.send(
    new PutObjectCommand({
      Bucket: BUCKET,
      Key: `ingestion/totesys/_runs/${DAY}/${RUN}.json`,
      Body: JSON.stringify(marker),
    }),
  );
});
afterAll(() => env?.stop());

const messages = (msg: string) => lines.filter((l) => l.msg === msg);
const attempts = async () =>
  Number(
    (
      await env.warehouse.query<{ attempts: number }>(
        "SELECT attempts FROM load_manifest WHERE source = 'cdc' AND object_key LIKE 'processed/totesys/dim_design/%'",
      )
    ).rows[0]?.attempts,
  );

describe('totesys load failures', () => {
  it('rests a failing object after its fast retries, logs the episode once, and recovers', async () => {
    const deps = { s3: env.clients.s3, bucket: BUCKET, warehouse: env.warehouse, logger };
    expect((await transformCycle(deps)).transformed.map((m) => m.runId)).toEqual([RUN]);
    // The star's table is gone: every load of the object fails.
    await env.warehouse.query('ALTER TABLE totesys.dim_design RENAME TO dim_design_away');
    const rule: RetryRule = { maxAttempts: 2, coolDown: { baseMs: 3_600_000, maxMs: 3_600_000 } };
    const statuses = async () => (await loadCycle(deps, rule)).map((r) => r.status);

    expect(await statuses()).toEqual(['failed']);
    expect(await statuses()).toEqual(['failed']);
    expect(await attempts()).toBe(2);
    const [resting] = await loadCycle(deps, rule);
    expect(resting).toMatchObject({
      status: 'resting',
      error: expect.stringMatching(/failed 2 times, next retry in 3600 s/),
    });
    // Resting is not an attempt: neither the manifest nor the record counts it.
    expect(await attempts()).toBe(2);
    const record = await readStageRecord(s3Zone(env.clients.s3, BUCKET), 'load');
    expect(record.failure).toMatchObject({
      attempts: 2,
      episodeAttempts: 2,
      message: expect.stringContaining('dim_design'),
    });
    expect(
      messages('totesys load failing; retried with a cool-down (see: retail-pipeline totesys status)'),
    ).toHaveLength(1);

    // Mended; the rule still rests it, a load by hand takes it now.
    await env.warehouse.query('ALTER TABLE totesys.dim_design_away RENAME TO dim_design');
    expect(await statuses()).toEqual(['resting']);
    expect((await loadCycle(deps, BY_HAND)).map((r) => r.status)).toEqual(['loaded']);
    const after = await readStageRecord(s3Zone(env.clients.s3, BUCKET), 'load');
    expect(after.failure).toBeUndefined();
    expect(after.lastOutage).toMatchObject({ episodeAttempts: 2 });
    expect(messages('totesys load recovered')).toHaveLength(1);
    expect(
      (
        await env.warehouse.query<{ design_name: string }>(
          'SELECT design_name FROM totesys.dim_design WHERE design_id = 7',
        )
      ).rows,
    ).toEqual([{ design_name: 'Wooden' }]);
  }, 60_000);
});
