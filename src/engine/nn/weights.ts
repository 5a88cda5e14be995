/**
 * The Llama weights as the graph builder consumes them: fp32 norms/embeddings and, per layer, each linear
 * module as fp32 (out, in), NF4 (MatMulBnb4 layout) or int4 (MatMulNBits layout), plus optional biases.
 * `prepareWeights` turns a loaded checkpoint into this form: quantizing (NF4 optionally run as its exact fp32
 * dequantization) and merging a LoRA adapter either before quantization, Q(W + s·B·A), or onto the quantized
 * grid, dequant(Q(W)) + s·B·A (how a QLoRA adapter is served: it was trained against Q(W)).
 * Not the graph (llama.ts), not the checkpoint reader (../formats/).
 */
import type { Checkpoint } from '../formats/checkpoint.js';
import { LINEAR_MODULES, biasName, hasBias, linearShape, weightName } from '../formats/hf-config.js';
import type { LinearModule, ModelConfig } from '../formats/hf-config.js';
import { loraKey, moduleRank, moduleScale, type LoraAdapter } from '../formats/peft.js';
import { dequantizeInt4, quantizeInt4, type Int4Weight } from '../quant/int4.js';
import { dequantizeNf4, quantizeNf4, type Nf4Weight } from '../quant/nf4.js';

export type Quantization = 'none' | 'nf4' | 'int4';

/**
 * How NF4 weights run. 'bnb4': MatMulBnb4 over the packed codes (4.1 bits per weight in memory; the kernel to
 * use on a GPU). 'dequantized': fp32 weights equal to dequant(NF4(W)) — the values MatMulBnb4 (and the
 * trainer's forward) multiply by, to float rounding — as plain MatMuls: 8× the memory of the linears, about
 * 10× faster than MatMulBnb4 at batch 1 on CPU.
 */
export type Nf4Execution = 'bnb4' | 'dequantized';

/**
 * Where `mergeAdapter` goes relative to the quantization (the same thing when `quantize` is 'none').
 * 'merge-then-quantize': Q(W + s·B·A), one weight on the grid; right for an adapter trained on fp32 weights,
 * but the 4-bit rounding erases most of a small s·B·A. 'quantize-then-merge': dequant(Q(W)) + s·B·A in fp32
 * for each module the adapter targets (the others stay on the grid) — the weights a QLoRA adapter was
 * trained against plus its delta, exactly; those modules cost fp32 memory and run as fp32 MatMuls.
 */
export type MergeOrder = 'merge-then-quantize' | 'quantize-then-merge';

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
  /** With `quantize: 'nf4'`: MatMulBnb4 (default 'bnb4') or the exactly dequantized fp32 weights. */
  nf4Execution?: Nf4Execution;
  /** Merged into the linear weights it targets, before or after quantization (see `mergeOrder`). */
  mergeAdapter?: LoraAdapter;
  /** Default 'merge-then-quantize' (Q(W + s·B·A)); serving a QLoRA adapter wants 'quantize-then-merge'. */
  mergeOrder?: MergeOrder;
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

/** The (out, in) fp32 weight a linear stands for: itself, or the quantized format's dequantization. */
export function dequantizeLinear(w: LinearWeight): Float32Array {
  if (w.kind === 'nf4') return dequantizeNf4(w.q);
  if (w.kind === 'int4') return dequantizeInt4(w.q);
  return w.w;
}

/**
 * Checkpoint (fp32 tensors) → builder weights. Copies a linear weight only when it merges into it or is
 * dequantized (`nf4Execution: 'dequantized'`, `mergeOrder: 'quantize-then-merge'`).
 */
export function prepareWeights(ckpt: Checkpoint, options: PrepareOptions = {}): LlamaWeights {
  const config: ModelConfig = ckpt.config;
  const quant = options.quantize ?? 'none';
  const adapter = options.mergeAdapter;
  const onGrid = options.mergeOrder === 'quantize-then-merge' && quant !== 'none';
  const dequantNf4 = quant === 'nf4' && options.nf4Execution === 'dequantized';
  const onto = (w: Float32Array, out: number, inF: number) =>
    quantizeLinear(w, out, inF, quant, options.int4BlockSize, options.int4AccuracyLevel);
  const layers: LayerWeights[] = [];
  for (let l = 0; l < config.numLayers; l++) {
    const linear = {} as Record<LinearModule, LinearWeight>;
    const bias: Partial<Record<LinearModule, Float32Array>> = {};
    for (const m of LINEAR_MODULES) {
      const { inFeatures, outFeatures } = linearShape(config, m);
      let w = tensor(ckpt, weightName(l, m));
      const lora = adapter?.weights.get(loraKey(l, m));
      if (adapter && lora && onGrid) {
        // dequant(Q(W)) + s·B·A: a fresh fp32 array (dequantizeLinear never returns the checkpoint's).
        const merged = dequantizeLinear(onto(w, outFeatures, inFeatures));
        mergeLora(merged, lora.a, lora.b, moduleRank(adapter, lora), moduleScale(adapter, lora));
        linear[m] = { kind: 'fp32', w: merged };
      } else {
        if (adapter && lora) {
          w = Float32Array.from(w);
          mergeLora(w, lora.a, lora.b, moduleRank(adapter, lora), moduleScale(adapter, lora));
        }
        const q = onto(w, outFeatures, inFeatures);
        linear[m] = dequantNf4 ? { kind: 'fp32', w: dequantizeLinear(q) } : q;
      }
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
