/**
 * What a Llama-family model looks like inside GGUF, as llama.cpp's convert_hf_to_gguf.py writes it: the
 * `general.*` and `{arch}.*` hyperparameter keys, the tensor names (`token_embd.weight`,
 * `blk.N.attn_q.weight`, …) and the q/k row permutation `LlamaModel.permute` applies for llama.cpp's RoPE
 * layout (interleaved pairs instead of HF's rotate-half halves). Both directions: HF config → metadata and
 * back. The container is `gguf.ts`, the vocabulary `gguf-vocab.ts`.
 */
import { GgufError, GgufMetadata, type GgufTensorInfo, type GgufValue } from './gguf.js';
import { LINEAR_MODULES, moduleParent, type LinearModule, type ModelConfig } from './hf-config.js';
import { UnsupportedModelError } from './hf-config.js';

/** llama.cpp architectures this engine's models map to: Llama and Mistral are `llama`; Qwen2 is `qwen2`. */
export type GgufArch = 'llama' | 'qwen2';

export function ggufArchOf(config: ModelConfig): GgufArch {
  if (config.modelType === 'qwen2') return 'qwen2';
  if (config.modelType === 'llama' || config.modelType === 'mistral') return 'llama';
  throw new UnsupportedModelError(`model_type ${config.modelType} has no GGUF mapping here`);
}

/** Only `llama` stores q/k rows permuted; qwen2 runs NEOX-style RoPE on HF's layout as is. */
export function permutesQk(arch: GgufArch): boolean {
  return arch === 'llama';
}

const GGUF_MODULE: Readonly<Record<LinearModule, string>> = {
  q_proj: 'attn_q',
  k_proj: 'attn_k',
  v_proj: 'attn_v',
  o_proj: 'attn_output',
  gate_proj: 'ffn_gate',
  up_proj: 'ffn_up',
  down_proj: 'ffn_down',
};

/** HF tensor name → llama.cpp's, or null for a name outside the Llama layout. */
export function ggufTensorName(hf: string): string | null {
  if (hf === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (hf === 'model.norm.weight') return 'output_norm.weight';
  if (hf === 'lm_head.weight') return 'output.weight';
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hf);
  if (!m) return null;
  const [, layer, rest] = m;
  if (rest === 'input_layernorm.weight') return `blk.${layer}.attn_norm.weight`;
  if (rest === 'post_attention_layernorm.weight') return `blk.${layer}.ffn_norm.weight`;
  const lin = /^(self_attn|mlp)\.([a-z_]+)\.(weight|bias)$/.exec(rest!);
  if (!lin) return null;
  const mod = LINEAR_MODULES.find((x) => x === lin[2] && moduleParent(x) === lin[1]);
  return mod ? `blk.${layer}.${GGUF_MODULE[mod]}.${lin[3]}` : null;
}

/** llama.cpp tensor name → HF's, or null for a name outside the Llama layout. */
export function hfTensorName(gguf: string): string | null {
  if (gguf === 'token_embd.weight') return 'model.embed_tokens.weight';
  if (gguf === 'output_norm.weight') return 'model.norm.weight';
  if (gguf === 'output.weight') return 'lm_head.weight';
  const m = /^blk\.(0|[1-9]\d*)\.([a-z_]+)\.(weight|bias)$/.exec(gguf);
  if (!m) return null;
  const [, layer, part, kind] = m;
  if (kind === 'weight' && part === 'attn_norm') return `model.layers.${layer}.input_layernorm.weight`;
  if (kind === 'weight' && part === 'ffn_norm')
    return `model.layers.${layer}.post_attention_layernorm.weight`;
  const mod = LINEAR_MODULES.find((x) => GGUF_MODULE[x] === part);
  return mod ? `model.layers.${layer}.${moduleParent(mod)}.${mod}.${kind}` : null;
}

/** Which heads a q or k tensor is split into, or null for tensors that are not permuted. */
export function qkHeads(hf: string, config: ModelConfig): number | null {
  if (/\.self_attn\.q_proj\.(weight|bias)$/.test(hf)) return config.numHeads;
  if (/\.self_attn\.k_proj\.(weight|bias)$/.test(hf)) return config.numKvHeads;
  return null;
}

/**
 * `LlamaModel.permute`: rows (nHead, 2, D/2) → (nHead, D/2, 2), i.e. within each head the first-half and
 * second-half rows interleave. `cols` is 1 for a bias. Returns a new array.
 */
export function permuteQk(w: Float32Array, nHead: number, cols: number): Float32Array {
  return movePairs(w, nHead, cols, false);
}

/** The inverse of `permuteQk`: llama.cpp's interleaved rows back to HF's halves. */
export function unpermuteQk(w: Float32Array, nHead: number, cols: number): Float32Array {
  return movePairs(w, nHead, cols, true);
}

function movePairs(w: Float32Array, nHead: number, cols: number, inverse: boolean): Float32Array {
  const rows = w.length / cols;
  const half = rows / nHead / 2;
  if (!Number.isInteger(half))
    throw new Error(`invariant failed: ${rows} rows do not split into ${nHead} heads of even size`);
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHead; h++) {
    for (let j = 0; j < 2; j++) {
      for (let i = 0; i < half; i++) {
        const hf = h * 2 * half + j * half + i; // HF row: half j, index i
        const gg = h * 2 * half + i * 2 + j; // llama.cpp row: pair i, element j
        const [from, to] = inverse ? [gg, hf] : [hf, gg];
        out.set(w.subarray(from * cols, (from + 1) * cols), to * cols);
      }
    }
  }
  return out;
}

/** llama.cpp's `LLAMA_FTYPE_*` of a file whose 2-D weights are mostly `type`. */
export const FILE_TYPE: Readonly<Record<string, number>> = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 7 };

const u32 = (value: number): GgufValue => ({ type: 'uint32', value });
const f32 = (value: number): GgufValue => ({ type: 'float32', value });
const str = (value: string): GgufValue => ({ type: 'string', value });

/**
 * The general.* and {arch}.* keys convert_hf_to_gguf.py writes for this config (`set_gguf_parameters`,
 * `LlamaModel.set_gguf_parameters`). RoPE scaling: linear as keys; llama3 as a `rope_freqs` tensor (see
 * `llama3RopeFactors`); dynamic NTK has no llama.cpp equivalent and is refused.
 */
export function modelMetadata(
  config: ModelConfig,
  opts: { name: string; fileType: number; quantized: boolean },
): Array<[string, GgufValue]> {
  const arch = ggufArchOf(config);
  const s = config.ropeScaling;
  if (s?.type === 'dynamic')
    throw new UnsupportedModelError('rope_scaling dynamic has no llama.cpp equivalent: GGUF export refused');
  const out: Array<[string, GgufValue]> = [
    ['general.architecture', str(arch)],
    ['general.type', str('model')],
    ['general.name', str(opts.name)],
    ['general.file_type', u32(opts.fileType)],
    ['general.alignment', u32(32)],
  ];
  if (opts.quantized) out.push(['general.quantization_version', u32(2)]);
  out.push(
    [`${arch}.vocab_size`, u32(config.vocabSize)],
    [`${arch}.context_length`, u32(config.maxPositionEmbeddings)],
    [`${arch}.embedding_length`, u32(config.hiddenSize)],
    [`${arch}.block_count`, u32(config.numLayers)],
    [`${arch}.feed_forward_length`, u32(config.intermediateSize)],
    [`${arch}.attention.head_count`, u32(config.numHeads)],
    [`${arch}.attention.head_count_kv`, u32(config.numKvHeads)],
    [`${arch}.attention.key_length`, u32(config.headDim)],
    [`${arch}.attention.value_length`, u32(config.headDim)],
    [`${arch}.rope.dimension_count`, u32(config.headDim)],
    [`${arch}.rope.freq_base`, f32(config.ropeTheta)],
    [`${arch}.attention.layer_norm_rms_epsilon`, f32(config.rmsNormEps)],
  );
  if (s?.type === 'linear') {
    out.push([`${arch}.rope.scaling.type`, str('linear')], [`${arch}.rope.scaling.factor`, f32(s.factor)]);
  }
  return out;
}

/**
 * `LlamaModel.generate_extra_tensors`: per frequency the divisor llama.cpp applies for llama3 RoPE
 * scaling (1 for short wavelengths, `factor` for long ones, a blend between), or null without llama3 scaling.
 */
export function llama3RopeFactors(config: ModelConfig): Float32Array | null {
  const s = config.ropeScaling;
  if (s?.type !== 'llama3') return null;
  const dim = config.headDim;
  const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    const freq = Math.fround(1 / config.ropeTheta ** ((2 * i) / dim));
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = s.factor;
    else {
      const smooth =
        (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      out[i] = 1 / ((1 - smooth) / s.factor + smooth);
    }
  }
  return out;
}

/**
 * GGUF metadata + tensor infos → a config.json (snake_case, as transformers writes it) that
 * `parseModelConfig` accepts. Refuses architectures and features that have no HF Llama/Qwen2 equivalent here,
 * naming the key or tensor.
 */
export function configFromMetadata(
  meta: GgufMetadata,
  tensors: readonly GgufTensorInfo[],
  special: { bosTokenId: number | null; eosTokenId: number | null },
): { arch: GgufArch; rawConfig: Record<string, unknown> } {
  const arch = meta.string('general.architecture');
  if (arch === undefined)
    throw new GgufError('general.architecture is missing', { key: 'general.architecture' });
  if (arch !== 'llama' && arch !== 'qwen2') {
    throw new GgufError(
      `general.architecture ${JSON.stringify(arch)} is not supported (llama and qwen2 are)`,
      { key: 'general.architecture' },
    );
  }
  const need = (suffix: string): number => {
    const key = `${arch}.${suffix}`;
    const v = meta.uint(key);
    if (v === undefined || v === 0) throw new GgufError(`${key} is missing or zero`, { key });
    return v;
  };
  const byName = new Map(tensors.map((t) => [t.name, t]));
  if (byName.has('rope_freqs.weight')) {
    throw new GgufError('tensor rope_freqs.weight (llama3 RoPE scaling) cannot be imported', {
      tensor: 'rope_freqs.weight',
    });
  }
  const embd = byName.get('token_embd.weight');
  if (!embd) throw new GgufError('tensor token_embd.weight is missing', { tensor: 'token_embd.weight' });
  const hidden = need('embedding_length');
  const heads = need('attention.head_count');
  const kvHeads = meta.uint(`${arch}.attention.head_count_kv`) ?? heads;
  const headDim = meta.uint(`${arch}.attention.key_length`) ?? hidden / heads;
  const valueDim = meta.uint(`${arch}.attention.value_length`) ?? headDim;
  const ropeDim = meta.uint(`${arch}.rope.dimension_count`) ?? headDim;
  if (valueDim !== headDim) {
    throw new GgufError(`${arch}.attention.value_length ${valueDim} differs from key_length ${headDim}`, {
      key: `${arch}.attention.value_length`,
    });
  }
  if (ropeDim !== headDim) {
    throw new GgufError(
      `${arch}.rope.dimension_count ${ropeDim} is not the head size ${headDim} (partial RoPE is not supported)`,
      { key: `${arch}.rope.dimension_count` },
    );
  }
  const expertCount = meta.uint(`${arch}.expert_count`);
  if (expertCount !== undefined && expertCount > 0)
    throw new GgufError(`${arch}.expert_count ${expertCount}: mixture-of-experts models are not supported`, {
      key: `${arch}.expert_count`,
    });
  const raw: Record<string, unknown> = {
    architectures: [arch === 'qwen2' ? 'Qwen2ForCausalLM' : 'LlamaForCausalLM'],
    model_type: arch,
    hidden_size: hidden,
    intermediate_size: need('feed_forward_length'),
    num_hidden_layers: need('block_count'),
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    vocab_size: embd.shape[0],
    max_position_embeddings: need('context_length'),
    rms_norm_eps: meta.float(`${arch}.attention.layer_norm_rms_epsilon`) ?? 1e-6,
    rope_theta: meta.float(`${arch}.rope.freq_base`) ?? 10000,
    hidden_act: 'silu',
    tie_word_embeddings: !byName.has('output.weight'),
    bos_token_id: special.bosTokenId,
    eos_token_id: special.eosTokenId,
    torch_dtype: 'float32',
  };
  if (arch === 'llama') {
    raw.attention_bias = byName.has('blk.0.attn_q.bias');
    raw.mlp_bias = byName.has('blk.0.ffn_gate.bias');
  } else {
    raw.use_sliding_window = false;
  }
  const scaling = meta.string(`${arch}.rope.scaling.type`);
  if (scaling !== undefined && scaling !== 'none') {
    const factor = meta.float(`${arch}.rope.scaling.factor`);
    if (scaling !== 'linear' || factor === undefined) {
      throw new GgufError(
        `${arch}.rope.scaling.type ${JSON.stringify(scaling)} is not supported (linear is)`,
        {
          key: `${arch}.rope.scaling.type`,
        },
      );
    }
    raw.rope_scaling = { type: 'linear', factor };
  }
  return { arch, rawConfig: raw };
}
