/**
 * Truncated SVD of a large matrix by randomized range finding (Halko, Martinsson & Tropp 2011, algorithms
 * 4.4 + 5.1): sketch Y = A·Ω with a Gaussian Ω of rank + oversample columns, q power iterations
 * (A·Aᵀ)^q·Y with a QR re-orthonormalization after every product (their "subspace iteration", which keeps
 * small singular directions from drowning in rounding), Q = qr(Y), then the exact SVD of the small
 * B = Qᵀ·A and U = Q·U_B. Costs (2q + 2) products with A instead of the O(mn²) of a dense SVD.
 * A ≈ U·S·Vᵀ is the best rank-k approximation up to the spectrum's tail: the error is tiny when the
 * singular values beyond k + oversample decay (fine-tuning deltas, LoRA products), and exact when the rank
 * is at most k + oversample. Everything is float64; the sketch is seeded, so runs are reproducible.
 */
import { invariant } from '../../shared/invariant.js';
import { denseSvd, truncateSvd, type Svd } from './jacobi-svd.js';
import { gaussian, matmulNT, transpose, type Matrix } from './matrix.js';
import { householderQr } from './qr.js';

export interface RandomizedSvdOptions {
  /** Extra sketch columns beyond the rank (p in Halko et al.); default 10. */
  oversample?: number;
  /** Power iterations q; default 2. Each costs two products with A. */
  powerIterations?: number;
  /** Seed of the Gaussian sketch; default 0. */
  seed?: number;
}

/** The leading `rank` singular triplets of A (m, n), approximately (see the header). */
export function randomizedSvd(a: Matrix, rank: number, options: RandomizedSvdOptions = {}): Svd {
  const { rows: m, cols: n } = a;
  const minDim = Math.min(m, n);
  invariant(
    Number.isInteger(rank) && rank >= 1 && rank <= minDim,
    () => `rank ${rank} is not in [1, ${minDim}]`,
  );
  const p = options.oversample ?? 10;
  const q = options.powerIterations ?? 2;
  const l = Math.min(rank + p, minDim);
  if (l === minDim) return truncateSvd(denseSvd(a), rank);
  // Every product is a·xᵀ over contiguous rows (matrix.ts matmulNT): Aᵀ is formed once (one more copy of A).
  const at = transpose(a);
  const omegaT = gaussian(l, n, options.seed ?? 0); // Ωᵀ
  let basis = householderQr(matmulNT(a, omegaT)).q; // (m, l): A·Ω
  for (let it = 0; it < q; it++) {
    const z = householderQr(matmulNT(at, transpose(basis))).q; // (n, l): Aᵀ·Q
    basis = householderQr(matmulNT(a, transpose(z))).q; // (m, l): A·Z
  }
  // Bᵀ = Aᵀ·Q (n, l) = U_b·S·V_bᵀ, so A ≈ Q·B = (Q·V_b)·S·U_bᵀ.
  const bt = denseSvd(matmulNT(at, transpose(basis)));
  const u = matmulNT(basis, bt.vt); // Q·V_b: (m, l)
  return truncateSvd({ u, s: bt.s, vt: transpose(bt.u) }, rank);
}

export interface TruncatedSvdOptions extends RandomizedSvdOptions {
  /**
   * 'dense': the exact SVD (one-sided Jacobi), then truncated. 'randomized': always sketch. 'auto' (default):
   * dense when the smaller side is at most `denseBelow` (default 256) or the sketch would cover it anyway.
   */
  method?: 'auto' | 'dense' | 'randomized';
  denseBelow?: number;
}

/** The leading `rank` singular triplets of A, by the method `options.method` picks. */
export function truncatedSvd(a: Matrix, rank: number, options: TruncatedSvdOptions = {}): Svd {
  const minDim = Math.min(a.rows, a.cols);
  const method = options.method ?? 'auto';
  const dense =
    method === 'dense' ||
    (method === 'auto' &&
      (minDim <= (options.denseBelow ?? 256) || rank + (options.oversample ?? 10) >= minDim));
  return dense ? truncateSvd(denseSvd(a), rank) : randomizedSvd(a, rank, options);
}
