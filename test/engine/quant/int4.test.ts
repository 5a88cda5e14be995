/**
 * The int4 grid against ORT's MatMulNBits: packed layout (low nibble first), per-block scales and packed zero
 * points multiply exactly like dequantize-then-matmul for block sizes 32/64/128 and a padded K; the error of
 * the grid is within half a step; the compact (double-quantized) scale storage and its bits/param.
 */
import { describe, expect, it } from 'vitest';
import {
  dequantizeInt4,
  expandInt4Scales,
  int4BitsPerParameter,
  quantizeInt4,
  type Int4Weight,
} from '../../../src/engine/quant/int4.js';
import { expectClose } from '../../helpers/expect-close.js';
import { gaussian, matMulWeightT, oneNodeModel, runOnce } from './one-node-model.js';

/** Y = A·dequant(B)ᵀ through ORT; `lead` = A's leading dims (default [m]), e.g. [B, T] for (B, T, K). */
async function nbits(
  a: Float32Array,
  m: number,
  q: Int4Weight,
  accuracyLevel = 0,
  lead = [m],
): Promise<Float32Array> {
  const nb = Math.ceil(q.k / q.blockSize);
  const bytes = oneNodeModel(
    'MatMulNBits',
    'com.microsoft',
    { K: q.k, N: q.n, bits: 4, block_size: q.blockSize, accuracy_level: accuracyLevel },
    { name: 'A', dims: [...lead, q.k] },
    [
      { name: 'B', dims: [q.n, nb, q.blockSize / 2], data: q.packed },
      { name: 'scales', dims: [q.n * nb], data: q.scales },
      { name: 'zero_points', dims: [q.zeroPoints.length], data: q.zeroPoints },
    ],
    [...lead, q.n],
  );
  return runOnce(bytes, 'A', a, [...lead, q.k]);
}

describe('int4 layout', () => {
  it('packs even K positions low, zero points per block low-first, pads K with the zero point', () => {
    // One row, K = 40 with block 32: block 0 is a ramp 0..15 (twice), block 1 is 8 values then padding.
    const w = new Float32Array(40);
    for (let c = 0; c < 32; c++) w[c] = (c % 16) - 3; // min -3, max 12 → scale 1, zp 3
    for (let c = 32; c < 40; c++) w[c] = -(c - 32) * 2; // min -14, max 0 → scale 14/15, zp 15
    const q = quantizeInt4(w, 1, 40, { blockSize: 32 });
    expect(q.packed.length).toBe(2 * 16);
    expect(Array.from(q.packed.subarray(0, 8))).toEqual([0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe]);
    expect(q.zeroPoints).toEqual(Uint8Array.of(0xf3));
    expectClose(q.scales, [1, 14 / 15], { atol: 1e-7, rtol: 0 });
    expect(Array.from(q.packed.subarray(20, 32))).toEqual(Array(12).fill(0xff)); // padding = zp 15, 15
    expectClose(dequantizeInt4(q), w, { atol: 0.5 * (14 / 15) + 1e-6, rtol: 0, label: 'within half a step' });
  });
});

describe('int4 × MatMulNBits (onnxruntime-node)', () => {
  const cases = [
    { bs: 32, m: 3, n: 24, k: 96 },
    { bs: 64, m: 2, n: 40, k: 352 }, // 5.5 blocks: padded K, odd block count (half-used zero-point byte)
    { bs: 128, m: 1, n: 16, k: 172 },
    { bs: 64, m: 5, n: 33, k: 64 },
  ];
  for (const { bs, m, n, k } of cases) {
    it(`matches dequantize → matmul: block ${bs}, N=${n}, K=${k}`, async () => {
      const w = gaussian(n * k, 7 * k + bs, 0.05);
      for (let i = 0; i < n * k; i += 37) w[i] = Math.abs(w[i]!) * 3; // skewed blocks → varied zero points
      const a = gaussian(m * k, 3 + n);
      const q = quantizeInt4(w, n, k, { blockSize: bs });
      const ref = matMulWeightT(a, m, k, dequantizeInt4(q), n);
      expectClose(await nbits(a, m, q), ref, { atol: 2e-5, rtol: 1e-5, label: `block ${bs}` });
      // accuracy_level 4 quantizes A to int8 per block: close, not exact.
      expectClose(await nbits(a, m, q, 4), ref, { atol: 0.02, rtol: 0.02, label: `block ${bs}, accuracy 4` });
    });
  }

  it('takes a rank-3 activation (B, T, K) → (B, T, N)', async () => {
    const [b, t, n, k] = [2, 3, 16, 96];
    const q = quantizeInt4(gaussian(n * k, 41, 0.05), n, k, { blockSize: 32 });
    const a = gaussian(b * t * k, 42);
    const y = await nbits(a, b * t, q, 0, [b, t]);
    expectClose(y, matMulWeightT(a, b * t, k, dequantizeInt4(q), n), {
      atol: 2e-5,
      rtol: 1e-5,
      label: 'rank 3',
    });
  });

  it('disagrees when the zero-point nibbles are swapped (the layout test can fail)', async () => {
    const [m, n, k] = [1, 4, 128];
    const w = gaussian(n * k, 2, 0.05);
    for (let i = 0; i < 64; i++) w[i] = Math.abs(w[i]!); // block 0 of row 0: zp 0; block 1: zp ≈ 7
    const q = quantizeInt4(w, n, k, { blockSize: 64 });
    expect(q.zeroPoints[0]! & 0x0f).not.toBe(q.zeroPoints[0]! >> 4);
    const swapped = { ...q, zeroPoints: q.zeroPoints.map((b) => ((b & 0x0f) << 4) | (b >> 4)) };
    const a = gaussian(k, 8);
    const y = await nbits(a, m, swapped);
    expect(() =>
      expectClose(y, matMulWeightT(a, m, k, dequantizeInt4(q), n), { atol: 1e-3, rtol: 0 }),
    ).toThrow(/not close/);
  });
});

describe('int4 storage', () => {
  const [n, k] = [128, 1024];
  const w = gaussian(n * k, 17, 0.02);

  it('costs 4.5625 bits/param at block 64 with fp32 scales, 4.28 at block 128', () => {
    expect(int4BitsPerParameter(quantizeInt4(w, n, k))).toBe(4 + 32 / 64 + 4 / 64);
    expect(int4BitsPerParameter(quantizeInt4(w, n, k, { blockSize: 128 }))).toBe(4 + 32 / 128 + 4 / 128);
  });

  it('compact scales: ≤ 4.2 bits/param, stored scales expand to exactly what ORT is fed, never smaller', () => {
    const exact = quantizeInt4(w, n, k);
    const q = quantizeInt4(w, n, k, { compactScales: true });
    const bits = int4BitsPerParameter(q);
    expectClose(bits, 4 + 8 / 64 + 4 / 64 + 32 / (64 * 256) + 32 / (n * k), { atol: 1e-9, rtol: 0 });
    expect(bits).toBeLessThanOrEqual(4.2);
    expect(expandInt4Scales(q.scaleStorage!)).toEqual(q.scales);
    for (let i = 0; i < q.scales.length; i++) expect(q.scales[i]!).toBeGreaterThanOrEqual(exact.scales[i]!);
    // Error: each weight within half a (stored) step of the grid; RMS barely above the fp32-scale grid.
    const dq = dequantizeInt4(q);
    const dqExact = dequantizeInt4(exact);
    let se = 0;
    let seExact = 0;
    let worstExcess = -Infinity; // max over weights of |error| - half a step
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < k; c++) {
        const i = r * k + c;
        const s = q.scales[r * (k / 64) + Math.floor(c / 64)]!;
        worstExcess = Math.max(worstExcess, Math.abs(dq[i]! - w[i]!) - 0.5 * s);
        se += (dq[i]! - w[i]!) ** 2;
        seExact += (dqExact[i]! - w[i]!) ** 2;
      }
    }
    expect(worstExcess).toBeLessThanOrEqual(1e-7);
    expect(Math.sqrt(se / seExact)).toBeLessThan(1.05);
  });

  it('refuses block sizes ORT does not take', () => {
    expect(() => quantizeInt4(w, n, k, { blockSize: 48 })).toThrow(/blockSize must be one of/);
  });
});
