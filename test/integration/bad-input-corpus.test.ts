import http from 'node:http';
import path from 'node:path';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '#adapters/logger';
import { dynamoLineSource, reconcile, warehouseLineSource } from '#batch/reconcile';
import { type Pipeline, startPipeline } from '#cli/pipeline';
import { newRunId, openRunLog } from '#producer/run-log';
import { fileCases, requestCases, TEST_LIMITS, validLine } from '#test/fixtures/bad-input/corpus';
import { eventually, testConfig } from '#test/helpers/stack';

interface Answer {
  status: number;
  type: string;
  text: string;
}

function request(
  base: string,
  c: { method?: string; path?: string; headers?: Record<string, string>; body?: string | Buffer },
) {
  const url = new URL(c.path ?? '/invoices', base);
  return new Promise<Answer>((resolve, reject) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: `${url.pathname}${url.search}`,
        method: c.method ?? 'POST',
        headers: c.headers ?? {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            type: String(res.headers['content-type'] ?? ''),
            text: Buffer.concat(chunks).toString(),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(c.body);
  });
}

// What must never reach a client: stack frames, source or install paths.
const LEAK = /\n\s+at |node_modules|\/work\/|\/tmp\/|\/root\/|\.ts:\d|Error: .*\n/;

describe('bad input: >= 50 malformed requests and files', () => {
  let pipeline: Pipeline;
  let dataDir: string;
  const good = (lines: ReturnType<typeof validLine>[]) =>
    request(pipeline.apiUrl, {
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(lines),
    });

  beforeAll(async () => {
    const config = await testConfig({
      RP_API_MAX_LINES: String(TEST_LIMITS.maxLines),
      RP_API_MAX_BYTES: String(TEST_LIMITS.maxBytes),
    });
    dataDir = config.dataDir;
    pipeline = await startPipeline({ config, logger: createLogger('silent'), scheduleLoads: false });
  });
  afterAll(async () => {
    await pipeline?.stop();
  });

  /** Bad input must never leave a duplicated key or a half-filled row in the warehouse. */
  async function expectWarehouseConsistent() {
    const { rows } = await pipeline.warehouse.query<{ n: string; keys: string; nulls: string }>(
      `SELECT count(*) AS n, count(DISTINCT invoice_no || '/' || line_no) AS keys,
         sum(CASE WHEN stock_code IS NULL OR country_name IS NULL OR line_total IS NULL THEN 1 ELSE 0 END) AS nulls
       FROM fact_sales_line`,
    );
    expect(rows[0]?.n).toBe(rows[0]?.keys);
    expect(Number(rows[0]?.nulls ?? 0)).toBe(0);
  }

  /** Waits until every line of this run's log is in DynamoDB and the warehouse, once and with its total. */
  function reconcileRun(runId: string) {
    return eventually(
      async () => {
        await pipeline.loader.sweep();
        const r = await reconcile({
          runLogDir: path.join(dataDir, 'runs'),
          scope: { runIds: [runId] },
          sources: [
            dynamoLineSource({
              client: pipeline.stack.clients.dynamodb,
              table: pipeline.stack.config.names.table,
            }),
            warehouseLineSource(pipeline.warehouse),
          ],
        });
        return r.ok ? r : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500, what: 'the accepted lines to reconcile' },
    );
  }

  it('corpus size', () => {
    expect(requestCases.length + fileCases.length).toBeGreaterThanOrEqual(50);
  });

  it('every malformed request gets its 4xx with a JSON reason and nothing internal; valid requests around it pass and reconcile', async () => {
    const runId = newRunId('bad-input');
    const log = await openRunLog(path.join(dataDir, 'runs'), runId, { kind: 'test' });
    const before = [
      validLine('7000001', 1),
      validLine('7000001', 2, { description: 'naïve café ☕ 東京 עברית' }),
    ];
    expect((await good(before)).status).toBe(202);
    await log.appendBatch(before);
    const wrong: string[] = [];
    for (const c of requestCases) {
      const a = await request(pipeline.apiUrl, c);
      const body = (() => {
        try {
          return JSON.parse(a.text) as { error?: unknown; message?: unknown };
        } catch {
          return {};
        }
      })();
      const ok =
        a.status === c.status &&
        a.type.startsWith('application/json') &&
        typeof body.error === 'string' &&
        typeof body.message === 'string' &&
        (body.message as string).length > 0 &&
        !LEAK.test(a.text);
      if (!ok) wrong.push(`${c.name}: ${a.status} ${a.text.slice(0, 200)}`);
    }
    expect(wrong).toEqual([]);
    // A request mixing good and bad lines names only the bad ones; re-sending the rest is accepted.
    const mixed = [
      validLine('7000002', 1),
      validLine('7000002', 2, { quantity: 'x' }),
      validLine('7000002', 3),
    ];
    const refused = await good(mixed);
    expect(refused.status).toBe(400);
    expect(
      (JSON.parse(refused.text) as { invalid: Array<{ index: number }> }).invalid.map((i) => i.index),
    ).toEqual([1]);
    const rest = [mixed[0], mixed[2]] as ReturnType<typeof validLine>[];
    expect((await good(rest)).status).toBe(202);
    await log.appendBatch(rest);
    const after = [validLine('7000003', 1)];
    expect((await good(after)).status).toBe(202);
    await log.appendBatch(after);
    await log.close({});

    const report = await reconcileRun(runId);
    expect(report.accepted.lines).toBe(5);
    // The unicode description went through verbatim.
    const { rows: desc } = await pipeline.warehouse.query<{ description: string }>(
      "SELECT description FROM fact_sales_line WHERE invoice_no = '7000001' AND line_no = 2",
    );
    expect(desc[0]?.description).toBe('naïve café ☕ 東京 עברית');
    await expectWarehouseConsistent();
  });

  it('every malformed file is quarantined with its reason or has its bad rows rejected; good rows load', async () => {
    const { s3 } = pipeline.stack.clients;
    const bucket = pipeline.stack.config.names.bucket;
    const wrong: string[] = [];
    for (const c of fileCases) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: c.key, Body: c.body }));
      await pipeline.loader.loadKey(c.key);
      const { rows } = await pipeline.warehouse.query<{
        status: string;
        error: string | null;
        load_id: string;
        rows_loaded: string | null;
        rows_rejected: string | null;
      }>(
        'SELECT status, error, load_id, rows_loaded, rows_rejected FROM load_manifest WHERE object_key = $1',
        [c.key],
      );
      const m = rows[0];
      if (!m) {
        wrong.push(`${c.name}: no manifest row`);
        continue;
      }
      if (m.status !== c.outcome) {
        wrong.push(`${c.name}: ${m.status} (${m.error ?? ''}), expected ${c.outcome}`);
        continue;
      }
      if (c.outcome === 'quarantined') {
        const reason = await s3.send(
          new GetObjectCommand({ Bucket: bucket, Key: `quarantine/${c.key}.reason.json` }),
        );
        const text = JSON.parse(
          await (reason.Body as { transformToString(): Promise<string> }).transformToString(),
        ) as {
          reason?: string;
        };
        if (!m.error || !text.reason) wrong.push(`${c.name}: quarantined without a reason`);
        continue;
      }
      const rejected = await pipeline.warehouse.query<{ reason: string }>(
        'SELECT reason FROM load_rejected_row WHERE load_id = $1',
        [m.load_id],
      );
      if (rejected.rows.length !== (c.rejected ?? 0) || rejected.rows.some((r) => !r.reason)) {
        wrong.push(
          `${c.name}: ${rejected.rows.length} rejected rows (${rejected.rows.map((r) => r.reason).join('; ')}), expected ${c.rejected}`,
        );
      }
      if (c.invoices) {
        const loaded = await pipeline.warehouse.query<{ n: string }>(
          'SELECT count(*) AS n FROM fact_sales_line WHERE invoice_no = ANY($1)',
          [c.invoices],
        );
        if (Number(loaded.rows[0]?.n) !== c.good)
          wrong.push(`${c.name}: ${loaded.rows[0]?.n} good rows loaded, expected ${c.good}`);
      }
    }
    expect(wrong).toEqual([]);
    await expectWarehouseConsistent();
  });
});
