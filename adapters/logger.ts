import { type Logger, pino } from 'pino';
import { prettyFactory } from 'pino-pretty';
import { LOG_FORMATS } from './config.ts';
import { colourEnabled, isInteractive, type OutputStream } from './terminal.ts';

export type { Logger };

/** `auto`: readable lines on a terminal, JSON (one object a line) for files, pipes and collectors. */
export type LogFormat = (typeof LOG_FORMATS)[number];

export class LogFormatError extends Error {
  override name = 'LogFormatError';
}

/** Where log lines go: standard error by default, so standard output stays the command's result. */
export interface LogDestination extends OutputStream {
  write(text: string): unknown;
}

/** The format a logger writing to `stream` uses. */
export function resolveLogFormat(
  format: LogFormat,
  stream: OutputStream,
  env: Readonly<Record<string, string | undefined>> = process.env,
): 'json' | 'pretty' {
  if (format !== 'auto') return format;
  return isInteractive(stream, env) ? 'pretty' : 'json';
}

function formatFromEnv(): LogFormat {
  const value = process.env.RP_LOG_FORMAT || 'auto';
  if (!(LOG_FORMATS as readonly string[]).includes(value)) {
    throw new LogFormatError(`RP_LOG_FORMAT=${JSON.stringify(value)}: expected ${LOG_FORMATS.join(', ')}`);
  }
  return value as LogFormat;
}

/**
 * A terminal line per entry. The line under the cursor is erased first: a progress bar redrawn in
 * place (the simulator's, on the same stderr) is wiped instead of being glued to the log line, and
 * it redraws itself below on its next tick.
 */
function prettyStream(destination: LogDestination): LogDestination {
  const prettify = prettyFactory({
    colorize: colourEnabled(destination),
    translateTime: 'SYS:HH:MM:ss',
    ignore: 'pid,hostname,name',
    singleLine: true,
  });
  const erase = isInteractive(destination) ? '\r\x1b[2K' : '';
  return { write: (line: string) => destination.write(`${erase}${prettify(line)}`) };
}

export interface LoggerOptions {
  /** Default: RP_LOG_FORMAT, else `auto`. */
  format?: LogFormat;
  /** Default: standard error. */
  destination?: LogDestination;
}

/** One structured logger: short static messages plus a data object. */
export function createLogger(
  level: string = process.env.RP_LOG_LEVEL ?? 'info',
  name = 'retail-pipeline',
  options: LoggerOptions = {},
): Logger {
  const destination = options.destination ?? process.stderr;
  const format = resolveLogFormat(options.format ?? formatFromEnv(), destination);
  if (format === 'pretty') return pino({ name, level }, prettyStream(destination));
  // Standard error through pino's own synchronous writer: no line lost when the process exits.
  return pino({ name, level }, options.destination ?? pino.destination(2));
}

let root: Logger | undefined;
export function logger(): Logger {
  root ??= createLogger();
  return root;
}
