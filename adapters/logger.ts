import { type Logger, pino } from 'pino';

export type { Logger };

/** One structured logger: short static messages plus a data object. Logs go to stderr. */
export function createLogger(
  level: string = process.env.RP_LOG_LEVEL ?? 'info',
  name = 'retail-pipeline',
): Logger {
  return pino({ name, level }, pino.destination(2));
}

let root: Logger | undefined;
export function logger(): Logger {
  root ??= createLogger();
  return root;
}
