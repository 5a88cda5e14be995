/**
 * The Llama serving graph for continuous batching: `buildServeGraph(config, weights, options)`. Each row of
 * a call is one sequence with its own cache slab in a shared pool (B, KVH, CAP, D); attention is
 * com.microsoft.GroupQueryAttention, which reads only each row's own valid prefix; the call's new K/V come
 * back as outputs and the caller appends them to the slabs. A call is either a decode step (S = 1 for every row) or a prefill chunk
 * (S new tokens per row after that row's cached prefix; right-padded when rows' chunks differ and their
 * caches are empty). The per-layer glue runs on onnxruntime's fused kernels (RotaryEmbedding,
 * SkipSimplifiedLayerNormalization) unless `fused: false` asks for the composites the training graph uses. Not the
 * training/reference graph (llama.ts), not the pool bookkeeping (src/inference/kv-pool.ts).
 *
 * Graph inputs: input_ids (B, S) int64 · position_ids (B, S) int64 · seqlens_k (B) int32 = row's cached
 *   length + S − 1 · total_sequence_length () int32 = max over rows of cached + S · last_index (B) int64 =
 *   b·S + the column whose logits are wanted · past.{l}.key/value (B, KVH, CAP, D)
 *   stacked LoRA: lora_slot (B) int64 · lora.{module}.col_slot (R_m) int64 · lora.{l}.{module}.A (R_m, in)
 *   · lora.{l}.{module}.B (R_m, out) (Bᵀ, scale folded in)
 * Graph outputs: logits (B, V) · new.{l}.key/value (B, S, KVH·D): this call's roped keys and values, which
 *   the caller appends to each row's slab (batch-step.ts); the pool is read as past, never written by ORT.
 */
import { Graph } from '../ir/graph.js';
import type { Value } from '../ir/types.js';
import { rmsNorm, rope, ropeTables, silu } from '../ir/composites.js';
import { LINEAR_MODULES, linearShape, ropeInvFreq } from '../formats/hf-config.js';
import type { LinearModule, ModelConfig } from '../formats/hf-config.js';
import { linear, type LoraTerm } from './linear.js';
import type { LayerWeights, LlamaWeights } from './weights.js';

export interface ServeGraphOptions {
  /** 'stacked': side-loaded adapters as column stacks + per-row slot. Default 'none'. */
  lora?: 'none' | 'stacked';
  /** Modules that take a stacked LoRA term; default all seven. */
  loraModules?: readonly LinearModule[];
  /**
   * Default true: the per-layer glue runs on onnxruntime's fused kernels — RotaryEmbedding over one cos/sin
   * cache (indexed by position_ids, shared by every layer), SkipSimplifiedLayerNormalization (residual add +
   * RMSNorm in one pass) and SimplifiedLayerNormalization. false: the composites the training graph uses
   * (rope tables + rotate_half, add, rmsNorm); kept so bench/serve-step.ts can build both in one run.
   */
  fused?: boolean;
  name?: string;
}

/** GroupQueryAttention's CPU kernel needs head_size % 8 == 0. */
export function supportsServeGraph(config: ModelConfig): boolean {
  return config.headDim % 8 === 0;
}

export function buildServeGraph(
  config: ModelConfig,
  weights: LlamaWeights,
  options: ServeGraphOptions = {},
): Graph {
  const g = new Graph(options.name ?? 'llama-serve');
  const { numLayers: L, hiddenSize: C, vocabSize: V, numHeads: H, numKvHeads: KVH, headDim: D } = config;
  const eps = config.rmsNormEps;
  const fused = options.fused ?? true;
  const inputIds = g.input('input_ids', 'int64', ['B', 'S']);
  const positionIds = g.input('position_ids', 'int64', ['B', 'S']);
  const seqlensK = g.input('seqlens_k', 'int32', ['B']);
  const total = g.input('total_sequence_length', 'int32', []);
  const lastIndex = g.input('last_index', 'int64', ['B']);

  const stacked = options.lora === 'stacked';
  const modules = options.loraModules ?? LINEAR_MODULES;
  /** Per module: (B, 1, R_m) float, 1 where column c belongs to row b's slot. */
  const masks = new Map<LinearModule, Value>();
  if (stacked) {
    /** (B, 1) */
    const rowSlot = g.unsqueeze(g.input('lora_slot', 'int64', ['B']), [1]);
    for (const m of modules) {
      /** (1, R_m) */
      const colSlot = g.unsqueeze(g.input(`lora.${m}.col_slot`, 'int64', [`R_${m}`]), [0]);
      masks.set(m, g.unsqueeze(g.cast(g.equal(rowSlot, colSlot), 'float32'), [1]));
    }
  }
  const loraFor = (
    l: number,
    m: LinearModule,
  ): { term: LoraTerm; site: { layer: number; module: LinearModule } } | undefined => {
    const mask = masks.get(m);
    if (!mask) return undefined;
    const { inFeatures, outFeatures } = linearShape(config, m);
    const a = g.input(`lora.${l}.${m}.A`, 'float32', [`R_${m}`, inFeatures]);
    const b = g.input(`lora.${l}.${m}.B`, 'float32', [`R_${m}`, outFeatures]);
    return { term: { kind: 'stacked', a, b, mask }, site: { layer: l, module: m } };
  };
  const proj = (lw: LayerWeights, l: number, m: LinearModule, x: Value) =>
    linear(g, x, lw.linear[m], linearShape(config, m), `l${l}.${m}`, lw.bias[m], loraFor(l, m));

  const f32 = (name: string, data: Float32Array, shape: number[]) =>
    g.initializer(name, { dtype: 'float32', shape, data });

  const invFreq = Float32Array.from(ropeInvFreq(config));
  /** x (B, S, heads·D) → roped, same shape. */
  let roped: (x: Value, heads: number) => Value;
  /** RMSNorm of the residual stream h (…, C). */
  let norm: (h: Value, w: Value) => Value;
  /** The residual add h + delta and the RMSNorm of the sum: [normed, sum]. */
  let addNorm: (h: Value, delta: Value, w: Value) => [Value, Value];
  if (fused) {
    // NOTE(fused): RotaryEmbedding reads cos/sin rows by position_ids, so one (P, D/2) table serves every layer.
    // It is computed per call for positions 0 … total_sequence_length − 1 (every position_ids entry is below it:
    // batch-step.ts), the same fp32 angle·invFreq → cos/sin as the composite's ropeTables: a few µs, nothing
    // stored per session, and no limit beyond the model's own context.
    const half = invFreq.length;
    /** (P, 1) */
    const positions = g.unsqueeze(
      g.cast(g.range(g.scalar(0, 'int64'), g.cast(total, 'int64'), g.scalar(1, 'int64')), 'float32'),
      [1],
    );
    /** (P, D/2) */
    const angles = g.mul(positions, g.constant(invFreq, [half]));
    const cosCache = g.cos(angles);
    const sinCache = g.sin(angles);
    roped = (x, heads) => g.op1('rotaryEmbedding', [x, positionIds, cosCache, sinCache], { numHeads: heads });
    norm = (h, w) => g.op1('simplifiedLayerNorm', [h, w], { epsilon: eps });
    addNorm = (h, delta, w) => {
      const [y, sum] = g.op('skipSimplifiedLayerNorm', [h, delta, w], { epsilon: eps });
      return [y!, sum!];
    };
  } else {
    const tables = ropeTables(g, positionIds, invFreq);
    /** (B, S, 1, D): broadcast over heads of (B, S, heads, D) */
    const cos = g.unsqueeze(tables.cos, [2]);
    const sin = g.unsqueeze(tables.sin, [2]);
    roped = (x, heads) => g.reshape(rope(g, g.reshape(x, [0, 0, heads, D]), cos, sin, D), [0, 0, heads * D]);
    norm = (h, w) => rmsNorm(g, h, w, eps);
    addNorm = (h, delta, w) => {
      const sum = g.add(h, delta);
      return [rmsNorm(g, sum, w, eps), sum];
    };
  }

  const embed = f32('embed_tokens', weights.embed, [V, C]);
  /** (B, S, C): the residual stream */
  let h = g.gather(embed, inputIds, 0);
  /** (B, S, C): the normed input of layer l */
  let x = norm(h, f32('l0.input_norm', weights.layers[0]!.inputNorm, [C]));
  /** (B, C): the normed last column of each row */
  let normed: Value | undefined;
  for (let l = 0; l < L; l++) {
    const lw = weights.layers[l]!;
    const pastKey = g.input(`past.${l}.key`, 'float32', ['B', KVH, 'CAP', D]);
    const pastValue = g.input(`past.${l}.value`, 'float32', ['B', KVH, 'CAP', D]);
    /** (B, S, KVH·D): this call's roped keys and values, which the caller writes into its pool. */
    const newKey = roped(proj(lw, l, 'k_proj', x), KVH);
    const newValue = proj(lw, l, 'v_proj', x);
    const [attn] = g.op(
      'groupQueryAttention',
      [roped(proj(lw, l, 'q_proj', x), H), newKey, newValue, pastKey, pastValue, seqlensK, total],
      {
        numHeads: H,
        kvNumHeads: KVH,
        // HF's sliding window lets a query see itself and the window − 1 keys before it.
        ...(config.slidingWindow === null ? {} : { localWindowSize: config.slidingWindow - 1 }),
      },
    ) as [Value, Value, Value];
    // NOTE(perf): GroupQueryAttention's present outputs are not fetched. onnxruntime-node returns every fetched
    // output as a fresh copy (B·KVH·CAP·D floats per layer, even when bound to a caller's buffer), which cost more
    // than the whole step; unfetched, the kernel copies only each row's valid prefix into its scratch present.
    g.output(newKey, `new.${l}.key`);
    g.output(newValue, `new.${l}.value`);
    const [y, hAttn] = addNorm(h, proj(lw, l, 'o_proj', attn), f32(`l${l}.post_norm`, lw.postNorm, [C]));
    const mlp = proj(
      lw,
      l,
      'down_proj',
      g.mul(silu(g, proj(lw, l, 'gate_proj', y)), proj(lw, l, 'up_proj', y)),
    );
    if (l + 1 < L) {
      [x, h] = addNorm(hAttn, mlp, f32(`l${l + 1}.input_norm`, weights.layers[l + 1]!.inputNorm, [C]));
    } else {
      // Only the wanted column of each row goes through the last residual add, the final norm and the head.
      /** (B, C) */
      const pick = (v: Value) => g.gather(g.reshape(v, [-1, C]), lastIndex, 0);
      const finalNorm = f32('final_norm', weights.finalNorm, [C]);
      normed = fused
        ? addNorm(pick(hAttn), pick(mlp), finalNorm)[0]
        : norm(pick(g.add(hAttn, mlp)), finalNorm);
    }
  }
  const head = weights.lmHead ? f32('lm_head', weights.lmHead, [V, C]) : embed;
  g.output(g.matMul(normed!, g.transpose(head, [1, 0])), 'logits');
  return g;
}
