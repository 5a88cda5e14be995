/**
 * AdamW over named Float32Array parameters (the LoRA A/B matrices): bias-corrected moments and decoupled
 * weight decay (Loshchilov & Hutter, https://arxiv.org/abs/1711.05101; PyTorch's `torch.optim.AdamW`), plus
 * global-norm gradient clipping. Plain loops on purpose: LoRA parameters are a few MB, the graph does the FLOPs.
 * Its state round-trips through `checkpoint-store.ts` (`exportState`/`importState`).
 */
import { invariant } from '../shared/invariant.js';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const DEFAULT_ADAMW: AdamWOptions = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };

export interface AdamWState {
  step: number;
  m: Record<string, Float32Array>;
  v: Record<string, Float32Array>;
}

export class AdamW {
  private t = 0;
  private readonly m = new Map<string, Float32Array>();
  private readonly v = new Map<string, Float32Array>();
  constructor(
    private readonly params: Map<string, Float32Array>,
    readonly options: AdamWOptions = DEFAULT_ADAMW,
  ) {
    for (const [name, p] of params) {
      this.m.set(name, new Float32Array(p.length));
      this.v.set(name, new Float32Array(p.length));
    }
  }

  get stepCount(): number {
    return this.t;
  }

  /** One update with learning rate `lr`; `grads` must hold every parameter. */
  step(grads: Map<string, Float32Array>, lr: number): void {
    const { beta1, beta2, eps, weightDecay } = this.options;
    this.t += 1;
    const c1 = 1 - beta1 ** this.t;
    const c2 = 1 - beta2 ** this.t;
    for (const [name, p] of this.params) {
      const g = grads.get(name);
      invariant(
        g !== undefined && g.length === p.length,
        () => `adamw: gradient for ${name} missing or wrong size`,
      );
      const m = this.m.get(name)!;
      const v = this.v.get(name)!;
      const decay = 1 - lr * weightDecay;
      for (let i = 0; i < p.length; i++) {
        const gi = g[i]!;
        const mi = (m[i] = beta1 * m[i]! + (1 - beta1) * gi);
        const vi = (v[i] = beta2 * v[i]! + (1 - beta2) * gi * gi);
        // Decoupled decay: shrink the weight itself, not the gradient.
        p[i] = p[i]! * decay - (lr * (mi / c1)) / (Math.sqrt(vi / c2) + eps);
      }
    }
  }

  exportState(): AdamWState {
    return { step: this.t, m: Object.fromEntries(this.m), v: Object.fromEntries(this.v) };
  }

  importState(state: AdamWState): void {
    this.t = state.step;
    for (const name of this.params.keys()) {
      const m = state.m[name];
      const v = state.v[name];
      invariant(m !== undefined && v !== undefined, () => `adamw: checkpoint lacks moments for ${name}`);
      this.m.get(name)!.set(m);
      this.v.get(name)!.set(v);
    }
  }
}

/** L2 norm over all gradients together. */
export function globalNorm(grads: Iterable<Float32Array>): number {
  let s = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) s += g[i]! * g[i]!;
  return Math.sqrt(s);
}

/** Scales all gradients in place so their global norm is at most `maxNorm`; returns the norm before clipping. */
export function clipGlobalNorm(grads: Map<string, Float32Array>, maxNorm: number): number {
  const norm = globalNorm(grads.values());
  if (maxNorm > 0 && norm > maxNorm) {
    const k = maxNorm / (norm + 1e-6);
    for (const g of grads.values()) for (let i = 0; i < g.length; i++) g[i] *= k;
  }
  return norm;
}
