/**
 * src/engine/linalg: Householder QR, the one-sided Jacobi SVD and the randomized truncated SVD against an
 * independent float64 reference written here — the two-sided cyclic Jacobi eigensolver on the symmetric
 * augmented matrix [[0, A], [Aᵀ, 0]], whose eigenvalues are ±σᵢ with eigenvectors (uᵢ; ±vᵢ)/√2 — on random,
 * rank-deficient and ill-conditioned matrices: singular values to 1e-10 of σ_max, U and V up to sign where
 * the singular value is separated, orthonormal U and V, and U·S·Vᵀ = A.
 */
import { describe, expect, it } from 'vitest';
import { denseSvd, jacobiSvd, truncateSvd, type Svd } from '../../../src/engine/linalg/jacobi-svd.js';
import { gaussianStream, matmul, type Matrix } from '../../../src/engine/linalg/matrix.js';
import { householderQr } from '../../../src/engine/linalg/qr.js';
import { randomizedSvd, truncatedSvd } from '../../../src/engine/linalg/randomized-svd.js';

// ---------- the independent reference ----------

/** Eigen-decomposition of a symmetric N×N matrix (row-major) by cyclic two-sided Jacobi rotations. */
function symmetricEigen(s: Float64Array, N: number): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(s);
  const v = new Float64Array(N * N);
  for (let i = 0; i < N; i++) v[i * N + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let total = 0;
    for (let i = 0; i < N; i++)
      for (let j = 0; j < N; j++) {
        total += a[i * N + j]! ** 2;
        if (i !== j) off += a[i * N + j]! ** 2;
      }
    if (off <= 1e-32 * total) break;
    for (let p = 0; p < N - 1; p++) {
      for (let q = p + 1; q < N; q++) {
        const apq = a[p * N + q]!;
        if (apq === 0) continue;
        const theta = (a[q * N + q]! - a[p * N + p]!) / (2 * apq);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const sn = t * c;
        for (let k = 0; k < N; k++) {
          // columns p, q
          const akp = a[k * N + p]!;
          const akq = a[k * N + q]!;
          a[k * N + p] = c * akp - sn * akq;
          a[k * N + q] = sn * akp + c * akq;
        }
        for (let k = 0; k < N; k++) {
          // rows p, q
          const apk = a[p * N + k]!;
          const aqk = a[q * N + k]!;
          a[p * N + k] = c * apk - sn * aqk;
          a[q * N + k] = sn * apk + c * aqk;
        }
        for (let k = 0; k < N; k++) {
          const vkp = v[k * N + p]!;
          const vkq = v[k * N + q]!;
          v[k * N + p] = c * vkp - sn * vkq;
          v[k * N + q] = sn * vkp + c * vkq;
        }
      }
    }
  }
  return { values: Float64Array.from({ length: N }, (_, i) => a[i * N + i]!), vectors: v };
}

/** σ descending and the matching u (m) / v (n) columns, from the augmented matrix's positive eigenpairs. */
function referenceSvd(a: Matrix): { s: number[]; u: number[][]; v: number[][] } {
  const { rows: m, cols: n } = a;
  const N = m + n;
  const aug = new Float64Array(N * N);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      aug[i * N + (m + j)] = a.data[i * n + j]!;
      aug[(m + j) * N + i] = a.data[i * n + j]!;
    }
  const { values, vectors } = symmetricEigen(aug, N);
  const order = Array.from({ length: N }, (_, i) => i).sort((x, y) => values[y]! - values[x]!);
  const k = Math.min(m, n);
  const s: number[] = [];
  const u: number[][] = [];
  const v: number[][] = [];
  for (const idx of order.slice(0, k)) {
    s.push(Math.max(0, values[idx]!));
    const col = Array.from({ length: N }, (_, r) => vectors[r * N + idx]! * Math.SQRT2);
    u.push(col.slice(0, m));
    v.push(col.slice(m));
  }
  return { s, u, v };
}

// ---------- test matrices ----------

function randomMatrix(m: number, n: number, seed: number): Matrix {
  const g = gaussianStream(seed);
  return { rows: m, cols: n, data: Float64Array.from({ length: m * n }, g) };
}

/** k orthonormal columns of length m by modified Gram–Schmidt (twice), as an (m, k) matrix. */
function orthonormalColumns(m: number, k: number, seed: number): Matrix {
  const g = gaussianStream(seed);
  const cols: Float64Array[] = [];
  while (cols.length < k) {
    const c = Float64Array.from({ length: m }, g);
    for (let pass = 0; pass < 2; pass++)
      for (const o of cols) {
        let d = 0;
        for (let i = 0; i < m; i++) d += o[i]! * c[i]!;
        for (let i = 0; i < m; i++) c[i]! -= d * o[i]!;
      }
    const nrm = Math.hypot(...c);
    cols.push(c.map((x) => x / nrm));
  }
  const out = new Float64Array(m * k);
  cols.forEach((c, j) => c.forEach((x, i) => (out[i * k + j] = x)));
  return { rows: m, cols: k, data: out };
}

/** U·diag(sigma)·Vᵀ with random orthonormal U (m, k), V (n, k). */
function planted(m: number, n: number, sigma: number[], seed: number): Matrix {
  const k = sigma.length;
  const u = orthonormalColumns(m, k, seed);
  const v = orthonormalColumns(n, k, seed + 1);
  const us = { rows: m, cols: k, data: u.data.map((x, i) => x * sigma[i % k]!) };
  const vt = new Float64Array(k * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < k; j++) vt[j * n + i] = v.data[i * k + j]!;
  return matmul(us, { rows: k, cols: n, data: vt });
}

// ---------- checks ----------

function column(mat: Matrix, j: number): number[] {
  return Array.from({ length: mat.rows }, (_, i) => mat.data[i * mat.cols + j]!);
}

function maxAbs(xs: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < xs.length; i++) m = Math.max(m, Math.abs(xs[i]!));
  return m;
}

/** max |QᵀQ − I| over the columns of q (rows × k). */
function orthonormalityError(q: Matrix): number {
  let worst = 0;
  for (let a = 0; a < q.cols; a++)
    for (let b = a; b < q.cols; b++) {
      let d = 0;
      for (let i = 0; i < q.rows; i++) d += q.data[i * q.cols + a]! * q.data[i * q.cols + b]!;
      worst = Math.max(worst, Math.abs(d - (a === b ? 1 : 0)));
    }
  return worst;
}

function reconstructionError(a: Matrix, svd: Svd): number {
  const k = svd.s.length;
  let worst = 0;
  for (let i = 0; i < a.rows; i++)
    for (let j = 0; j < a.cols; j++) {
      let x = 0;
      for (let r = 0; r < k; r++) x += svd.u.data[i * k + r]! * svd.s[r]! * svd.vt.data[r * a.cols + j]!;
      worst = Math.max(worst, Math.abs(x - a.data[i * a.cols + j]!));
    }
  return worst;
}

/** |x − y| up to sign: min(‖x − y‖∞, ‖x + y‖∞). */
function upToSign(x: number[], y: number[]): number {
  let plus = 0;
  let minus = 0;
  for (let i = 0; i < x.length; i++) {
    plus = Math.max(plus, Math.abs(x[i]! - y[i]!));
    minus = Math.max(minus, Math.abs(x[i]! + y[i]!));
  }
  return Math.min(plus, minus);
}

function expectAgreesWithReference(a: Matrix, svd: Svd, opts: { vectors?: boolean } = {}): void {
  const ref = referenceSvd(a);
  const k = Math.min(a.rows, a.cols);
  expect(svd.s.length).toBe(k);
  const smax = Math.max(ref.s[0]!, 1e-300);
  for (let i = 0; i < k; i++) {
    expect(Math.abs(svd.s[i]! - ref.s[i]!), `σ${i}: ${svd.s[i]} vs ${ref.s[i]}`).toBeLessThanOrEqual(
      1e-10 * smax,
    );
    if (i > 0) expect(svd.s[i]!).toBeLessThanOrEqual(svd.s[i - 1]!);
  }
  expect(orthonormalityError(svd.u)).toBeLessThan(1e-12);
  const v: Matrix = { rows: svd.vt.cols, cols: svd.vt.rows, data: new Float64Array(svd.vt.data.length) };
  for (let r = 0; r < svd.vt.rows; r++)
    for (let c = 0; c < svd.vt.cols; c++) v.data[c * v.cols + r] = svd.vt.data[r * svd.vt.cols + c]!;
  expect(orthonormalityError(v)).toBeLessThan(1e-12);
  expect(reconstructionError(a, svd)).toBeLessThan(1e-12 * Math.max(1, smax));
  if (opts.vectors === false) return;
  // Vectors are determined (up to sign) only for a nonzero, separated singular value: the error of either
  // computation is about ε·σ_max / gap.
  let compared = 0;
  for (let i = 0; i < k; i++) {
    const gap = Math.min(
      i > 0 ? ref.s[i - 1]! - ref.s[i]! : Infinity,
      i < k - 1 ? ref.s[i]! - ref.s[i + 1]! : ref.s[i]!,
    );
    if (gap < 1e-6 * smax || ref.s[i]! < 1e-6 * smax) continue;
    const tol = 1e-9 + (1e-13 * smax) / gap;
    expect(upToSign(column(svd.u, i), ref.u[i]!), `u${i}`).toBeLessThan(tol);
    const vi = Array.from({ length: svd.vt.cols }, (_, c) => svd.vt.data[i * svd.vt.cols + c]!);
    expect(upToSign(vi, ref.v[i]!), `v${i}`).toBeLessThan(tol);
    compared++;
  }
  expect(compared).toBeGreaterThan(0);
}

// ---------- tests ----------

describe('householderQr', () => {
  it.each([
    ['tall', 30, 12],
    ['wide', 9, 20],
    ['square', 16, 16],
  ])('%s: Q orthonormal, R upper triangular, Q·R = A', (_name, m, n) => {
    const a = randomMatrix(m, n, m * 100 + n);
    const { q, r } = householderQr(a);
    const k = Math.min(m, n);
    expect([q.rows, q.cols, r.rows, r.cols]).toEqual([m, k, k, n]);
    expect(orthonormalityError(q)).toBeLessThan(1e-13);
    for (let i = 0; i < k; i++) for (let j = 0; j < i; j++) expect(r.data[i * n + j]).toBe(0);
    const qr = matmul(q, r);
    expect(maxAbs(qr.data.map((x, i) => x - a.data[i]!))).toBeLessThan(1e-13);
  });

  it('handles zero and repeated columns (rank-deficient input)', () => {
    const a = randomMatrix(12, 6, 5);
    for (let i = 0; i < 12; i++) {
      a.data[i * 6 + 2] = 0;
      a.data[i * 6 + 4] = a.data[i * 6 + 1]!;
    }
    const { q, r } = householderQr(a);
    expect(orthonormalityError(q)).toBeLessThan(1e-13);
    const qr = matmul(q, r);
    expect(maxAbs(qr.data.map((x, i) => x - a.data[i]!))).toBeLessThan(1e-13);
  });
});

describe('denseSvd (one-sided Jacobi) against the float64 reference', () => {
  it.each([
    ['tall random', 40, 25, 1],
    ['wide random', 20, 33, 2],
    ['square random', 30, 30, 3],
    ['vector', 17, 1, 4],
  ])('%s %i×%i', (_name, m, n, seed) => {
    const a = randomMatrix(m, n, seed);
    expectAgreesWithReference(a, denseSvd(a));
  });

  it('rank-deficient: rank 5 in 30×20, the rest of the spectrum is ~0 and U stays orthonormal', () => {
    const a = matmul(randomMatrix(30, 5, 7), randomMatrix(5, 20, 8));
    const svd = denseSvd(a);
    expectAgreesWithReference(a, svd);
    expect(maxAbs(svd.s.subarray(5))).toBeLessThan(1e-12 * svd.s[0]!);
  });

  it('exactly zero columns and a zero matrix: orthonormal completion of U', () => {
    const a = randomMatrix(10, 6, 9);
    for (let i = 0; i < 10; i++) {
      a.data[i * 6 + 1] = 0;
      a.data[i * 6 + 5] = 0;
    }
    const svd = jacobiSvd(a);
    expectAgreesWithReference(a, svd);
    expect(Array.from(svd.s.subarray(4))).toEqual([0, 0]);
    const zero = { rows: 7, cols: 4, data: new Float64Array(28) };
    const z = denseSvd(zero);
    expect(Array.from(z.s)).toEqual([0, 0, 0, 0]);
    expect(orthonormalityError(z.u)).toBeLessThan(1e-14);
  });

  it('ill-conditioned: σ from 1 down to 1e-12 (κ = 1e12)', () => {
    const sigma = Array.from({ length: 15 }, (_, i) => 10 ** (-12 * (i / 14)));
    const a = planted(35, 22, sigma, 11);
    const svd = denseSvd(a);
    expectAgreesWithReference(a, svd);
    // And against the planted values themselves (the matrix holds them to rounding, ~ε·σ_max).
    for (let i = 0; i < 15; i++) expect(Math.abs(svd.s[i]! - sigma[i]!)).toBeLessThan(1e-14);
  });

  it('clustered singular values (1, 1, 1, 1e-3, …): values exact, subspace orthonormal', () => {
    const a = planted(20, 15, [1, 1, 1, 1e-3, 1e-3, 1e-9], 13);
    const svd = denseSvd(a);
    expectAgreesWithReference(a, svd, { vectors: false });
  });
});

describe('randomizedSvd (Halko et al.)', () => {
  it('is exact (to rounding) when the rank is at most rank + oversample: 400×300 of rank 8', () => {
    const sigma = [5, 3, 2, 1, 0.5, 0.1, 1e-3, 1e-6];
    const a = planted(400, 300, sigma, 21);
    const svd = randomizedSvd(a, 6, { oversample: 4, powerIterations: 1 });
    expect(svd.s.length).toBe(6);
    for (let i = 0; i < 6; i++) expect(Math.abs(svd.s[i]! - sigma[i]!)).toBeLessThan(1e-10 * sigma[0]!);
    expect(orthonormalityError(svd.u)).toBeLessThan(1e-12);
    const v: Matrix = { rows: 300, cols: 6, data: new Float64Array(1800) };
    for (let r = 0; r < 6; r++) for (let c = 0; c < 300; c++) v.data[c * 6 + r] = svd.vt.data[r * 300 + c]!;
    expect(orthonormalityError(v)).toBeLessThan(1e-12);
    // The same triplets as the dense SVD, up to sign.
    const dense = truncateSvd(denseSvd(a), 6);
    for (let i = 0; i < 6; i++) {
      expect(upToSign(column(svd.u, i), column(dense.u, i))).toBeLessThan(1e-8);
      const a1 = Array.from(svd.vt.data.subarray(i * 300, i * 300 + 300));
      const a2 = Array.from(dense.vt.data.subarray(i * 300, i * 300 + 300));
      expect(upToSign(a1, a2)).toBeLessThan(1e-8);
    }
  });

  it('with power iterations gets within 1e-3 of the optimal error on a slowly decaying spectrum', () => {
    const sigma = Array.from({ length: 120 }, (_, i) => 0.9 ** i);
    const a = planted(260, 200, sigma, 31);
    const k = 10;
    const svd = randomizedSvd(a, k, { seed: 3 });
    const optimal = sigma.slice(k).reduce((s, x) => s + x * x, 0);
    let err = 0;
    for (let i = 0; i < 260; i++)
      for (let j = 0; j < 200; j++) {
        let x = 0;
        for (let r = 0; r < k; r++) x += svd.u.data[i * k + r]! * svd.s[r]! * svd.vt.data[r * 200 + j]!;
        err += (x - a.data[i * 200 + j]!) ** 2;
      }
    expect(err).toBeGreaterThanOrEqual(optimal * (1 - 1e-9));
    expect(err).toBeLessThan(optimal * 1.001);
    for (let i = 0; i < k; i++) expect(Math.abs(svd.s[i]! - sigma[i]!)).toBeLessThan(1e-3 * sigma[i]!);
    expect(orthonormalityError(svd.u)).toBeLessThan(1e-12);
  });

  it('is reproducible for a seed; truncatedSvd picks dense for small matrices', () => {
    const a = randomMatrix(300, 280, 41);
    const x = randomizedSvd(a, 4, { seed: 9 });
    const y = randomizedSvd(a, 4, { seed: 9 });
    expect(Array.from(x.s)).toEqual(Array.from(y.s));
    const small = randomMatrix(30, 20, 42);
    const t = truncatedSvd(small, 3);
    const d = truncateSvd(denseSvd(small), 3);
    expect(Array.from(t.s)).toEqual(Array.from(d.s));
  });
});
