/**
 * src/cli.ts, the `deltagate` dispatcher: an unknown command says so before the usage and exits 2; no
 * command or `--help` prints the usage and exits 0.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../src/cli.js';

async function dispatch(argv: string[]): Promise<{ code: number | undefined; stderr: string[] }> {
  const stderr: string[] = [];
  vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void stderr.push(a.join(' ')));
  const before = process.exitCode;
  try {
    await main(argv);
    return { code: process.exitCode as number | undefined, stderr: stderr.join('\n').split('\n') };
  } finally {
    process.exitCode = before;
  }
}

describe('deltagate', () => {
  afterEach(() => vi.restoreAllMocks());

  it('names an unknown command, then prints the usage, and exits 2', async () => {
    const { code, stderr } = await dispatch(['frobnicate']);
    expect(code).toBe(2);
    expect(stderr.slice(0, 2)).toEqual([
      'deltagate: unknown command: frobnicate',
      'usage: deltagate <command> [options]',
    ]);
  });

  it('prints the usage without complaint for no command or --help, exit 0', async () => {
    for (const argv of [[], ['--help']]) {
      const { code, stderr } = await dispatch(argv);
      expect({ argv, code, first: stderr[0] }).toEqual({
        argv,
        code: 0,
        first: 'usage: deltagate <command> [options]',
      });
    }
  });
});
