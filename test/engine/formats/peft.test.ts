/**
 * PEFT LoRA adapters: round trips through PEFT's exact layout, the variants PEFT itself writes, and every
 * way an adapter can fail to fit its base (refused at import with a named error). Also loraDelta against
 * a hand-computed product. Source: src/engine/formats/peft.ts.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { linearShape, parseModelConfig, type LinearModule } from '../../../src/engine/formats/hf-config.js';
import {
  AdapterConfigError,
  AdapterShapeMismatchError,
  AdapterWeightsError,
  loraDelta,
  maxModuleRank,
  moduleRank,
  moduleScale,
  parsePeftAdapter,
  peftWeightKey,
  readPeftDir,
  serializePeftAdapter,
  writePeftDir,
  type LoraAdapter,
} from '../../../src/engine/formats/peft.js';
import {
  parseSafetensors,
  writeSafetensors,
  type TensorInput,
} from '../../../src/engine/formats/safetensors.js';
import { parsePeftAdapterOffThread } from '../../../src/engine/formats/peft-thread.js';
import { BadInputError } from '../../../src/shared/errors.js';
import { expectClose } from '../../helpers/expect-close.js';

/** A small GQA base: C 16, 2 layers, 4 heads of 4, 2 kv heads, MLP 24. */
const BASE = parseModelConfig({
  model_type: 'llama',
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 50,
});

function makeAdapter(targets: LinearModule[], R = 2, alpha = 8, useRslora = false): LoraAdapter {
  let s = 1;
  const rnd = (): number => ((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1;
  const weights = new Map<string, { a: Float32Array; b: Float32Array }>();
  for (let l = 0; l < BASE.numLayers; l++) {
    for (const m of targets) {
      const { inFeatures, outFeatures } = linearShape(BASE, m);
      weights.set(`${l}.${m}`, {
        a: Float32Array.from({ length: R * inFeatures }, rnd),
        b: Float32Array.from({ length: outFeatures * R }, rnd),
      });
    }
  }
  return {
    rank: R,
    alpha,
    useRslora,
    scale: useRslora ? alpha / Math.sqrt(R) : alpha / R,
    dropout: 0.05,
    targetModules: targets,
    baseModelName: 'deltagate-tiny',
    weights,
  };
}

/** Re-encode the serialized weights with an edit applied to the tensor dict. */
function editWeights(bytes: Uint8Array, edit: (t: Record<string, TensorInput>) => void): Uint8Array {
  const parsed = parseSafetensors(bytes);
  const t: Record<string, TensorInput> = {};
  for (const [k, e] of parsed.tensors) t[k] = { dtype: e.dtype, shape: e.shape, data: e.bytes };
  edit(t);
  return writeSafetensors(t, parsed.metadata);
}

function catchErr(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a throw');
}

const tmpDirs: string[] = [];
afterAll(async () => {
  for (const d of tmpDirs) await rm(d, { recursive: true, force: true });
});

describe('PEFT round trip', () => {
  it('serializes what PEFT writes and parses it back to the same adapter', () => {
    const adapter = makeAdapter(['q_proj', 'v_proj', 'down_proj']);
    const { adapterConfig, weights } = serializePeftAdapter(adapter);
    expect(adapterConfig).toEqual({
      alpha_pattern: {},
      auto_mapping: null,
      base_model_name_or_path: 'deltagate-tiny',
      bias: 'none',
      fan_in_fan_out: false,
      inference_mode: true,
      init_lora_weights: true,
      layer_replication: null,
      layers_pattern: null,
      layers_to_transform: null,
      loftq_config: {},
      lora_alpha: 8,
      lora_dropout: 0.05,
      megatron_config: null,
      megatron_core: 'megatron.core',
      modules_to_save: null,
      peft_type: 'LORA',
      r: 2,
      rank_pattern: {},
      revision: null,
      target_modules: ['q_proj', 'v_proj', 'down_proj'],
      task_type: 'CAUSAL_LM',
      use_dora: false,
      use_rslora: false,
    });
    const file = parseSafetensors(weights);
    expect(file.metadata).toEqual({ format: 'pt' });
    expect([...file.tensors.entries()].map(([k, e]) => [k, e.dtype, e.shape])).toEqual([
      ['base_model.model.model.layers.0.mlp.down_proj.lora_A.weight', 'F32', [2, 24]],
      ['base_model.model.model.layers.0.mlp.down_proj.lora_B.weight', 'F32', [16, 2]],
      ['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', 'F32', [2, 16]],
      ['base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight', 'F32', [16, 2]],
      ['base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight', 'F32', [2, 16]],
      ['base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight', 'F32', [8, 2]],
      ['base_model.model.model.layers.1.mlp.down_proj.lora_A.weight', 'F32', [2, 24]],
      ['base_model.model.model.layers.1.mlp.down_proj.lora_B.weight', 'F32', [16, 2]],
      ['base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight', 'F32', [2, 16]],
      ['base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight', 'F32', [16, 2]],
      ['base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight', 'F32', [2, 16]],
      ['base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight', 'F32', [8, 2]],
    ]);
    const back = parsePeftAdapter(JSON.parse(JSON.stringify(adapterConfig)), weights, BASE);
    expect(back).toEqual(adapter);
  });

  it('round-trips through a directory, with rsLoRA scale alpha/sqrt(r)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'peft-'));
    tmpDirs.push(dir);
    const adapter = makeAdapter(['gate_proj', 'up_proj'], 4, 16, true);
    expect(adapter.scale).toBe(8);
    await writePeftDir(dir, adapter);
    expect(JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8')).use_rslora).toBe(true);
    const back = await readPeftDir(dir, BASE);
    expect(back).toEqual(adapter);
    await expect(readPeftDir(join(dir, 'missing'), BASE)).rejects.toThrow(AdapterConfigError);
  });

  it("accepts PEFT's variants: .default keys, target_modules as a name, a path suffix, all-linear; F16 weights", () => {
    const adapter = makeAdapter(['q_proj']);
    const { adapterConfig, weights } = serializePeftAdapter(adapter);
    const renamed = editWeights(weights, (t) => {
      for (const k of Object.keys(t)) {
        t[k.replace(/\.weight$/, '.default.weight')] = t[k]!;
        delete t[k];
      }
    });
    expect(parsePeftAdapter({ ...adapterConfig, target_modules: 'q_proj' }, renamed, BASE).weights).toEqual(
      adapter.weights,
    );
    expect(
      parsePeftAdapter({ ...adapterConfig, target_modules: ['self_attn.q_proj'] }, weights, BASE)
        .targetModules,
    ).toEqual(['q_proj']);
    const all = makeAdapter(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
    const s = serializePeftAdapter(all);
    expect(
      parsePeftAdapter({ ...s.adapterConfig, target_modules: 'all-linear' }, s.weights, BASE).targetModules,
    ).toEqual(all.targetModules);
    // F16 weights (PEFT saves in the training dtype).
    const f16 = editWeights(weights, (t) => {
      for (const k of Object.keys(t)) {
        const e = parseSafetensors(weights).tensors.get(k)!;
        t[k] = {
          dtype: 'F16',
          shape: e.shape,
          data: new Float32Array(
            e.bytes.buffer.slice(e.bytes.byteOffset, e.bytes.byteOffset + e.bytes.byteLength),
          ),
        };
      }
    });
    const h = parsePeftAdapter(adapterConfig, f16, BASE);
    expectClose(h.weights.get('0.q_proj')!.a, adapter.weights.get('0.q_proj')!.a, {
      atol: 1e-3,
      rtol: 1e-3,
      label: 'F16 A',
    });
  });

  it('honours layers_to_transform', () => {
    const adapter = makeAdapter(['q_proj']);
    adapter.weights.delete('0.q_proj');
    const { adapterConfig, weights } = serializePeftAdapter(adapter);
    const back = parsePeftAdapter({ ...adapterConfig, layers_to_transform: [1] }, weights, BASE);
    expect([...back.weights.keys()]).toEqual(['1.q_proj']);
    expect(catchErr(() => parsePeftAdapter(adapterConfig, weights, BASE)).message).toMatch(
      /missing .*layers\.0\.self_attn\.q_proj\.lora_A/,
    );
    expect(() => parsePeftAdapter({ ...adapterConfig, layers_to_transform: [7] }, weights, BASE)).toThrow(
      /layers_to_transform/,
    );
  });
});

describe('PEFT import validation', () => {
  const adapter = makeAdapter(['q_proj', 'down_proj']);
  const { adapterConfig, weights } = serializePeftAdapter(adapter);

  it.each([
    [{ peft_type: 'PREFIX_TUNING' }, /peft_type "PREFIX_TUNING" is not LORA/],
    [{ task_type: 'SEQ_CLS' }, /task_type/],
    [{ r: 0 }, /r must be a positive integer/],
    [{ r: 2.5 }, /r must be a positive integer/],
    [{ lora_alpha: 'x' }, /lora_alpha/],
    [{ lora_dropout: 1 }, /lora_dropout/],
    [{ use_rslora: 'yes' }, /use_rslora/],
    [{ bias: 'all' }, /bias "all" is not supported/],
    [{ fan_in_fan_out: true }, /fan_in_fan_out/],
    [{ use_dora: true }, /DoRA/],
    [{ lora_bias: true }, /lora_bias/],
    [{ exclude_modules: ['q_proj'] }, /exclude_modules/],
    [{ trainable_token_indices: [1, 2] }, /trainable_token_indices/],
    [{ target_parameters: ['mlp.experts.down_proj'] }, /target_parameters/],
    [{ rank_pattern: { q_proj: 0 } }, /rank_pattern\["q_proj"\] must be a positive integer/],
    [{ rank_pattern: ['q_proj'] }, /rank_pattern must be an object/],
    [{ alpha_pattern: { q_proj: -1 } }, /alpha_pattern\["q_proj"\] must be a positive number/],
    [{ rank_pattern: { '.*q_proj': 2 } }, /rank_pattern key ".\*q_proj" .*regex syntax is not supported/],
    [
      { alpha_pattern: { q_proj: 1e6 } },
      /q_proj gets lora_alpha 1000000 .*alpha_pattern "q_proj".* over the limit/,
    ],
    [{ modules_to_save: ['lm_head'] }, /modules_to_save/],
    [{ target_modules: ['q_proj', 'lm_head'] }, /target module "lm_head"/],
    [{ target_modules: '.*proj' }, /target module ".\*proj"/],
    [{ target_modules: [] }, /target_modules must be a non-empty list/],
  ])('refuses config %j', (patch, re) => {
    const err = catchErr(() => parsePeftAdapter({ ...adapterConfig, ...patch }, weights, BASE));
    expect(err).toBeInstanceOf(AdapterConfigError);
    expect(err).toBeInstanceOf(BadInputError);
    expect(err.message).toMatch(re);
  });

  it('refuses a rank that does not match r, naming the key and both shapes', () => {
    const err = catchErr(() => parsePeftAdapter({ ...adapterConfig, r: 4 }, weights, BASE));
    expect(err).toBeInstanceOf(AdapterShapeMismatchError);
    const e = err as AdapterShapeMismatchError;
    expect([e.key, e.actual, e.expected]).toEqual([
      'base_model.model.model.layers.0.mlp.down_proj.lora_A.weight',
      [2, 24],
      [4, 24],
    ]);
    expect(e.message).toBe(
      'adapter tensor base_model.model.model.layers.0.mlp.down_proj.lora_A.weight has shape [2, 24], the base model needs [4, 24]',
    );
  });

  it('refuses an adapter trained for a different base (dims do not fit)', () => {
    const other = parseModelConfig({
      model_type: 'llama',
      hidden_size: 32,
      intermediate_size: 24,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      vocab_size: 50,
    });
    const err = catchErr(() => parsePeftAdapter(adapterConfig, weights, other)) as AdapterShapeMismatchError;
    expect(err).toBeInstanceOf(AdapterShapeMismatchError);
    expect([err.actual, err.expected]).toEqual([
      [16, 2],
      [32, 2],
    ]);
  });

  const weightCases: Array<[string, (t: Record<string, TensorInput>) => void, RegExp, unknown]> = [
    [
      'an unknown key',
      (t) => (t['base_model.model.lm_head.weight'] = { dtype: 'F32', shape: [1], data: new Float32Array(1) }),
      /base_model\.model\.lm_head\.weight is not a PEFT LoRA key/,
      AdapterWeightsError,
    ],
    [
      'a DoRA magnitude vector',
      (t) =>
        (t['base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector'] = {
          dtype: 'F32',
          shape: [16],
          data: new Float32Array(16),
        }),
      /lora_magnitude_vector is not a PEFT LoRA key/,
      AdapterWeightsError,
    ],
    [
      'a module in the wrong parent',
      (t) => {
        t['base_model.model.model.layers.0.mlp.q_proj.lora_A.weight'] =
          t['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight']!;
        delete t['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'];
      },
      /unknown module mlp\.q_proj/,
      AdapterWeightsError,
    ],
    [
      'a layer out of range',
      (t) => {
        t['base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight'] =
          t['base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight']!;
      },
      /layer 2 is out of range \(base has 2\)/,
      AdapterWeightsError,
    ],
    [
      'a module not in target_modules',
      (t) =>
        (t['base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight'] = {
          dtype: 'F32',
          shape: [2, 16],
          data: new Float32Array(32),
        }),
      /k_proj is not in target_modules/,
      AdapterWeightsError,
    ],
    [
      'a missing B',
      (t) => delete t['base_model.model.model.layers.1.mlp.down_proj.lora_B.weight'],
      /missing base_model\.model\.model\.layers\.1\.mlp\.down_proj\.lora_B\.weight/,
      AdapterWeightsError,
    ],
    [
      'a missing A',
      (t) => delete t['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'],
      /missing base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight/,
      AdapterWeightsError,
    ],
    [
      'a NaN',
      (t) => {
        const a = new Float32Array(32);
        a[5] = NaN;
        t['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'] = {
          dtype: 'F32',
          shape: [2, 16],
          data: a,
        };
      },
      /non-finite value NaN at index 5/,
      AdapterWeightsError,
    ],
    [
      'an infinity',
      (t) => {
        const b = new Float32Array(32);
        b[0] = -Infinity;
        t['base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight'] = {
          dtype: 'F32',
          shape: [16, 2],
          data: b,
        };
      },
      /non-finite value -Infinity/,
      AdapterWeightsError,
    ],
    [
      'an integer dtype',
      (t) =>
        (t['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'] = {
          dtype: 'I32',
          shape: [2, 16],
          data: new Int32Array(32),
        }),
      /dtype I32 is not a float type/,
      AdapterWeightsError,
    ],
    [
      'a transposed A',
      (t) =>
        (t['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'] = {
          dtype: 'F32',
          shape: [16, 2],
          data: new Float32Array(32),
        }),
      /has shape \[16, 2\], the base model needs \[2, 16\]/,
      AdapterShapeMismatchError,
    ],
    [
      'a 3-d B',
      (t) =>
        (t['base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight'] = {
          dtype: 'F32',
          shape: [16, 2, 1],
          data: new Float32Array(32),
        }),
      /has shape \[16, 2, 1\]/,
      AdapterShapeMismatchError,
    ],
    [
      'a key given twice (with and without .default)',
      (t) => {
        t['base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight'] =
          t['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight']!;
      },
      /given twice/,
      AdapterWeightsError,
    ],
  ];

  it.each(weightCases)('refuses weights with %s', (_what, edit, re, cls) => {
    const bad = editWeights(weights, edit);
    const err = catchErr(() => parsePeftAdapter(adapterConfig, bad, BASE));
    expect(err).toBeInstanceOf(cls as typeof Error);
    expect(err).toBeInstanceOf(BadInputError);
    expect(err.message).toMatch(re);
  });

  it('refuses a corrupt weight file as a SafetensorsError (still BAD_USER_INPUT)', () => {
    const bad = weights.slice(0, weights.length - 1);
    const err = catchErr(() => parsePeftAdapter(adapterConfig, bad, BASE)) as BadInputError;
    expect(err.name).toBe('SafetensorsError');
    expect(err.code).toBe('BAD_USER_INPUT');
  });
});

describe('rank_pattern / alpha_pattern (per-module ranks and scales)', () => {
  const targets: LinearModule[] = ['q_proj', 'v_proj', 'down_proj'];
  /** A PEFT file whose (layer, module) has rank rankOf(layer, module); values 0.01·(index+1) per tensor. */
  function patternFile(rankOf: (l: number, m: LinearModule) => number): Uint8Array {
    const t: Record<string, TensorInput> = {};
    for (let l = 0; l < BASE.numLayers; l++) {
      for (const m of targets) {
        const { inFeatures, outFeatures } = linearShape(BASE, m);
        const r = rankOf(l, m);
        const vals = (n: number) => Float32Array.from({ length: n }, (_, i) => 0.01 * ((i % 7) - 3));
        t[peftWeightKey(l, m, 'A')] = { dtype: 'F32', shape: [r, inFeatures], data: vals(r * inFeatures) };
        t[peftWeightKey(l, m, 'B')] = { dtype: 'F32', shape: [outFeatures, r], data: vals(outFeatures * r) };
      }
    }
    return writeSafetensors(t, { format: 'pt' });
  }
  const config = {
    peft_type: 'LORA',
    r: 2,
    lora_alpha: 8,
    target_modules: targets,
    // First matching key wins; a key matches the whole path or a suffix that starts after a dot.
    rank_pattern: { 'model.layers.0.self_attn.q_proj': 1, q_proj: 3, 'mlp.down_proj': 4, proj: 9 },
    alpha_pattern: { 'layers.1.self_attn.q_proj': 6, 'layers\\.0\\.mlp\\.down_proj': 2 },
  };
  const rankOf = (l: number, m: LinearModule) =>
    m === 'q_proj' ? (l === 0 ? 1 : 3) : m === 'down_proj' ? 4 : 2;

  it("resolves each module's rank and alpha as PEFT's get_pattern_key does", () => {
    const adapter = parsePeftAdapter(config, patternFile(rankOf), BASE);
    const got = [...adapter.weights].map(([k, w]) => [k, moduleRank(adapter, w), moduleScale(adapter, w)]);
    expect(got).toEqual([
      ['0.q_proj', 1, 8 / 1],
      ['0.v_proj', 2, 8 / 2],
      ['0.down_proj', 4, 2 / 4],
      ['1.q_proj', 3, 6 / 3],
      ['1.v_proj', 2, 8 / 2],
      ['1.down_proj', 4, 8 / 4],
    ]);
    // Only what differs from r / lora_alpha is stored per module.
    expect(adapter.weights.get('0.v_proj')).not.toHaveProperty('rank');
    expect(adapter.weights.get('1.q_proj')).toMatchObject({ rank: 3, alpha: 6 });
    expect(maxModuleRank(adapter)).toBe(4);
    // loraDelta uses the module's own rank and scale.
    const w = adapter.weights.get('0.down_proj')!;
    const d = loraDelta(adapter, 0, 'down_proj');
    let x = 0;
    for (let r = 0; r < 4; r++) x += w.b[0 * 4 + r]! * w.a[r * 24 + 5]!;
    expectClose(d[5]!, 0.5 * x, { atol: 1e-9, rtol: 1e-6 });
  });

  it('round-trips: the writer emits one full-path key per module that differs, sorted', () => {
    const adapter = parsePeftAdapter(config, patternFile(rankOf), BASE);
    const s = serializePeftAdapter(adapter);
    expect(s.adapterConfig.rank_pattern).toEqual({
      'model.layers.0.mlp.down_proj': 4,
      'model.layers.0.self_attn.q_proj': 1,
      'model.layers.1.mlp.down_proj': 4,
      'model.layers.1.self_attn.q_proj': 3,
    });
    expect(Object.keys(s.adapterConfig.rank_pattern as object)).toEqual(
      Object.keys(s.adapterConfig.rank_pattern as object).sort(),
    );
    expect(s.adapterConfig.alpha_pattern).toEqual({
      'model.layers.0.mlp.down_proj': 2,
      'model.layers.1.self_attn.q_proj': 6,
    });
    const back = parsePeftAdapter(JSON.parse(JSON.stringify(s.adapterConfig)), s.weights, BASE);
    expect(back).toEqual(adapter);
  });

  it("refuses a tensor whose rank is not its module's pattern rank, naming the key", () => {
    const err = catchErr(() =>
      parsePeftAdapter(
        config,
        patternFile(() => 2),
        BASE,
      ),
    );
    expect(err).toBeInstanceOf(AdapterShapeMismatchError);
    expect(err.message).toBe(
      'adapter tensor base_model.model.model.layers.0.mlp.down_proj.lora_A.weight has shape [2, 24], the base model needs [4, 24]',
    );
  });
});

describe('loraDelta', () => {
  it('is scale · B · A, (out, in), on a hand-computed case', () => {
    const base = parseModelConfig({
      model_type: 'llama',
      hidden_size: 2,
      intermediate_size: 3,
      num_hidden_layers: 1,
      num_attention_heads: 1,
      vocab_size: 4,
    });
    // A (R=1, in=2) = [1, 2]; B (out=3, R=1) = [1, -1, 0.5]; alpha 2 → scale 2.
    const adapter: LoraAdapter = {
      rank: 1,
      alpha: 2,
      useRslora: false,
      scale: 2,
      dropout: 0,
      targetModules: ['up_proj'],
      baseModelName: null,
      weights: new Map([['0.up_proj', { a: new Float32Array([1, 2]), b: new Float32Array([1, -1, 0.5]) }]]),
    };
    const s = serializePeftAdapter(adapter);
    const parsed = parsePeftAdapter(s.adapterConfig, s.weights, base);
    expectClose(loraDelta(parsed, 0, 'up_proj'), [2, 4, -2, -4, 1, 2], { atol: 0, rtol: 0, label: 'ΔW' });
    expect(() => loraDelta(parsed, 0, 'down_proj')).toThrow(/no weights for layer 0 down_proj/);
  });
});

describe('parsePeftAdapterOffThread', () => {
  it('parses in a worker thread what the inline parser parses, and refuses what it refuses', async () => {
    const { adapterConfig, weights } = serializePeftAdapter(makeAdapter(['q_proj', 'v_proj']));
    const inline = parsePeftAdapter(adapterConfig, weights, BASE);
    // inlineBytes 0: even this small adapter goes through the thread; the caller's bytes stay usable (copied).
    const threaded = await parsePeftAdapterOffThread(adapterConfig, weights, BASE, { inlineBytes: 0 });
    expect(threaded).toEqual(inline);
    expect(parseSafetensors(weights).tensors.size).toBe(8);

    const nan = editWeights(weights, (t) => {
      const key = peftWeightKey(1, 'v_proj', 'B');
      const data = new Float32Array(t[key]!.data.slice().buffer);
      data[3] = Number.NaN;
      t[key] = { ...t[key]!, data: new Uint8Array(data.buffer) };
    });
    const inlineErr = catchErr(() => parsePeftAdapter(adapterConfig, nan, BASE));
    const threadErr = await parsePeftAdapterOffThread(adapterConfig, nan, BASE, { inlineBytes: 0 }).catch(
      (e: Error) => e,
    );
    expect(threadErr).toBeInstanceOf(AdapterWeightsError);
    expect((threadErr as Error).message).toBe(inlineErr.message);
    const badConfig = await parsePeftAdapterOffThread({ ...adapterConfig, r: 0 }, weights, BASE, {
      inlineBytes: 0,
    }).catch((e: Error) => e);
    expect(badConfig).toBeInstanceOf(AdapterConfigError);
  });
});
