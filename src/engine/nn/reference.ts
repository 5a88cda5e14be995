/**
 * The correctness oracle: a plain TypeScript float64 forward of the Llama family, one sequence at a time,
 * straight from the checkpoint's tensors (HF names), with its own KV cache and an optional LoRA adapter
 * applied UNMERGED (x·Aᵀ·Bᵀ·s). Deliberately shares no code with the graph builder (llama.ts) except the
 * config parser and ropeInvFreq. Slow by design: tiny models and tests only.
 */
import type { LinearModule, ModelConfig } from '../formats/hf-config.js';
import { biasName, hasBias, linearShape, ropeInvFreq, weightName } from '../formats/hf-config.js';
import { loraKey, moduleRank, moduleScale, type LoraAdapter } from '../formats/peft.js';

export interface RefTensor {
  shape: readonly number[];
  data: Float32Array;
}

/** y = W·x (+ b), W (out, in) row-major. */
function matVec(w: Float32Array, x: Float64Array, outF: number, inF: number, b?: Float32Array): Float64Array {
  const y = new Float64Array(outF);
  for (let o = 0; o < outF; o++) {
    let s = 0;
    const off = o * inF;
    for (let i = 0; i < inF; i++) s += w[off + i]! * x[i]!;
    y[o] = s + (b ? b[o]! : 0);
  }
  return y;
}

function rmsNorm(x: Float64Array, w: Float32Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * inv * w[i]!);
}

/** HF rotate_half RoPE on each head of width D, in place. */
function applyRope(x: Float64Array, heads: number, d: number, pos: number, invFreq: Float64Array): void {
  const half = d / 2;
  for (let h = 0; h < heads; h++) {
    const o = h * d;
    for (let i = 0; i < half; i++) {
      // fp32 angle, as HF computes position·inv_freq in float32.
      const ang = Math.fround(pos * Math.fround(invFreq[i]!));
      const c = Math.cos(ang);
      const s = Math.sin(ang);
      const x1 = x[o + i]!;
      const x2 = x[o + i + half]!;
      x[o + i] = x1 * c - x2 * s;
      x[o + i + half] = x2 * c + x1 * s;
    }
  }
}

export class ReferenceModel {
  /** Per layer: cached keys/values, one (KVH·D) vector per position. */
  private readonly keys: Float64Array[][];
  private readonly values: Float64Array[][];
  private readonly invFreq: Float64Array;

  constructor(
    readonly config: ModelConfig,
    private readonly tensors: ReadonlyMap<string, RefTensor>,
    private readonly adapter?: LoraAdapter,
  ) {
    this.keys = Array.from({ length: config.numLayers }, () => []);
    this.values = Array.from({ length: config.numLayers }, () => []);
    this.invFreq = ropeInvFreq(config);
  }

  get length(): number {
    return this.keys[0]!.length;
  }

  private t(name: string): Float32Array {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`reference: missing tensor ${name}`);
    return t.data;
  }

  private linear(l: number, m: LinearModule, x: Float64Array): Float64Array {
    const { inFeatures, outFeatures } = linearShape(this.config, m);
    const b = hasBias(this.config, m) ? this.t(biasName(l, m)) : undefined;
    const y = matVec(this.t(weightName(l, m)), x, outFeatures, inFeatures, b);
    const lw = this.adapter?.weights.get(loraKey(l, m));
    if (this.adapter && lw) {
      const R = moduleRank(this.adapter, lw);
      const scale = moduleScale(this.adapter, lw);
      const xa = matVec(lw.a, x, R, inFeatures);
      const d = matVec(lw.b, xa, outFeatures, R);
      for (let o = 0; o < outFeatures; o++) y[o]! += scale * d[o]!;
    }
    return y;
  }

  /** Feeds one token at the next position; returns its logits (V). */
  step(token: number): Float64Array {
    const cfg = this.config;
    const { hiddenSize: C, numHeads: H, numKvHeads: KVH, headDim: D } = cfg;
    const G = H / KVH;
    const pos = this.length;
    const emb = this.t('model.embed_tokens.weight');
    let x = Float64Array.from(emb.subarray(token * C, token * C + C));
    for (let l = 0; l < cfg.numLayers; l++) {
      const xn = rmsNorm(x, this.t(`model.layers.${l}.input_layernorm.weight`), cfg.rmsNormEps);
      const q = this.linear(l, 'q_proj', xn);
      const k = this.linear(l, 'k_proj', xn);
      const v = this.linear(l, 'v_proj', xn);
      applyRope(q, H, D, pos, this.invFreq);
      applyRope(k, KVH, D, pos, this.invFreq);
      this.keys[l]!.push(k);
      this.values[l]!.push(v);
      const n = pos + 1;
      const first = cfg.slidingWindow === null ? 0 : Math.max(0, pos - cfg.slidingWindow + 1);
      const att = new Float64Array(H * D);
      for (let h = 0; h < H; h++) {
        const kv = Math.floor(h / G);
        const scores = new Float64Array(n).fill(-Infinity);
        let max = -Infinity;
        for (let j = first; j < n; j++) {
          const kj = this.keys[l]![j]!;
          let s = 0;
          for (let i = 0; i < D; i++) s += q[h * D + i]! * kj[kv * D + i]!;
          scores[j] = s / Math.sqrt(D);
          max = Math.max(max, scores[j]!);
        }
        let sum = 0;
        for (let j = first; j < n; j++) sum += scores[j] = Math.exp(scores[j]! - max);
        for (let j = first; j < n; j++) {
          const p = scores[j]! / sum;
          const vj = this.values[l]![j]!;
          for (let i = 0; i < D; i++) att[h * D + i]! += p * vj[kv * D + i]!;
        }
      }
      const o = this.linear(l, 'o_proj', att);
      x = x.map((val, i) => val + o[i]!);
      const xn2 = rmsNorm(x, this.t(`model.layers.${l}.post_attention_layernorm.weight`), cfg.rmsNormEps);
      const gate = this.linear(l, 'gate_proj', xn2);
      const up = this.linear(l, 'up_proj', xn2);
      const act = gate.map((gv, i) => (gv / (1 + Math.exp(-gv))) * up[i]!);
      const down = this.linear(l, 'down_proj', act);
      x = x.map((val, i) => val + down[i]!);
    }
    const xf = rmsNorm(x, this.t('model.norm.weight'), cfg.rmsNormEps);
    const head = cfg.tieWordEmbeddings ? emb : this.t('lm_head.weight');
    return matVec(head, xf, cfg.vocabSize, C);
  }

  /** Feeds tokens in order; returns the logits of each, (T, V) flattened. */
  forward(tokens: readonly number[]): Float64Array {
    const V = this.config.vocabSize;
    const out = new Float64Array(tokens.length * V);
    tokens.forEach((t, i) => out.set(this.step(t), i * V));
    return out;
  }

  /** Greedy continuation of `prompt` (fed through this model's cache). */
  greedy(prompt: readonly number[], maxTokens: number): number[] {
    let logits = this.forward(prompt).subarray(-this.config.vocabSize);
    const out: number[] = [];
    for (let i = 0; i < maxTokens; i++) {
      let best = 0;
      for (let j = 1; j < logits.length; j++) if (logits[j]! > logits[best]!) best = j;
      out.push(best);
      logits = this.step(best);
    }
    return out;
  }
}
