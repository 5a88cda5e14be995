/**
 * The built-in `deltagate-tiny` model: the fixed config others depend on, deterministic bytes per seed,
 * weight statistics of the HF init, readable by loadCheckpoint + loadTokenizer, and ensureBuiltinModel's
 * write-once behaviour (including concurrent callers). Source: src/engine/builtin-model.ts.
 */
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BUILTIN_CHAT_TEMPLATE,
  BUILTIN_MODEL_ID,
  ensureBuiltinModel,
  makeTinyModel,
} from '../../src/engine/builtin-model.js';
import { loadCheckpoint } from '../../src/engine/formats/checkpoint.js';
import { parameterCount } from '../../src/engine/formats/hf-config.js';
import { loadTokenizer } from '../../src/engine/formats/tokenizer.js';

const tmpDirs: string[] = [];
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'builtin-'));
  tmpDirs.push(d);
  return d;
}
afterAll(async () => {
  for (const d of tmpDirs) await rm(d, { recursive: true, force: true });
});

const FILES = [
  'README.md',
  'config.json',
  'generation_config.json',
  'model.safetensors',
  'tokenizer.json',
  'tokenizer_config.json',
];

async function filesOf(dir: string): Promise<Map<string, Buffer>> {
  const m = new Map<string, Buffer>();
  for (const f of (await readdir(dir)).sort()) m.set(f, await readFile(join(dir, f)));
  return m;
}

describe('makeTinyModel', () => {
  it('writes an HF directory that loadCheckpoint and loadTokenizer read, with the fixed config', async () => {
    const dir = await tmp();
    await makeTinyModel(dir);
    expect((await readdir(dir)).sort()).toEqual(FILES);
    const ck = await loadCheckpoint(dir);
    expect(ck.config).toEqual({
      modelType: 'llama',
      architecture: 'LlamaForCausalLM',
      hiddenSize: 128,
      intermediateSize: 352,
      numLayers: 4,
      numHeads: 4,
      numKvHeads: 2,
      headDim: 32,
      vocabSize: 259,
      maxPositionEmbeddings: 512,
      rmsNormEps: 1e-5,
      ropeTheta: 10000,
      ropeScaling: null,
      tieWordEmbeddings: true,
      attentionBias: false,
      oProjBias: false,
      mlpBias: false,
      bosTokenId: 1,
      eosTokenIds: [2],
      slidingWindow: null,
      torchDtype: 'float32',
    });
    expect(parameterCount(ck.config)).toBe(
      259 * 128 + 4 * (2 * 128 + 128 * 128 * 2 + 2 * 64 * 128 + 3 * 128 * 352) + 128,
    );
    // Norms are ones; the rest is normal(0, 0.02).
    expect(Array.from(ck.tensors.get('model.norm.weight')!.data).every((v) => v === 1)).toBe(true);
    expect(
      Array.from(ck.tensors.get('model.layers.3.input_layernorm.weight')!.data).every((v) => v === 1),
    ).toBe(true);
    for (const name of [
      'model.embed_tokens.weight',
      'model.layers.0.mlp.gate_proj.weight',
      'model.layers.2.self_attn.k_proj.weight',
    ]) {
      const d = ck.tensors.get(name)!.data;
      let s = 0;
      let s2 = 0;
      for (const v of d) {
        s += v;
        s2 += v * v;
      }
      const mean = s / d.length;
      const std = Math.sqrt(s2 / d.length - mean * mean);
      expect(Math.abs(mean), name).toBeLessThan(0.002);
      expect(Math.abs(std - 0.02), name).toBeLessThan(0.001);
    }
    const tok = (await loadTokenizer(dir))!;
    expect([tok.bosTokenId, tok.eosTokenIds, tok.addBosToken, tok.vocabSize]).toEqual([1, [2], true, 259]);
    const text = 'Grüße 👋 世界';
    expect(tok.decode(tok.encode(text))).toBe(text);
    expect(JSON.parse(await readFile(join(dir, 'generation_config.json'), 'utf8'))).toMatchObject({
      bos_token_id: 1,
      eos_token_id: 2,
    });
  });

  it('is deterministic per seed: byte-identical files for one seed, different weights for another', async () => {
    const [a, b, c] = [await tmp(), await tmp(), await tmp()];
    await makeTinyModel(a, { seed: 7 });
    await makeTinyModel(b, { seed: 7 });
    await makeTinyModel(c, { seed: 8 });
    const fa = await filesOf(a);
    const fb = await filesOf(b);
    const fc = await filesOf(c);
    for (const f of FILES) expect(Buffer.compare(fa.get(f)!, fb.get(f)!), f).toBe(0);
    expect(Buffer.compare(fa.get('model.safetensors')!, fc.get('model.safetensors')!)).not.toBe(0);
    expect(Buffer.compare(fa.get('tokenizer.json')!, fc.get('tokenizer.json')!)).toBe(0);
  });

  it('has a ChatML-style chat template that renders turns as plain text', () => {
    const out = new Template(BUILTIN_CHAT_TEMPLATE).render({
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
      ],
      add_generation_prompt: true,
    });
    expect(out).toBe(
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
    );
  });
});

describe('ensureBuiltinModel', () => {
  it('writes once into dataDir/models/deltagate-tiny and reuses it', async () => {
    const data = await tmp();
    const dir = await ensureBuiltinModel(data);
    expect(dir).toBe(join(data, 'models', BUILTIN_MODEL_ID));
    const first = (await stat(join(dir, 'model.safetensors'))).mtimeMs;
    expect(await ensureBuiltinModel(data)).toBe(dir);
    expect((await stat(join(dir, 'model.safetensors'))).mtimeMs).toBe(first);
    expect(await readdir(join(data, 'models'))).toEqual([BUILTIN_MODEL_ID]);
  });

  it('lets concurrent callers race safely: one model, no temp dirs left', async () => {
    const data = await tmp();
    const dirs = await Promise.all([
      ensureBuiltinModel(data),
      ensureBuiltinModel(data),
      ensureBuiltinModel(data),
    ]);
    expect(new Set(dirs).size).toBe(1);
    expect(await readdir(join(data, 'models'))).toEqual([BUILTIN_MODEL_ID]);
    expect((await readdir(dirs[0]!)).sort()).toEqual(FILES);
    await loadCheckpoint(dirs[0]!);
  });
});
