/**
 * `npm run bench [-- stream producer batch load]`: runs the bench modules (all found, or the ones
 * named), writes bench/results/latest.json (every result plus machine info) and
 * bench/results/latest.md (one table per bench: metric, value, target, met?), and prints the tables.
 * Progress goes to stderr while it runs.
 *
 * A bench module exports `run<Name>Bench(options?)` returning a JSON object. If the object has a
 * `summary` array of `{ metric, value, target?, met? }` that is its table; otherwise the table lists
 * its leaves (booleans as met?).
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { errorMessage } from '#core/resilience';

interface BenchModule {
  name: string;
  file: string;
  exportName: string;
}

const BENCHES: BenchModule[] = [
  { name: 'stream', file: 'stream.ts', exportName: 'runStreamBench' },
  { name: 'producer', file: 'producer.ts', exportName: 'runProducerBench' },
  { name: 'batch', file: 'batch.ts', exportName: 'runBatchBench' },
  { name: 'load', file: 'load.ts', exportName: 'runLoadBench' },
  { name: 'warehouse', file: 'warehouse.ts', exportName: 'runWarehouseBench' },
  { name: 'totesys', file: 'totesys.ts', exportName: 'runTotesysBench' },
  { name: 'lake', file: 'lake.ts', exportName: 'runLakeBench' },
  { name: 'lake-query', file: 'lake-query.ts', exportName: 'runLakeQueryBench' },
];

interface Row {
  metric: string;
  value: string;
  target: string;
  met: string;
}

type BenchFn = (options?: { progress?: (message: string) => void }) => Promise<unknown>;

const here = path.dirname(fileURLToPath(import.meta.url));
const started = Date.now();
const log = (message: string) =>
  process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${message}\n`);

function formatValue(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(Math.round(v * 100) / 100);
  if (v === null || v === undefined) return '-';
  if (Array.isArray(v)) return v.map(formatValue).join(' / ');
  return String(v);
}

/** The rows of one bench's table. */
export function rowsOf(result: unknown): Row[] {
  if (typeof result !== 'object' || result === null)
    return [{ metric: 'result', value: formatValue(result), target: '', met: '' }];
  const summary = (result as { summary?: unknown }).summary;
  if (Array.isArray(summary)) {
    return summary.map((m: { metric?: unknown; value?: unknown; target?: unknown; met?: unknown }) => ({
      metric: String(m.metric ?? ''),
      value: formatValue(m.value),
      target: m.target === undefined ? '' : String(m.target),
      met: m.met === undefined ? '' : m.met ? 'yes' : 'NO',
    }));
  }
  const rows: Row[] = [];
  const walk = (prefix: string, v: unknown) => {
    if (Array.isArray(v) && v.some((x) => x !== null && typeof x === 'object')) {
      for (const [i, x] of v.entries()) walk(`${prefix}[${i}]`, x);
    } else if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v)) walk(prefix ? `${prefix}.${k}` : k, x);
    } else if (typeof v === 'boolean') {
      rows.push({ metric: prefix, value: '', target: '', met: v ? 'yes' : 'NO' });
    } else {
      rows.push({ metric: prefix, value: formatValue(v), target: '', met: '' });
    }
  };
  walk('', result);
  return rows;
}

function table(rows: Row[]): string {
  const head: Row = { metric: 'metric', value: 'value', target: 'target', met: 'met?' };
  const cols = ['metric', 'value', 'target', 'met'] as const;
  const esc = (s: string) => s.replaceAll('|', '\\|');
  const width = Object.fromEntries(
    cols.map((c) => [c, Math.max(3, ...[head, ...rows].map((r) => esc(r[c]).length))]),
  ) as Record<(typeof cols)[number], number>;
  const line = (r: Row) => `| ${cols.map((c) => esc(r[c]).padEnd(width[c])).join(' | ')} |`;
  const rule = `| ${cols.map((c) => '-'.repeat(width[c])).join(' | ')} |`;
  return [line(head), rule, ...rows.map(line)].join('\n');
}

async function fileExists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}

function machine() {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
    totalMemoryMiB: Math.round(os.totalmem() / 1024 / 1024),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    timestamp: new Date().toISOString(),
  };
}

async function main(): Promise<void> {
  const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const unknown = wanted.filter((w) => !BENCHES.some((b) => b.name === w));
  if (unknown.length > 0) {
    process.stderr.write(
      `unknown bench: ${unknown.join(', ')} (known: ${BENCHES.map((b) => b.name).join(', ')})\n`,
    );
    process.exitCode = 2;
    return;
  }
  const selected = wanted.length === 0 ? BENCHES : BENCHES.filter((b) => wanted.includes(b.name));
  const machineBefore = machine();
  log(
    `machine: ${machineBefore.cpus} cpus, load average ${machineBefore.loadAverage.join(' ')}, node ${machineBefore.node}`,
  );
  const results: Record<string, unknown> = {};
  const tables: string[] = [];
  for (const b of selected) {
    const file = path.join(here, b.file);
    if (!(await fileExists(file))) {
      log(`${b.name}: skipped, bench/${b.file} does not exist (yet)`);
      results[b.name] = { skipped: `bench/${b.file} is absent` };
      continue;
    }
    const mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    const fn = mod[b.exportName];
    if (typeof fn !== 'function') {
      log(`${b.name}: skipped, bench/${b.file} has no ${b.exportName} export`);
      results[b.name] = { skipped: `bench/${b.file} exports no ${b.exportName}` };
      continue;
    }
    log(
      `${b.name}: running (load average ${os
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')})`,
    );
    const t0 = performance.now();
    try {
      const result = await (fn as BenchFn)({ progress: (m) => log(`${b.name}: ${m}`) });
      const seconds = Math.round((performance.now() - t0) / 100) / 10;
      results[b.name] = {
        ranAt: new Date().toISOString(),
        seconds,
        loadAverageAfter: os.loadavg().map((x) => Math.round(x * 100) / 100),
        result,
      };
      tables.push(`## ${b.name} (${seconds} s)\n\n${table(rowsOf(result))}`);
      log(`${b.name}: done in ${seconds} s`);
    } catch (err) {
      // One broken bench must not cost the others' results.
      const message = (err instanceof Error && err.stack) || errorMessage(err);
      results[b.name] = { failed: message };
      tables.push(`## ${b.name}\n\nFAILED: ${message.split('\n')[0]}`);
      log(`${b.name}: FAILED ${message}`);
      process.exitCode = 1;
    }
  }
  const machineAfter = machine();
  const out = path.join(here, 'results');
  await fs.mkdir(out, { recursive: true });
  // A run of some benches keeps the others' last results (each says when it ran).
  const previous = await fs
    .readFile(path.join(out, 'latest.json'), 'utf8')
    .then((text) => (JSON.parse(text) as { results?: Record<string, unknown> }).results ?? {})
    .catch(() => ({}) as Record<string, unknown>);
  for (const b of BENCHES) {
    const kept = previous[b.name] as { ranAt?: string; seconds?: number; result?: unknown } | undefined;
    if (b.name in results || !kept?.result) continue;
    results[b.name] = kept;
    tables.push(
      `## ${b.name} (kept from ${kept.ranAt ?? 'an earlier run'})\n\n${table(rowsOf(kept.result))}`,
    );
  }
  await fs.writeFile(
    path.join(out, 'latest.json'),
    `${JSON.stringify({ machine: { ...machineBefore, loadAverageAfter: machineAfter.loadAverage }, results }, null, 2)}\n`,
  );
  const md = [
    '# Benchmark results',
    '',
    `${machineBefore.timestamp}: ${machineBefore.cpus} x ${machineBefore.cpuModel}, node ${machineBefore.node}, ` +
      `load average before ${machineBefore.loadAverage.join(' ')}, after ${machineAfter.loadAverage.join(' ')} ` +
      '(the machine is shared: compare ratios measured in the same run, not absolute numbers across runs).',
    '',
    ...tables.flatMap((t) => [t, '']),
  ].join('\n');
  await fs.writeFile(path.join(out, 'latest.md'), md);
  process.stdout.write(`${md}\n`);
  log('wrote bench/results/latest.json and bench/results/latest.md');
}

// Only as the entry point: importing the module (e.g. for rowsOf) must not start a run.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
