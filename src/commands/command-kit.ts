/**
 * What every `deltagate` sub-command shares: turning a parse result into help/usage output with the right exit
 * code, the process logger (`createLogger`), and a long-running process's life until SIGTERM/SIGINT (a first
 * signal drains, a genuinely second one exits at once). Argument parsing itself stays with each command; the
 * dispatcher is src/cli.ts.
 */
import { pino, stdSerializers, type DestinationStream, type Logger } from 'pino';

/**
 * An error's message followed by its causes' (`outer: inner`), leaving out a cause whose message the chain
 * already says. pino's own serializer appends every cause, so an error that wraps another with the same
 * message (`new UnrecoverableJobError(err.message, { cause: err })`) logged "X: X".
 */
export function messageWithCauses(err: unknown): string {
  const parts: string[] = [];
  const seen = new Set<unknown>();
  for (let e: unknown = err; e instanceof Error && !seen.has(e); e = e.cause) {
    seen.add(e);
    if (e.message !== '' && !parts.some((p) => p.includes(e.message))) parts.push(e.message);
  }
  return parts.join(': ');
}

/** pino's `err` serializer with `messageWithCauses` for the message. */
export function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  return { ...stdSerializers.err(err), message: messageWithCauses(err) };
}

/** The logger of a `deltagate` process: JSON lines on stdout, `service` on every line. */
export function createLogger(level: string, service: string, destination?: DestinationStream): Logger {
  const options = { level, base: { service }, serializers: { err: serializeError } };
  return destination === undefined ? pino(options) : pino(options, destination);
}

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
 * How long after the first signal a repeat counts as the same request to stop. One Ctrl-C in a terminal
 * reaches every process of the foreground group, and `npm start` also forwards the SIGINT it got itself, so
 * the server sees two within milliseconds; a person pressing Ctrl-C again, or a supervisor escalating, is
 * slower than this.
 */
export const REPEATED_SIGNAL_WINDOW_MS = 500;

/**
 * Resolves with the exit code once a SIGTERM/SIGINT has run `shutdown` exactly once (0, or 1 if it threw).
 * A signal within REPEATED_SIGNAL_WINDOW_MS of the first is the same request and is ignored; a later one
 * while shutting down is a second request and exits at once with 1. Nothing in-process may re-send signals
 * (Apollo's own handler is off: src/http/graphql.ts).
 */
export function runUntilSignal(
  logger: Logger,
  message: string,
  shutdown: () => Promise<void>,
): Promise<number> {
  return new Promise<number>((resolve) => {
    let firstAt: number | null = null;
    const stop = (signal: NodeJS.Signals) => {
      const now = performance.now();
      if (firstAt !== null) {
        if (now - firstAt < REPEATED_SIGNAL_WINDOW_MS) {
          logger.debug({ signal }, 'repeated signal ignored: already shutting down');
          return;
        }
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      firstAt = now;
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
