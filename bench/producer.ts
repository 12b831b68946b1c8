import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import zlib from 'node:zlib';
import { parse } from 'csv-parse';
import type { IngestAccepted } from '#core/api-contract';
import type { InvoiceLineInput } from '#core/invoice-line';
import { replayBatches } from '#producer/replay';
import { runSimulate } from '#producer/run';

/**
 * Producer benchmark. (1) Raw csv-parse rate of the real file (gunzip + tokenise) versus the replay pipeline's
 * parse + validate + encode rate (JSON request bodies of 500 lines, no network); target >= 50% of raw.
 * (2) Rate-control accuracy of the simulator at 1,000 lines/s against a local sink; target within +-10%.
 */

const REAL_FILE = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../shared/data/online-retail/online-retail.csv.gz',
);
const ROUNDS = 2;
const BATCH = 500;

async function rawParse(file: string): Promise<{ lines: number; ms: number }> {
  const started = performance.now();
  let lines = -1; // header
  const parser = fs
    .createReadStream(file)
    .pipe(zlib.createGunzip())
    .pipe(parse({ bom: true, relax_column_count: true }));
  for await (const _ of parser) lines++;
  return { lines, ms: performance.now() - started };
}

async function pipelineParse(file: string): Promise<{ lines: number; ms: number; bytes: number }> {
  const started = performance.now();
  let lines = 0;
  let bytes = 0;
  let pending: unknown[] = [];
  const producedAt = new Date().toISOString();
  for await (const batch of replayBatches(file, { strict: true })) {
    for (const { line } of batch) {
      pending.push({ ...line, producedAt });
      if (pending.length === BATCH) {
        bytes += Buffer.byteLength(JSON.stringify(pending));
        pending = [];
      }
      lines++;
    }
  }
  if (pending.length > 0) bytes += Buffer.byteLength(JSON.stringify(pending));
  return { lines, ms: performance.now() - started, bytes };
}

async function rateAccuracy(rate: number, seconds: number) {
  let first = 0;
  let last = 0;
  let received = 0;
  let firstBatch = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const lines = JSON.parse(Buffer.concat(chunks).toString()) as InvoiceLineInput[];
      const n = lines.length;
      const at = performance.now();
      if (received === 0) {
        first = at;
        firstBatch = n;
      }
      last = at;
      received += n;
      const answer: IngestAccepted = {
        accepted: n,
        invoices: new Set(lines.map((l) => l.invoiceNo)).size,
        acceptedAt: new Date().toISOString(),
      };
      res.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const target = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const summary = await runSimulate({
      target,
      rate,
      durationMs: seconds * 1000,
      seed: 1,
      progress: false,
      poster: { lingerMs: 20 },
    });
    const achieved = summary.accepted / seconds;
    return {
      target: rate,
      seconds,
      accepted: summary.accepted,
      achievedLinesPerSecond: Math.round(achieved),
      errorPercent: Number((((achieved - rate) / rate) * 100).toFixed(2)),
      sinkSpanLinesPerSecond:
        last > first ? Math.round(((received - firstBatch) * 1000) / (last - first)) : null,
      withinTenPercent: Math.abs(achieved - rate) / rate <= 0.1,
    };
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

export async function runProducerBench(): Promise<Record<string, unknown>> {
  const result: Record<string, unknown> = {};
  if (fs.existsSync(REAL_FILE)) {
    let raw = { lines: 0, ms: Number.POSITIVE_INFINITY };
    let pipe = { lines: 0, ms: Number.POSITIVE_INFINITY, bytes: 0 };
    // Interleaved rounds, best of each: the machine is shared, so single runs are noisy.
    for (let round = 0; round < ROUNDS; round++) {
      const r = await rawParse(REAL_FILE);
      if (r.ms < raw.ms) raw = r;
      const p = await pipelineParse(REAL_FILE);
      if (p.ms < pipe.ms) pipe = p;
    }
    const rawRate = (raw.lines * 1000) / raw.ms;
    const pipeRate = (pipe.lines * 1000) / pipe.ms;
    result.parse = {
      file: REAL_FILE,
      lines: raw.lines,
      rawCsvParseLinesPerSecond: Math.round(rawRate),
      rawMs: Math.round(raw.ms),
      replayParseValidateEncodeLinesPerSecond: Math.round(pipeRate),
      replayMs: Math.round(pipe.ms),
      requestBodyMiB: Number((pipe.bytes / 1024 / 1024).toFixed(1)),
      ratioToRaw: Number((pipeRate / rawRate).toFixed(2)),
      atLeastHalfOfRaw: pipeRate >= rawRate / 2,
    };
  } else {
    result.parse = { skipped: `${REAL_FILE} is absent` };
  }
  result.rateControl = await rateAccuracy(1_000, 5);
  return result;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runProducerBench().then(
    (r) => process.stdout.write(`${JSON.stringify(r, null, 2)}\n`),
    (e: unknown) => {
      process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
