/**
 * Dense SVD for small and medium matrices: one-sided (Hestenes) Jacobi in float64. Pairs of columns are
 * rotated until every pair is orthogonal to `tol` relative to their norms; the column norms are then the
 * singular values, the normalized columns U, and the accumulated rotations V. Column norms are tracked
 * through the rotations and the largest remaining column leads each row of a sweep (de Rijk's pivoting). Jacobi is slower than
 * Golub–Kahan but short, and it has high relative accuracy: small singular values of a graded
 * (ill-conditioned) matrix come out with small relative error, not merely ε·σ_max.
 * A tall matrix is first reduced by Householder QR (A = Q·R, Jacobi on the n×n R, U = Q·U_R), a wide one
 * is transposed. Truncated SVDs of large matrices go through randomized-svd.ts, which calls this on small
 * sketches.
 */
import { invariant } from '../../shared/invariant.js';
import { matmul, transpose, type Matrix } from './matrix.js';
import { householderQr } from './qr.js';

/** A ≈ U·diag(s)·Vᵀ with s descending (≥ 0), U (m, k) and Vᵀ (k, n) with orthonormal columns / rows. */
export interface Svd {
  u: Matrix;
  s: Float64Array;
  vt: Matrix;
}

export interface JacobiOptions {
  /** Pair (p, q) counts as orthogonal when |a_p·a_q| ≤ tol·‖a_p‖·‖a_q‖. Default √m·ε (LAPACK dgesvj's). */
  tol?: number;
  /** Default 60; Jacobi converges quadratically, real matrices need about 6–12. */
  maxSweeps?: number;
}

const EPS = 2 ** -52;

/** The full thin SVD of A (m, n): k = min(m, n) singular triplets. */
export function denseSvd(a: Matrix, options: JacobiOptions = {}): Svd {
  const { rows: m, cols: n } = a;
  if (m < n) {
    const t = denseSvd(transpose(a), options);
    return { u: transpose(t.vt), s: t.s, vt: transpose(t.u) };
  }
  if (m > n && n > 0) {
    const { q, r } = householderQr(a);
    const inner = jacobiSvd(r, options);
    return { u: matmul(q, inner.u), s: inner.s, vt: inner.vt };
  }
  return jacobiSvd(a, options);
}

/** One-sided Jacobi on A (m, n) with m ≥ n. */
export function jacobiSvd(a: Matrix, options: JacobiOptions = {}): Svd {
  const { rows: m, cols: n } = a;
  invariant(m >= n, () => `jacobiSvd needs rows ≥ cols, got ${m}×${n}`);
  const tol = options.tol ?? Math.max(1, Math.sqrt(m)) * EPS;
  const maxSweeps = options.maxSweeps ?? 60;
  // Column j of A is row j of g (contiguous), and column j of V is row j of vt.
  const g = transpose(a).data;
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  // Squared column norms, kept current through each rotation (α' = α − tγ, β' = β + tγ, as LAPACK's dgesvj)
  // and recomputed exactly at every sweep and whenever a subtraction could have cancelled: only γ needs a
  // pass over the columns for a pair that is already orthogonal.
  const d = new Float64Array(n);
  const norm2 = (j: number): number => {
    let s = 0;
    for (let i = j * m; i < j * m + m; i++) s += g[i]! * g[i]!;
    return s;
  };
  let converged = n < 2;
  for (let sweep = 0; sweep < maxSweeps && !converged; sweep++) {
    for (let j = 0; j < n; j++) d[j] = norm2(j);
    let rotations = 0;
    for (let p = 0; p < n - 1; p++) {
      // de Rijk's pivoting: the largest remaining column goes first (fewer sweeps, sorted output).
      let best = p;
      for (let j = p + 1; j < n; j++) if (d[j]! > d[best]!) best = j;
      if (best !== p) {
        swapRows(g, m, p, best);
        swapRows(v, n, p, best);
        [d[p], d[best]] = [d[best]!, d[p]!];
      }
      const gp = p * m;
      for (let q = p + 1; q < n; q++) {
        const alpha = d[p]!;
        const beta = d[q]!;
        if (alpha === 0 || beta === 0) continue;
        const gq = q * m;
        let gamma = 0;
        for (let i = 0; i < m; i++) gamma += g[gp + i]! * g[gq + i]!;
        if (gamma === 0 || !(Math.abs(gamma) > tol * Math.sqrt(alpha) * Math.sqrt(beta))) continue;
        rotations++;
        const zeta = (beta - alpha) / (2 * gamma);
        const t =
          Math.abs(zeta) > 1e150
            ? 1 / (2 * zeta)
            : (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let i = 0; i < m; i++) {
          const x = g[gp + i]!;
          const y = g[gq + i]!;
          g[gp + i] = c * x - s * y;
          g[gq + i] = s * x + c * y;
        }
        const vp = p * n;
        const vq = q * n;
        for (let i = 0; i < n; i++) {
          const x = v[vp + i]!;
          const y = v[vq + i]!;
          v[vp + i] = c * x - s * y;
          v[vq + i] = s * x + c * y;
        }
        const na = alpha - t * gamma;
        const nb = beta + t * gamma;
        d[p] = na < 0.5 * alpha ? norm2(p) : na;
        d[q] = nb < 0.5 * beta ? norm2(q) : nb;
      }
    }
    converged = rotations === 0;
  }
  invariant(converged, () => `Jacobi SVD of a ${m}×${n} matrix did not converge in ${maxSweeps} sweeps`);

  const norms = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let i = 0; i < m; i++) s += g[j * m + i]! * g[j * m + i]!;
    norms[j] = Math.sqrt(s);
  }
  const order = Array.from({ length: n }, (_, j) => j).sort((x, y) => norms[y]! - norms[x]! || x - y);
  const s = new Float64Array(n);
  // U's columns as rows first (ut), transposed at the end.
  const ut = new Float64Array(n * m);
  const vt = new Float64Array(n * n);
  const missing: number[] = [];
  order.forEach((j, k) => {
    s[k] = norms[j]!;
    vt.set(v.subarray(j * n, j * n + n), k * n);
    if (norms[j]! > 0 && Number.isFinite(1 / norms[j]!)) {
      const inv = 1 / norms[j]!;
      for (let i = 0; i < m; i++) ut[k * m + i] = g[j * m + i]! * inv;
    } else {
      s[k] = 0;
      missing.push(k);
    }
  });
  if (missing.length > 0) completeOrthonormal(ut, m, n, missing);
  return { u: transpose({ rows: n, cols: m, data: ut }), s, vt: { rows: n, cols: n, data: vt } };
}

/**
 * Fills rows `missing` of `ut` (n rows of length m; the others orthonormal) with unit vectors orthogonal to
 * every other row: the left singular vectors of exactly-zero singular values, which Jacobi leaves as zero
 * columns. Candidates are the standard basis vectors, orthogonalized twice (classical Gram–Schmidt).
 */
function completeOrthonormal(ut: Float64Array, m: number, n: number, missing: readonly number[]): void {
  const filled = new Set(Array.from({ length: n }, (_, k) => k).filter((k) => !missing.includes(k)));
  const cand = new Float64Array(m);
  const best = new Float64Array(m);
  for (const k of missing) {
    let bestNorm = -1;
    for (let e = 0; e < m; e++) {
      cand.fill(0);
      cand[e] = 1;
      for (let pass = 0; pass < 2; pass++) {
        for (const f of filled) {
          let d = 0;
          for (let i = 0; i < m; i++) d += ut[f * m + i]! * cand[i]!;
          if (d !== 0) for (let i = 0; i < m; i++) cand[i]! -= d * ut[f * m + i]!;
        }
      }
      let nrm = 0;
      for (let i = 0; i < m; i++) nrm += cand[i]! * cand[i]!;
      nrm = Math.sqrt(nrm);
      if (nrm > bestNorm) {
        bestNorm = nrm;
        best.set(cand);
      }
      if (nrm > 0.5) break;
    }
    invariant(bestNorm > 0, 'no orthogonal complement left (more columns than rows)');
    for (let i = 0; i < m; i++) ut[k * m + i] = best[i]! / bestNorm;
    filled.add(k);
  }
}

function swapRows(x: Float64Array, len: number, p: number, q: number): void {
  const tmp = x.slice(p * len, p * len + len);
  x.copyWithin(p * len, q * len, q * len + len);
  x.set(tmp, q * len);
}

/** The first k triplets of an SVD (k ≤ its length). */
export function truncateSvd(svd: Svd, k: number): Svd {
  const have = svd.s.length;
  invariant(k >= 0 && k <= have, () => `cannot keep ${k} of ${have} singular triplets`);
  if (k === have) return svd;
  const { rows: m, cols: kk } = svd.u;
  const u = new Float64Array(m * k);
  for (let i = 0; i < m; i++) u.set(svd.u.data.subarray(i * kk, i * kk + k), i * k);
  const n = svd.vt.cols;
  return {
    u: { rows: m, cols: k, data: u },
    s: svd.s.slice(0, k),
    vt: { rows: k, cols: n, data: svd.vt.data.slice(0, k * n) },
  };
}
