import { Command, CommanderError } from 'commander';
import { ConfigError } from '#adapters/config';
import { QuarantineError } from '#batch/loader/index';
import { ReconcileInputError } from '#batch/reconcile';
import { TotesysSourceConfigError } from '#cdc/totesys/connection';
import { errorMessage } from '#core/resilience';
import { TextEncodingError } from '#core/text-encoding';
import { CatalogError } from '#lake/catalog';
import { CrawlSchemaError } from '#lake/crawler-schema';
import { LakeQueryError } from '#lake/query-errors';
import { StackNotRunningError } from '#local/endpoints';
import { MalformedRowError, ReplayInputError } from '#producer/replay';
import { LakeCommandError, registerLakeCommands } from './commands/lake.ts';
import { LoadInputError, registerLoadCommands } from './commands/load.ts';
import { registerPowerBiCommand } from './commands/powerbi.ts';
import { registerReconcileCommand } from './commands/reconcile.ts';
import { registerReplayCommand } from './commands/replay.ts';
import { registerReportCommands } from './commands/report.ts';
import { registerSimulateCommand } from './commands/simulate.ts';
import { registerStackCommands } from './commands/stack.ts';
import { registerStartCommand } from './commands/start.ts';
import { registerTotesysCommands } from './commands/totesys.ts';
import { registerTotesysProcessCommands } from './commands/totesys-process.ts';
import { registerWarehouseCommands } from './commands/warehouse.ts';

export function buildProgram(): Command {
  const program = new Command('retail-pipeline')
    .description(
      'invoice-line pipeline: REST -> Kinesis -> DynamoDB + S3 archive -> warehouse, local or on AWS',
    )
    .showHelpAfterError()
    .exitOverride();
  registerStartCommand(program);
  registerStackCommands(program);
  registerSimulateCommand(program);
  registerReplayCommand(program);
  registerLoadCommands(program);
  registerWarehouseCommands(program);
  registerReportCommands(program);
  registerPowerBiCommand(program);
  registerReconcileCommand(program);
  registerTotesysCommands(program);
  registerTotesysProcessCommands(program);
  registerLakeCommands(program);
  return program;
}

/**
 * Errors about the user's input or setup (a file's bytes or rows, a path, the config, a stack that
 * is not running): their message says what to fix, so it is all that is shown.
 */
const EXPECTED_ERRORS = [
  ConfigError,
  StackNotRunningError,
  ReconcileInputError,
  LoadInputError,
  QuarantineError,
  TotesysSourceConfigError,
  ReplayInputError,
  MalformedRowError,
  TextEncodingError,
  LakeCommandError,
  LakeQueryError,
  CatalogError,
  CrawlSchemaError,
];

/** `program`: the commands to run (tests give their own). */
export async function main(argv: string[], program: Command = buildProgram()): Promise<void> {
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
      return;
    }
    // Our own errors carry a message meant for the user; anything unexpected also gets its stack.
    const expected = EXPECTED_ERRORS.some((kind) => err instanceof kind);
    process.stderr.write(`retail-pipeline: ${errorMessage(err, { name: false })}\n`);
    if (!expected || process.env.RP_DEBUG) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`);
    process.exitCode = 1;
  }
}
