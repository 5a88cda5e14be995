/**
 * `deltagate adapter extract|shrink|merge` on files (src/commands/adapter*.ts): greedy generation with
 * base + extracted adapter equals generation on the fine-tuned checkpoint (fixed rank, and --energy with
 * rank_pattern, merged and side-loaded); a rank-16 adapter of true rank 4 shrinks to rank 4 with identical
 * greedy output; merge writes a loadable adapter; bad input (other architectures, NaN, rank ≥ min(dims), an
 * existing --out) fails naming the problem and leaves nothing behind; the argument parsers.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseArgs as parseExtract, run as extract } from '../../src/commands/adapter-extract.js';
import { parseAdapterSpec, parseArgs as parseMerge, run as merge } from '../../src/commands/adapter-merge.js';
import { parseArgs as parseShrink, run as shrink } from '../../src/commands/adapter-shrink.js';
import { run as adapterCommand } from '../../src/commands/adapter.js';
import { writeAdapterAtomically } from '../../src/engine/delta/adapter-io.js';
import { writeCheckpoint, type Checkpoint } from '../../src/engine/formats/checkpoint.js';
import type { LinearModule } from '../../src/engine/formats/hf-config.js';
import { moduleRank, readPeftDir, writePeftDir, type LoraAdapter } from '../../src/engine/formats/peft.js';
import { Engine } from '../../src/inference/engine.js';
import { randomAdapter, randomCheckpoint } from '../engine/nn/fixtures.js';
import { lowTrueRankAdapter, plantedTuned } from '../engine/delta/planted.js';

let root: string;
const base = randomCheckpoint({}, 41);
const { config } = base;
const dirs = { base: '', tuned: '' };
let baseEngine: Engine;
let tunedEngine: Engine;
const PROMPTS = [
  [1, 4, 9, 16],
  [2, 30, 7],
];

async function writeModel(dir: string, ckpt: Checkpoint): Promise<void> {
  await writeCheckpoint(dir, ckpt.rawConfig, ckpt.tensors);
}

async function greedy(
  engine: Engine,
  adapter?: LoraAdapter,
  mode?: 'merged' | 'sideload',
): Promise<number[][]> {
  const out: number[][] = [];
  for (const promptIds of PROMPTS) {
    const r = await engine.generate({ promptIds, maxTokens: 20, stopAtEos: false, adapter, mode });
    out.push(r.tokenIds);
  }
  return out;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'adapter-tools-'));
  dirs.base = join(root, 'base');
  dirs.tuned = join(root, 'tuned');
  await writeModel(dirs.base, base);
  // Rank 3 in every linear, except q_proj (2) and layer 1's down_proj (5), plus 1e-4 noise.
  const sigma = (l: number, m: LinearModule) =>
    (m === 'q_proj'
      ? [0.8, 0.5]
      : m === 'down_proj' && l === 1
        ? [1, 0.7, 0.5, 0.4, 0.3]
        : [1, 0.5, 0.25]
    ).map((x) => 3 * x);
  await writeModel(dirs.tuned, plantedTuned(base, sigma, 1e-4).tuned);
  baseEngine = await Engine.load(dirs.base, { session: { threads: 1 } });
  tunedEngine = await Engine.load(dirs.tuned, { session: { threads: 1 } });
});

afterAll(async () => {
  await baseEngine?.close();
  await tunedEngine?.close();
  await rm(root, { recursive: true, force: true });
});

let log: string[];
beforeEach(() => {
  log = [];
  vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void log.push(a.join(' ')));
  vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void log.push(a.join(' ')));
});
afterEach(() => vi.restoreAllMocks());

describe('adapter extract', () => {
  it('base + extracted adapter generates what the fine-tuned checkpoint generates (rank 5)', async () => {
    const out = join(root, 'extracted');
    expect(await extract(['--base', dirs.base, '--tuned', dirs.tuned, '--out', out, '--rank', '5'])).toBe(0);
    expect((await readdir(out)).sort()).toEqual([
      'adapter_config.json',
      'adapter_model.safetensors',
      'extract-report.json',
    ]);
    const report = JSON.parse(await readFile(join(out, 'extract-report.json'), 'utf8'));
    expect(report.modules).toHaveLength(14);
    for (const m of report.modules) {
      expect(m.keptEnergy).toBeGreaterThanOrEqual(0.999);
      expect(m.relativeError).toBeLessThanOrEqual(1e-2);
    }
    expect(
      log.some((l) =>
        /^model\.layers\.0\.self_attn\.q_proj +\[32×32\] +rank +5 +kept 0\.99\d+ +rel\.err \d\.\d\de-\d+ +dense/.test(
          l,
        ),
      ),
    ).toBe(true);
    const adapter = await readPeftDir(out, config);
    const want = await greedy(tunedEngine);
    expect(await greedy(baseEngine, adapter, 'merged')).toEqual(want);
    expect(await greedy(baseEngine, adapter, 'sideload')).toEqual(want);
    expect(await greedy(baseEngine)).not.toEqual(want);
  });

  it('--energy: each module its own rank (rank_pattern), same generation merged and side-loaded', async () => {
    const out = join(root, 'extracted-energy');
    expect(
      await extract(['--base', dirs.base, '--tuned', dirs.tuned, '--out', out, '--energy', '0.9999']),
    ).toBe(0);
    const cfg = JSON.parse(await readFile(join(out, 'adapter_config.json'), 'utf8'));
    expect([cfg.r, cfg.lora_alpha]).toEqual([5, 5]);
    expect(cfg.rank_pattern['model.layers.0.self_attn.q_proj']).toBe(2);
    expect(cfg.alpha_pattern['model.layers.0.self_attn.q_proj']).toBe(2);
    expect(cfg.rank_pattern['model.layers.1.mlp.down_proj']).toBeUndefined(); // at r = 5
    const adapter = await readPeftDir(out, config);
    expect(moduleRank(adapter, adapter.weights.get('1.k_proj')!)).toBe(3);
    const want = await greedy(tunedEngine);
    expect(await greedy(baseEngine, adapter, 'merged')).toEqual(want);
    expect(await greedy(baseEngine, adapter, 'sideload')).toEqual(want);
  });

  it('bad input fails naming the problem and leaves nothing behind', async () => {
    const parent = join(root, 'bad');
    await mkdir(parent);
    const out = join(parent, 'out');
    const wide = join(root, 'wide');
    await writeModel(wide, randomCheckpoint({ hidden_size: 48 }, 41));
    await expect(
      extract(['--base', dirs.base, '--tuned', wide, '--out', out, '--rank', '2']),
    ).rejects.toThrow(
      /differ in architecture: tensor model\.embed_tokens\.weight has shape \[40, 32\] in .*base, \[40, 48\] in .*wide/,
    );
    await expect(
      extract(['--base', dirs.base, '--tuned', dirs.tuned, '--out', out, '--rank', '16']),
    ).rejects.toThrow(
      /rank 16 is not below min\(out, in\) = 16 of model\.layers\.0\.self_attn\.k_proj\.weight/,
    );
    const nanDir = join(root, 'nan');
    const tensors = new Map(base.tensors);
    const t = tensors.get('model.layers.0.self_attn.o_proj.weight')!;
    tensors.set('model.layers.0.self_attn.o_proj.weight', {
      shape: t.shape,
      data: Float32Array.from(t.data, (x, i) => (i === 3 ? Infinity : x)),
    });
    await writeModel(nanDir, { ...base, tensors });
    await expect(
      extract(['--base', dirs.base, '--tuned', nanDir, '--out', out, '--rank', '2']),
    ).rejects.toMatchObject({
      code: 'BAD_USER_INPUT',
      message: expect.stringMatching(
        /model\.layers\.0\.self_attn\.o_proj\.weight in .*nan has a non-finite value \(Infinity\) at index 3/,
      ),
    });
    await expect(
      extract(['--base', join(root, 'nope'), '--tuned', dirs.tuned, '--out', out, '--rank', '2']),
    ).rejects.toThrow(/--base .*nope does not exist/);
    expect(await readdir(parent)).toEqual([]);
    // An existing, non-empty --out is never overwritten.
    await expect(
      extract(['--base', dirs.base, '--tuned', dirs.tuned, '--out', join(root, 'extracted'), '--rank', '2']),
    ).rejects.toThrow(/already exists/);
    // A write that fails half-way removes its temporary directory.
    await expect(
      writeAdapterAtomically(out, randomAdapter(config, 2, 1), { extraFiles: { 'missing/dir.json': '{}' } }),
    ).rejects.toThrow(/ENOENT/);
    expect(await readdir(parent)).toEqual([]);
  });
});

describe('adapter shrink', () => {
  it('a rank-16 adapter of true rank 4 shrinks to rank 4 with identical greedy output', async () => {
    const src = join(root, 'rank16');
    const ad = lowTrueRankAdapter(
      config,
      16,
      4,
      9,
      ['q_proj', 'v_proj', 'o_proj', 'up_proj', 'down_proj'],
      64,
    );
    await writePeftDir(src, ad);
    const out = join(root, 'rank4');
    expect(await shrink(['--adapter', src, '--out', out, '--rank', '4'])).toBe(0);
    expect(log.some((l) => /rank +16 → +4 +dropped energy/.test(l))).toBe(true);
    const cfg = JSON.parse(await readFile(join(out, 'adapter_config.json'), 'utf8'));
    expect([cfg.r, cfg.lora_alpha, cfg.rank_pattern]).toEqual([4, 4, {}]);
    const small = await readPeftDir(out, config);
    const want = await greedy(baseEngine, ad, 'merged');
    expect(await greedy(baseEngine, small, 'merged')).toEqual(want);
    expect(await greedy(baseEngine, small, 'sideload')).toEqual(want);
    expect(await greedy(baseEngine)).not.toEqual(want);
    // Against the real base too; --energy finds rank 4 everywhere.
    const out2 = join(root, 'rank4-energy');
    expect(await shrink(['--adapter', src, '--out', out2, '--energy', '0.999999', '--base', dirs.base])).toBe(
      0,
    );
    expect(JSON.parse(await readFile(join(out2, 'adapter_config.json'), 'utf8')).r).toBe(4);
  });
});

describe('adapter merge', () => {
  it('merges adapters given as DIR:WEIGHT into a loadable PEFT adapter; other bases are refused', async () => {
    const a = join(root, 'm-a');
    const b = join(root, 'm-b');
    await writePeftDir(a, randomAdapter(config, 4, 51, ['q_proj', 'v_proj'], 8));
    await writePeftDir(b, randomAdapter(config, 2, 52, ['v_proj', 'down_proj'], 2));
    const out = join(root, 'merged-cat');
    expect(await merge(['--adapter', `${a}:0.5`, `${b}:-1`, '--out', out, '--method', 'cat'])).toBe(0);
    const merged = await readPeftDir(out, config);
    expect([merged.rank, merged.alpha, merged.targetModules]).toEqual([
      6,
      6,
      ['q_proj', 'v_proj', 'down_proj'],
    ]);
    const svdOut = join(root, 'merged-svd');
    expect(
      await merge(['--adapter', a, '--adapter', b, '--out', svdOut, '--method', 'svd', '--rank', '3']),
    ).toBe(0);
    expect((await readPeftDir(svdOut, config)).rank).toBe(3);
    const other = join(root, 'm-other');
    await writePeftDir(other, randomAdapter(randomCheckpoint({ hidden_size: 48 }).config, 2, 53, ['q_proj']));
    await expect(
      merge(['--adapter', a, other, '--out', join(root, 'never'), '--method', 'cat']),
    ).rejects.toThrow(
      /different base models: .*m-other tensor base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight implies a hidden size of 48, .*m-a tensor .* implies 32/,
    );
    const deep = join(root, 'm-deep');
    await writePeftDir(
      deep,
      randomAdapter(randomCheckpoint({ num_hidden_layers: 3 }).config, 2, 54, ['q_proj']),
    );
    await expect(
      merge(['--adapter', a, deep, '--out', join(root, 'never'), '--method', 'cat']),
    ).rejects.toThrow(/different base models: .*m-a has layers 0-1, .*m-deep has layers 0-2/);
    await expect(
      merge(['--adapter', a, b, '--out', join(root, 'never'), '--method', 'linear']),
    ).rejects.toThrow(/one rank, got 4, 2/);
    await expect(
      merge([
        '--adapter',
        a,
        b,
        '--out',
        join(root, 'never'),
        '--method',
        'svd',
        '--rank',
        '40',
        '--base',
        dirs.base,
      ]),
    ).rejects.toThrow(/rank 40 is not below min\(out, in\) = 32/);
    expect((await readdir(root)).filter((n) => n.includes('never'))).toEqual([]);
  });
});

describe('argument parsing', () => {
  it('extract / shrink / merge', () => {
    expect(
      parseExtract([
        '--base',
        'b',
        '--tuned',
        't',
        '--out',
        'o',
        '--energy=0.95',
        '--target-modules',
        'q_proj,v_proj',
        '--svd',
        'randomized',
        '--power-iterations',
        '3',
      ]),
    ).toEqual({
      base: 'b',
      tuned: 't',
      out: 'o',
      energy: 0.95,
      targetModules: ['q_proj', 'v_proj'],
      svd: { method: 'randomized', powerIterations: 3 },
    });
    expect(parseExtract(['--base', 'b', '--tuned', 't', '--out', 'o'])).toEqual({
      error: 'give exactly one of --rank R or --energy F',
    });
    expect(
      parseExtract(['--base', 'b', '--tuned', 't', '--out', 'o', '--rank', '2', '--energy', '0.5']),
    ).toMatchObject({ error: expect.stringMatching(/exactly one/) });
    expect(parseExtract(['--base', 'b', '--tuned', 't', '--out', 'o', '--energy', '0'])).toMatchObject({
      error: expect.stringMatching(/\(0, 1\]/),
    });
    expect(parseExtract(['--tuned', 't', '--out', 'o', '--rank', '2'])).toEqual({
      error: '--base DIR is required',
    });
    expect(parseShrink(['--adapter', 'a', '--out', 'o', '--rank', '4'])).toEqual({
      adapter: 'a',
      out: 'o',
      rank: 4,
    });
    expect(parseShrink(['--adapter', 'a', '--out', 'o', '--rank', '4', '--rank', '5'])).toEqual({
      error: '--rank given twice',
    });
    expect(parseShrink(['--adapter', 'a', '--out', 'o', '--rank', '4', 'extra'])).toEqual({
      error: 'unknown argument "extra"',
    });
    expect(
      parseMerge([
        '--adapter',
        'x:0.5',
        'y',
        '--adapter',
        'c:d',
        '--out',
        'o',
        '--method',
        'svd',
        '--rank',
        '8',
      ]),
    ).toEqual({
      adapters: [
        { dir: 'x', weight: 0.5 },
        { dir: 'y', weight: 1 },
        { dir: 'c:d', weight: 1 },
      ],
      out: 'o',
      method: 'svd',
      rank: 8,
    });
    expect(parseMerge(['--adapter', 'x', '--out', 'o', '--method', 'cat', '--rank', '8'])).toEqual({
      error: '--rank applies to --method svd only',
    });
    expect(parseAdapterSpec('/tmp/a:b:-2.5')).toEqual({ dir: '/tmp/a:b', weight: -2.5 });
  });

  it('the dispatcher: usage, unknown sub-command exit 2, --help of a sub-command exit 0', async () => {
    expect(await adapterCommand([])).toBe(0);
    expect(log.join('\n')).toMatch(/extract .*\n.*shrink .*\n.*merge /);
    expect(await adapterCommand(['frobnicate'])).toBe(2);
    expect(log.join('\n')).toMatch(/deltagate adapter: unknown command: frobnicate/);
    expect(await adapterCommand(['merge', '--help'])).toBe(0);
    expect(await adapterCommand(['shrink', '--out'])).toBe(2);
    await writeFile(join(root, 'placeholder'), '');
  });
});
