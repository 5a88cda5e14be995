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

/**
 * a·bᵀ for a (m, k) and b (n, k): the one product kernel. Every entry is a dot product over contiguous
 * rows; 2×4 register blocking (two rows of a against four rows of b per pass over k) reads each loaded value
 * several times, about 3.5× the throughput of a plain i-p-j loop in V8.
 */
export function matmulNT(a: Matrix, b: Matrix): Matrix {
  invariant(a.cols === b.cols, () => `matmulNT: (${a.rows}, ${a.cols})·(${b.rows}, ${b.cols})ᵀ`);
  const m = a.rows;
  const k = a.cols;
  const n = b.rows;
  const out = new Float64Array(m * n);
  const ad = a.data;
  const bd = b.data;
  let i = 0;
  for (; i + 2 <= m; i += 2) {
    const a0 = i * k;
    const a1 = a0 + k;
    const o0 = i * n;
    const o1 = o0 + n;
    let j = 0;
    for (; j + 4 <= n; j += 4) {
      const b0 = j * k;
      const b1 = b0 + k;
      const b2 = b1 + k;
      const b3 = b2 + k;
      let s00 = 0;
      let s01 = 0;
      let s02 = 0;
      let s03 = 0;
      let s10 = 0;
      let s11 = 0;
      let s12 = 0;
      let s13 = 0;
      for (let p = 0; p < k; p++) {
        const x = ad[a0 + p]!;
        const y = ad[a1 + p]!;
        const c0 = bd[b0 + p]!;
        const c1 = bd[b1 + p]!;
        const c2 = bd[b2 + p]!;
        const c3 = bd[b3 + p]!;
        s00 += x * c0;
        s01 += x * c1;
        s02 += x * c2;
        s03 += x * c3;
        s10 += y * c0;
        s11 += y * c1;
        s12 += y * c2;
        s13 += y * c3;
      }
      out[o0 + j] = s00;
      out[o0 + j + 1] = s01;
      out[o0 + j + 2] = s02;
      out[o0 + j + 3] = s03;
      out[o1 + j] = s10;
      out[o1 + j + 1] = s11;
      out[o1 + j + 2] = s12;
      out[o1 + j + 3] = s13;
    }
    for (; j < n; j++) {
      const b0 = j * k;
      let s0 = 0;
      let s1 = 0;
      for (let p = 0; p < k; p++) {
        const c = bd[b0 + p]!;
        s0 += ad[a0 + p]! * c;
        s1 += ad[a1 + p]! * c;
      }
      out[o0 + j] = s0;
      out[o1 + j] = s1;
    }
  }
  for (; i < m; i++) {
    const a0 = i * k;
    for (let j = 0; j < n; j++) {
      const b0 = j * k;
      let s = 0;
      for (let p = 0; p < k; p++) s += ad[a0 + p]! * bd[b0 + p]!;
      out[i * n + j] = s;
    }
  }
  return { rows: m, cols: n, data: out };
}

/** a·b, (m, k)·(k, n) (b is transposed once, O(k·n), for the dot-product kernel). */
export function matmul(a: Matrix, b: Matrix): Matrix {
  invariant(a.cols === b.rows, () => `matmul: (${a.rows}, ${a.cols})·(${b.rows}, ${b.cols})`);
  return matmulNT(a, transpose(b));
}

/** aᵀ·b for a (k, m), b (k, n) → (m, n). Transposes both; pass a pre-transposed a to matmulNT when reused. */
export function matmulTN(a: Matrix, b: Matrix): Matrix {
  invariant(a.rows === b.rows, () => `matmulTN: (${a.rows}, ${a.cols})ᵀ·(${b.rows}, ${b.cols})`);
  return matmulNT(transpose(a), transpose(b));
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
