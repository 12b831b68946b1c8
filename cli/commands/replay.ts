import path from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { ENCODINGS, isSourceEncoding, type SourceEncoding } from '#core/rules';
import { TextEncodingError } from '#core/text-encoding';
import { MalformedRowError, ReplayInputError } from '#producer/replay';
import { runReplay } from '#producer/run';
import { newRunId } from '#producer/run-log';
import {
  abortOnShutdown,
  finish,
  positiveInteger,
  positiveNumber,
  problemPrinter,
  resolveTarget,
  type TargetOptions,
} from './simulate.ts';

interface ReplayCliOptions extends TargetOptions {
  speed?: number;
  rate?: number;
  limit?: number;
  strict: boolean;
  encoding?: SourceEncoding;
  progress: boolean;
  batchSize: number;
  maxInFlight: number;
}

export function registerReplayCommand(program: Command): void {
  program
    .command('replay')
    .description(
      'post the lines of Online Retail CSV files (file, directory or glob; plain or .gz) in time order',
    )
    .argument('<path...>', 'CSV file(s), directories or glob patterns')
    .option(
      '--speed <x>',
      'multiple of the original timeline (3600: one source hour per second)',
      positiveNumber,
    )
    .option('--rate <lines/s>', 'fixed lines per second', positiveNumber)
    .option('--limit <n>', 'stop after this many lines', positiveInteger)
    .option('--strict', 'stop at the first malformed row', false)
    .option(
      '--encoding <encoding>',
      `${ENCODINGS.join(' or ')} (default: detected by reading each file whole first)`,
      (v) => {
        const e = v.toLowerCase().replace(/[-_]/g, '');
        const name = e === 'iso88591' ? 'latin1' : e;
        if (isSourceEncoding(name)) return name;
        throw new InvalidArgumentError(ENCODINGS.join(' or '));
      },
    )
    .option('--target <url>', 'API base URL (default: the local stack from endpoints.json)')
    .option('--api-key <key>', 'sent as x-api-key (default: $RP_API_KEY)')
    .option('--data-dir <dir>', 'data directory of the local stack (default: $RP_DATA_DIR or .data)')
    .option('--batch-size <n>', 'lines per request', positiveInteger, 500)
    .option('--max-in-flight <n>', 'requests in flight', positiveInteger, 4)
    .option('--no-progress', 'no progress bar')
    .action(async (paths: string[], opts: ReplayCliOptions, command: Command) => {
      if (opts.speed !== undefined && opts.rate !== undefined) {
        throw new InvalidArgumentError('give --speed or --rate, not both');
      }
      const { target, apiKey, runLogDir } = await resolveTarget(opts);
      const { signal, done } = abortOnShutdown();
      const runId = newRunId('replay');
      let malformed = 0;
      const run = runReplay({
        paths,
        target,
        ...(apiKey ? { apiKey } : {}),
        runLogDir,
        runId,
        ...(opts.speed !== undefined ? { speed: opts.speed } : {}),
        ...(opts.rate !== undefined ? { rate: opts.rate } : {}),
        ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
        ...(opts.encoding ? { encoding: opts.encoding } : {}),
        strict: opts.strict,
        onMalformed: (e) => {
          if (++malformed <= 20) process.stderr.write(`malformed ${e.file}:${e.line}: ${e.reason}\n`);
          else if (malformed === 21) process.stderr.write('more malformed rows: see the summary count\n');
        },
        progress: opts.progress && process.stderr.isTTY === true,
        signal,
        poster: { batchSize: opts.batchSize, maxInFlight: opts.maxInFlight, ...problemPrinter() },
      });
      process.stderr.write(
        `run ${runId}: replaying ${paths.join(' ')} -> ${target}, log ${path.join(runLogDir, runId)}.ndjson\n`,
      );
      done(run);
      try {
        finish(await run);
      } catch (err) {
        // The file is at fault, not the program: its file, line and what to do, without a stack.
        if (
          err instanceof TextEncodingError ||
          err instanceof ReplayInputError ||
          err instanceof MalformedRowError
        )
          command.error(`retail-pipeline: ${err.message}`);
        throw err;
      }
    });
}
