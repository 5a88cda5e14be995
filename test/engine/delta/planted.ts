/**
 * Fixtures of the ΔW toolkit tests: a tuned checkpoint = base + planted low-rank deltas (random orthonormal
 * factors, chosen singular values, optional Gaussian noise) per linear module, and adapters whose product
 * has a known rank.
 */
import type { Checkpoint } from '../../../src/engine/formats/checkpoint.js';
import { LINEAR_MODULES, linearShape, weightName } from '../../../src/engine/formats/hf-config.js';
import type { LinearModule, ModelConfig } from '../../../src/engine/formats/hf-config.js';
import { loraKey, loraScale, type LoraAdapter } from '../../../src/engine/formats/peft.js';
import { gaussianStream } from '../../../src/engine/linalg/matrix.js';

/** k orthonormal vectors of length n (modified Gram–Schmidt, twice), as k rows. */
export function orthonormalRows(k: number, n: number, seed: number): Float64Array[] {
  const g = gaussianStream(seed);
  const rows: Float64Array[] = [];
  while (rows.length < k) {
    const c = Float64Array.from({ length: n }, g);
    for (let pass = 0; pass < 2; pass++)
      for (const o of rows) {
        let d = 0;
        for (let i = 0; i < n; i++) d += o[i]! * c[i]!;
        for (let i = 0; i < n; i++) c[i]! -= d * o[i]!;
      }
    let nrm = 0;
    for (let i = 0; i < n; i++) nrm += c[i]! * c[i]!;
    rows.push(c.map((x) => x / Math.sqrt(nrm)));
  }
  return rows;
}

/** U·diag(sigma)·Vᵀ (out, in) + noise·N(0, 1), float64. */
export function plantedDelta(
  outF: number,
  inF: number,
  sigma: readonly number[],
  noise: number,
  seed: number,
): Float64Array {
  const u = orthonormalRows(sigma.length, outF, seed);
  const v = orthonormalRows(sigma.length, inF, seed + 7919);
  const g = gaussianStream(seed + 104729);
  const d = new Float64Array(outF * inF);
  for (let o = 0; o < outF; o++)
    for (let i = 0; i < inF; i++) {
      let x = 0;
      for (let k = 0; k < sigma.length; k++) x += u[k]![o]! * sigma[k]! * v[k]![i]!;
      d[o * inF + i] = x + noise * g();
    }
  return d;
}

/**
 * base + a planted delta in every module of `modules` (singular values `sigmaOf(layer, module)`); the deltas
 * as added (float64, before rounding to the float32 checkpoint) come back too.
 */
export function plantedTuned(
  base: Checkpoint,
  sigmaOf: (l: number, m: LinearModule) => readonly number[],
  noise: number,
  modules: readonly LinearModule[] = LINEAR_MODULES,
  seed = 1,
): { tuned: Checkpoint; deltas: Map<string, Float64Array> } {
  const tensors = new Map(base.tensors);
  const deltas = new Map<string, Float64Array>();
  let s = seed;
  for (let l = 0; l < base.config.numLayers; l++)
    for (const m of modules) {
      const { inFeatures: inF, outFeatures: outF } = linearShape(base.config, m);
      const d = plantedDelta(outF, inF, sigmaOf(l, m), noise, (s += 17));
      const w = base.tensors.get(weightName(l, m))!;
      tensors.set(weightName(l, m), { shape: w.shape, data: Float32Array.from(w.data, (x, i) => x + d[i]!) });
      deltas.set(loraKey(l, m), d);
    }
  return { tuned: { ...base, dir: `${base.dir}+planted`, tensors }, deltas };
}

/**
 * A rank-`rank` adapter whose every product B·A has rank exactly `trueRank`: B = B₀·M, A = N·A₀ with
 * B₀ (out, trueRank), M (trueRank, rank), N (rank, trueRank), A₀ (trueRank, in) random.
 */
export function lowTrueRankAdapter(
  config: ModelConfig,
  rank: number,
  trueRank: number,
  seed: number,
  modules: readonly LinearModule[] = LINEAR_MODULES,
  alpha = 2 * rank,
): LoraAdapter {
  const g = gaussianStream(seed);
  const rnd = (n: number, std: number) => Float64Array.from({ length: n }, () => std * g());
  const weights = new Map<string, { a: Float32Array; b: Float32Array }>();
  for (let l = 0; l < config.numLayers; l++)
    for (const m of modules) {
      const { inFeatures: inF, outFeatures: outF } = linearShape(config, m);
      const b0 = rnd(outF * trueRank, 0.3);
      const mm = rnd(trueRank * rank, 0.5);
      const nn = rnd(rank * trueRank, 0.5);
      const a0 = rnd(trueRank * inF, 0.3);
      const b = new Float32Array(outF * rank);
      for (let o = 0; o < outF; o++)
        for (let r = 0; r < rank; r++) {
          let x = 0;
          for (let k = 0; k < trueRank; k++) x += b0[o * trueRank + k]! * mm[k * rank + r]!;
          b[o * rank + r] = x;
        }
      const a = new Float32Array(rank * inF);
      for (let r = 0; r < rank; r++)
        for (let i = 0; i < inF; i++) {
          let x = 0;
          for (let k = 0; k < trueRank; k++) x += nn[r * trueRank + k]! * a0[k * inF + i]!;
          a[r * inF + i] = x;
        }
      weights.set(loraKey(l, m), { a, b });
    }
  return {
    rank,
    alpha,
    useRslora: false,
    scale: loraScale(alpha, rank, false),
    dropout: 0,
    targetModules: [...modules],
    baseModelName: null,
    weights,
  };
}

/** scale·B·A in float64, (out, in), with an explicit rank and scale (independent of moduleRank/Scale). */
export function product(
  b: ArrayLike<number>,
  a: ArrayLike<number>,
  rank: number,
  scale: number,
): Float64Array {
  const inF = a.length / rank;
  const outF = b.length / rank;
  const d = new Float64Array(outF * inF);
  for (let o = 0; o < outF; o++)
    for (let i = 0; i < inF; i++) {
      let x = 0;
      for (let r = 0; r < rank; r++) x += b[o * rank + r]! * a[r * inF + i]!;
      d[o * inF + i] = scale * x;
    }
  return d;
}

/** ‖x − y‖_F / ‖y‖_F */
export function relErr(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let e = 0;
  let n = 0;
  for (let i = 0; i < y.length; i++) {
    e += (x[i]! - y[i]!) ** 2;
    n += y[i]! ** 2;
  }
  return Math.sqrt(e / n);
}
