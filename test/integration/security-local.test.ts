import net from 'node:net';
import os from 'node:os';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '#adapters/config';
import { createLogger } from '#adapters/logger';
import { type Pipeline, startPipeline } from '#cli/pipeline';
import { CSV_HEADER, csvRow, inputLine } from '#test/helpers/lines';
import { eventually, testConfig } from '#test/helpers/stack';

const KEY = 'test-key-0123456789';
const INJECTION = "'); DROP TABLE fact_sales_line; --";
const QUOTED_CODE = `O'B"R\\N;--`;

/** A non-loopback IPv4 address of this machine, if it has one. */
function externalAddress(): string | undefined {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.setTimeout(2000);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
}

describe('security of the local pipeline', () => {
  let pipeline: Pipeline;
  const post = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${pipeline.apiUrl}/invoices`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
  const line = inputLine({
    invoiceNo: '6100001',
    stockCode: QUOTED_CODE,
    description: INJECTION,
    country: "Cote d'Ivoire",
  });

  beforeAll(async () => {
    const config = await testConfig({ RP_API_KEY: KEY, RP_LOAD_INTERVAL_SECONDS: '0.5' });
    pipeline = await startPipeline({ config, logger: createLogger('silent') });
  });
  afterAll(async () => {
    await pipeline?.stop();
  });

  it('binds to 127.0.0.1 by default, RP_HOST overrides it', async () => {
    expect(loadConfig({}).host).toBe('127.0.0.1');
    expect(loadConfig({ RP_HOST: '0.0.0.0' }).host).toBe('0.0.0.0');
    const url = new URL(pipeline.apiUrl);
    expect(url.hostname).toBe('127.0.0.1');
    expect(await canConnect('127.0.0.1', Number(url.port))).toBe(true);
    const external = externalAddress();
    // Without a second interface there is nothing to refuse; loopback-only binding is still checked above.
    if (external) expect(await canConnect(external, Number(url.port))).toBe(false);
  });

  it('with RP_API_KEY set: 401 without or with a wrong key, /health stays open', async () => {
    const none = await post([line]);
    expect(none.status).toBe(401);
    expect(await none.json()).toEqual({ error: 'unauthorized', message: 'missing or wrong x-api-key' });
    expect((await post([line], { 'x-api-key': 'wrong-key-000' })).status).toBe(401);
    expect((await fetch(`${pipeline.apiUrl}/invoices/6100001`)).status).toBe(401);
    expect((await fetch(`${pipeline.apiUrl}/stats/countries`)).status).toBe(401);
    expect((await fetch(`${pipeline.apiUrl}/health`)).status).toBe(200);
  });

  it('stores an injection string and a quoted stock code verbatim through the API, DynamoDB and the loader', async () => {
    const accepted = await post([line], { 'x-api-key': KEY });
    expect(accepted.status).toBe(202);
    const fromDynamo = await eventually(
      async () => {
        const res = await fetch(`${pipeline.apiUrl}/invoices/6100001`, { headers: { 'x-api-key': KEY } });
        if (res.status !== 200) return undefined;
        const body = (await res.json()) as { lines: Array<{ stockCode: string; description: string }> };
        // The header and the lines are separate items, written side by side: wait for the line.
        return body.lines.length > 0 ? body : undefined;
      },
      { timeoutMs: 20_000, what: 'the line in DynamoDB' },
    );
    expect(fromDynamo.lines[0]?.description).toBe(INJECTION);
    expect(fromDynamo.lines[0]?.stockCode).toBe(QUOTED_CODE);

    // The same strings in a CSV dropped under landing/ (the file path of the loader).
    const csv = [
      CSV_HEADER,
      csvRow({
        InvoiceNo: '6100002',
        StockCode: `"${QUOTED_CODE.replaceAll('"', '""')}"`,
        Description: `"${INJECTION}"`,
        Country: `"Cote d'Ivoire"`,
      }),
    ].join('\n');
    await pipeline.stack.clients.s3.send(
      new PutObjectCommand({
        Bucket: pipeline.stack.config.names.bucket,
        Key: 'landing/security/injection.csv',
        Body: csv,
      }),
    );
    const rows = await eventually(
      async () => {
        const { rows } = await pipeline.warehouse.query<{
          invoice_no: string;
          stock_code: string;
          description: string;
          country_name: string;
        }>(
          'SELECT invoice_no, stock_code, description, country_name FROM fact_sales_line WHERE invoice_no IN ($1, $2) ORDER BY invoice_no',
          ['6100001', '6100002'],
        );
        return rows.length === 2 ? rows : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250, what: 'both lines in the warehouse' },
    );
    for (const r of rows) {
      expect(r.description).toBe(INJECTION);
      expect(r.stock_code).toBe(QUOTED_CODE);
      expect(r.country_name).toBe("Cote d'Ivoire");
    }
    const { rows: tables } = await pipeline.warehouse.query<{ n: string }>(
      "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'fact_sales_line'",
    );
    expect(Number(tables[0]?.n)).toBe(1);
  });
});
