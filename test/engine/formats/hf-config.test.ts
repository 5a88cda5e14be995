/**
 * config.json parsing for real Llama-family configs (written inline, as published on the Hub), the
 * transformers defaults, rejection of what the engine cannot run, RoPE frequencies with scaling, and
 * parameter counts against the published totals. Source: src/engine/formats/hf-config.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  LINEAR_MODULES,
  ModelConfigError,
  UnsupportedModelError,
  expectedTensors,
  linearShape,
  parameterCount,
  parseModelConfig,
  ropeInvFreq,
  weightName,
  type ModelConfig,
} from '../../../src/engine/formats/hf-config.js';
import { BadInputError } from '../../../src/shared/errors.js';
import { expectClose } from '../../helpers/expect-close.js';

const TINYLLAMA = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 5632,
  max_position_embeddings: 2048,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 22,
  num_key_value_heads: 4,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: null,
  rope_theta: 10000.0,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  use_cache: true,
  vocab_size: 32000,
};

const SMOLLM_135M = {
  architectures: ['LlamaForCausalLM'],
  bos_token_id: 0,
  eos_token_id: 0,
  hidden_act: 'silu',
  hidden_size: 576,
  intermediate_size: 1536,
  max_position_embeddings: 2048,
  model_type: 'llama',
  num_attention_heads: 9,
  num_hidden_layers: 30,
  num_key_value_heads: 3,
  rms_norm_eps: 1e-5,
  rope_theta: 10000.0,
  tie_word_embeddings: true,
  torch_dtype: 'float32',
  vocab_size: 49152,
};

const MISTRAL_7B = {
  architectures: ['MistralForCausalLM'],
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 4096,
  intermediate_size: 14336,
  max_position_embeddings: 32768,
  model_type: 'mistral',
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_theta: 1000000.0,
  sliding_window: null,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  vocab_size: 32000,
};

const QWEN2_05B = {
  architectures: ['Qwen2ForCausalLM'],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151643,
  hidden_act: 'silu',
  hidden_size: 896,
  initializer_range: 0.02,
  intermediate_size: 4864,
  max_position_embeddings: 131072,
  max_window_layers: 24,
  model_type: 'qwen2',
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 131072,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  use_sliding_window: false,
  vocab_size: 151936,
};

const LLAMA31_8B = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  hidden_act: 'silu',
  hidden_size: 4096,
  intermediate_size: 14336,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_scaling: {
    factor: 8.0,
    low_freq_factor: 1.0,
    high_freq_factor: 4.0,
    original_max_position_embeddings: 8192,
    rope_type: 'llama3',
  },
  rope_theta: 500000.0,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  vocab_size: 128256,
};

describe('parseModelConfig', () => {
  it('parses TinyLlama (llama, GQA, untied) to the whole normalized config', () => {
    expect(parseModelConfig(TINYLLAMA)).toEqual({
      modelType: 'llama',
      architecture: 'LlamaForCausalLM',
      hiddenSize: 2048,
      intermediateSize: 5632,
      numLayers: 22,
      numHeads: 32,
      numKvHeads: 4,
      headDim: 64,
      vocabSize: 32000,
      maxPositionEmbeddings: 2048,
      rmsNormEps: 1e-5,
      ropeTheta: 10000,
      ropeScaling: null,
      tieWordEmbeddings: false,
      attentionBias: false,
      oProjBias: false,
      mlpBias: false,
      bosTokenId: 1,
      eosTokenIds: [2],
      slidingWindow: null,
      torchDtype: 'bfloat16',
    } satisfies ModelConfig);
  });

  it('parses Qwen2: q/k/v biases on, o bias off, no sliding window', () => {
    const c = parseModelConfig(QWEN2_05B);
    expect({
      a: c.attentionBias,
      o: c.oProjBias,
      m: c.mlpBias,
      sw: c.slidingWindow,
      hd: c.headDim,
      tie: c.tieWordEmbeddings,
    }).toEqual({
      a: true,
      o: false,
      m: false,
      sw: null,
      hd: 64,
      tie: true,
    });
    expect(
      expectedTensors(c).filter((t) => t.name.startsWith('model.layers.0.') && t.name.endsWith('.bias')),
    ).toEqual([
      { name: 'model.layers.0.self_attn.q_proj.bias', shape: [896] },
      { name: 'model.layers.0.self_attn.k_proj.bias', shape: [128] },
      { name: 'model.layers.0.self_attn.v_proj.bias', shape: [128] },
    ]);
    expect(() => parseModelConfig({ ...QWEN2_05B, use_sliding_window: true })).toThrow(UnsupportedModelError);
  });

  it('parses Mistral: sliding window null stays null, default 4096 when absent', () => {
    expect(parseModelConfig(MISTRAL_7B).slidingWindow).toBeNull();
    const { sliding_window: _sw, num_key_value_heads: _kv, ...rest } = MISTRAL_7B;
    const c = parseModelConfig(rest);
    expect([c.slidingWindow, c.numKvHeads, c.architecture]).toEqual([4096, 8, 'MistralForCausalLM']);
  });

  it('applies LlamaConfig defaults exactly (Llama-2-7B shape from an empty llama config)', () => {
    const c = parseModelConfig({ model_type: 'llama' });
    expect(c).toEqual({
      modelType: 'llama',
      architecture: 'LlamaForCausalLM',
      hiddenSize: 4096,
      intermediateSize: 11008,
      numLayers: 32,
      numHeads: 32,
      numKvHeads: 32,
      headDim: 128,
      vocabSize: 32000,
      maxPositionEmbeddings: 2048,
      rmsNormEps: 1e-6,
      ropeTheta: 10000,
      ropeScaling: null,
      tieWordEmbeddings: false,
      attentionBias: false,
      oProjBias: false,
      mlpBias: false,
      bosTokenId: 1,
      eosTokenIds: [2],
      slidingWindow: null,
      torchDtype: null,
    } satisfies ModelConfig);
    // Qwen2 defaults: kv heads 32, rope_theta 10000, no bos/eos.
    const q = parseModelConfig({ model_type: 'qwen2' });
    expect([q.numKvHeads, q.ropeTheta, q.bosTokenId, q.eosTokenIds, q.vocabSize]).toEqual([
      32,
      10000,
      null,
      [],
      151936,
    ]);
  });

  it('takes an explicit head_dim, eos lists, attention_bias and mlp_bias for llama', () => {
    const c = parseModelConfig({
      ...SMOLLM_135M,
      head_dim: 32,
      attention_bias: true,
      mlp_bias: true,
      eos_token_id: [0, 5],
    });
    expect([c.headDim, c.attentionBias, c.oProjBias, c.mlpBias, c.eosTokenIds]).toEqual([
      32,
      true,
      true,
      true,
      [0, 5],
    ]);
    expect(linearShape(c, 'q_proj')).toEqual({ inFeatures: 576, outFeatures: 9 * 32 });
    expect(linearShape(c, 'o_proj')).toEqual({ inFeatures: 9 * 32, outFeatures: 576 });
    expect(
      expectedTensors(c)
        .filter((t) => t.name.startsWith('model.layers.0.') && t.name.endsWith('.bias'))
        .map((t) => t.name),
    ).toEqual(LINEAR_MODULES.map((m) => weightName(0, m).replace(/weight$/, 'bias')));
  });

  it('rejects unsupported families and features with UnsupportedModelError (a BadInputError)', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ ...TINYLLAMA, model_type: 'gpt2' }, /model_type "gpt2" is not supported/],
      [{ ...TINYLLAMA, hidden_act: 'gelu' }, /hidden_act "gelu"/],
      [{ ...TINYLLAMA, rope_scaling: { type: 'yarn', factor: 4 } }, /rope_scaling type "yarn"/],
      [{ ...TINYLLAMA, architectures: ['LlamaForSequenceClassification'] }, /not a causal LM/],
      [{ ...TINYLLAMA, partial_rotary_factor: 0.5 }, /partial_rotary_factor/],
    ];
    for (const [json, re] of cases) {
      expect(() => parseModelConfig(json)).toThrow(UnsupportedModelError);
      expect(() => parseModelConfig(json)).toThrow(re);
    }
  });

  it('rejects malformed configs with ModelConfigError', () => {
    const cases: Array<[unknown, RegExp]> = [
      [null, /not a JSON object/],
      [[], /not a JSON object/],
      [{}, /model_type is missing/],
      [{ ...TINYLLAMA, hidden_size: 0 }, /hidden_size must be a positive integer/],
      [{ ...TINYLLAMA, hidden_size: '2048' }, /hidden_size/],
      [{ ...TINYLLAMA, num_hidden_layers: 2.5 }, /num_hidden_layers/],
      [{ ...TINYLLAMA, num_key_value_heads: 5 }, /not a multiple of num_key_value_heads/],
      [{ ...TINYLLAMA, hidden_size: 2050 }, /not divisible/],
      [{ ...TINYLLAMA, head_dim: 63 }, /must be even/],
      [{ ...TINYLLAMA, rms_norm_eps: -1 }, /rms_norm_eps/],
      [{ ...TINYLLAMA, tie_word_embeddings: 'yes' }, /tie_word_embeddings must be a boolean/],
      [{ ...TINYLLAMA, eos_token_id: [2, -1] }, /eos_token_id\[1\]/],
      [{ ...TINYLLAMA, rope_scaling: { type: 'linear' } }, /factor/],
      [{ ...TINYLLAMA, rope_scaling: 'linear' }, /rope_scaling must be an object/],
    ];
    for (const [json, re] of cases) {
      let err: unknown;
      try {
        parseModelConfig(json);
      } catch (e) {
        err = e;
      }
      expect(err, String(re)).toBeInstanceOf(ModelConfigError);
      expect(err).toBeInstanceOf(BadInputError);
      expect((err as Error).message).toMatch(re);
    }
  });
});

describe('parameterCount matches the published totals', () => {
  it.each([
    ['Llama-2-7B (defaults)', { model_type: 'llama' }, 6_738_415_616],
    ['TinyLlama-1.1B', TINYLLAMA, 1_100_048_384],
    ['SmolLM-135M', SMOLLM_135M, 134_515_008],
    ['Mistral-7B', MISTRAL_7B, 7_241_732_096],
    ['Qwen2-0.5B', QWEN2_05B, 494_032_768],
    ['Llama-3.1-8B', LLAMA31_8B, 8_030_261_248],
  ])('%s', (_name, json, count) => {
    expect(parameterCount(parseModelConfig(json))).toBe(count);
  });
});

describe('ropeInvFreq', () => {
  it('is theta^(-2i/d) without scaling', () => {
    const c = parseModelConfig(TINYLLAMA);
    const inv = ropeInvFreq(c);
    expect(inv.length).toBe(32);
    expectClose(
      inv,
      Array.from({ length: 32 }, (_, i) => Math.pow(10000, -(2 * i) / 64)),
      { atol: 0, rtol: 1e-15 },
    );
  });

  it('divides by the factor for linear scaling', () => {
    const c = parseModelConfig({ ...TINYLLAMA, rope_scaling: { type: 'linear', factor: 4 } });
    expect(c.ropeScaling).toEqual({ type: 'linear', factor: 4 });
    expectClose(
      ropeInvFreq(c),
      Array.from(ropeInvFreq(parseModelConfig(TINYLLAMA)), (f) => f / 4),
      { atol: 0, rtol: 1e-15 },
    );
  });

  it('applies Llama 3.1 scaling: high frequencies kept, low divided by 8, a smooth band between', () => {
    const c = parseModelConfig(LLAMA31_8B);
    expect(c.ropeScaling).toEqual({
      type: 'llama3',
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 8192,
    });
    const inv = ropeInvFreq(c);
    const plain = Array.from({ length: 64 }, (_, i) => Math.pow(500000, -(2 * i) / 128));
    // wavelength 2π/f: below 8192/4 = 2048 kept; above 8192 divided by 8.
    const kept = plain.map((f, i) => [f, i] as const).filter(([f]) => (2 * Math.PI) / f < 2048);
    const divided = plain.map((f, i) => [f, i] as const).filter(([f]) => (2 * Math.PI) / f > 8192);
    expect(kept.length).toBe(29);
    expect(divided.length).toBe(29);
    for (const [f, i] of kept) expect(inv[i]).toBeCloseTo(f, 15);
    for (const [f, i] of divided) expect(inv[i]! / (f / 8)).toBeCloseTo(1, 12);
    // A medium band element, by the paper's formula: s = (8192/λ − 1)/3; f' = (1−s)·f/8 + s·f.
    const i = 31;
    const lambda = (2 * Math.PI) / plain[i]!;
    expect(lambda > 2048 && lambda < 8192).toBe(true);
    const s = (8192 / lambda - 1) / 3;
    expect(inv[i]! / ((1 - s) * (plain[i]! / 8) + s * plain[i]!)).toBeCloseTo(1, 12);
  });

  it('grows the base for dynamic NTK scaling only past max_position_embeddings', () => {
    const c = parseModelConfig({ ...TINYLLAMA, rope_scaling: { type: 'dynamic', factor: 2 } });
    expectClose(ropeInvFreq(c, 2048), ropeInvFreq(parseModelConfig(TINYLLAMA)), { atol: 0, rtol: 0 });
    const base = 10000 * ((2 * 4096) / 2048 - 1) ** (64 / 62);
    expectClose(
      ropeInvFreq(c, 4096),
      Array.from({ length: 32 }, (_, i) => Math.pow(base, -(2 * i) / 64)),
      { atol: 0, rtol: 1e-13 },
    );
  });
});

describe('transformers v5 rope_parameters', () => {
  it('reads rope_theta and scaling from rope_parameters', () => {
    const { rope_theta: _t, rope_scaling: _s, ...rest } = LLAMA31_8B;
    const v5 = parseModelConfig({
      ...rest,
      rope_parameters: { ...LLAMA31_8B.rope_scaling, rope_theta: 500000.0 },
    });
    const v4 = parseModelConfig(LLAMA31_8B);
    expect(v5).toEqual(v4);
    const plain = parseModelConfig({
      ...TINYLLAMA,
      rope_theta: undefined,
      rope_parameters: { rope_type: 'default', rope_theta: 1e6 },
    });
    expect([plain.ropeTheta, plain.ropeScaling]).toEqual([1e6, null]);
    const untyped = parseModelConfig({ ...TINYLLAMA, rope_parameters: { rope_theta: 5e5 } });
    expect([untyped.ropeTheta, untyped.ropeScaling]).toEqual([5e5, null]);
    expect(() =>
      parseModelConfig({ ...TINYLLAMA, rope_parameters: { rope_type: 'yarn', factor: 2 } }),
    ).toThrow(UnsupportedModelError);
  });
});
