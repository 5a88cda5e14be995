/**
 * `adapter extract` on one large module: randomized truncated SVD (Halko et al., p = 10, q = 0/1/2 power
 * iterations) vs the exact dense SVD (one-sided Jacobi), time and error, per module as
 * src/engine/delta/extract.ts `extractFactors` runs it (SVD, B = U·√S / A = √S·Vᵀ, the error of the float32
 * factors). The matrix is a synthetic fine-tuning delta with a known, slowly decaying spectrum:
 * ΔW = U·diag(σ)·Vᵀ, σᵢ = (i + 1)^−0.75 for i < 1024 (n/2 below 2048), U, V random orthonormal — so the optimal
 * rank-r error √(Σ_{i≥r} σᵢ²) / ‖σ‖ is known exactly at every size.
 * The dense Jacobi SVD is O(n³) per sweep in TypeScript (≈ 1 h at 4096): it runs at --full-n (default
 * 2048), and the 4096 figure is extrapolated from it (×8 per doubling), never measured.
 * Run: `node --import tsx bench/svd.ts [--n 4096] [--full-n 2048] [--rank 64] [--skip-full]`.
 */
import { extractFactors } from '../src/engine/delta/extract.js';
import { gaussian, matmulNT, type Matrix } from '../src/engine/linalg/matrix.js';
import { householderQr } from '../src/engine/linalg/qr.js';
import { benchArgs, emitResult } from './lib/args.js';

/** σᵢ = (i + 1)^−0.75, i < min(1024, n/2): the planted spectrum at size n. */
function spectrum(n: number): number[] {
  return Array.from({ length: Math.min(1024, n / 2) }, (_, i) => (i + 1) ** -0.75);
}

/** U·diag(σ)·Vᵀ (n, n) with random orthonormal U, V (n, k), k = σ.length. */
function syntheticDelta(n: number, seed: number): Matrix {
  const sigma = spectrum(n);
  const k = sigma.length;
  const u = householderQr(gaussian(n, k, seed)).q;
  const v = householderQr(gaussian(n, k, seed + 1)).q;
  for (let i = 0; i < n; i++) for (let j = 0; j < k; j++) u.data[i * k + j]! *= sigma[j]!;
  return matmulNT(u, v);
}

/** √(Σ_{i≥rank} σᵢ²) / ‖σ‖: the best any rank-`rank` approximation can do. */
function optimalError(n: number, rank: number): number {
  const sigma = spectrum(n);
  const all = sigma.reduce((s, x) => s + x * x, 0);
  const tail = sigma.slice(rank).reduce((s, x) => s + x * x, 0);
  return Math.sqrt(tail / all);
}

interface Row {
  n: number;
  method: string;
  seconds: number | null;
  keptEnergy: number | null;
  relativeError: number | null;
  note?: string;
}

function measure(d: Matrix, rank: number, method: 'dense' | 'randomized', q = 2): Row {
  const t0 = performance.now();
  const x = extractFactors(d, { rank }, { method, powerIterations: q, oversample: 10, seed: 0 });
  const seconds = (performance.now() - t0) / 1000;
  const row: Row = {
    n: d.rows,
    method: method === 'dense' ? 'full (one-sided Jacobi)' : `randomized, q = ${q}`,
    seconds,
    keptEnergy: x.kept / x.total,
    relativeError: x.error / x.norm,
  };
  console.error(`  ${JSON.stringify(row)}`);
  emitResult({ ...row });
  return row;
}

const args = benchArgs();
const n = Number(args.get('n') ?? 4096);
const fullN = Number(args.get('full-n') ?? 2048);
const rank = Number(args.get('rank') ?? 64);
const rows: Row[] = [];

console.error(`building the ${fullN}×${fullN} delta`);
const small = syntheticDelta(fullN, 1);
for (const q of [0, 1, 2]) rows.push(measure(small, rank, 'randomized', q));
let full: Row | undefined;
if (!args.has('skip-full')) {
  console.error(`full SVD of ${fullN}×${fullN} (minutes)`);
  full = measure(small, rank, 'dense');
  rows.push(full);
}
if (n !== fullN) {
  console.error(`building the ${n}×${n} delta`);
  const big = syntheticDelta(n, 2);
  for (const q of [0, 1, 2]) rows.push(measure(big, rank, 'randomized', q));
  if (full?.seconds) {
    rows.push({
      n,
      method: 'full (one-sided Jacobi)',
      seconds: full.seconds * (n / fullN) ** 3,
      keptEnergy: null,
      relativeError: null,
      note: `not run: extrapolated from ${fullN} (×${((n / fullN) ** 3).toFixed(0)})`,
    });
  }
}

const fmt = (x: number | null, f: (v: number) => string) => (x === null ? '—' : f(x));
console.log(`rank ${rank}; optimal error = the Eckart–Young error of the known spectrum`);
console.log('| size | SVD | time | kept energy | relative error | optimal error |');
console.log('|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(
    `| ${r.n}×${r.n} | ${r.method} | ${fmt(r.seconds, (s) => `${s.toFixed(1)} s`)}${r.note ? ` (${r.note})` : ''} | ${fmt(r.keptEnergy, (v) => v.toFixed(4))} | ${fmt(r.relativeError, (v) => v.toFixed(4))} | ${optimalError(r.n, rank).toFixed(4)} |`,
  );
}
