/**
 * Dense float64 matrices for the SVD code (qr.ts, jacobi-svd.ts, randomized-svd.ts): a row-major
 * `Float64Array` with its shape, the three products the algorithms need with every inner loop running over
 * contiguous memory, and a seeded Gaussian generator. Everything accumulates in float64; float32 weights
 * enter through `fromFloat32` (exact). Not a general tensor library: the graph engine is src/engine/ir.
 */
import { invariant } from '../../shared/invariant.js';

/** Row-major: element (i, j) is `data[i * cols + j]`. */
export interface Matrix {
  rows: number;
  cols: number;
  data: Float64Array;
}

export function zeros(rows: number, cols: number): Matrix {
  return { rows, cols, data: new Float64Array(rows * cols) };
}

/** A float64 copy of a row-major float32 (rows, cols) array. */
export function fromFloat32(rows: number, cols: number, data: ArrayLike<number>): Matrix {
  invariant(data.length === rows * cols, () => `matrix data has ${data.length} values, not ${rows}×${cols}`);
  return { rows, cols, data: Float64Array.from(data) };
}

export function transpose(a: Matrix): Matrix {
  const { rows: m, cols: n } = a;
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const row = i * n;
    for (let j = 0; j < n; j++) out[j * m + i] = a.data[row + j]!;
  }
  return { rows: n, cols: m, data: out };
}

/** a·b, (m, k)·(k, n). */
export function matmul(a: Matrix, b: Matrix): Matrix {
  invariant(a.cols === b.rows, () => `matmul: (${a.rows}, ${a.cols})·(${b.rows}, ${b.cols})`);
  const m = a.rows;
  const k = a.cols;
  const n = b.cols;
  const out = new Float64Array(m * n);
  const ad = a.data;
  const bd = b.data;
  for (let i = 0; i < m; i++) {
    const o = i * n;
    for (let p = 0; p < k; p++) {
      const x = ad[i * k + p]!;
      if (x === 0) continue;
      const bo = p * n;
      for (let j = 0; j < n; j++) out[o + j]! += x * bd[bo + j]!;
    }
  }
  return { rows: m, cols: n, data: out };
}

/** aᵀ·b without forming aᵀ: a (k, m), b (k, n) → (m, n). */
export function matmulTN(a: Matrix, b: Matrix): Matrix {
  invariant(a.rows === b.rows, () => `matmulTN: (${a.rows}, ${a.cols})ᵀ·(${b.rows}, ${b.cols})`);
  const k = a.rows;
  const m = a.cols;
  const n = b.cols;
  const out = new Float64Array(m * n);
  const ad = a.data;
  const bd = b.data;
  for (let p = 0; p < k; p++) {
    const ao = p * m;
    const bo = p * n;
    for (let i = 0; i < m; i++) {
      const x = ad[ao + i]!;
      if (x === 0) continue;
      const o = i * n;
      for (let j = 0; j < n; j++) out[o + j]! += x * bd[bo + j]!;
    }
  }
  return { rows: m, cols: n, data: out };
}

/** a·bᵀ without forming bᵀ: a (m, k), b (n, k) → (m, n); each entry one contiguous dot product. */
export function matmulNT(a: Matrix, b: Matrix): Matrix {
  invariant(a.cols === b.cols, () => `matmulNT: (${a.rows}, ${a.cols})·(${b.rows}, ${b.cols})ᵀ`);
  const m = a.rows;
  const k = a.cols;
  const n = b.rows;
  const out = new Float64Array(m * n);
  const ad = a.data;
  const bd = b.data;
  for (let i = 0; i < m; i++) {
    const ao = i * k;
    for (let j = 0; j < n; j++) {
      const bo = j * k;
      let s = 0;
      for (let p = 0; p < k; p++) s += ad[ao + p]! * bd[bo + p]!;
      out[i * n + j] = s;
    }
  }
  return { rows: m, cols: n, data: out };
}

/** Σ a_ij², in float64. */
export function frobeniusSq(a: Matrix): number {
  let s = 0;
  const d = a.data;
  for (let i = 0; i < d.length; i++) s += d[i]! * d[i]!;
  return s;
}

/** A seeded N(0, 1) stream (mulberry32 + Box–Muller): the same seed gives the same sketch everywhere. */
export function gaussianStream(seed: number): () => number {
  let state = seed >>> 0;
  const uniform = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    const u = 1 - uniform(); // (0, 1]: log never sees 0
    const v = uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

export function gaussian(rows: number, cols: number, seed: number): Matrix {
  const next = gaussianStream(seed);
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < out.length; i++) out[i] = next();
  return { rows, cols, data: out };
}
