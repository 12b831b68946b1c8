import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { Command, CommanderError } from 'commander';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLogger } from '#adapters/logger';
import { registerReplayCommand } from '#cli/commands/replay';
import { type Pipeline, startPipeline } from '#cli/pipeline';
import type { ApiErrorBody } from '#core/api-contract';
import type { InvoiceLineInput } from '#core/invoice-line';
import { createPoster } from '#producer/client';
import { runReplay } from '#producer/run';
import { CSV_HEADER, csvRow, invoiceLines } from '#test/helpers/lines';
import { eventually, testConfig } from '#test/helpers/stack';

/**
 * The producer against the real API and pipeline (issue 13): no fake decides what a 400 looks like or
 * whether a `£` survives; the API, Kinesis, the consumers, DynamoDB, Firehose and the loader do.
 */

const VOUCHER = 'Dotcomgiftshop Gift Voucher £40.00';

describe('producer against the real API', () => {
  let pipeline: Pipeline;
  let dataDir = '';
  let tmp = '';

  beforeAll(async () => {
    const config = await testConfig();
    dataDir = config.dataDir;
    pipeline = await startPipeline({ config, logger: createLogger('silent'), scheduleLoads: false });
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'producer-api-'));
  });
  afterAll(async () => {
    await pipeline?.stop();
    await fs.rm(tmp, { recursive: true, force: true });
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  const invoice = (invoiceNo: string, lines: number) =>
    eventually(
      async () => {
        const res = await fetch(`${pipeline.apiUrl}/invoices/${invoiceNo}`);
        if (res.status !== 200) return undefined;
        const body = (await res.json()) as { lines: { lineNo: number; description: string | null }[] };
        return body.lines.length === lines ? body : undefined;
      },
      { timeoutMs: 30_000, what: `invoice ${invoiceNo} with ${lines} lines in DynamoDB` },
    );

  it('one bad line among good ones: the good ones are re-sent and accepted, the bad one gets the API reason', async () => {
    const lines: InvoiceLineInput[] = invoiceLines(5, { invoiceNo: '7100001' });
    lines[2] = { ...(lines[2] as InvoiceLineInput), quantity: 0.5 };
    // The API's own verdict on this very request, to compare the producer's report with.
    const direct = await fetch(`${pipeline.apiUrl}/invoices`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(lines),
    });
    expect(direct.status).toBe(400);
    const answer = (await direct.json()) as ApiErrorBody;
    expect(answer.invalid?.map((i) => i.index)).toEqual([2]);

    const rejected: { line: InvoiceLineInput; reason: string }[] = [];
    const accepted: InvoiceLineInput[] = [];
    const poster = createPoster({
      target: pipeline.apiUrl,
      batchSize: 5,
      onRejected: (e) => rejected.push(e),
      onAccepted: (l) => {
        accepted.push(...l);
      },
    });
    for (const line of lines) await poster.send(line);
    const summary = await poster.flush();

    expect(summary).toMatchObject({ sent: 5, accepted: 4, rejected: 1, failed: 0, requests: 2 });
    expect(rejected).toEqual([{ line: lines[2], reason: answer.invalid?.[0]?.reason }]);
    expect(accepted.map((l) => l.lineNo)).toEqual([1, 2, 4, 5]);
    const stored = await invoice('7100001', 4);
    expect(stored.lines.map((l) => l.lineNo)).toEqual([1, 2, 4, 5]);
  });

  it('a line that is not an object is rejected with the API reason, not the error code', async () => {
    const rejected: string[] = [];
    const poster = createPoster({
      target: pipeline.apiUrl,
      batchSize: 2,
      onRejected: (e) => rejected.push(e.reason),
    });
    await poster.send('not a line' as unknown as InvoiceLineInput);
    const summary = await poster.flush();
    expect(summary).toMatchObject({ sent: 1, accepted: 0, rejected: 1, failed: 0 });
    expect(rejected).toEqual(['must be a JSON object']);
  });

  it('replays a Latin-1 CRLF file whose first £ is 3 MB in: the £ reaches DynamoDB, the archive and the warehouse', async () => {
    // Few rows but the bytes of the real file before its first £: an extra column the replay ignores.
    const note = 'x'.repeat(1_500);
    const rows = [`${CSV_HEADER},Note`];
    for (let i = 0; i < 2_100; i++) {
      rows.push(
        `${csvRow({ InvoiceNo: 536365 + Math.floor(i / 30), StockCode: `2${String(i % 30).padStart(4, '0')}` })},${note}`,
      );
    }
    rows.push(
      `${csvRow({ InvoiceNo: '539492', StockCode: 'gift_0001_40', Description: VOUCHER, Quantity: 1, InvoiceDate: '12/20/2010 10:14', UnitPrice: '34.04', CustomerID: '' })},`,
    );
    const bytes = Buffer.from(`${rows.join('\r\n')}\r\n`, 'latin1');
    expect(bytes.indexOf(0xa3)).toBeGreaterThan(3_000_000);
    const file = path.join(tmp, 'online-retail-latin1.csv');
    await fs.writeFile(file, bytes);

    const summary = await runReplay({
      paths: file,
      target: pipeline.apiUrl,
      progress: false,
      strict: true,
      runLogDir: path.join(dataDir, 'runs'),
    });
    expect(summary).toMatchObject({ produced: 2_101, accepted: 2_101, rejected: 0, failed: 0, malformed: 0 });

    const stored = await invoice('539492', 1);
    expect(stored.lines[0]?.description).toBe(VOUCHER);

    const { s3 } = pipeline.stack.clients;
    const bucket = pipeline.stack.config.names.bucket;
    const archived = await eventually(
      async () => {
        const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'archive/' }));
        for (const o of listed.Contents ?? []) {
          const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key }));
          const text = gunzipSync(
            await (got.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
          ).toString('utf8');
          for (const line of text.split('\n')) {
            if (!line.includes('"539492"')) continue;
            return JSON.parse(line) as { description: string };
          }
        }
        return undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250, what: 'the voucher in the archive' },
    );
    expect(archived.description).toBe(VOUCHER);

    const loaded = await eventually(
      async () => {
        await pipeline.loader.sweep();
        const { rows: found } = await pipeline.warehouse.query<{ description: string }>(
          "SELECT description FROM fact_sales_line WHERE invoice_no = '539492'",
        );
        return found[0];
      },
      { timeoutMs: 60_000, intervalMs: 500, what: 'the voucher in the warehouse' },
    );
    expect(loaded.description).toBe(VOUCHER);
  });

  it('replay --encoding utf8 of a Latin-1 file stops at its line with the hint, nothing mangled sent', async () => {
    const file = path.join(tmp, 'declared-utf8.csv');
    await fs.writeFile(
      file,
      Buffer.from(`${CSV_HEADER}\r\n${csvRow({ InvoiceNo: '7200001', Description: VOUCHER })}\r\n`, 'latin1'),
    );
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    let printed = '';
    try {
      const program = new Command().exitOverride();
      registerReplayCommand(program);
      const error = await program
        .parseAsync(
          ['replay', file, '--encoding', 'utf8', '--target', pipeline.apiUrl, '--data-dir', dataDir],
          {
            from: 'user',
          },
        )
        .catch((e: unknown) => e);
      printed = err.mock.calls.map((c) => String(c[0])).join('');
      expect(error).toBeInstanceOf(CommanderError);
    } finally {
      err.mockRestore();
      out.mockRestore();
    }
    expect(printed).toContain(`retail-pipeline: ${file}:2: not valid UTF-8`);
    expect(printed).toContain('--encoding latin1');
    expect(printed).not.toMatch(/\n\s+at /);
    const res = await fetch(`${pipeline.apiUrl}/invoices/7200001`);
    expect(res.status).toBe(404);
  });
});
