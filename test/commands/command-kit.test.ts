/**
 * src/commands/command-kit.ts `runUntilSignal`: one SIGTERM/SIGINT runs the shutdown exactly once and resolves
 * 0; the duplicate a terminal's Ctrl-C plus `npm start`'s forwarding produce (milliseconds apart) is ignored;
 * a genuinely later second signal exits at once with 1. Signals are emitted in-process (`process.emit`), so
 * nothing is really sent; `process.exit` is mocked.
 */
import type { Logger } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  createLogger,
  messageWithCauses,
  REPEATED_SIGNAL_WINDOW_MS,
  runUntilSignal,
} from '../../src/commands/command-kit.js';
import { QueueUnavailableError, UnrecoverableJobError } from '../../src/queue/job-queue.js';

function fakeLogger() {
  const calls: { level: string; msg: string }[] = [];
  const at = (level: string) => (_obj: unknown, msg: string) => void calls.push({ level, msg });
  const logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  return { logger: logger as unknown as Logger, calls };
}

describe('runUntilSignal', () => {
  const before = { term: process.listenerCount('SIGTERM'), int: process.listenerCount('SIGINT') };
  afterEach(() => vi.restoreAllMocks());

  it('runs the shutdown once on one signal, resolves 0 and removes its listeners', async () => {
    const { logger, calls } = fakeLogger();
    const shutdown = vi.fn(async () => {});
    const done = runUntilSignal(logger, 'shutting down', shutdown);
    expect(process.listenerCount('SIGTERM')).toBe(before.term + 1);
    process.emit('SIGTERM', 'SIGTERM');
    expect(await done).toBe(0);
    expect(shutdown).toHaveBeenCalledTimes(1);
    expect(calls.filter((c) => c.msg === 'shutting down')).toHaveLength(1);
    expect(process.listenerCount('SIGTERM')).toBe(before.term);
    expect(process.listenerCount('SIGINT')).toBe(before.int);
  });

  it('ignores a repeat that arrives right after the first signal (Ctrl-C under npm start)', async () => {
    const exit = vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    const { logger, calls } = fakeLogger();
    let release!: () => void;
    const shutdown = vi.fn(() => new Promise<void>((r) => (release = r)));
    const done = runUntilSignal(logger, 'shutting down', shutdown);
    process.emit('SIGINT', 'SIGINT');
    process.emit('SIGINT', 'SIGINT');
    process.emit('SIGTERM', 'SIGTERM');
    release();
    expect(await done).toBe(0);
    expect(shutdown).toHaveBeenCalledTimes(1);
    expect(exit).not.toHaveBeenCalled();
    expect(calls.map((c) => c.msg)).not.toContain('second signal: exiting now');
  });

  it('exits at once with 1 on a second signal after the window', async () => {
    const exit = vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    const { logger, calls } = fakeLogger();
    let release!: () => void;
    const done = runUntilSignal(logger, 'shutting down', () => new Promise<void>((r) => (release = r)));
    process.emit('SIGTERM', 'SIGTERM');
    await new Promise((r) => setTimeout(r, REPEATED_SIGNAL_WINDOW_MS + 100));
    process.emit('SIGTERM', 'SIGTERM');
    expect(exit).toHaveBeenCalledWith(1);
    expect(calls).toContainEqual({ level: 'warn', msg: 'second signal: exiting now' });
    release();
    await done;
  });

  it('resolves 1 when the shutdown throws', async () => {
    const { logger, calls } = fakeLogger();
    const done = runUntilSignal(logger, 'draining', async () => {
      throw new Error('boom');
    });
    process.emit('SIGINT', 'SIGINT');
    expect(await done).toBe(1);
    expect(calls).toContainEqual({ level: 'error', msg: 'error during shutdown' });
  });
});

describe('createLogger', () => {
  /** What one `logger.warn({ err }, msg)` writes, parsed. */
  function logged(err: Error): {
    msg: string;
    service: string;
    err: { type: string; message: string; stack: string };
  } {
    const lines: string[] = [];
    const logger = createLogger('info', 'api', { write: (line: string) => void lines.push(line) });
    logger.warn({ err }, 'job failed without retry');
    return JSON.parse(lines[0]!);
  }

  it('logs a wrapped error whose message repeats its cause once, not "X: X"', () => {
    const inner = new Error('dataset has no usable rows');
    const line = logged(new UnrecoverableJobError(inner.message, { cause: inner }));
    expect([line.msg, line.service, line.err.type, line.err.message]).toEqual([
      'job failed without retry',
      'api',
      'UnrecoverableJobError',
      'dataset has no usable rows',
    ]);
    expect(line.err.stack).toMatch(/^UnrecoverableJobError: dataset has no usable rows\n/);
    // A wrapper that already quotes its cause's message does not quote it again.
    const refused = new Error('connect ECONNREFUSED 127.0.0.1:6379');
    expect(
      logged(new QueueUnavailableError(`queue add failed: ${refused.message}`, { cause: refused })).err
        .message,
    ).toBe('queue add failed: connect ECONNREFUSED 127.0.0.1:6379');
  });

  it('still appends causes that add something', () => {
    const chain = new Error('could not register version 3', { cause: new Error('disk full') });
    expect(messageWithCauses(chain)).toBe('could not register version 3: disk full');
    const loop = new Error('a');
    (loop as { cause?: unknown }).cause = loop;
    expect(messageWithCauses(loop)).toBe('a');
  });
});
