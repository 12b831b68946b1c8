import path from 'node:path';
import type { Command } from 'commander';
import { createLogger } from '#adapters/logger';
import { formatLatencyTable, latencyReport } from '#analytics/latency';
import { renderSummary } from '#producer/report';
import { runSimulate } from '#producer/run';
import { onShutdown } from '../lifecycle.ts';
import { startPipeline } from '../pipeline.ts';
import { configFrom, type DataDirOptions, describeEndpoints } from './stack.ts';

interface StartOptions extends DataDirOptions {
  fresh: boolean;
  simulate: boolean;
  rate: string;
  demoSeconds: string;
  seed: string;
}

function positive(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got ${value}`);
  return n;
}

export function registerStartCommand(program: Command): void {
  program
    .command('start')
    .description('run the whole pipeline locally (stack, API, consumers, loader) plus a demo simulator run')
    .option('--data-dir <dir>', 'data directory (default: $RP_DATA_DIR or .data)')
    .option('--fresh', 'wipe the data directory first', false)
    .option('--no-simulate', 'do not run the simulator')
    .option('--rate <lines/s>', 'simulator rate', '200')
    .option('--demo-seconds <s>', 'how long the demo simulator runs before the latency summary', '60')
    .option('--seed <n>', 'simulator seed', String(Date.now() % 1_000_000))
    .action(async (opts: StartOptions) => {
      const config = configFrom(opts);
      const rate = positive('rate', opts.rate);
      const demoMs = positive('demo-seconds', opts.demoSeconds) * 1000;
      const seed = Number(opts.seed);
      if (!Number.isInteger(seed)) throw new Error(`--seed must be a whole number, got ${opts.seed}`);
      const logger = createLogger(config.logLevel, undefined, { format: config.logFormat });
      const started = performance.now();
      const pipeline = await startPipeline({ config, logger, fresh: opts.fresh });
      const abort = new AbortController();
      onShutdown(async () => {
        abort.abort();
        await pipeline.stop();
      });
      const out = (text: string) => process.stdout.write(`${text}\n`);
      out(
        `retail-pipeline up in ${((performance.now() - started) / 1000).toFixed(1)} s (data: ${config.dataDir})`,
      );
      out(describeEndpoints(pipeline.stack.endpoints));
      out(`\nAPI        ${pipeline.apiUrl}   (try: curl ${pipeline.apiUrl}/stats/countries)`);
      out(`dashboard  ${pipeline.dashboardUrl}`);
      if (!opts.simulate) {
        out(
          '\nsimulator off (--no-simulate); post lines with: npx retail-pipeline simulate | replay FILE. Ctrl-C stops.',
        );
        return;
      }
      out(`\ndemo: simulating ${rate} lines/s for ${demoMs / 1000} s (Ctrl-C stops everything)...`);
      const since = new Date();
      const summary = await runSimulate({
        target: pipeline.apiUrl,
        ...(config.api.apiKey ? { apiKey: config.api.apiKey } : {}),
        rate,
        durationMs: demoMs,
        seed,
        progress: process.stderr.isTTY === true,
        signal: abort.signal,
        runLogDir: path.join(config.dataDir, 'runs'),
      });
      if (abort.signal.aborted) return;
      out(renderSummary(summary));
      // The batch path lags by the Firehose buffer and the load; give it a moment before comparing.
      await new Promise((r) => setTimeout(r, (config.firehose.bufferSeconds + 3) * 1000));
      if (abort.signal.aborted) return; // Ctrl-C while waiting: the pipeline is stopping
      await pipeline.loader.sweep();
      const report = await latencyReport(pipeline.warehouse, { since: Date.now() - since.getTime() });
      out(`\n${formatLatencyTable(report)}`);
      out(`\ndashboard: ${pipeline.dashboardUrl}\nthe pipeline keeps serving; Ctrl-C stops it.`);
    });
}
