import { errorMessage } from '#core/resilience';

/**
 * Ctrl-C / SIGTERM handling for long-running commands: the first signal runs the shutdown once
 * (stop accepting, flush, close databases); a second signal forces an exit.
 */
export function onShutdown(shutdown: (signal: string) => Promise<void>): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals) => {
    if (stopping) {
      process.stderr.write(`\n${signal} again: exiting without waiting for a clean stop\n`);
      process.exit(130);
    }
    stopping = true;
    process.stderr.write(`\n${signal}: stopping cleanly (press Ctrl-C again to force)\n`);
    shutdown(signal).then(
      () => process.exit(0),
      (err) => {
        process.stderr.write(`shutdown failed: ${errorMessage(err, { name: false })}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handle);
  process.on('SIGTERM', handle);
}
