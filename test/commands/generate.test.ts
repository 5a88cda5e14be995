/**
 * `deltagate generate`: argument parsing, and runs on the built-in model (streamed text, --json last line,
 * --prompt-ids exact, adapters merged and side-loaded giving the same greedy tokens), plus the built CLI
 * when dist/ has it. Source: src/commands/generate.ts.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseArgs, run } from '../../src/commands/generate.js';
import { makeTinyModel } from '../../src/engine/builtin-model.js';
import { parseModelConfig } from '../../src/engine/formats/hf-config.js';
import { writePeftDir } from '../../src/engine/formats/peft.js';
import { BUILTIN_CONFIG } from '../../src/engine/builtin-model.js';
import { randomAdapter } from '../engine/nn/fixtures.js';

describe('parseArgs', () => {
  const base = { mode: 'merged', maxTokens: 64, quantize: 'none', json: false, stop: [] };
  it.each([
    [['--model', 'm', '--prompt', 'hi'], { ...base, model: 'm', prompt: 'hi' }],
    [
      ['--model=m', '--prompt-ids', '1 2  3', '--json', '--max-tokens=5', '--stop', 'a', '--stop=b'],
      { ...base, model: 'm', promptIds: [1, 2, 3], json: true, maxTokens: 5, stop: ['a', 'b'] },
    ],
    [
      ['--model', 'm', '--prompt', 'x', '--adapter', 'a', '--mode', 'sideload', '--quantize', 'int4'],
      { ...base, model: 'm', prompt: 'x', adapter: 'a', mode: 'sideload', quantize: 'int4' },
    ],
    [
      [
        '--model',
        'm',
        '--prompt',
        'x',
        '--temperature',
        '0.7',
        '--top-k',
        '40',
        '--top-p',
        '0.9',
        '--seed',
        '7',
      ],
      { ...base, model: 'm', prompt: 'x', temperature: 0.7, topK: 40, topP: 0.9, seed: 7 },
    ],
    [['--help'], { help: true }],
    [['--prompt', 'x'], { error: '--model DIR is required' }],
    [['--model', 'm'], { error: 'exactly one of --prompt and --prompt-ids is required' }],
    [
      ['--model', 'm', '--prompt', 'x', '--prompt-ids', '1'],
      { error: 'exactly one of --prompt and --prompt-ids is required' },
    ],
    [
      ['--model', 'm', '--prompt-ids', '1 x'],
      { error: '--prompt-ids needs non-negative integer ids, got "1 x"' },
    ],
    [
      ['--model', 'm', '--prompt', 'x', '--max-tokens', '0'],
      { error: '--max-tokens needs a positive integer, got "0"' },
    ],
    [
      ['--model', 'm', '--prompt', 'x', '--quantize', 'fp8'],
      { error: '--quantize must be none, nf4 or int4, got "fp8"' },
    ],
    [['--model', 'm', '--prompt', 'x', '--mode', 'sideload'], { error: '--mode needs --adapter' }],
    [['--model', 'm', '--prompt', 'x', '--temperature'], { error: '--temperature needs a number ≥ 0' }],
    [['--model', 'm', '--prompt', 'x', 'extra'], { error: 'unknown argument "extra"' }],
  ])('%j', (argv, expected) => {
    expect(parseArgs(argv)).toEqual(expected);
  });
});

describe('run on the built-in model', () => {
  let dir: string;
  let adapterDir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dg-cli-'));
    await makeTinyModel(join(dir, 'model'));
    adapterDir = join(dir, 'adapter');
    // A strong adapter (B random, not zero) so it changes the greedy tokens of the near-uniform tiny model.
    await writePeftDir(
      adapterDir,
      randomAdapter(parseModelConfig(BUILTIN_CONFIG), 4, 3, ['q_proj', 'v_proj', 'up_proj'], 64),
    );
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  async function capture(argv: string[]): Promise<{ code: number; out: string }> {
    let out = '';
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      out += String(chunk);
      return true;
    });
    try {
      return { code: await run(argv), out };
    } finally {
      spy.mockRestore();
    }
  }

  it('--json prints one object as the last line; --prompt-ids are used exactly', async () => {
    const { code, out } = await capture([
      '--model',
      join(dir, 'model'),
      '--prompt-ids',
      '5 6 7',
      '--max-tokens',
      '6',
      '--json',
    ]);
    expect(code).toBe(0);
    const last = JSON.parse(out.trim().split('\n').at(-1)!);
    expect(Object.keys(last)).toEqual(['promptIds', 'tokenIds', 'text', 'finishReason', 'usage']);
    expect(last.promptIds).toEqual([5, 6, 7]);
    expect(last.tokenIds).toHaveLength(6);
    expect(last.finishReason).toBe('length');
    expect(last.usage).toEqual({ promptTokens: 3, completionTokens: 6, totalTokens: 9 });
  });

  it('streams the text without --json, equal to the --json text', async () => {
    const args = [
      '--model',
      join(dir, 'model'),
      '--prompt',
      'hello',
      '--max-tokens',
      '8',
      '--temperature',
      '1',
      '--seed',
      '3',
    ];
    const streamed = await capture(args);
    const json = JSON.parse((await capture([...args, '--json'])).out.trim().split('\n').at(-1)!);
    expect(json.promptIds[0]).toBe(1);
    expect(streamed.out).toBe(`${json.text}\n`);
  });

  it('an adapter gives the same greedy tokens merged and side-loaded, and differs from the base', async () => {
    const args = ['--model', join(dir, 'model'), '--prompt-ids', '1 72 105', '--max-tokens', '10', '--json'];
    const tokens = async (extra: string[]) =>
      JSON.parse((await capture([...args, ...extra])).out.trim()).tokenIds;
    const merged = await tokens(['--adapter', adapterDir, '--mode', 'merged']);
    expect(await tokens(['--adapter', adapterDir, '--mode', 'sideload'])).toEqual(merged);
    expect(await tokens([])).not.toEqual(merged);
  });

  it('runs with --quantize nf4 and int4', async () => {
    for (const q of ['nf4', 'int4']) {
      const { code, out } = await capture([
        '--model',
        join(dir, 'model'),
        '--prompt-ids',
        '1',
        '--max-tokens',
        '3',
        '--json',
        '--quantize',
        q,
      ]);
      expect(code).toBe(0);
      expect(JSON.parse(out.trim()).tokenIds).toHaveLength(3);
    }
  });

  it.skipIf(!existsSync('dist/commands/generate.js'))('the built CLI prints the same JSON', async () => {
    const argv = ['--model', join(dir, 'model'), '--prompt-ids', '1 2', '--max-tokens', '4', '--json'];
    const p = spawnSync('node', ['bin/deltagate.js', 'generate', ...argv], { encoding: 'utf8' });
    expect(p.status, p.stderr).toBe(0);
    const viaRun = JSON.parse((await capture(argv)).out.trim());
    expect(JSON.parse(p.stdout.trim().split('\n').at(-1)!)).toEqual(viaRun);
  });
});
