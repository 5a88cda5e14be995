/**
 * Householder QR in float64: A (m, n) = Q (m, k) · R (k, n), k = min(m, n), Q with orthonormal columns and
 * R upper triangular (the thin / economy factorization). LAPACK's reflector convention (dgeqrf + dorgqr):
 * H = I − τ·v·vᵀ with v₀ = 1; a column whose part below the diagonal is already zero gets H = I. Every
 * update runs along rows, so the inner loops read contiguous memory of the row-major matrix.
 * Used by the randomized SVD (range finder, power iterations) and by adapter shrinking (QR of B and Aᵀ).
 */
import type { Matrix } from './matrix.js';

export interface QR {
  /** (m, k), orthonormal columns */
  q: Matrix;
  /** (k, n), upper triangular */
  r: Matrix;
}

export function householderQr(a: Matrix): QR {
  const m = a.rows;
  const n = a.cols;
  const k = Math.min(m, n);
  // Work in place on a copy: R above the diagonal, the reflectors' v below it.
  const w = Float64Array.from(a.data);
  const tau = new Float64Array(k);
  const scratch = new Float64Array(n);
  for (let j = 0; j < k; j++) {
    const alpha = w[j * n + j]!;
    let tailSq = 0;
    for (let i = j + 1; i < m; i++) {
      const x = w[i * n + j]!;
      tailSq += x * x;
    }
    if (tailSq === 0) {
      tau[j] = 0; // already triangular in this column: H = I
      continue;
    }
    const norm = Math.sqrt(alpha * alpha + tailSq);
    const beta = alpha >= 0 ? -norm : norm;
    tau[j] = (beta - alpha) / beta;
    const scal = 1 / (alpha - beta);
    for (let i = j + 1; i < m; i++) w[i * n + j]! *= scal;
    w[j * n + j] = beta;
    applyReflector(w, n, m, j, j + 1, n, tau[j]!, w, n, scratch);
  }
  // Q = H₀·H₁·…·H_{k−1} applied to the first k columns of I, accumulated backwards.
  const q = new Float64Array(m * k);
  for (let i = 0; i < k; i++) q[i * k + i] = 1;
  const qScratch = new Float64Array(k);
  for (let j = k - 1; j >= 0; j--) {
    if (tau[j] === 0) continue;
    applyReflector(q, k, m, j, j, k, tau[j]!, w, n, qScratch);
  }
  const r = new Float64Array(k * n);
  for (let i = 0; i < k; i++) {
    for (let c = i; c < n; c++) r[i * n + c] = w[i * n + c]!;
  }
  return { q: { rows: m, cols: k, data: q }, r: { rows: k, cols: n, data: r } };
}

/**
 * target[j:, c0:c1] −= τ·v·(vᵀ·target[j:, c0:c1]) for the reflector stored in column j of `v` (row stride
 * `vStride`, v_j = 1 implicit, v_i below). `target` has row stride `stride` and `m` rows.
 */
function applyReflector(
  target: Float64Array,
  stride: number,
  m: number,
  j: number,
  c0: number,
  c1: number,
  tau: number,
  v: Float64Array,
  vStride: number,
  scratch: Float64Array,
): void {
  if (c0 >= c1) return;
  const wv = scratch;
  const row = j * stride;
  for (let c = c0; c < c1; c++) wv[c] = target[row + c]!;
  for (let i = j + 1; i < m; i++) {
    const vi = v[i * vStride + j]!;
    if (vi === 0) continue;
    const ri = i * stride;
    for (let c = c0; c < c1; c++) wv[c]! += vi * target[ri + c]!;
  }
  for (let c = c0; c < c1; c++) {
    wv[c]! *= tau;
    target[row + c]! -= wv[c]!;
  }
  for (let i = j + 1; i < m; i++) {
    const vi = v[i * vStride + j]!;
    if (vi === 0) continue;
    const ri = i * stride;
    for (let c = c0; c < c1; c++) target[ri + c]! -= vi * wv[c]!;
  }
}
