/**
 * The low-rank pieces the ΔW toolkit (extract.ts, shrink.ts, merge.ts) shares: the exact SVD of a product
 * s·B·A from QR factors of B and Aᵀ (never forming the (out, in) matrix), turning singular triplets into
 * LoRA factors, the rank that keeps a fraction of the energy, and the relative error of stored factors.
 * All arithmetic is float64; factors leave as float32 (PEFT's F32 weights).
 */
import { denseSvd, type Svd } from '../linalg/jacobi-svd.js';
import { matmul, matmulNT, transpose, type Matrix } from '../linalg/matrix.js';
import { householderQr } from '../linalg/qr.js';

/**
 * The thin SVD of scale·B·A, B (out, r) and A (r, in): B = Q_B·R_B, Aᵀ = Q_A·R_A, the small core
 * scale·R_B·R_Aᵀ = U_c·S·V_cᵀ, so scale·B·A = (Q_B·U_c)·S·(Q_A·V_c)ᵀ. min(out, in, r) triplets, exact to
 * rounding; costs O((out + in)·r²), not O(out·in·r).
 */
export function productSvd(b: Matrix, a: Matrix, scale = 1): Svd {
  const qb = householderQr(b);
  const qa = householderQr(transpose(a));
  const core = matmulNT(qb.r, qa.r);
  if (scale !== 1) for (let i = 0; i < core.data.length; i++) core.data[i]! *= scale;
  const c = denseSvd(core);
  return { u: matmul(qb.q, c.u), s: c.s, vt: matmulNT(c.vt, qa.q) };
}

/**
 * LoRA factors of rank `rank` from the leading triplets: 'sqrt' splits the singular values evenly,
 * B = U·√S and A = √S·Vᵀ (extract, shrink); 'left' puts them on B, B = U·S and A = Vᵀ (what PEFT's svd
 * merge writes). Ranks beyond the triplets available are zero rows/columns. With scale 1, B·A is the
 * truncated matrix.
 */
export function loraFactors(
  svd: Svd,
  rank: number,
  split: 'sqrt' | 'left' = 'sqrt',
): { a: Float32Array; b: Float32Array } {
  const out = svd.u.rows;
  const have = svd.s.length;
  const uCols = svd.u.cols;
  const inF = svd.vt.cols;
  const keep = Math.min(rank, have);
  const b = new Float32Array(out * rank);
  const a = new Float32Array(rank * inF);
  for (let j = 0; j < keep; j++) {
    const s = svd.s[j]!;
    const left = split === 'sqrt' ? Math.sqrt(s) : s;
    const right = split === 'sqrt' ? Math.sqrt(s) : 1;
    for (let o = 0; o < out; o++) b[o * rank + j] = svd.u.data[o * uCols + j]! * left;
    for (let i = 0; i < inF; i++) a[j * inF + i] = svd.vt.data[j * inF + i]! * right;
  }
  return { a, b };
}

/** Σσᵢ² over the first k singular values. */
export function energyOf(s: Float64Array, k = s.length): number {
  let e = 0;
  for (let i = 0; i < Math.min(k, s.length); i++) e += s[i]! * s[i]!;
  return e;
}

/**
 * The smallest rank whose singular values keep at least `fraction` of `total` (Σ all σ², which the caller
 * computes from the matrix itself), or null when the given values do not reach it. A zero matrix needs 1.
 */
export function rankForEnergy(s: Float64Array, total: number, fraction: number): number | null {
  if (total === 0) return 1;
  // 1e-12 relative slack: rounding must not turn --energy 1 on an exactly rank-r matrix into rank r + 1.
  const goal = fraction * total * (1 - 1e-12);
  let e = 0;
  for (let i = 0; i < s.length; i++) {
    e += s[i]! * s[i]!;
    if (e >= goal) return i + 1;
  }
  return null;
}

/**
 * ‖D − scale·B·A‖_F (and ‖D‖_F) for D (out, in) row-major, B (out, r), A (r, in), row by row in float64:
 * the error of the factors as stored (float32), not of the SVD that produced them.
 */
export function factorError(
  d: Float64Array,
  b: Float32Array,
  a: Float32Array,
  rank: number,
  scale = 1,
): { error: number; norm: number } {
  const inF = a.length / rank;
  const outF = b.length / rank;
  const row = new Float64Array(inF);
  let err = 0;
  let norm = 0;
  for (let o = 0; o < outF; o++) {
    row.fill(0);
    for (let r = 0; r < rank; r++) {
      const br = b[o * rank + r]! * scale;
      if (br === 0) continue;
      const off = r * inF;
      for (let i = 0; i < inF; i++) row[i]! += br * a[off + i]!;
    }
    const doff = o * inF;
    for (let i = 0; i < inF; i++) {
      const x = d[doff + i]!;
      const e = x - row[i]!;
      err += e * e;
      norm += x * x;
    }
  }
  return { error: Math.sqrt(err), norm: Math.sqrt(norm) };
}
