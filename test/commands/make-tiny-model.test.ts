/**
 * `deltagate make-tiny-model`: argument parsing (clear usage errors, exit code 2) and that a run writes
 * the same model as makeTinyModel. Source: src/commands/make-tiny-model.ts.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { parseArgs, run, summary } from '../../src/commands/make-tiny-model.js';
import { makeTinyModel } from '../../src/engine/builtin-model.js';

const tmpDirs: string[] = [];
afterAll(async () => {
  for (const d of tmpDirs) await rm(d, { recursive: true, force: true });
});

describe('parseArgs', () => {
  it.each([
    [['--out', 'm'], { out: 'm', seed: 0 }],
    [['--out=m', '--seed=42'], { out: 'm', seed: 42 }],
    [['--seed', '4294967295', '--out', 'x y'], { out: 'x y', seed: 4294967295 }],
    [['--help'], { help: true }],
    [[], { error: '--out DIR is required' }],
    [['--out'], { error: '--out needs a directory' }],
    [['--out', '--seed', '1'], { error: '--out needs a directory' }],
    [['--out', 'm', '--seed', '-1'], { error: '--seed needs an integer in [0, 4294967295], got "-1"' }],
    [['--out', 'm', '--seed', '1.5'], { error: '--seed needs an integer in [0, 4294967295], got "1.5"' }],
    [
      ['--out', 'm', '--seed', '4294967296'],
      { error: '--seed needs an integer in [0, 4294967295], got "4294967296"' },
    ],
    [['--out', 'm', '--seed'], { error: '--seed needs an integer in [0, 4294967295], got nothing' }],
    [['--out', 'm', 'extra'], { error: 'unknown argument "extra"' }],
  ])('%j', (argv, expected) => {
    expect(parseArgs(argv)).toEqual(expected);
  });
});

describe('run', () => {
  it('prints usage and returns 2 on a usage error, 0 for --help', async () => {
    const err = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    try {
      expect(await run(['--seed', 'x'])).toBe(2);
      expect(err.mock.calls[0]![0]).toMatch(
        /--seed needs an integer.*\nusage: deltagate make-tiny-model --out DIR \[--seed N\]/s,
      );
      expect(await run(['--help'])).toBe(0);
      expect(log.mock.calls[0]![0]).toMatch(/^usage: deltagate make-tiny-model/);
    } finally {
      err.mockRestore();
      log.mockRestore();
    }
    expect(summary.length).toBeGreaterThan(0);
  });

  it('writes the same bytes as makeTinyModel with that seed', async () => {
    const root = await mkdtemp(join(tmpdir(), 'mtm-'));
    tmpDirs.push(root);
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    try {
      expect(await run(['--out', join(root, 'cli'), '--seed', '3'])).toBe(0);
    } finally {
      log.mockRestore();
    }
    await makeTinyModel(join(root, 'lib'), { seed: 3 });
    const a = await readFile(join(root, 'cli', 'model.safetensors'));
    const b = await readFile(join(root, 'lib', 'model.safetensors'));
    expect(Buffer.compare(a, b)).toBe(0);
  });
});
