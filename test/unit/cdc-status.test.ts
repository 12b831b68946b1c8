import { describe, expect, it } from 'vitest';
import { createLogger } from '#adapters/logger';
import type { CdcManifestRow } from '#batch/loader/manifest';
import { DEFAULT_RETRY_RULE } from '#batch/loader/scheduler';
import {
  readStageRecord,
  recordOutcome,
  type StageFailure,
  stageRecordKey,
  stageResting,
} from '#cdc/stage-record';
import { ingestionMarkerKey, processedMarkerKey, WATERMARKS_KEY } from '#cdc/totesys/layout';
import type { CaptureFailure } from '#cdc/totesys/state';
import { type CaptureStatus, captureStatus, runStartedAt, statusFails } from '#cdc/totesys/status';
import { processedObjectKey } from '#cdc/transform';
import type { ObjectZone } from '#cdc/zone';

/** The zone contract in memory: what s3Zone answers, from a map. */
function memoryZone(): ObjectZone & { objects: Map<string, string> } {
  const objects = new Map<string, string>();
  return {
    objects,
    async put(key, body) {
      objects.set(key, body);
    },
    async get(key) {
      return objects.get(key);
    },
    async list(prefix) {
      return [...objects.keys()].filter((k) => k.startsWith(prefix)).sort();
    },
  };
}

function capturedLogger() {
  const lines: Array<{ level: number; msg: string }> = [];
  const logger = createLogger('debug', 'cdc-status-test', {
    format: 'json',
    destination: { write: (l: string) => lines.push(JSON.parse(l)) },
  });
  return { logger, messages: () => lines.filter((l) => l.level >= 30).map((l) => l.msg) };
}

const at = (s: number) => new Date(Date.UTC(2026, 11, 1, 10, 0, s));

describe('totesys stage record: a failure episode', () => {
  it('logs once when it starts and once when it ends, counting every attempt in between', async () => {
    const zone = memoryZone();
    const { logger, messages } = capturedLogger();
    const fail = { failed: { subject: 'run-a', message: 'header is wrong' } };
    for (let i = 0; i < 3; i++) await recordOutcome(zone, 'transform', fail, logger, at(i));
    let record = await readStageRecord(zone, 'transform');
    expect(record.failure).toEqual({
      message: 'header is wrong',
      subject: 'run-a',
      since: at(0).toISOString(),
      lastAttemptAt: at(2).toISOString(),
      attempts: 3,
      episodeAttempts: 3,
    });
    expect(messages()).toEqual([
      'totesys transform failing; retried with a cool-down (see: retail-pipeline totesys status)',
    ]);

    await recordOutcome(zone, 'transform', { runs: 2, sourceRows: { staff: 3 } }, logger, at(9));
    record = await readStageRecord(zone, 'transform');
    expect(record.failure).toBeUndefined();
    expect(record.lastOutage).toMatchObject({ since: at(0).toISOString(), until: at(9).toISOString() });
    expect(record.runs).toBe(2);
    expect(record.sourceRows).toEqual({ staff: 3 });
    expect(messages().slice(1)).toEqual(['totesys transform recovered']);
  });

  it('a healthy idle cycle writes nothing', async () => {
    const zone = memoryZone();
    const { logger } = capturedLogger();
    await recordOutcome(zone, 'load', {}, logger, at(0));
    expect(zone.objects.has(stageRecordKey('load'))).toBe(false);
  });

  it("rests by the invoice loader's rule once the fast retries are used up", async () => {
    const zone = memoryZone();
    const { logger } = capturedLogger();
    const rule = DEFAULT_RETRY_RULE;
    const fail = { failed: { subject: 'k', message: 'boom' } };
    for (let i = 0; i < rule.maxAttempts - 1; i++) await recordOutcome(zone, 'load', fail, logger, at(i));
    let record = await readStageRecord(zone, 'load');
    expect(stageResting(record, rule, at(10))).toBeUndefined();
    await recordOutcome(zone, 'load', fail, logger, at(10));
    record = await readStageRecord(zone, 'load');
    const base = rule.coolDown.baseMs / 1000;
    expect(stageResting(record, rule, at(10 + base - 1))).toMatch(/failed 5 times, next retry in 1 s: boom/);
    expect(stageResting(record, rule, at(10 + base))).toBeUndefined();
    // Another subject: the episode goes on, the cool-down counts from 1 again.
    await recordOutcome(zone, 'load', { failed: { subject: 'k2', message: 'x' } }, logger, at(11));
    record = await readStageRecord(zone, 'load');
    expect(record.failure).toMatchObject({ attempts: 1, episodeAttempts: 6, since: at(0).toISOString() });
    expect(stageResting(record, rule, at(12))).toBeUndefined();
  });

  it('a damaged record is an error, not a silent reset', async () => {
    const zone = memoryZone();
    zone.objects.set(stageRecordKey('load'), '{"version":1,"stage":"load"}');
    await expect(readStageRecord(zone, 'load')).rejects.toThrow(
      /processed\/totesys\/_state\/load.json is damaged/,
    );
  });
});

describe('totesys status: rows and lag per warehouse table', () => {
  const runs = ['20261201T100000000Z-aaaaaa', '20261201T100010000Z-bbbbbb', '20261201T100020000Z-cccccc'];

  it('counts loaded rows, failures and the last error, and lags from the newest run fully loaded', async () => {
    const zone = memoryZone();
    const { logger } = capturedLogger();
    for (const r of runs) await zone.put(ingestionMarkerKey(r), '{}', 'application/json');
    // Runs a and b transformed; c waits.
    for (const r of runs.slice(0, 2)) await zone.put(processedMarkerKey(r), '{}', 'application/json');
    const [a, b] = runs as [string, string, string];
    const keys = {
      saleA: processedObjectKey('fact_sales_order', a),
      saleB: processedObjectKey('fact_sales_order', b),
      staffA: processedObjectKey('dim_staff', a),
      staffB: processedObjectKey('dim_staff', b),
    };
    for (const k of Object.values(keys)) await zone.put(k, 'PAR1', 'application/vnd.apache.parquet');
    await recordOutcome(
      zone,
      'transform',
      { runs: 2, sourceRows: { sales_order: 7 }, warehouseRows: { fact_sales_order: 7, dim_staff: 2 } },
      logger,
      at(0),
    );
    await recordOutcome(
      zone,
      'load',
      { failed: { subject: keys.staffA, message: 'deadlock' } },
      logger,
      at(1),
    );
    const manifest: CdcManifestRow[] = [
      { object_key: keys.saleA, status: 'loaded', attempts: 1, rows_read: '5', rows_new: '5', error: null },
      { object_key: keys.saleB, status: 'loaded', attempts: 1, rows_read: '2', rows_new: '1', error: null },
      {
        object_key: keys.staffA,
        status: 'failed',
        attempts: 2,
        rows_read: null,
        rows_new: null,
        error: 'deadlock',
      },
      // staffB: never seen by the load yet.
    ];
    const now = new Date(Date.UTC(2026, 11, 1, 10, 1, 0));
    const status = await captureStatus(zone, { now, manifest: async () => manifest });

    const sales = status.warehouseTables?.find((t) => t.table === 'fact_sales_order');
    expect(sales).toMatchObject({ rowsTransformed: 7, objects: 2, rowsLoaded: 7, rowsNew: 6, failed: 0 });
    // Visible through run b (c is not transformed): 60 - 10 s.
    expect(sales?.lagSeconds).toBe(50);
    const staff = status.warehouseTables?.find((t) => t.table === 'dim_staff');
    expect(staff).toMatchObject({
      objects: 2,
      rowsLoaded: 0,
      failed: 1,
      lastError: 'deadlock',
      lagSeconds: 60,
    });
    // A table with no object: visible through run b as well.
    expect(status.warehouseTables?.find((t) => t.table === 'dim_design')?.lagSeconds).toBe(50);
    // The worst table: dim_staff, whose run a is not loaded.
    expect(status.warehouseLagSeconds).toBe(60);
    expect(status.tables.find((t) => t.table === 'sales_order')?.rowsTransformed).toBe(7);
    expect(status.stages.load.failure).toMatchObject({ subject: keys.staffA, message: 'deadlock' });
    expect(status.runs).toEqual({ extracted: 3, transformed: 2, oldestPending: runs[2] });
  });

  it('leaves the load columns out when the warehouse is not asked', async () => {
    const zone = memoryZone();
    await zone.put(WATERMARKS_KEY, '{"version":1,"tables":{}}', 'application/json');
    const status = await captureStatus(zone);
    expect(status.warehouseTables).toBeUndefined();
    expect(status.stages).toEqual({ transform: {}, load: {} });
  });

  it('fails (the exit code of totesys status) while any one stage is in a failure episode, and only then', () => {
    const at = '2026-12-01T10:00:00.000Z';
    const stageEpisode: StageFailure = {
      message: 'down',
      subject: null,
      since: at,
      lastAttemptAt: at,
      attempts: 1,
      episodeAttempts: 1,
    };
    const captureEpisode: CaptureFailure = {
      stage: 'source',
      message: 'down',
      since: at,
      lastAttemptAt: at,
      attempts: 1,
    };
    const healthy: Pick<CaptureStatus, 'failure' | 'stages'> = {
      failure: undefined,
      stages: { transform: {}, load: {} },
    };
    expect(statusFails(healthy)).toBe(false);
    // A stage that recovered keeps its last outage: not a failure.
    const recovered = { lastOutage: { ...stageEpisode, until: '2026-12-01T10:01:00.000Z' } };
    expect(statusFails({ ...healthy, stages: { transform: recovered, load: recovered } })).toBe(false);
    expect(statusFails({ ...healthy, failure: captureEpisode })).toBe(true);
    expect(statusFails({ ...healthy, stages: { transform: { failure: stageEpisode }, load: {} } })).toBe(
      true,
    );
    expect(statusFails({ ...healthy, stages: { transform: {}, load: { failure: stageEpisode } } })).toBe(
      true,
    );
  });

  it('reads a run start from its id', () => {
    expect(runStartedAt('20261201T100020123Z-cccccc')?.toISOString()).toBe('2026-12-01T10:00:20.123Z');
    expect(runStartedAt('nope')).toBeUndefined();
  });
});
