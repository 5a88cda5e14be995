/**
 * Model directories: the real stories260k weights, single-file and sharded layouts, F16/BF16 conversion,
 * and every way a checkpoint can disagree with its config (errors name the tensor).
 * Source: src/engine/formats/checkpoint.ts.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CheckpointError,
  loadCheckpoint,
  loadModelConfig,
  writeCheckpoint,
  type Tensor32,
} from '../../../src/engine/formats/checkpoint.js';
import {
  expectedTensors,
  parseModelConfig,
  UnsupportedModelError,
} from '../../../src/engine/formats/hf-config.js';
import {
  parseSafetensors,
  toFloat32,
  writeSafetensors,
  type TensorInput,
} from '../../../src/engine/formats/safetensors.js';
import { expectClose } from '../../helpers/expect-close.js';

const STORIES = fileURLToPath(new URL('../../../../shared/models/stories260k', import.meta.url));

const tmpDirs: string[] = [];
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'ckpt-'));
  tmpDirs.push(d);
  return d;
}
afterAll(async () => {
  for (const d of tmpDirs) await rm(d, { recursive: true, force: true });
});

/** Qwen2-shaped (biases on q/k/v), untied: exercises every optional tensor. */
const RAW = {
  model_type: 'qwen2',
  hidden_size: 8,
  intermediate_size: 12,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  vocab_size: 10,
  tie_word_embeddings: false,
};

function tensorsFor(raw: Record<string, unknown>): Map<string, Tensor32> {
  const m = new Map<string, Tensor32>();
  let k = 0;
  for (const { name, shape } of expectedTensors(parseModelConfig(raw))) {
    const n = shape.reduce((a, b) => a * b, 1);
    m.set(name, { shape, data: Float32Array.from({ length: n }, () => ((k++ % 97) - 48) / 64) });
  }
  return m;
}

async function expectCkptError(dir: string, re: RegExp, tensor?: string): Promise<void> {
  const err = await loadCheckpoint(dir).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CheckpointError);
  expect((err as Error).message).toMatch(re);
  if (tensor !== undefined) expect((err as CheckpointError).details).toEqual({ tensor });
}

describe.skipIf(!existsSync(STORIES))('stories260k', () => {
  it('loads with every tensor checked against the file', async () => {
    const ck = await loadCheckpoint(STORIES);
    expect([
      ck.config.hiddenSize,
      ck.config.numLayers,
      ck.config.numHeads,
      ck.config.numKvHeads,
      ck.config.headDim,
    ]).toEqual([64, 5, 8, 4, 8]);
    expect([ck.config.intermediateSize, ck.config.vocabSize, ck.config.tieWordEmbeddings]).toEqual([
      172,
      512,
      true,
    ]);
    expect(ck.tensors.size).toBe(2 + 5 * 9);
    expect(ck.tensors.has('lm_head.weight')).toBe(false);
    expect(ck.tensors.get('model.layers.4.self_attn.k_proj.weight')!.shape).toEqual([32, 64]);
    expect(ck.tensors.get('model.layers.0.mlp.down_proj.weight')!.shape).toEqual([64, 172]);
    const file = parseSafetensors(await readFile(join(STORIES, 'model.safetensors')));
    for (const [name, t] of ck.tensors) {
      expectClose(t.data, toFloat32(file.tensors.get(name)!), { atol: 0, rtol: 0, label: name });
    }
    expect(ck.rawConfig.model_type).toBe('llama');
  });
});

describe('loadCheckpoint / writeCheckpoint', () => {
  it('round-trips a single-file checkpoint and ignores extras such as rotary inv_freq', async () => {
    const dir = await tmp();
    const tensors = tensorsFor(RAW);
    await writeCheckpoint(
      dir,
      RAW,
      new Map([
        ...tensors,
        ['model.layers.0.self_attn.rotary_emb.inv_freq', { shape: [1], data: new Float32Array(1) }],
      ]),
    );
    const ck = await loadCheckpoint(dir);
    expect(ck.config).toEqual(parseModelConfig(RAW));
    expect(await loadModelConfig(dir)).toEqual({ config: ck.config, rawConfig: RAW });
    expect(ck.rawConfig).toEqual(RAW);
    expect(ck.dir).toBe(dir);
    expect([...ck.tensors.keys()]).toEqual(expectedTensors(ck.config).map((t) => t.name));
    for (const [name, t] of tensors)
      expectClose(ck.tensors.get(name)!.data, t.data, { atol: 0, rtol: 0, label: name });
  });

  it('loads shards through model.safetensors.index.json, converting F16/BF16 to F32', async () => {
    const dir = await tmp();
    const tensors = tensorsFor(RAW);
    const names = [...tensors.keys()];
    const half = Math.floor(names.length / 2);
    const shards: Array<[string, string[], 'BF16' | 'F16']> = [
      ['model-00001-of-00002.safetensors', names.slice(0, half), 'BF16'],
      ['model-00002-of-00002.safetensors', names.slice(half), 'F16'],
    ];
    const weightMap: Record<string, string> = {};
    for (const [file, list, dtype] of shards) {
      const input: Record<string, TensorInput> = {};
      for (const n of list) {
        input[n] = { dtype, shape: tensors.get(n)!.shape, data: tensors.get(n)!.data };
        weightMap[n] = file;
      }
      await writeFile(join(dir, file), writeSafetensors(input));
    }
    await writeFile(join(dir, 'config.json'), JSON.stringify(RAW));
    await writeFile(
      join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }),
    );
    const ck = await loadCheckpoint(dir);
    // Values are multiples of 1/64 in [-0.75, 0.75]: exact in both F16 and BF16.
    for (const [name, t] of tensors)
      expectClose(ck.tensors.get(name)!.data, t.data, { atol: 0, rtol: 0, label: name });

    // The same tensor in two shards is ambiguous.
    const dup = names[0]!;
    await writeFile(
      join(dir, shards[1]![0]),
      writeSafetensors({
        ...Object.fromEntries(
          shards[1]![1].map((n) => [
            n,
            { dtype: 'F32' as const, shape: tensors.get(n)!.shape, data: tensors.get(n)!.data },
          ]),
        ),
        [dup]: { dtype: 'F32', shape: tensors.get(dup)!.shape, data: tensors.get(dup)!.data },
      }),
    );
    await expectCkptError(dir, /appears in more than one shard/, dup);
  });

  it('refuses shard names that could leave the directory', async () => {
    const dir = await tmp();
    await writeFile(join(dir, 'config.json'), JSON.stringify(RAW));
    for (const bad of ['../x.safetensors', '/etc/passwd', 'sub/x.safetensors', '.hidden.safetensors', 42]) {
      await writeFile(
        join(dir, 'model.safetensors.index.json'),
        JSON.stringify({ weight_map: { 'model.norm.weight': bad } }),
      );
      await expectCkptError(dir, /is not a plain \.safetensors file name/);
    }
    await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {} }));
    await expectCkptError(dir, /weight_map is missing/);
  });

  it('names the missing tensor, the wrong shape, and a non-float dtype', async () => {
    const dir = await tmp();
    const tensors = tensorsFor(RAW);
    const without = new Map(tensors);
    without.delete('model.layers.1.self_attn.k_proj.bias');
    await writeCheckpoint(dir, RAW, without);
    await expectCkptError(
      dir,
      /tensor model\.layers\.1\.self_attn\.k_proj\.bias is missing \(expected shape \[4\]\)/,
      'model.layers.1.self_attn.k_proj.bias',
    );

    const noHead = new Map(tensors);
    noHead.delete('lm_head.weight');
    await writeCheckpoint(dir, RAW, noHead);
    await expectCkptError(dir, /lm_head\.weight is missing/, 'lm_head.weight');

    const wrong = new Map(tensors);
    wrong.set('model.layers.0.mlp.up_proj.weight', { shape: [8, 12], data: new Float32Array(96) });
    await writeCheckpoint(dir, RAW, wrong);
    await expectCkptError(
      dir,
      /up_proj\.weight has shape \[8, 12\], the config needs \[12, 8\]/,
      'model.layers.0.mlp.up_proj.weight',
    );

    const input: Record<string, TensorInput> = {};
    for (const [n, t] of tensors) input[n] = { dtype: 'F32', shape: t.shape, data: t.data };
    input['model.norm.weight'] = { dtype: 'I32', shape: [8], data: new Int32Array(8) };
    await writeFile(join(dir, 'model.safetensors'), writeSafetensors(input));
    await expectCkptError(dir, /model\.norm\.weight has non-float dtype I32/, 'model.norm.weight');
  });

  it('reports missing/unreadable files and bad configs as BadInputErrors', async () => {
    const dir = await tmp();
    await expectCkptError(dir, /cannot read .*config\.json/);
    await writeFile(join(dir, 'config.json'), '{not json');
    await expectCkptError(dir, /config\.json is not valid JSON/);
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...RAW, model_type: 'gpt2' }));
    await expect(loadCheckpoint(dir)).rejects.toThrow(UnsupportedModelError);
    await writeFile(join(dir, 'config.json'), JSON.stringify(RAW));
    await expectCkptError(dir, /cannot read .*model\.safetensors/);
    await writeFile(join(dir, 'model.safetensors'), new Uint8Array([1, 2, 3]));
    await expect(loadCheckpoint(dir)).rejects.toThrow(/safetensors: file is 3 bytes/);
  });

  it('writes deterministic bytes', async () => {
    const a = await tmp();
    const b = await tmp();
    await writeCheckpoint(a, RAW, tensorsFor(RAW));
    await writeCheckpoint(b, RAW, tensorsFor(RAW));
    expect(
      Buffer.compare(
        await readFile(join(a, 'model.safetensors')),
        await readFile(join(b, 'model.safetensors')),
      ),
    ).toBe(0);
  });
});
