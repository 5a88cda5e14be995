/**
 * What every `deltagate` sub-command shares: turning a parse result into help/usage output with the right exit
 * code, and a long-running process's life until SIGTERM/SIGINT (a first signal drains, a second exits at once).
 * Argument parsing itself stays with each command; the dispatcher is src/cli.ts.
 */
import type { Logger } from 'pino';

/** What a command's argument parser answers instead of its arguments: a help request or a usage error. */
export type NotRunnable = { help: true } | { error: string };

/** Prints the usage (help: stdout, exit 0) or the usage error (stderr, exit 2) and returns the exit code. */
export function usageExit(command: string, usage: string, args: NotRunnable): number {
  if ('help' in args) {
    console.log(usage);
    return 0;
  }
  console.error(`deltagate ${command}: ${args.error}\n${usage}`);
  return 2;
}

/**
 * Resolves with the exit code once a SIGTERM/SIGINT has run `shutdown` (0, or 1 if it threw). A second signal
 * while shutting down exits at once.
 */
export function runUntilSignal(
  logger: Logger,
  message: string,
  shutdown: () => Promise<void>,
): Promise<number> {
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal }, message);
      shutdown().then(
        () => done(0),
        (err: unknown) => {
          logger.error({ err }, 'error during shutdown');
          done(1);
        },
      );
    };
    const done = (code: number) => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      resolve(code);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}
