/**
 * `adapter shrink`: the best lower-rank approximation of an adapter, module by module, without ever forming
 * ΔW. For s·B·A with B (out, r) and A (r, in): QR of B and of Aᵀ, the SVD of the r×r core s·R_B·R_Aᵀ
 * (low-rank.ts `productSvd`), truncated — by Eckart–Young the optimal rank-k approximation of ΔW. The new
 * factors are B = U·√S, A = √S·Vᵀ with scale 1 (lora_alpha = rank); modules at another rank than the
 * adapter's r are written as PEFT's rank_pattern + alpha_pattern. Reports the energy each module drops.
 */
import { BadInputError } from '../../shared/errors.js';
import { isLinearModule, type LinearModule } from '../formats/hf-config.js';
import {
  maxModuleRank,
  moduleRank,
  moduleScale,
  peftModulePath,
  type LoraAdapter,
  type LoraWeights,
} from '../formats/peft.js';
import { energyOf, loraFactors, productSvd, rankForEnergy } from './low-rank.js';

export interface ShrinkOptions {
  /** Every module at min(rank, its current rank). Exactly one of rank / energy. */
  rank?: number;
  /** Per module, the smallest rank keeping at least this fraction (0, 1] of its ‖ΔW‖²_F. */
  energy?: number;
  /** Called after each module with how many are done, of how many, and its path (progress reports). */
  onModule?: (done: number, total: number, module: string) => void;
}

export interface ShrinkModuleReport {
  module: string;
  shape: [number, number];
  rankBefore: number;
  rankAfter: number;
  /** Σ dropped σ² / ‖ΔW‖²_F (= the squared relative Frobenius error; 0 for ΔW = 0). */
  droppedEnergy: number;
}

export interface ShrinkReport {
  mode: { rank: number } | { energy: number };
  modules: ShrinkModuleReport[];
  /** Over all modules: Σ dropped / Σ ‖ΔW‖²_F. */
  droppedEnergy: number;
}

/** `${layer}.${module}` → its parts. */
export function splitKey(key: string): { layer: number; module: LinearModule } {
  const dot = key.indexOf('.');
  const layer = Number(key.slice(0, dot));
  const module = key.slice(dot + 1);
  if (!Number.isSafeInteger(layer) || !isLinearModule(module))
    throw new BadInputError(`bad adapter weight key ${key}`);
  return { layer, module };
}

export function shrinkAdapter(
  adapter: LoraAdapter,
  options: ShrinkOptions,
): { adapter: LoraAdapter; report: ShrinkReport } {
  const { rank, energy } = options;
  if ((rank === undefined) === (energy === undefined))
    throw new BadInputError('give exactly one of rank or energy');
  if (rank !== undefined && !(Number.isInteger(rank) && rank >= 1))
    throw new BadInputError(`rank must be a positive integer, got ${rank}`);
  if (energy !== undefined && !(energy > 0 && energy <= 1))
    throw new BadInputError(`energy must be in (0, 1], got ${energy}`);
  const before = maxModuleRank(adapter);
  if (rank !== undefined && rank >= before) {
    throw new BadInputError(`rank ${rank} is not below the adapter's rank ${before}: nothing to shrink`);
  }
  const modules: ShrinkModuleReport[] = [];
  const weights = new Map<string, LoraWeights>();
  const ranks = new Map<string, number>();
  let dropped = 0;
  let total = 0;
  for (const [key, w] of adapter.weights) {
    const { layer, module } = splitKey(key);
    const r = moduleRank(adapter, w);
    const inF = w.a.length / r;
    const outF = w.b.length / r;
    const name = peftModulePath(layer, module);
    if (rank !== undefined && rank >= Math.min(inF, outF)) {
      throw new BadInputError(
        `rank ${rank} is not below min(out, in) = ${Math.min(inF, outF)} of ${name} [${outF}, ${inF}]`,
        { details: { tensor: name } },
      );
    }
    const svd = productSvd(
      { rows: outF, cols: r, data: Float64Array.from(w.b) },
      { rows: r, cols: inF, data: Float64Array.from(w.a) },
      moduleScale(adapter, w),
    );
    const all = energyOf(svd.s);
    const after = rank !== undefined ? Math.min(rank, r) : rankForEnergy(svd.s, all, energy!)!;
    const kept = energyOf(svd.s, after);
    const drop = Math.max(0, all - kept);
    modules.push({
      module: name,
      shape: [outF, inF],
      rankBefore: r,
      rankAfter: after,
      droppedEnergy: all === 0 ? 0 : drop / all,
    });
    dropped += drop;
    total += all;
    weights.set(key, loraFactors(svd, after, 'sqrt'));
    ranks.set(key, after);
    options.onModule?.(modules.length, adapter.weights.size, name);
  }
  const R = rank ?? Math.max(1, ...ranks.values());
  for (const [k, w] of weights) {
    const r = ranks.get(k)!;
    if (r !== R) Object.assign(w, { rank: r, alpha: r });
  }
  return {
    adapter: {
      rank: R,
      alpha: R,
      useRslora: false,
      scale: 1,
      dropout: adapter.dropout,
      targetModules: [...adapter.targetModules],
      baseModelName: adapter.baseModelName,
      weights,
    },
    report: {
      mode: rank !== undefined ? { rank } : { energy: energy! },
      modules,
      droppedEnergy: total === 0 ? 0 : dropped / total,
    },
  };
}
