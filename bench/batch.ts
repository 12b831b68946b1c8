import { createReadStream, existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGunzip, gunzipSync } from 'node:zlib';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { pino } from 'pino';
import { createLogger } from '#adapters/logger';
import { CsvTyper } from '#batch/csv-typer';
import { PgBinaryEncoder } from '#batch/encoders';
import { createLoader, type LoadResult } from '#batch/loader/index';
import { createManifest } from '#batch/loader/manifest';
import { BULK_AFTER, bulkBefore } from '#batch/sql';
import { LineTyper } from '#batch/typer';
import { resolveColumns } from '#core/source-row';
import { startLoaderEnv } from '#test/helpers/loader-env';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const REAL_FILE = path.resolve(REPO, '../shared/data/online-retail/online-retail.csv.gz');

/**
 * The batch path against its floor, on the real file: a bare COPY of the CSV into one unindexed
 * all-text table, vs. the loader's full load into the star schema (download, gunzip, type and
 * validate every row, COPY into the fact, build its key, dimensions, manifest), each round into an
 * empty warehouse. The machine is shared and its speed drifts by tens of percent within a minute,
 * so every round measures the floor right before and right after its load and takes their mean;
 * the result is the median ratio over the rounds. Also: the loader's peak RSS, and the same file
 * dropped again under another key once loaded (every key already there: nothing new, the merge way).
 *
 * And the warehouse's own share, as a bound: the same rows typed and encoded beforehand, then only
 * what PostgreSQL must do for the fact in the loader's bulk way (COPY of ready binary tuples, the
 * primary key, the commit), against the floor measured around it. No loader can take less than that.
 */
export async function runBatchBench(
  options: { rounds?: number; progress?: (message: string) => void } = {},
): Promise<Record<string, unknown>> {
  if (!existsSync(REAL_FILE)) return { skipped: `${REAL_FILE} is absent` };
  const rounds = options.rounds ?? 5;
  const progress = options.progress ?? (() => {});
  const steps = warehouseSteps();
  const env = await startLoaderEnv('bench', 'bench-batch-', { warehouseLogger: steps.logger });
  const { clients, warehouse } = env;
  try {
    const body = await fs.readFile(REAL_FILE);
    const put = (key: string) =>
      clients.s3.send(new PutObjectCommand({ Bucket: 'bench', Key: key, Body: body }));
    const loader = createLoader({
      s3: clients.s3,
      bucket: 'bench',
      warehouse,
      logger: createLogger('silent'),
    });
    const manifest = createManifest(warehouse);
    const perRound: RoundResult[] = [];
    const rss = { peak: 0, before: 0 };
    let last: LoadResult | undefined;
    for (let round = 1; round <= rounds; round++) {
      // An empty warehouse again (what a first load meets), the calendar and known countries kept.
      await manifest.forgetAllLoads();
      const key = `landing/round-${round}/online-retail.csv.gz`;
      await put(key);
      progress(`batch round ${round}/${rounds}: floor, load, floor`);
      const measured = await measureRound(round, env.connectionString, steps.steps, rss, {
        load: () => loader.loadKey(key),
        timings: () => manifest.timingsOf(key),
      });
      last = measured.result;
      perRound.push(measured.round);
    }
    // The same file again under another key: every key is already in the fact.
    progress('batch: the same file dropped again under another key');
    await put('landing/again/online-retail.csv.gz');
    const t0 = performance.now();
    const again = await loader.loadKey('landing/again/online-retail.csv.gz');
    const againMs = performance.now() - t0;
    // The warehouse alone: the rows typed beforehand (in memory, after the RSS was measured).
    progress('batch: the warehouse alone (rows typed beforehand)');
    const aloneRounds = await warehouseAloneRounds(env.connectionString, rounds);
    const aloneRatios = aloneRounds.map((r) => r.ratio).sort((a, b) => a - b);
    const aloneMedian = aloneRatios[Math.floor(aloneRatios.length / 2)] as number;
    const facts = await warehouse.query<{ n: string }>('SELECT count(*) AS n FROM fact_sales_line');
    const ratios = perRound.map((r) => r.ratio).sort((a, b) => a - b);
    const median = ratios[Math.floor(ratios.length / 2)] as number;
    const againOk = again.status === 'loaded' && again.rowsNew === 0 && Number(facts.rows[0]?.n) === 541909;
    return {
      summary: summaryRows({
        last,
        median,
        perRound,
        peakRss: rss.peak,
        aloneMedian,
        aloneRounds,
        againMs,
        again,
        againOk,
      }),
      file: path.basename(REAL_FILE),
      rounds: perRound,
      medianRatio: median,
      targetRatio: 2,
      loaderPeakRssMb: mb(rss.peak),
      loaderRssBeforeMb: mb(rss.before),
      sameFileAgain: { ms: Math.round(againMs), status: again.status, rowsNew: again.rowsNew },
      warehouseAlone: { rounds: aloneRounds, medianRatio: aloneMedian },
    };
  } finally {
    await env.stop();
  }
}

const mb = (b: number) => Math.round(b / 2 ** 20);

/** The adapter logs every transaction step with its duration at debug level: collected per statement. */
function warehouseSteps() {
  const steps: Array<{ ms: number; sql: string }> = [];
  const logger = pino(
    { level: 'debug' },
    {
      write(line: string) {
        const entry = JSON.parse(line) as { msg?: string; ms?: number; sql?: string };
        if (entry.msg === 'warehouse step' && entry.ms !== undefined)
          steps.push({ ms: entry.ms, sql: (entry.sql ?? '').replace(/\s+/g, ' ').slice(0, 48) });
      },
    },
  );
  return { steps, logger };
}

/**
 * The floor: gunzip + COPY into an unlogged all-text table, nothing else. `logged`: the same into an
 * ordinary table made beforehand (its rows go through the WAL), shown for comparison.
 */
async function floorCopy(
  connectionString: string,
  kind: 'unlogged' | 'logged' = 'unlogged',
): Promise<number> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  await client.query('DROP TABLE IF EXISTS floor_copy');
  await client.query(
    `CREATE ${kind === 'unlogged' ? 'UNLOGGED ' : ''}TABLE floor_copy (c1 text, c2 text, c3 text, c4 text, c5 text, c6 text, c7 text, c8 text)`,
  );
  const t0 = performance.now();
  await pipeline(
    createReadStream(REAL_FILE),
    createGunzip(),
    client.query(copyFrom('COPY floor_copy FROM STDIN WITH (FORMAT csv, HEADER true)')),
  );
  const ms = performance.now() - t0;
  await client.query('DROP TABLE floor_copy');
  await client.end();
  return ms;
}

interface RoundResult {
  round: number;
  status: LoadResult['status'];
  rows: LoadResult['rowsLoaded'];
  floorMs: string;
  loadMs: number;
  copyAndKeyMs: number | undefined;
  dimensionsAndManifestMs: number | undefined;
  ratio: number;
  loggedFloorMs: number;
  ratioToLoggedFloor: number;
  loaderCpuMs: number;
  slowSteps: string[];
}

/** One round: the floor, the load (its time, CPU, peak RSS and slow statements), the floor again. */
async function measureRound(
  round: number,
  connectionString: string,
  steps: Array<{ ms: number; sql: string }>,
  rss: { peak: number; before: number },
  load: {
    load: () => Promise<LoadResult>;
    /** The manifest's stage times of the load. */
    timings: () => Promise<{ stage_ms: number; merge_ms: number } | undefined>;
  },
): Promise<{ result: LoadResult; round: RoundResult }> {
  const floorBefore = await floorCopy(connectionString);
  steps.length = 0;
  rss.before = process.memoryUsage().rss;
  rss.peak = Math.max(rss.peak, rss.before);
  const sampler = setInterval(() => {
    rss.peak = Math.max(rss.peak, process.memoryUsage().rss);
  }, 20);
  const started = performance.now();
  const cpu = process.cpuUsage();
  const result = await load.load();
  const loadMs = performance.now() - started;
  const cpuUsed = process.cpuUsage(cpu);
  clearInterval(sampler);
  const floorAfter = await floorCopy(connectionString);
  const loggedFloorMs = await floorCopy(connectionString, 'logged');
  const floorMs = (floorBefore + floorAfter) / 2;
  const timings = await load.timings();
  return {
    result,
    round: {
      round,
      status: result.status,
      rows: result.rowsLoaded,
      floorMs: `${Math.round(floorBefore)} / ${Math.round(floorAfter)}`,
      loadMs: Math.round(loadMs),
      copyAndKeyMs: timings?.stage_ms,
      dimensionsAndManifestMs: timings?.merge_ms,
      ratio: Number((loadMs / floorMs).toFixed(2)),
      loggedFloorMs: Math.round(loggedFloorMs),
      ratioToLoggedFloor: Number((loadMs / loggedFloorMs).toFixed(2)),
      // The loader process's CPU (all its threads) while it loaded: against loadMs, how busy it was.
      loaderCpuMs: Math.round((cpuUsed.user + cpuUsed.system) / 1000),
      // Statements that took 50 ms or more, in order.
      slowSteps: steps.filter((x) => x.ms >= 50).map((x) => `${x.ms} ms ${x.sql}`),
    },
  };
}

interface AloneRound {
  floorMs: string;
  ms: number;
  ratio: number;
  parts: AloneParts;
}

/** The warehouse's own share per round, from rows typed beforehand, against the floor around it. */
async function warehouseAloneRounds(connectionString: string, rounds: number): Promise<AloneRound[]> {
  const tuples = await typedTuples();
  const aloneRounds: AloneRound[] = [];
  for (let round = 1; round <= rounds; round++) {
    const floorBefore = await floorCopy(connectionString);
    const parts = await warehouseAlone(connectionString, tuples.columns, tuples.chunks);
    const floorAfter = await floorCopy(connectionString);
    aloneRounds.push({
      floorMs: `${Math.round(floorBefore)} / ${Math.round(floorAfter)}`,
      ms: parts.totalMs,
      ratio: Number((parts.totalMs / ((floorBefore + floorAfter) / 2)).toFixed(2)),
      parts,
    });
  }
  return aloneRounds;
}

function summaryRows(r: {
  last: LoadResult | undefined;
  median: number;
  perRound: RoundResult[];
  peakRss: number;
  aloneMedian: number;
  aloneRounds: AloneRound[];
  againMs: number;
  again: LoadResult;
  againOk: boolean;
}) {
  const { last, median, perRound, peakRss, aloneMedian, aloneRounds, againMs, again } = r;
  return [
    {
      metric: 'rows loaded (real file)',
      value: last?.rowsLoaded,
      target: 541909,
      met: last?.rowsLoaded === 541909,
    },
    {
      metric: 'full load / bare COPY (median of rounds)',
      value: median,
      target: '<= 2',
      met: median <= 2,
    },
    { metric: 'ratio per round', value: perRound.map((r) => r.ratio).join(' / ') },
    {
      metric: 'for comparison: floor into an ordinary (logged) table ms, load / it, per round',
      value: perRound.map((r) => `${r.loggedFloorMs} ms, ${r.ratioToLoggedFloor}`).join(' / '),
    },
    { metric: 'full load ms per round', value: perRound.map((r) => r.loadMs).join(' / ') },
    { metric: 'floor ms per round (before / after)', value: perRound.map((r) => r.floorMs).join(', ') },
    { metric: 'loader peak RSS MB', value: mb(peakRss), target: '<= 300', met: mb(peakRss) <= 300 },
    {
      metric: 'warehouse alone (typed rows: COPY + key + commit) / bare COPY, median',
      value: aloneMedian,
    },
    { metric: 'warehouse alone ms per round', value: aloneRounds.map((r) => r.ms).join(' / ') },
    {
      metric: 'warehouse alone: COPY / key / commit ms per round',
      value: aloneRounds.map((r) => `${r.parts.copyMs} / ${r.parts.keyMs} / ${r.parts.commitMs}`).join(', '),
    },
    {
      metric: 'same file again under another key: ms, new rows',
      value: `${Math.round(againMs)} ms, ${again.rowsNew ?? '-'} new`,
      met: r.againOk,
    },
  ];
}

/** The real file's rows as the loader's bulk way writes them: binary tuples, in memory. */
async function typedTuples(): Promise<{ columns: readonly string[]; chunks: Buffer[] }> {
  const raw = gunzipSync(await fs.readFile(REAL_FILE));
  const headerEnd = raw.indexOf(0x0a);
  const header = resolveColumns(raw.subarray(0, headerEnd).toString('utf8').trim().split(','));
  if (!header.ok) throw new Error(`${REAL_FILE}: ${header.reason}`);
  const { columns } = header;
  const encoder = new PgBinaryEncoder('bulk');
  const lines = new LineTyper({ loadId: 'bench', objectKey: 'bench', encoder });
  const chunks: Buffer[] = [];
  await pipeline(
    Readable.from([raw.subarray(headerEnd + 1)]),
    new CsvTyper(lines, columns, 'utf8'),
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        chunks.push(chunk);
        done();
      },
    }),
  );
  if (lines.rowsLoaded !== 541909) throw new Error(`typed ${lines.rowsLoaded} rows, expected 541909`);
  return { columns: encoder.columns, chunks };
}

interface AloneParts {
  totalMs: number;
  copyMs: number;
  keyMs: number;
  commitMs: number;
}

/** The fact's share of a first load, in the loader's bulk way, from ready tuples: ms, and its parts. */
async function warehouseAlone(
  connectionString: string,
  columns: readonly string[],
  chunks: Buffer[],
): Promise<AloneParts> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    const t0 = performance.now();
    await client.query('BEGIN');
    await client.query('LOCK TABLE fact_sales_line IN ACCESS EXCLUSIVE MODE');
    for (const sql of bulkBefore('file', 'landing/bench-alone.csv.gz', Date.now())) await client.query(sql);
    const t1 = performance.now();
    await pipeline(
      Readable.from(chunks),
      client.query(
        copyFrom(`COPY fact_sales_line (${columns.join(', ')}) FROM STDIN WITH (FORMAT binary, FREEZE)`),
      ),
    );
    const t2 = performance.now();
    for (const sql of BULK_AFTER) await client.query(sql);
    const t3 = performance.now();
    await client.query('COMMIT');
    const t4 = performance.now();
    return {
      totalMs: Math.round(t4 - t0),
      copyMs: Math.round(t2 - t1),
      keyMs: Math.round(t3 - t2),
      commitMs: Math.round(t4 - t3),
    };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    await client.end();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(JSON.stringify(await runBatchBench(), null, 2));
}
