/**
 * `adapter merge`: several adapters into one, with the semantics of PEFT's `LoraModel.add_weighted_adapter`
 * (src/peft/tuners/lora/model.py, read at huggingface/peft 5d602fd). With weights wᵢ and module scales sᵢ:
 * - linear: every adapter's rank (max of r and its rank_pattern) must be equal; A = Σ sign(wᵢsᵢ)·√|wᵢsᵢ|·Aᵢ,
 *   B = Σ √|wᵢsᵢ|·Bᵢ. The product has cross terms (B₁A₂, …): PEFT's task arithmetic on the factors, not
 *   Σ wᵢsᵢBᵢAᵢ.
 * - cat: A = [w₁s₁A₁; w₂s₂A₂; …], B = [B₁ B₂ …], rank Σ rᵢ: exactly Σ wᵢsᵢBᵢAᵢ.
 * - svd: Σ wᵢsᵢBᵢAᵢ truncated to `rank` (default the largest rᵢ) by its SVD, B = U·S, A = Vᵀ as PEFT writes.
 *   Computed as the exact SVD of the cat factors (QR of both sides, low-rank.ts) — the (out, in) matrix is
 *   never formed. PEFT's own svd path scales each ΔWᵢ by sᵢ twice (`weight * scaling` times
 *   `get_delta_weight`, which already includes the scaling); we apply sᵢ once, as cat and linear do and as
 *   the method's documentation says (identical for sᵢ = 1).
 * - one adapter: linear, whatever the method (as PEFT).
 * The result has r = lora_alpha = its rank (scale 1), no rank/alpha patterns, use_rslora false (PEFT keeps the
 * first adapter's use_rslora, which rescales the result by √r: huggingface/peft#3449), the first adapter's
 * dropout and base model name, and the union of the target modules. A module no input targets in some layer
 * is written as zeros, so the file covers every (layer, module) it declares.
 */
import { BadInputError } from '../../shared/errors.js';
import { LINEAR_MODULES, linearShape, type LinearModule, type ModelConfig } from '../formats/hf-config.js';
import {
  loraKey,
  maxModuleRank,
  moduleRank,
  moduleScale,
  peftModulePath,
  type LoraAdapter,
  type LoraWeights,
} from '../formats/peft.js';
import { energyOf, loraFactors, productSvd } from './low-rank.js';

export type MergeMethod = 'linear' | 'cat' | 'svd';

export interface WeightedAdapter {
  adapter: LoraAdapter;
  weight: number;
}

export interface MergeOptions {
  method: MergeMethod;
  /** svd only: the new rank (default: the largest input rank). */
  rank?: number;
  /** The shapes of the modules (the common base, or the one the adapters imply). */
  config: ModelConfig;
  /** The layers the result covers (default all of config). */
  layers?: readonly number[];
  /** Called after each (layer, module) with how many are done, of how many, and its path (progress). */
  onModule?: (done: number, total: number, module: string) => void;
}

export interface MergeReport {
  /** The method applied ('linear' for a single adapter). */
  method: MergeMethod;
  rank: number;
  /** svd: per module, Σ dropped σ² / ‖Σ wᵢsᵢBᵢAᵢ‖²_F. */
  dropped: Array<{ module: string; droppedEnergy: number }>;
}

/** PEFT's rank of an adapter in add_weighted_adapter: max(r, *rank_pattern.values()). */
export function peftRank(adapter: LoraAdapter): number {
  return Math.max(adapter.rank, maxModuleRank(adapter));
}

export function mergeAdapters(
  inputs: readonly WeightedAdapter[],
  options: MergeOptions,
): { adapter: LoraAdapter; report: MergeReport } {
  if (inputs.length === 0) throw new BadInputError('no adapters to merge');
  for (const { weight } of inputs)
    if (!Number.isFinite(weight)) throw new BadInputError(`adapter weight must be finite, got ${weight}`);
  const method: MergeMethod = inputs.length === 1 ? 'linear' : options.method;
  const ranks = inputs.map((x) => peftRank(x.adapter));
  let R: number;
  if (method === 'linear') {
    if (new Set(ranks).size !== 1) {
      throw new BadInputError(
        `linear merging needs adapters of one rank, got ${ranks.join(', ')} (use cat, or svd with a rank)`,
      );
    }
    if (options.rank !== undefined && options.rank !== ranks[0]) {
      throw new BadInputError(
        inputs.length === 1
          ? 'one adapter merges linearly (as PEFT does) and keeps its rank: use `adapter shrink` to change it'
          : 'rank applies to the svd method only',
      );
    }
    R = ranks[0]!;
  } else if (method === 'cat') {
    if (options.rank !== undefined) throw new BadInputError('rank applies to the svd method only');
    R = ranks.reduce((x, y) => x + y, 0);
  } else {
    R = options.rank ?? Math.max(...ranks);
    if (!(Number.isInteger(R) && R >= 1))
      throw new BadInputError(`rank must be a positive integer, got ${R}`);
  }
  const { config } = options;
  const targets = LINEAR_MODULES.filter((m) => inputs.some((x) => x.adapter.targetModules.includes(m)));
  const layers = options.layers ?? Array.from({ length: config.numLayers }, (_, l) => l);
  const weights = new Map<string, LoraWeights>();
  const dropped: MergeReport['dropped'] = [];
  for (const l of layers) {
    for (const m of targets) {
      const { inFeatures: inF, outFeatures: outF } = linearShape(config, m);
      const name = peftModulePath(l, m);
      if (method === 'svd' && R >= Math.min(inF, outF)) {
        throw new BadInputError(
          `rank ${R} is not below min(out, in) = ${Math.min(inF, outF)} of ${name} [${outF}, ${inF}]`,
          { details: { tensor: name } },
        );
      }
      const parts = inputs.flatMap(({ adapter, weight }) => {
        const w = adapter.weights.get(loraKey(l, m));
        return w ? [{ w, r: moduleRank(adapter, w), ws: weight * moduleScale(adapter, w) }] : [];
      });
      const a = new Float32Array(R * inF);
      const b = new Float32Array(outF * R);
      if (method === 'linear') {
        // Zero-padded to R: a module below the adapter's rank (rank_pattern) adds nothing in the padding.
        const a64 = new Float64Array(R * inF);
        const b64 = new Float64Array(outF * R);
        for (const { w, r, ws } of parts) {
          const root = Math.sqrt(Math.abs(ws));
          const signed = ws >= 0 ? root : -root;
          for (let i = 0; i < r * inF; i++) a64[i]! += signed * w.a[i]!;
          for (let o = 0; o < outF; o++)
            for (let k = 0; k < r; k++) b64[o * R + k]! += root * w.b[o * r + k]!;
        }
        a.set(a64);
        b.set(b64);
      } else {
        // The cat factors: rows wᵢsᵢAᵢ stacked, columns Bᵢ side by side.
        const total = parts.reduce((x, p) => x + p.r, 0);
        const ca = new Float64Array(total * inF);
        const cb = new Float64Array(outF * total);
        let off = 0;
        for (const { w, r, ws } of parts) {
          for (let i = 0; i < r * inF; i++) ca[off * inF + i] = ws * w.a[i]!;
          for (let o = 0; o < outF; o++)
            for (let k = 0; k < r; k++) cb[o * total + off + k] = w.b[o * r + k]!;
          off += r;
        }
        if (method === 'cat') {
          a.set(ca);
          for (let o = 0; o < outF; o++) b.set(cb.subarray(o * total, o * total + total), o * R);
        } else if (total > 0) {
          const svd = productSvd({ rows: outF, cols: total, data: cb }, { rows: total, cols: inF, data: ca });
          const f = loraFactors(svd, R, 'left');
          a.set(f.a);
          b.set(f.b);
          const all = energyOf(svd.s);
          dropped.push({
            module: name,
            droppedEnergy: all === 0 ? 0 : Math.max(0, all - energyOf(svd.s, R)) / all,
          });
        }
      }
      weights.set(loraKey(l, m), { a, b });
      options.onModule?.(weights.size, layers.length * targets.length, name);
    }
  }
  const first = inputs[0]!.adapter;
  return {
    adapter: {
      rank: R,
      alpha: R,
      useRslora: false,
      scale: 1,
      dropout: first.dropout,
      targetModules: targets as LinearModule[],
      baseModelName: first.baseModelName,
      weights,
    },
    report: { method, rank: R, dropped },
  };
}
