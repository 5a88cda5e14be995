/**
 * The Llama family (Llama 2/3, Mistral, Qwen2, SmolLM, TinyLlama) written once as an IR graph:
 * `buildLlamaGraph(config, weights, options)`. Phases: 'prefill' (B, T new tokens, no cache), 'decode'
 * (B, T new tokens after P cached ones; T is usually 1), 'train' (like prefill, logits for every position,
 * LoRA A/B as graph inputs so autodiff can take gradients w.r.t. them). Not weight loading (weights.ts),
 * not the KV-cache bookkeeping (src/inference/kv-cache.ts), not the reference (reference.ts).
 *
 * Graph inputs (names are the contract with the inference layer and the trainer):
 *   input_ids (B, T) int64 · position_ids (B, T) int64 · attention_mask (B, P+T) int64, 1 = real token
 *   decode only: past.{l}.key, past.{l}.value (B, KVH, P, D) — cache slots, masked by attention_mask
 *   sideload:    lora_slot (B) int64; lora.{l}.{module}.A (S, R, in), lora.{l}.{module}.B (S, out, R)
 *   train:       lora.{l}.{module}.A (R, in), lora.{l}.{module}.B (out, R)
 * Graph outputs: logits (B, T, V), or (B, V) for the last column with `logits: 'last'`;
 *   prefill/decode: present.{l}.key, present.{l}.value (B, KVH, T, D) — this call's new K (roped) and V.
 */
import { Graph } from '../ir/graph.js';
import type { Value } from '../ir/types.js';
import { rmsNorm, rope, ropeTables, silu } from '../ir/composites.js';
import { LINEAR_MODULES, linearShape, ropeInvFreq } from '../formats/hf-config.js';
import type { LinearModule, ModelConfig } from '../formats/hf-config.js';
import { linear, type LoraSite, type LoraTerm } from './linear.js';
import type { LayerWeights, LlamaWeights } from './weights.js';

export type LlamaPhase = 'prefill' | 'decode' | 'train';

export type LoraGraphOption =
  | { kind: 'none' }
  /** Stacked adapters as inputs + a per-row slot. `modules` default: all seven. */
  | { kind: 'sideload'; modules?: readonly LinearModule[] }
  /** Trainable A/B inputs for `modules` in every layer (or `layers`). */
  | {
      kind: 'train';
      rank: number;
      scale: number;
      modules: readonly LinearModule[];
      layers?: readonly number[];
      /** Hook on each adapter input, e.g. dropout: `(g, x) => g.dropout(x, 0.05)[0]`. */
      adapterInput?: (g: Graph, x: Value, site: LoraSite) => Value;
    };

export interface LlamaGraphOptions {
  phase: LlamaPhase;
  lora?: LoraGraphOption;
  /** 'all' (B, T, V) or 'last' (B, V): only the last column (left-padded batches). Default 'all'. */
  logits?: 'all' | 'last';
  /** Graph name (appears in ORT errors). */
  name?: string;
}

export interface LlamaGraph {
  graph: Graph;
  inputIds: Value;
  positionIds: Value;
  attentionMask: Value;
  logits: Value;
  /** decode: per layer (B, KVH, P, D) */
  past: { key: Value; value: Value }[];
  /** prefill/decode: per layer (B, KVH, T, D) */
  present: { key: Value; value: Value }[];
  loraSlot: Value | undefined;
  /** Key `${layer}.${module}`: the A and B inputs (sideload stacks or trainable matrices). */
  lora: Map<string, { a: Value; b: Value }>;
}

export const NEG_INF = -1e9;

interface Ctx {
  g: Graph;
  config: ModelConfig;
  /** cos/sin (B, 1, 1, T, D), broadcast over (KVH, G) of q */
  ropeQ: { cos: Value; sin: Value };
  /** cos/sin (B, 1, T, D), broadcast over KVH of k */
  ropeK: { cos: Value; sin: Value };
  /** (B, 1, 1, T, P+T) bool: may query t attend key k. */
  allowed: Value;
  loraFor(layer: number, module: LinearModule): { term: LoraTerm; site: LoraSite } | undefined;
}

function proj(c: Ctx, lw: LayerWeights, l: number, m: LinearModule, x: Value): Value {
  const name = `l${l}.${m}`;
  return linear(c.g, x, lw.linear[m], linearShape(c.config, m), name, lw.bias[m], c.loraFor(l, m));
}

/** Which (query t, key k) pairs are visible: causal over P+T, padding from the mask, Mistral's window. */
function attentionAllowed(g: Graph, config: ModelConfig, inputIds: Value, mask: Value): Value {
  const t = g.squeeze(g.shape(inputIds, 1, 2), [0]);
  const k = g.squeeze(g.shape(mask, 1, 2), [0]);
  const one = g.scalar(1, 'int64');
  /** (T, 1): absolute cache index of each query = P + t */
  const qIdx = g.unsqueeze(g.range(g.sub(k, t), k, one), [1]);
  /** (1, P+T) */
  const kIdx = g.unsqueeze(g.range(g.scalar(0, 'int64'), k, one), [0]);
  let allowed = g.lessOrEqual(kIdx, qIdx);
  if (config.slidingWindow !== null) {
    // transformers' sliding-window overlay: kv_idx > q_idx - window.
    allowed = g.and(allowed, g.greater(kIdx, g.sub(qIdx, g.scalar(config.slidingWindow, 'int64'))));
  }
  /** (B, 1, 1, 1, P+T) */
  const pad = g.unsqueeze(g.cast(mask, 'bool'), [1, 2, 3]);
  return g.and(allowed, pad);
}

/** GQA attention. x (B, T, C) → (B, T, C); returns this call's roped K and V (B, KVH, T, D). */
function attention(
  c: Ctx,
  lw: LayerWeights,
  l: number,
  x: Value,
  past: { key: Value; value: Value } | undefined,
): { out: Value; key: Value; value: Value } {
  const { g, config } = c;
  const H = config.numHeads;
  const KVH = config.numKvHeads;
  const G = H / KVH;
  const D = config.headDim;
  // HF's repeat_kv: query head h uses kv head ⌊h / G⌋, so H·D splits as (KVH, G, D).
  /** (B, KVH, G, T, D) */
  const q = g.transpose(g.reshape(proj(c, lw, l, 'q_proj', x), [0, 0, KVH, G, D]), [0, 2, 3, 1, 4]);
  /** (B, KVH, T, D) */
  const k = g.transpose(g.reshape(proj(c, lw, l, 'k_proj', x), [0, 0, KVH, D]), [0, 2, 1, 3]);
  const v = g.transpose(g.reshape(proj(c, lw, l, 'v_proj', x), [0, 0, KVH, D]), [0, 2, 1, 3]);
  const qr = rope(g, q, c.ropeQ.cos, c.ropeQ.sin, D);
  const kr = rope(g, k, c.ropeK.cos, c.ropeK.sin, D);
  /** (B, KVH, P+T, D) */
  const kAll = past ? g.concat([past.key, kr], 2) : kr;
  const vAll = past ? g.concat([past.value, v], 2) : v;
  /** (B, KVH, 1, D, P+T) */
  const kT = g.unsqueeze(g.transpose(kAll, [0, 1, 3, 2]), [2]);
  /** (B, KVH, G, T, P+T) */
  const scores = g.matMul(g.mul(qr, g.scalar(1 / Math.sqrt(D))), kT);
  const probs = g.softmax(g.where(c.allowed, scores, g.scalar(NEG_INF)), -1);
  /** (B, KVH, G, T, D) */
  const ctx = g.matMul(probs, g.unsqueeze(vAll, [2]));
  /** (B, T, H·D) */
  const merged = g.reshape(g.transpose(ctx, [0, 3, 1, 2, 4]), [0, 0, H * D]);
  return { out: proj(c, lw, l, 'o_proj', merged), key: kr, value: v };
}

/** SwiGLU: down(silu(gate(x)) · up(x)). */
function mlp(c: Ctx, lw: LayerWeights, l: number, x: Value): Value {
  const gate = silu(c.g, proj(c, lw, l, 'gate_proj', x));
  return proj(c, lw, l, 'down_proj', c.g.mul(gate, proj(c, lw, l, 'up_proj', x)));
}

function f32(g: Graph, name: string, data: Float32Array, shape: number[]): Value {
  return g.initializer(name, { dtype: 'float32', shape, data });
}

export function buildLlamaGraph(
  config: ModelConfig,
  weights: LlamaWeights,
  options: LlamaGraphOptions,
): LlamaGraph {
  const g = new Graph(options.name ?? `llama-${options.phase}`);
  const { numLayers: L, hiddenSize: C, vocabSize: V, numKvHeads: KVH, headDim: D } = config;
  const inputIds = g.input('input_ids', 'int64', ['B', 'T']);
  const positionIds = g.input('position_ids', 'int64', ['B', 'T']);
  const attentionMask = g.input('attention_mask', 'int64', ['B', options.phase === 'decode' ? 'P+T' : 'T']);
  const past =
    options.phase === 'decode'
      ? Array.from({ length: L }, (_, l) => ({
          key: g.input(`past.${l}.key`, 'float32', ['B', KVH, 'P', D]),
          value: g.input(`past.${l}.value`, 'float32', ['B', KVH, 'P', D]),
        }))
      : [];

  const loraOpt = options.lora ?? { kind: 'none' };
  const lora = new Map<string, { a: Value; b: Value }>();
  const loraSlot = loraOpt.kind === 'sideload' ? g.input('lora_slot', 'int64', ['B']) : undefined;
  const loraFor = (layer: number, module: LinearModule): { term: LoraTerm; site: LoraSite } | undefined => {
    const site = { layer, module };
    const key = `${layer}.${module}`;
    const { inFeatures, outFeatures } = linearShape(config, module);
    if (loraOpt.kind === 'sideload') {
      if (!(loraOpt.modules ?? LINEAR_MODULES).includes(module)) return undefined;
      const a = g.input(`lora.${key}.A`, 'float32', ['S', 'R', inFeatures]);
      const b = g.input(`lora.${key}.B`, 'float32', ['S', outFeatures, 'R']);
      lora.set(key, { a, b });
      return { term: { kind: 'sideload', a, b, slot: loraSlot! }, site };
    }
    if (loraOpt.kind === 'train') {
      if (!loraOpt.modules.includes(module) || (loraOpt.layers && !loraOpt.layers.includes(layer)))
        return undefined;
      const a = g.input(`lora.${key}.A`, 'float32', [loraOpt.rank, inFeatures]);
      const b = g.input(`lora.${key}.B`, 'float32', [outFeatures, loraOpt.rank]);
      lora.set(key, { a, b });
      const term: LoraTerm = {
        kind: 'train',
        a,
        b,
        scale: loraOpt.scale,
        adapterInput: loraOpt.adapterInput,
      };
      return { term, site };
    }
    return undefined;
  };

  const { cos, sin } = ropeTables(g, positionIds, Float32Array.from(ropeInvFreq(config)));
  // Shared by every layer: the tables, unsqueezed once for k (B, 1, T, D) and q (B, 1, 1, T, D).
  const ropeK = { cos: g.unsqueeze(cos, [1]), sin: g.unsqueeze(sin, [1]) };
  const ropeQ = { cos: g.unsqueeze(ropeK.cos, [1]), sin: g.unsqueeze(ropeK.sin, [1]) };
  const allowed = attentionAllowed(g, config, inputIds, attentionMask);
  const c: Ctx = { g, config, ropeQ, ropeK, allowed, loraFor };

  /** (B, T, C) */
  const embed = f32(g, 'embed_tokens', weights.embed, [V, C]);
  let h = g.gather(embed, inputIds, 0);
  const present: { key: Value; value: Value }[] = [];
  for (let l = 0; l < L; l++) {
    const lw = weights.layers[l]!;
    const a = attention(
      c,
      lw,
      l,
      rmsNorm(g, h, f32(g, `l${l}.input_norm`, lw.inputNorm, [C]), config.rmsNormEps),
      past[l],
    );
    h = g.add(h, a.out);
    present.push({ key: a.key, value: a.value });
    h = g.add(
      h,
      mlp(c, lw, l, rmsNorm(g, h, f32(g, `l${l}.post_norm`, lw.postNorm, [C]), config.rmsNormEps)),
    );
  }
  if (options.logits === 'last') h = g.squeeze(g.slice(h, [-1], [Number.MAX_SAFE_INTEGER], [1]), [1]);
  h = rmsNorm(g, h, f32(g, 'final_norm', weights.finalNorm, [C]), config.rmsNormEps);
  // Tied heads reuse the embedding initializer; the Transpose is folded by onnxruntime at load.
  /** (V, C) */
  const head = weights.lmHead ? f32(g, 'lm_head', weights.lmHead, [V, C]) : embed;
  const logits = g.output(g.matMul(h, g.transpose(head, [1, 0])), 'logits');
  if (options.phase !== 'train') {
    present.forEach((p, l) => {
      p.key = g.output(p.key, `present.${l}.key`);
      p.value = g.output(p.value, `present.${l}.value`);
    });
  }
  return {
    graph: g,
    inputIds,
    positionIds,
    attentionMask,
    logits,
    past,
    present: options.phase === 'train' ? [] : present,
    loraSlot,
    lora,
  };
}
