/**
 * The Llama weights as the graph builder consumes them: fp32 norms/embeddings and, per layer, each linear
 * module as fp32 (out, in), NF4 (MatMulBnb4 layout) or int4 (MatMulNBits layout), plus optional biases.
 * `prepareWeights` turns a loaded checkpoint into this form, merging a LoRA adapter (W + s·B·A, in fp32,
 * BEFORE quantization) and quantizing. Not the graph (llama.ts), not the checkpoint reader (../formats/).
 */
import type { Checkpoint } from '../formats/checkpoint.js';
import { LINEAR_MODULES, biasName, hasBias, linearShape, weightName } from '../formats/hf-config.js';
import type { LinearModule, ModelConfig } from '../formats/hf-config.js';
import { loraKey, type LoraAdapter } from '../formats/peft.js';
import { quantizeInt4, type Int4Weight } from '../quant/int4.js';
import { quantizeNf4, type Nf4Weight } from '../quant/nf4.js';

export type Quantization = 'none' | 'nf4' | 'int4';

export type LinearWeight =
  | { kind: 'fp32'; /** (out, in) */ w: Float32Array }
  | { kind: 'nf4'; q: Nf4Weight }
  /** accuracyLevel: MatMulNBits' compute type; 4 = int8 activations (fast, ~1% logit error), 0 = fp32. */
  | { kind: 'int4'; q: Int4Weight; accuracyLevel?: number };

export interface LayerWeights {
  /** (C) */
  inputNorm: Float32Array;
  /** (C) */
  postNorm: Float32Array;
  linear: Record<LinearModule, LinearWeight>;
  /** (out) per module that has a bias (Qwen2 q/k/v). */
  bias: Partial<Record<LinearModule, Float32Array>>;
}

export interface LlamaWeights {
  /** (V, C) */
  embed: Float32Array;
  /** (V, C); null when tied to `embed`. */
  lmHead: Float32Array | null;
  /** (C) */
  finalNorm: Float32Array;
  layers: LayerWeights[];
}

export interface PrepareOptions {
  quantize?: Quantization;
  /** Merged into the fp32 weights before any quantization. */
  mergeAdapter?: LoraAdapter;
  /** int4 K-block; default 64. */
  int4BlockSize?: number;
  /** MatMulNBits accuracy_level; default 4 (int8 activations: the fast CPU path). */
  int4AccuracyLevel?: number;
}

/** W += s·B·A in place; W (out, in), A (R, in), B (out, R). */
export function mergeLora(
  w: Float32Array,
  a: Float32Array,
  b: Float32Array,
  rank: number,
  scale: number,
): void {
  const inF = a.length / rank;
  const outF = b.length / rank;
  const row = new Float64Array(inF);
  for (let o = 0; o < outF; o++) {
    row.fill(0);
    for (let r = 0; r < rank; r++) {
      const br = b[o * rank + r]!;
      if (br === 0) continue;
      const off = r * inF;
      for (let i = 0; i < inF; i++) row[i]! += br * a[off + i]!;
    }
    const wo = o * inF;
    for (let i = 0; i < inF; i++) w[wo + i]! += scale * row[i]!;
  }
}

function tensor(ckpt: Checkpoint, name: string): Float32Array {
  const t = ckpt.tensors.get(name);
  if (!t) throw new Error(`invariant failed: checkpoint lacks ${name} (loadCheckpoint checks the set)`);
  return t.data;
}

export function quantizeLinear(
  w: Float32Array,
  out: number,
  inF: number,
  q: Quantization,
  bs = 64,
  accuracyLevel = 4,
): LinearWeight {
  if (q === 'nf4') return { kind: 'nf4', q: quantizeNf4(w, out, inF) };
  if (q === 'int4') return { kind: 'int4', q: quantizeInt4(w, out, inF, { blockSize: bs }), accuracyLevel };
  return { kind: 'fp32', w };
}

/** Checkpoint (fp32 tensors) → builder weights. Copies a linear weight only when it merges into it. */
export function prepareWeights(ckpt: Checkpoint, options: PrepareOptions = {}): LlamaWeights {
  const config: ModelConfig = ckpt.config;
  const quant = options.quantize ?? 'none';
  const adapter = options.mergeAdapter;
  const layers: LayerWeights[] = [];
  for (let l = 0; l < config.numLayers; l++) {
    const linear = {} as Record<LinearModule, LinearWeight>;
    const bias: Partial<Record<LinearModule, Float32Array>> = {};
    for (const m of LINEAR_MODULES) {
      const { inFeatures, outFeatures } = linearShape(config, m);
      let w = tensor(ckpt, weightName(l, m));
      const lora = adapter?.weights.get(loraKey(l, m));
      if (adapter && lora) {
        w = Float32Array.from(w);
        mergeLora(w, lora.a, lora.b, adapter.rank, adapter.scale);
      }
      linear[m] = quantizeLinear(
        w,
        outFeatures,
        inFeatures,
        quant,
        options.int4BlockSize,
        options.int4AccuracyLevel,
      );
      if (hasBias(config, m)) bias[m] = tensor(ckpt, biasName(l, m));
    }
    layers.push({
      inputNorm: tensor(ckpt, `model.layers.${l}.input_layernorm.weight`),
      postNorm: tensor(ckpt, `model.layers.${l}.post_attention_layernorm.weight`),
      linear,
      bias,
    });
  }
  return {
    embed: tensor(ckpt, 'model.embed_tokens.weight'),
    lmHead: config.tieWordEmbeddings ? null : tensor(ckpt, 'lm_head.weight'),
    finalNorm: tensor(ckpt, 'model.norm.weight'),
    layers,
  };
}
