/**
 * `deltagate export`, `import-gguf` and `pull`: argument parsing (src/commands/export.ts, import-gguf.ts,
 * pull.ts, flags.ts) and one run of export → import-gguf through the commands' `run`.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as exportCmd from '../../src/commands/export.js';
import * as importCmd from '../../src/commands/import-gguf.js';
import * as pullCmd from '../../src/commands/pull.js';
import { makeTinyModel } from '../../src/engine/builtin-model.js';

describe('parseArgs', () => {
  it.each<[string, (a: string[]) => unknown, string[], unknown]>([
    [
      'export',
      exportCmd.parseArgs,
      ['--model', 'm', '--out', 'x.gguf'],
      { model: 'm', out: 'x.gguf', format: 'gguf', quantize: 'none', force: false },
    ],
    [
      'export',
      exportCmd.parseArgs,
      ['--model=m', '--out', 'd', '--adapter', 'a', '--force'],
      { model: 'm', out: 'd', format: 'hf', quantize: 'none', force: true, adapter: 'a' },
    ],
    [
      'export',
      exportCmd.parseArgs,
      ['--model', 'm', '--out', 'd', '--format', 'gguf', '--quantize', 'q4_0'],
      { model: 'm', out: 'd', format: 'gguf', quantize: 'q4_0', force: false },
    ],
    [
      'export',
      exportCmd.parseArgs,
      ['--model', 'm', '--out', 'd', '--quantize', 'q8_0'],
      { error: '--quantize applies to --format gguf only' },
    ],
    [
      'export',
      exportCmd.parseArgs,
      ['--model', 'm', '--out', 'd.gguf', '--quantize', 'q5'],
      { error: '--quantize must be none, f16, q8_0 or q4_0, got "q5"' },
    ],
    ['export', exportCmd.parseArgs, ['--out', 'd'], { error: '--model DIR is required' }],
    ['export', exportCmd.parseArgs, ['--model', 'm', '--out'], { error: '--out needs a value' }],
    [
      'export',
      exportCmd.parseArgs,
      ['--model', 'm', '--out', 'd', '--force=1'],
      { error: '--force takes no value' },
    ],
    [
      'import-gguf',
      importCmd.parseArgs,
      ['f.gguf', '--out', 'd'],
      { file: 'f.gguf', out: 'd', force: false },
    ],
    ['import-gguf', importCmd.parseArgs, ['--out', 'd'], { error: 'exactly one GGUF FILE is required' }],
    ['import-gguf', importCmd.parseArgs, ['f.gguf'], { error: '--out DIR is required' }],
    [
      'pull',
      pullCmd.parseArgs,
      ['HuggingFaceTB/SmolLM2-135M-Instruct'],
      {
        repo: 'HuggingFaceTB/SmolLM2-135M-Instruct',
        revision: 'main',
        out: join('models', 'HuggingFaceTB--SmolLM2-135M-Instruct'),
      },
    ],
    [
      'pull',
      pullCmd.parseArgs,
      ['a/b', '--revision', 'v1', '--out', 'o', '--endpoint', 'http://127.0.0.1:9'],
      { repo: 'a/b', revision: 'v1', out: 'o', endpoint: 'http://127.0.0.1:9' },
    ],
    ['pull', pullCmd.parseArgs, ['a/../b'], { error: '"a/../b" is not a repository id (OWNER/REPO)' }],
    [
      'pull',
      pullCmd.parseArgs,
      ['a/b', '--endpoint', 'ftp://x'],
      { error: '--endpoint needs an http(s) URL, got "ftp://x"' },
    ],
    ['pull', pullCmd.parseArgs, ['a/b', '--bogus'], { error: 'unknown argument "--bogus"' }],
    ['pull', pullCmd.parseArgs, ['--help'], { help: true }],
  ])('%s %j', (_, parse, argv, want) => {
    expect(parse(argv)).toEqual(want);
  });
});

describe('export → import-gguf through the commands', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dg-convert-cmd-'));
    await makeTinyModel(join(dir, 'model'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('prints one summary line each and exits 0; a missing model exits 1 naming it', async () => {
    const lines: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void lines.push(a.join(' ')));
    const errors: string[] = [];
    vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void errors.push(a.join(' ')));
    try {
      const gguf = join(dir, 'm.gguf');
      expect(await exportCmd.run(['--model', join(dir, 'model'), '--out', gguf, '--quantize', 'q8_0'])).toBe(
        0,
      );
      expect(await importCmd.run([gguf, '--out', join(dir, 'back')])).toBe(0);
      expect(await exportCmd.run(['--model', join(dir, 'nope'), '--out', join(dir, 'x.gguf')])).toBe(1);
      expect(lines).toEqual([
        `wrote ${gguf} (gguf): 38 tensors (29 Q8_0, 9 F32), 823192 bytes of weights`,
        `wrote ${join(dir, 'back')} (llama, 38 tensors from 29 Q8_0, 9 F32, with a tokenizer)`,
      ]);
      expect(errors).toEqual([`deltagate export: --model ${join(dir, 'nope')} does not exist`]);
      expect((await readdir(join(dir, 'back'))).sort()).toEqual([
        'config.json',
        'generation_config.json',
        'model.safetensors',
        'tokenizer.json',
        'tokenizer_config.json',
      ]);
    } finally {
      vi.restoreAllMocks();
    }
  });
});
