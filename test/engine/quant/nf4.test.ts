/**
 * NF4 against bitsandbytes' table and ORT's MatMulBnb4: every level and threshold tie encodes as the CUDA
 * tree does, the packed layout multiplies exactly like dequantize-then-matmul (also for K = 172, where flat
 * blocks straddle rows, and odd N·K), double quantization stays within its error bound, and bits/param ≈ 4.127.
 */
import { describe, expect, it } from 'vitest';
import {
  DYNAMIC_MAP_8BIT,
  NF4_LEVELS,
  NF4_THRESHOLDS,
  dequantizeAbsmax,
  dequantizeNf4,
  nf4BitsPerParameter,
  nf4Code,
  quantizeNf4,
} from '../../../src/engine/quant/nf4.js';
import { expectClose } from '../../helpers/expect-close.js';
import { gaussian, matMulWeightT, oneNodeModel, runOnce } from './one-node-model.js';

/** Y = A·dequant(B)ᵀ through ORT; `lead` = A's leading dims (default [m]), e.g. [B, T] for (B, T, K). */
async function bnb4(
  a: Float32Array,
  m: number,
  q: ReturnType<typeof quantizeNf4>,
  lead = [m],
): Promise<Float32Array> {
  const absmax = dequantizeAbsmax(q);
  const bytes = oneNodeModel(
    'MatMulBnb4',
    'com.microsoft',
    { K: q.k, N: q.n, block_size: 64, quant_type: 1 },
    { name: 'A', dims: [...lead, q.k] },
    [
      { name: 'B', dims: [q.packed.length], data: q.packed },
      { name: 'absmax', dims: [absmax.length], data: absmax },
    ],
    [...lead, q.n],
  );
  return runOnce(bytes, 'A', a, [...lead, q.k]);
}

describe('NF4 table', () => {
  it('is bitsandbytes get_4bit_type("nf4") in float32, thresholds at the level midpoints', () => {
    expect(Array.from(NF4_LEVELS.subarray(0, 4))).toEqual([
      -1,
      Math.fround(-0.6961928009986877),
      Math.fround(-0.5250730514526367),
      Math.fround(-0.39491748809814453),
    ]);
    expect(NF4_LEVELS[7]).toBe(0);
    expect(NF4_LEVELS[15]).toBe(1);
    const mids = Array.from({ length: 15 }, (_, i) => (NF4_LEVELS[i]! + NF4_LEVELS[i + 1]!) / 2);
    expectClose(NF4_THRESHOLDS, mids, { atol: 1e-7, rtol: 0, label: 'thresholds vs midpoints' });
  });

  it('encodes every level to its own code and every threshold tie downward, neighbours upward', () => {
    expect(Array.from(NF4_LEVELS, (v) => nf4Code(v))).toEqual([...Array(16).keys()]);
    const ties = Array.from(NF4_THRESHOLDS, (t) => nf4Code(t));
    expect(ties).toEqual([...Array(15).keys()]);
    const above = Array.from(NF4_THRESHOLDS, (t) => nf4Code(t + 1e-7));
    expect(above).toEqual([...Array(15).keys()].map((c) => c + 1));
    expect([nf4Code(-2), nf4Code(2), nf4Code(0)]).toEqual([0, 15, 7]);
  });

  it('packs the even flat index into the high nibble, one absmax per flat block of 64', () => {
    // Row 0 = levels 0..15 scaled by 2 (absmax 2 → exact codes), the rest of the block zero.
    const w = new Float32Array(2 * 64);
    for (let i = 0; i < 16; i++) w[i] = 2 * NF4_LEVELS[i]!;
    w[64] = -0.5; // second block: absmax 0.5, code 0
    const q = quantizeNf4(w, 2, 64);
    expect(Array.from(q.packed.subarray(0, 8))).toEqual([0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
    expect(q.packed[8]).toBe(0x77);
    expect(q.packed[32]).toBe(0x07);
    expect(q.absmaxCodes.length).toBe(2);
    expectClose(dequantizeAbsmax(q), [2, 0.5], { atol: 0.5 * 0.02, rtol: 0, label: 'absmax' });
  });
});

describe('NF4 × MatMulBnb4 (onnxruntime-node)', () => {
  const cases = [
    { name: 'K multiple of 64', m: 3, n: 48, k: 128 },
    { name: 'K = 172 (blocks straddle rows)', m: 2, n: 20, k: 172 },
    { name: 'odd N·K (half-used last byte, short last block)', m: 1, n: 7, k: 33 },
  ];
  for (const { name, m, n, k } of cases) {
    it(`matches dequantize → matmul: ${name}`, async () => {
      const w = gaussian(n * k, 11 + k, 0.05);
      const a = gaussian(m * k, 5 + n);
      const q = quantizeNf4(w, n, k);
      expect(q.packed.length).toBe(Math.ceil((n * k) / 2));
      const y = await bnb4(a, m, q);
      expectClose(y, matMulWeightT(a, m, k, dequantizeNf4(q), n), { atol: 2e-5, rtol: 1e-5, label: name });
    });
  }

  it('takes a rank-3 activation (B, T, K) → (B, T, N)', async () => {
    const [b, t, n, k] = [2, 3, 16, 64];
    const q = quantizeNf4(gaussian(n * k, 31, 0.05), n, k);
    const a = gaussian(b * t * k, 32);
    const y = await bnb4(a, b * t, q, [b, t]);
    expectClose(y, matMulWeightT(a, b * t, k, dequantizeNf4(q), n), {
      atol: 2e-5,
      rtol: 1e-5,
      label: 'rank 3',
    });
  });

  it('disagrees when the nibble order is swapped (the layout test can fail)', async () => {
    const [m, n, k] = [1, 8, 64];
    const q = quantizeNf4(gaussian(n * k, 3), n, k);
    const swapped = { ...q, packed: q.packed.map((b) => ((b & 0x0f) << 4) | (b >> 4)) };
    const y = await bnb4(gaussian(k, 4), m, swapped);
    const ref = matMulWeightT(gaussian(k, 4), m, k, dequantizeNf4(q), n);
    expect(() => expectClose(y, ref, { atol: 1e-3, rtol: 0 })).toThrow(/not close/);
  });
});

describe('double quantization of absmax', () => {
  it('uses the signed 8-bit dynamic map: 256 sorted levels, 0 at 127, 1 at 255', () => {
    expect(DYNAMIC_MAP_8BIT.length).toBe(256);
    for (let i = 1; i < 256; i++) expect(DYNAMIC_MAP_8BIT[i]! >= DYNAMIC_MAP_8BIT[i - 1]!).toBe(true);
    expect([DYNAMIC_MAP_8BIT[127], DYNAMIC_MAP_8BIT[255]]).toEqual([0, 1]);
    expectClose(DYNAMIC_MAP_8BIT[0]!, -0.99296875, { atol: 1e-7, rtol: 0, label: 'most negative' });
    expectClose(DYNAMIC_MAP_8BIT[128]!, 5.5e-7, { atol: 1e-12, rtol: 0, label: 'smallest positive' });
  });

  it('reconstructs each absmax within half a dynamic-map step of its 256-block', () => {
    const [n, k] = [96, 640]; // 960 absmax values → 4 blocks of 256 (last one short)
    const w = gaussian(n * k, 21, 0.02);
    for (let i = 0; i < w.length; i += 997) w[i] = w[i]! * 8; // outliers widen the absmax spread
    const q = quantizeNf4(w, n, k);
    expect(q.absmaxScales.length).toBe(4);
    const exact = new Float32Array(q.absmaxCodes.length);
    for (let b = 0; b < exact.length; b++) {
      for (let i = b * 64; i < (b + 1) * 64; i++) exact[b] = Math.max(exact[b]!, Math.abs(w[i]!));
    }
    const got = dequantizeAbsmax(q);
    // Largest gap between adjacent dynamic-map levels (0.9/64 in the top decade) / 2, times the block scale.
    for (let b = 0; b < got.length; b++) {
      const bound = (0.9 / 64 / 2) * q.absmaxScales[Math.floor(b / 256)]! + 1e-7;
      expect(Math.abs(got[b]! - exact[b]!), `absmax ${b}`).toBeLessThanOrEqual(bound);
    }
    let meanRel = 0;
    for (let b = 0; b < got.length; b++) meanRel += Math.abs(got[b]! - exact[b]!) / exact[b]! / got.length;
    expect(meanRel).toBeLessThan(0.01);
  });

  it('costs ≈ 4.127 bits per parameter', () => {
    const q = quantizeNf4(gaussian(256 * 1024, 9), 256, 1024);
    // 4 + 8/64 + 32/(64·256) = 4.12695…, plus one fp32 offset over 262 144 weights.
    expectClose(nf4BitsPerParameter(q), 4 + 8 / 64 + 32 / (64 * 256) + 32 / (256 * 1024), {
      atol: 1e-9,
      rtol: 0,
    });
  });

  it('refuses mismatched sizes and non-finite weights', () => {
    expect(() => quantizeNf4(new Float32Array(10), 2, 4)).toThrow(/expected N\*K=8/);
    expect(() => quantizeNf4(Float32Array.of(1, NaN), 1, 2)).toThrow(/non-finite/);
  });
});
