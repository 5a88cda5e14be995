/**
 * What a failed training job tells its customer (`TrainingJob.error`, the progress event's `message`): the
 * error's message with the server's file system left out. Absolute paths (a model directory, a checkpoint
 * file, a temp dir) become `…/<last segment>` — enough to see which file was wrong, nothing of the layout.
 * The full message, paths included, goes to the server log only. Also how a handler tells bad input (no
 * retry) from a transient failure. Used by ./job-handler.ts and ./derive-handler.ts.
 */
import { DeltagateError } from '../shared/errors.js';

/** One path segment: no whitespace, quotes, separators or the punctuation that ends a path in a sentence. */
const SEGMENT = String.raw`[^\s'"${'`'}:,;()[\]{}<>|/\\]+`;
/** POSIX absolute paths (not a slash inside a word, a URL or a fraction), file: URLs, Windows drive paths. */
const ABSOLUTE_PATH = new RegExp(
  String.raw`(?:file://|(?<![\w.~:/\\-]))/(?:${SEGMENT}/)*${SEGMENT}/?|\b[A-Za-z]:\\(?:${SEGMENT}\\)*${SEGMENT}`,
  'g',
);

/** `text` with every absolute path shortened to `…/<its last segment>`. */
export function redactPaths(text: string): string {
  return text.replace(
    ABSOLUTE_PATH,
    (path) =>
      `…/${
        path
          .split(/[\\/]+/)
          .filter(Boolean)
          .at(-1) ?? ''
      }`,
  );
}

/** The customer-facing message of a job failure. */
export function publicJobError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return redactPaths(message);
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Bad input never retries: a BAD_USER_INPUT error (by class, code or name: errors cross module copies). */
export function isBadInput(err: unknown): boolean {
  const e = err as { code?: unknown; name?: unknown } | null;
  return (
    (err instanceof DeltagateError && err.code === 'BAD_USER_INPUT') ||
    (!!e && typeof e === 'object' && (e.code === 'BAD_USER_INPUT' || e.name === 'UnrecoverableJobError'))
  );
}
