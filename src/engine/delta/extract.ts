/**
 * `adapter extract`: a LoRA adapter from a fine-tuned checkpoint. Per targeted linear, ΔW = W_tuned − W_base
 * (float64, exact for float32 weights), its truncated SVD (dense Jacobi for small modules, randomized for
 * large: linalg/randomized-svd.ts), and B = U·√S, A = √S·Vᵀ with lora_alpha = r, so scale·B·A is the rank-r
 * truncation itself. A fixed rank, or per module the smallest rank keeping a fraction of ‖ΔW‖²_F (stored as
 * PEFT's rank_pattern + alpha_pattern, each module's scale still 1). Reports per module the kept energy
 * Σ kept σ² / ‖ΔW‖²_F and the relative Frobenius error of the stored float32 factors.
 * Both checkpoints must have one architecture and finite weights; anything else that differs (norms,
 * embeddings, untargeted linears) cannot ride in a LoRA adapter and is listed, not silently dropped.
 */
import { BadInputError } from '../../shared/errors.js';
import type { Checkpoint } from '../formats/checkpoint.js';
import {
  LINEAR_MODULES,
  expectedTensors,
  linearShape,
  weightName,
  type LinearModule,
} from '../formats/hf-config.js';
import { loraKey, peftModulePath, type LoraAdapter, type LoraWeights } from '../formats/peft.js';
import { denseSvd, truncateSvd, type Svd } from '../linalg/jacobi-svd.js';
import type { Matrix } from '../linalg/matrix.js';
import { truncatedSvd, type TruncatedSvdOptions } from '../linalg/randomized-svd.js';
import { energyOf, factorError, loraFactors, rankForEnergy } from './low-rank.js';

export interface ExtractOptions {
  /** Every module at this rank. Exactly one of rank / energy. */
  rank?: number;
  /** Per module, the smallest rank keeping at least this fraction (0, 1] of ‖ΔW‖²_F. */
  energy?: number;
  /** Default: all seven linears. */
  targetModules?: readonly LinearModule[];
  svd?: TruncatedSvdOptions;
  baseModelName?: string | null;
  /** Called after each module (progress). */
  onModule?: (m: ModuleReport) => void;
}

export interface ModuleReport {
  /** PEFT's module path, `model.layers.0.self_attn.q_proj` */
  module: string;
  /** [out, in] */
  shape: [number, number];
  rank: number;
  /** Σ kept σ² / ‖ΔW‖²_F (1 for ΔW = 0). */
  keptEnergy: number;
  /** ‖ΔW − B·A‖_F / ‖ΔW‖_F of the stored factors (0 for ΔW = 0). */
  relativeError: number;
  /** ‖ΔW‖_F */
  deltaNorm: number;
  svd: 'dense' | 'randomized';
  seconds: number;
}

export interface ExtractReport {
  mode: { rank: number } | { energy: number };
  modules: ModuleReport[];
  totals: { keptEnergy: number; relativeError: number; deltaNorm: number };
  /** Tensors outside the targeted linears that differ between the checkpoints (the adapter cannot carry them). */
  untracked: Array<{ tensor: string; maxAbsDiff: number }>;
  /** Config fields that differ without changing any shape (e.g. rope_theta). */
  configDifferences: string[];
}

/** Both checkpoints: same tensor names and shapes, or an error naming the first tensor that differs. */
export function checkSameArchitecture(base: Checkpoint, tuned: Checkpoint): string[] {
  const b = expectedTensors(base.config);
  const t = new Map(expectedTensors(tuned.config).map((x) => [x.name, x.shape]));
  const fields = (Object.keys(base.config) as Array<keyof typeof base.config>).filter(
    (k) => JSON.stringify(base.config[k]) !== JSON.stringify(tuned.config[k]),
  );
  const why = fields.length > 0 ? ` (config differs in ${fields.join(', ')})` : '';
  for (const { name, shape } of b) {
    const other = t.get(name);
    if (!other) {
      throw new BadInputError(
        `base and tuned checkpoints differ in architecture: tensor ${name} is in ${base.dir} but not in ${tuned.dir}${why}`,
        { details: { tensor: name } },
      );
    }
    if (other.length !== shape.length || other.some((d, i) => d !== shape[i])) {
      throw new BadInputError(
        `base and tuned checkpoints differ in architecture: tensor ${name} has shape [${shape.join(', ')}] in ${base.dir}, [${other.join(', ')}] in ${tuned.dir}${why}`,
        { details: { tensor: name } },
      );
    }
    t.delete(name);
  }
  const extra = t.keys().next();
  if (!extra.done) {
    throw new BadInputError(
      `base and tuned checkpoints differ in architecture: tensor ${extra.value} is in ${tuned.dir} but not in ${base.dir}${why}`,
      { details: { tensor: extra.value } },
    );
  }
  return fields;
}

/** Throws naming the tensor, the checkpoint and the index of the first NaN/±Inf. */
export function checkFinite(ckpt: Checkpoint): void {
  for (const [name, t] of ckpt.tensors) {
    const d = t.data;
    for (let i = 0; i < d.length; i++) {
      if (!Number.isFinite(d[i]!)) {
        throw new BadInputError(
          `tensor ${name} in ${ckpt.dir} has a non-finite value (${d[i]}) at index ${i}`,
          {
            details: { tensor: name },
          },
        );
      }
    }
  }
}

function useDense(minDim: number, rank: number, svd: TruncatedSvdOptions): boolean {
  const method = svd.method ?? 'auto';
  return (
    method === 'dense' ||
    (method === 'auto' && (minDim <= (svd.denseBelow ?? 256) || rank + (svd.oversample ?? 10) >= minDim))
  );
}

/** The truncated SVD at the smallest rank keeping `fraction` of `total`; null if that is ≥ min(out, in). */
function svdForEnergy(
  d: Matrix,
  total: number,
  fraction: number,
  opts: TruncatedSvdOptions,
): { svd: Svd; rank: number; dense: boolean } | null {
  const minDim = Math.min(d.rows, d.cols);
  // Grow the sketch until the kept energy is reached; the dense SVD when the sketch would cover the matrix.
  for (let k = Math.min(64, minDim - 1); ; k = Math.min(2 * k, minDim - 1)) {
    const dense = useDense(minDim, k, opts);
    const svd = dense ? denseSvd(d) : truncatedSvd(d, k, { ...opts, method: 'randomized' });
    const rank = rankForEnergy(svd.s, total, fraction);
    if (rank !== null && rank < minDim) return { svd: truncateSvd(svd, rank), rank, dense };
    if (dense || k >= minDim - 1) return null;
  }
}

export interface ExtractedFactors {
  /** B = U·√S (out, rank), A = √S·Vᵀ (rank, in), float32 */
  factors: { a: Float32Array; b: Float32Array };
  rank: number;
  /** Σ kept σ² */
  kept: number;
  /** ‖ΔW‖²_F */
  total: number;
  /** ‖ΔW − B·A‖_F of the float32 factors, and ‖ΔW‖_F */
  error: number;
  norm: number;
  dense: boolean;
}

/**
 * One module's extraction: the truncated SVD of ΔW (out, in) at a fixed rank, or at the smallest rank
 * keeping `energy` of ‖ΔW‖²_F, as LoRA factors with scale 1. `name` is for messages.
 */
export function extractFactors(
  delta: Matrix,
  want: { rank: number } | { energy: number },
  svdOpts: TruncatedSvdOptions = {},
  name = 'the matrix',
): ExtractedFactors {
  const { rows: outF, cols: inF, data: d } = delta;
  let total = 0;
  for (let i = 0; i < d.length; i++) total += d[i]! * d[i]!;
  const minDim = Math.min(outF, inF);
  let svd: Svd;
  let r: number;
  let dense: boolean;
  if (total === 0) {
    r = 'rank' in want ? want.rank : 1;
    svd = {
      u: { rows: outF, cols: 0, data: new Float64Array(0) },
      s: new Float64Array(0),
      vt: { rows: 0, cols: inF, data: new Float64Array(0) },
    };
    dense = true;
  } else if ('rank' in want) {
    r = want.rank;
    dense = useDense(minDim, r, svdOpts);
    svd = truncatedSvd(delta, r, { ...svdOpts, method: dense ? 'dense' : 'randomized' });
  } else {
    const got = svdForEnergy(delta, total, want.energy, svdOpts);
    if (!got) {
      throw new BadInputError(
        `keeping ${want.energy} of the energy of ${name} [${outF}, ${inF}] needs a rank of at least min(out, in) = ${minDim}: lower energy or use rank`,
        { details: { tensor: name } },
      );
    }
    ({ svd, rank: r, dense } = got);
  }
  const factors = loraFactors(svd, r, 'sqrt');
  const { error, norm } = factorError(d, factors.b, factors.a, r);
  return { factors, rank: r, kept: Math.min(energyOf(svd.s, r), total), total, error, norm, dense };
}

export function extractAdapter(
  base: Checkpoint,
  tuned: Checkpoint,
  options: ExtractOptions,
): {
  adapter: LoraAdapter;
  report: ExtractReport;
} {
  const { rank, energy } = options;
  if ((rank === undefined) === (energy === undefined))
    throw new BadInputError('give exactly one of rank or energy');
  if (rank !== undefined && !(Number.isInteger(rank) && rank >= 1))
    throw new BadInputError(`rank must be a positive integer, got ${rank}`);
  if (energy !== undefined && !(energy > 0 && energy <= 1))
    throw new BadInputError(`energy must be in (0, 1], got ${energy}`);
  const configDifferences = checkSameArchitecture(base, tuned);
  checkFinite(base);
  checkFinite(tuned);
  const config = base.config;
  const targets = LINEAR_MODULES.filter((m) => (options.targetModules ?? LINEAR_MODULES).includes(m));
  if (targets.length === 0) throw new BadInputError('no target modules');
  if (rank !== undefined) {
    for (const m of targets) {
      const { inFeatures, outFeatures } = linearShape(config, m);
      if (rank >= Math.min(inFeatures, outFeatures)) {
        throw new BadInputError(
          `rank ${rank} is not below min(out, in) = ${Math.min(inFeatures, outFeatures)} of ${weightName(0, m)} [${outFeatures}, ${inFeatures}]: such an adapter is no smaller than the weight`,
          { details: { tensor: weightName(0, m) } },
        );
      }
    }
  }
  const svdOpts = options.svd ?? {};
  const modules: ModuleReport[] = [];
  const weights = new Map<string, LoraWeights>();
  const ranks = new Map<string, number>();
  let keptSum = 0;
  let totalSum = 0;
  let errSq = 0;
  for (let l = 0; l < config.numLayers; l++) {
    for (const m of targets) {
      const t0 = performance.now();
      const name = weightName(l, m);
      const { inFeatures: inF, outFeatures: outF } = linearShape(config, m);
      const wb = base.tensors.get(name)!.data;
      const wt = tuned.tensors.get(name)!.data;
      const d = new Float64Array(outF * inF);
      for (let i = 0; i < d.length; i++) d[i] = wt[i]! - wb[i]!;
      const x = extractFactors(
        { rows: outF, cols: inF, data: d },
        rank !== undefined ? { rank } : { energy: energy! },
        svdOpts,
        name,
      );
      const { factors: f, rank: r, kept, total, error, norm, dense } = x;
      const report: ModuleReport = {
        module: peftModulePath(l, m),
        shape: [outF, inF],
        rank: r,
        keptEnergy: total === 0 ? 1 : Math.min(1, kept / total),
        relativeError: norm === 0 ? 0 : error / norm,
        deltaNorm: norm,
        svd: dense ? 'dense' : 'randomized',
        seconds: (performance.now() - t0) / 1000,
      };
      modules.push(report);
      options.onModule?.(report);
      keptSum += Math.min(kept, total);
      totalSum += total;
      errSq += error * error;
      weights.set(loraKey(l, m), f);
      ranks.set(loraKey(l, m), r);
    }
  }
  const R = rank ?? Math.max(...ranks.values());
  for (const [k, w] of weights) {
    const r = ranks.get(k)!;
    if (r !== R) Object.assign(w, { rank: r, alpha: r });
  }
  const untracked: ExtractReport['untracked'] = [];
  const carried = new Set<string>();
  for (let l = 0; l < config.numLayers; l++) for (const m of targets) carried.add(weightName(l, m));
  for (const [name, t] of base.tensors) {
    if (carried.has(name)) continue;
    const other = tuned.tensors.get(name)!.data;
    let max = 0;
    for (let i = 0; i < t.data.length; i++) max = Math.max(max, Math.abs(other[i]! - t.data[i]!));
    if (max > 0) untracked.push({ tensor: name, maxAbsDiff: max });
  }
  return {
    adapter: {
      rank: R,
      alpha: R,
      useRslora: false,
      scale: 1,
      dropout: 0,
      targetModules: targets,
      baseModelName: options.baseModelName ?? null,
      weights,
    },
    report: {
      mode: rank !== undefined ? { rank } : { energy: energy! },
      modules,
      totals: {
        keptEnergy: totalSum === 0 ? 1 : keptSum / totalSum,
        relativeError: totalSum === 0 ? 0 : Math.sqrt(errSq / totalSum),
        deltaNorm: Math.sqrt(totalSum),
      },
      untracked,
      configDifferences,
    },
  };
}
