/**
 * Composite layers written over the primitive ops: silu, rmsNorm, rotateHalf/rope. They need no gradient
 * rule of their own — autodiff sees only the primitives they expand to. Model-level wiring (attention,
 * MLP, LoRA) is in ../nn/; the primitives are in graph.ts.
 */
import type { Graph } from './graph.js';
import type { Value } from './types.js';

/** silu(x) = x·σ(x). */
export function silu(g: Graph, x: Value): Value {
  return g.mul(x, g.sigmoid(x));
}

/**
 * RMSNorm as in HF Llama: x / sqrt(mean(x², -1) + eps) · w, computed in x's dtype (fp32 here).
 * Written as Pow → ReduceMean → Add → Sqrt → Div → Mul, the exact pattern onnxruntime fuses into one
 * SimplifiedLayerNormalization kernel. x: (…, C), w: (C).
 */
export function rmsNorm(g: Graph, x: Value, w: Value, eps: number): Value {
  const ms = g.reduceMean(g.pow(x, g.scalar(2)), [-1], true);
  return g.mul(g.div(x, g.sqrt(g.add(ms, g.scalar(eps)))), w);
}

/** HF rotate_half: [x1, x2] → [-x2, x1] over the last axis of width D (split at D/2). */
export function rotateHalf(g: Graph, x: Value, d: number): Value {
  const half = d / 2;
  const x1 = g.slice(x, [0], [half], [-1]);
  const x2 = g.slice(x, [half], [d], [-1]);
  return g.concat([g.neg(x2), x1], -1);
}

/** RoPE in the HF layout: x·cos + rotate_half(x)·sin; cos/sin broadcast to x, last axis D. */
export function rope(g: Graph, x: Value, cos: Value, sin: Value, d: number): Value {
  return g.add(g.mul(x, cos), g.mul(rotateHalf(g, x, d), sin));
}

/**
 * cos/sin tables from integer positions: angle = pos · invFreq, duplicated over both halves (HF's
 * `emb = cat(freqs, freqs)`), in fp32 like HF. positions: (B, T) int64 → cos, sin: (B, T, D).
 */
export function ropeTables(g: Graph, positions: Value, invFreq: Float32Array): { cos: Value; sin: Value } {
  const half = invFreq.length;
  const inv = g.constant(invFreq, [half]);
  /** (B, T, 1) */
  const pos = g.unsqueeze(g.cast(positions, 'float32'), [-1]);
  /** (B, T, D/2) */
  const freqs = g.mul(pos, inv);
  /** (B, T, D) */
  const emb = g.concat([freqs, freqs], -1);
  return { cos: g.cos(emb), sin: g.sin(emb) };
}
