/**
 * Hugging Face `config.json` of the Llama family (llama, mistral, qwen2; SmolLM and TinyLlama are `llama`)
 * → one normalized camelCase `ModelConfig`, with transformers' defaults applied exactly once, here.
 * Also the facts derived from it: RoPE inverse frequencies, linear-module shapes, tensor names, parameter
 * count. Not a weight loader: `checkpoint.ts` reads the safetensors and checks them against this config.
 */
import { BadInputError } from '../../shared/errors.js';

/** The model family or a feature of it is not something this engine implements. */
export class UnsupportedModelError extends BadInputError {}

/** A config.json that is malformed (wrong types, impossible sizes). */
export class ModelConfigError extends BadInputError {}

export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'dynamic'; factor: number }
  | {
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    };

export interface ModelConfig {
  modelType: string;
  architecture: string;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  maxPositionEmbeddings: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  tieWordEmbeddings: boolean;
  /** q, k, v carry a bias (and o too when `oProjBias`). */
  attentionBias: boolean;
  oProjBias: boolean;
  /** gate, up, down carry a bias. */
  mlpBias: boolean;
  bosTokenId: number | null;
  eosTokenIds: number[];
  slidingWindow: number | null;
  torchDtype: string | null;
}

export const LINEAR_MODULES = [
  'q_proj',
  'k_proj',
  'v_proj',
  'o_proj',
  'gate_proj',
  'up_proj',
  'down_proj',
] as const;
export type LinearModule = (typeof LINEAR_MODULES)[number];

export function isLinearModule(s: unknown): s is LinearModule {
  return typeof s === 'string' && (LINEAR_MODULES as readonly string[]).includes(s);
}

/** transformers' per-class defaults (LlamaConfig, MistralConfig, Qwen2Config __init__ signatures). */
interface FamilyDefaults {
  architecture: string;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  /** null: defaults to num_attention_heads. */
  numKvHeads: number | null;
  maxPositionEmbeddings: number;
  rmsNormEps: number;
  bosTokenId: number | null;
  eosTokenId: number | null;
  slidingWindow: number | null;
}

const FAMILIES: Record<string, FamilyDefaults> = {
  llama: {
    architecture: 'LlamaForCausalLM',
    vocabSize: 32000,
    hiddenSize: 4096,
    intermediateSize: 11008,
    numLayers: 32,
    numHeads: 32,
    numKvHeads: null,
    maxPositionEmbeddings: 2048,
    rmsNormEps: 1e-6,
    bosTokenId: 1,
    eosTokenId: 2,
    slidingWindow: null,
  },
  mistral: {
    architecture: 'MistralForCausalLM',
    vocabSize: 32000,
    hiddenSize: 4096,
    intermediateSize: 14336,
    numLayers: 32,
    numHeads: 32,
    numKvHeads: 8,
    maxPositionEmbeddings: 4096 * 32,
    rmsNormEps: 1e-6,
    bosTokenId: 1,
    eosTokenId: 2,
    slidingWindow: 4096,
  },
  qwen2: {
    architecture: 'Qwen2ForCausalLM',
    vocabSize: 151936,
    hiddenSize: 4096,
    intermediateSize: 22016,
    numLayers: 32,
    numHeads: 32,
    numKvHeads: 32,
    maxPositionEmbeddings: 32768,
    rmsNormEps: 1e-6,
    bosTokenId: null,
    eosTokenId: null,
    slidingWindow: 4096,
  },
};

type Raw = Record<string, unknown>;

function fail(msg: string): never {
  throw new ModelConfigError(`config.json: ${msg}`);
}

function posInt(raw: Raw, key: string, dflt: number | null): number {
  const v = raw[key] ?? dflt;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0)
    fail(`${key} must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

function posNum(raw: Raw, key: string, dflt: number): number {
  const v = raw[key] ?? dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
    fail(`${key} must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}

function bool(raw: Raw, key: string, dflt: boolean): boolean {
  const v = raw[key] ?? dflt;
  if (typeof v !== 'boolean') fail(`${key} must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}

function tokenId(v: unknown, key: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    fail(`${key} must be a token id, got ${JSON.stringify(v)}`);
  return v;
}

function parseRopeScaling(v: unknown, maxPos: number): RopeScaling | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) fail('rope_scaling must be an object or null');
  const r = v as Raw;
  // transformers reads `rope_type`, falling back to the legacy `type`.
  const type = r.rope_type ?? r.type;
  if (type === 'default') return null;
  const factor = (): number => posNum(r, 'factor', NaN);
  switch (type) {
    case 'linear':
      return { type: 'linear', factor: factor() };
    case 'dynamic':
      return { type: 'dynamic', factor: factor() };
    case 'llama3': {
      const s = {
        type: 'llama3' as const,
        factor: factor(),
        lowFreqFactor: posNum(r, 'low_freq_factor', NaN),
        highFreqFactor: posNum(r, 'high_freq_factor', NaN),
        originalMaxPositionEmbeddings: posInt(r, 'original_max_position_embeddings', maxPos),
      };
      if (s.highFreqFactor <= s.lowFreqFactor)
        fail('rope_scaling.high_freq_factor must exceed low_freq_factor');
      return s;
    }
    default:
      throw new UnsupportedModelError(
        `rope_scaling type ${JSON.stringify(type)} is not supported (linear, dynamic, llama3 are)`,
      );
  }
}

/** Parse and validate a Llama-family config.json (already JSON-decoded). */
export function parseModelConfig(json: unknown): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('not a JSON object');
  const raw = json as Raw;
  const modelType = raw.model_type;
  if (typeof modelType !== 'string') fail('model_type is missing');
  const fam = FAMILIES[modelType];
  if (!fam) {
    throw new UnsupportedModelError(
      `model_type ${JSON.stringify(modelType)} is not supported (${Object.keys(FAMILIES).join(', ')} are)`,
    );
  }
  const act = raw.hidden_act ?? 'silu';
  if (act !== 'silu')
    throw new UnsupportedModelError(`hidden_act ${JSON.stringify(act)} is not supported (only silu)`);
  const archs = raw.architectures;
  let architecture = fam.architecture;
  if (archs !== undefined && archs !== null) {
    if (!Array.isArray(archs) || archs.length === 0 || typeof archs[0] !== 'string')
      fail('architectures must be a list of names');
    architecture = archs[0] as string;
    if (!architecture.endsWith('ForCausalLM'))
      throw new UnsupportedModelError(`architecture ${architecture} is not a causal LM`);
  }

  const hiddenSize = posInt(raw, 'hidden_size', fam.hiddenSize);
  const numHeads = posInt(raw, 'num_attention_heads', fam.numHeads);
  const numKvHeads = posInt(raw, 'num_key_value_heads', fam.numKvHeads ?? numHeads);
  if (numHeads % numKvHeads !== 0)
    fail(`num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  if (raw.head_dim === undefined || raw.head_dim === null) {
    if (hiddenSize % numHeads !== 0)
      fail(`hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads}`);
  }
  const headDim = posInt(raw, 'head_dim', hiddenSize / numHeads);
  if (headDim % 2 !== 0) fail(`head_dim ${headDim} must be even for RoPE`);
  const prf = raw.partial_rotary_factor;
  if (prf !== undefined && prf !== null && prf !== 1)
    throw new UnsupportedModelError('partial_rotary_factor != 1 is not supported');
  const maxPositionEmbeddings = posInt(raw, 'max_position_embeddings', fam.maxPositionEmbeddings);

  const isQwen2 = modelType === 'qwen2';
  const isMistral = modelType === 'mistral';
  // Qwen2 has q/k/v biases and no o bias, unconditionally; Mistral has none; Llama's attention_bias covers all four.
  const attentionBias = isQwen2 ? true : isMistral ? false : bool(raw, 'attention_bias', false);
  const oProjBias = isQwen2 || isMistral ? false : attentionBias;
  const mlpBias = isQwen2 || isMistral ? false : bool(raw, 'mlp_bias', false);

  const bosRaw = raw.bos_token_id === undefined ? fam.bosTokenId : raw.bos_token_id;
  const bosTokenId = bosRaw === null ? null : tokenId(bosRaw, 'bos_token_id');
  const eosRaw = raw.eos_token_id === undefined ? fam.eosTokenId : raw.eos_token_id;
  const eosTokenIds =
    eosRaw === null
      ? []
      : Array.isArray(eosRaw)
        ? eosRaw.map((e, i) => tokenId(e, `eos_token_id[${i}]`))
        : [tokenId(eosRaw, 'eos_token_id')];

  let slidingWindow: number | null = null;
  if (isMistral) {
    slidingWindow = raw.sliding_window === null ? null : posInt(raw, 'sliding_window', fam.slidingWindow);
  } else if (isQwen2 && bool(raw, 'use_sliding_window', false)) {
    throw new UnsupportedModelError('qwen2 use_sliding_window=true is not supported');
  }

  // transformers v5 writes `rope_parameters: { rope_type, rope_theta, factor, ... }` instead of
  // `rope_theta` + `rope_scaling`; read whichever the file has.
  const rp = raw.rope_parameters;
  if (rp !== undefined && rp !== null && (typeof rp !== 'object' || Array.isArray(rp)))
    fail('rope_parameters must be an object');
  const rope: Raw = rp ? (rp as Raw) : raw;

  const dtype = raw.torch_dtype ?? raw.dtype ?? null;
  if (dtype !== null && typeof dtype !== 'string') fail('torch_dtype must be a string');

  return {
    modelType,
    architecture,
    hiddenSize,
    intermediateSize: posInt(raw, 'intermediate_size', fam.intermediateSize),
    numLayers: posInt(raw, 'num_hidden_layers', fam.numLayers),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: posInt(raw, 'vocab_size', fam.vocabSize),
    maxPositionEmbeddings,
    rmsNormEps: posNum(raw, 'rms_norm_eps', fam.rmsNormEps),
    ropeTheta: posNum(rope, 'rope_theta', 10000),
    ropeScaling:
      rope === raw
        ? parseRopeScaling(raw.rope_scaling, maxPositionEmbeddings)
        : parseRopeScaling({ rope_type: 'default', ...rope }, maxPositionEmbeddings),
    tieWordEmbeddings: bool(raw, 'tie_word_embeddings', false),
    attentionBias,
    oProjBias,
    mlpBias,
    bosTokenId,
    eosTokenIds,
    slidingWindow,
    torchDtype: dtype as string | null,
  };
}

/**
 * RoPE inverse frequencies, length headDim/2, as transformers' `ROPE_INIT_FUNCTIONS` compute them
 * (in float64 here; transformers uses float32, a relative difference below 1e-7).
 * `seqLen` matters only for `dynamic` scaling (NTK-aware base growth once seqLen > maxPositionEmbeddings).
 */
export function ropeInvFreq(config: ModelConfig, seqLen?: number): Float64Array {
  const dim = config.headDim;
  const s = config.ropeScaling;
  let base = config.ropeTheta;
  if (s?.type === 'dynamic' && seqLen !== undefined && seqLen > config.maxPositionEmbeddings) {
    base = base * ((s.factor * seqLen) / config.maxPositionEmbeddings - (s.factor - 1)) ** (dim / (dim - 2));
  }
  const inv = new Float64Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) inv[i] = 1 / base ** ((2 * i) / dim);
  if (s?.type === 'linear') {
    for (let i = 0; i < inv.length; i++) inv[i] = inv[i]! / s.factor;
  } else if (s?.type === 'llama3') {
    // transformers `_compute_llama3_parameters`: long wavelengths scaled by 1/factor, short kept, a smooth blend between.
    const lowFreqWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
    const highFreqWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
    for (let i = 0; i < inv.length; i++) {
      const f = inv[i]!;
      const wavelen = (2 * Math.PI) / f;
      if (wavelen > lowFreqWavelen) inv[i] = f / s.factor;
      else if (wavelen >= highFreqWavelen) {
        const smooth =
          (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) /
          (s.highFreqFactor - s.lowFreqFactor);
        inv[i] = ((1 - smooth) * f) / s.factor + smooth * f;
      }
    }
  }
  return inv;
}

/** Weight shape of a linear module: W is (outFeatures, inFeatures), y = x·Wᵀ. */
export function linearShape(
  config: ModelConfig,
  module: LinearModule,
): { inFeatures: number; outFeatures: number } {
  const C = config.hiddenSize;
  const q = config.numHeads * config.headDim;
  const kv = config.numKvHeads * config.headDim;
  switch (module) {
    case 'q_proj':
      return { inFeatures: C, outFeatures: q };
    case 'k_proj':
    case 'v_proj':
      return { inFeatures: C, outFeatures: kv };
    case 'o_proj':
      return { inFeatures: q, outFeatures: C };
    case 'gate_proj':
    case 'up_proj':
      return { inFeatures: C, outFeatures: config.intermediateSize };
    case 'down_proj':
      return { inFeatures: config.intermediateSize, outFeatures: C };
  }
}

/** `self_attn` or `mlp`: the submodule a linear module lives in. */
export function moduleParent(module: LinearModule): 'self_attn' | 'mlp' {
  return module === 'q_proj' || module === 'k_proj' || module === 'v_proj' || module === 'o_proj'
    ? 'self_attn'
    : 'mlp';
}

/** `model.layers.{i}.self_attn.q_proj.weight`, `model.layers.{i}.mlp.gate_proj.weight`. */
export function weightName(layer: number, module: LinearModule): string {
  return `model.layers.${layer}.${moduleParent(module)}.${module}.weight`;
}

export function biasName(layer: number, module: LinearModule): string {
  return `model.layers.${layer}.${moduleParent(module)}.${module}.bias`;
}

export function hasBias(config: ModelConfig, module: LinearModule): boolean {
  if (module === 'o_proj') return config.oProjBias;
  if (module === 'q_proj' || module === 'k_proj' || module === 'v_proj') return config.attentionBias;
  return config.mlpBias;
}

/** Every tensor a checkpoint of this config must hold, with its shape, in a stable order. */
export function expectedTensors(config: ModelConfig): Array<{ name: string; shape: number[] }> {
  const C = config.hiddenSize;
  const out: Array<{ name: string; shape: number[] }> = [
    { name: 'model.embed_tokens.weight', shape: [config.vocabSize, C] },
  ];
  for (let l = 0; l < config.numLayers; l++) {
    out.push({ name: `model.layers.${l}.input_layernorm.weight`, shape: [C] });
    out.push({ name: `model.layers.${l}.post_attention_layernorm.weight`, shape: [C] });
    for (const m of LINEAR_MODULES) {
      const { inFeatures, outFeatures } = linearShape(config, m);
      out.push({ name: weightName(l, m), shape: [outFeatures, inFeatures] });
      if (hasBias(config, m)) out.push({ name: biasName(l, m), shape: [outFeatures] });
    }
  }
  out.push({ name: 'model.norm.weight', shape: [C] });
  if (!config.tieWordEmbeddings) out.push({ name: 'lm_head.weight', shape: [config.vocabSize, C] });
  return out;
}

export function parameterCount(config: ModelConfig): number {
  let n = 0;
  for (const t of expectedTensors(config)) n += t.shape.reduce((a, b) => a * b, 1);
  return n;
}
