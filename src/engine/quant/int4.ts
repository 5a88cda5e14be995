/**
 * The uniform asymmetric int4 grid of ORT's `com.microsoft.MatMulNBits` (bits=4): per (row, K-block) an fp32
 * scale and a uint4 zero point, w ≈ (q - zp)·scale — the grid QA-LoRA trains on, and the fast CPU decode path
 * (MatMulBnb4/NF4 is ~13× slower at M=1, see docs/ENGINE.md). Quantizer + plain-loop reference, not a kernel;
 * the node is emitted by src/engine/onnx. Optional compact storage double-quantizes the scales (dynamic-map.ts).
 */
import { BadInputError } from '../../shared/errors.js';
import { doubleDequantize, doubleQuantize } from './dynamic-map.js';

const f = Math.fround;

export const INT4_BLOCK_SIZES = [16, 32, 64, 128, 256] as const;

/** Scales stored as 8-bit dynamic-map codes (blocks of 256, fp32 scale each, mean offset), as NF4's absmax. */
export interface Int4ScaleStorage {
  codes: Uint8Array;
  scales: Float32Array;
  offset: number;
}

/**
 * Exactly MatMulNBits' inputs (bits=4). With nb = ceil(K / blockSize):
 * - packed: uint8 [N, nb, blockSize/2]: code of (n, k) at byte n*nb*bs/2 + ⌊k/bs⌋*bs/2 + ⌊(k%bs)/2⌋,
 *   even k%bs in the LOW nibble (MatMulBnb4 is the other way round); K is padded to nb·bs with the zero point.
 * - scales: fp32 [N * nb], index n*nb + kb.
 * - zeroPoints: uint8 [N * ⌈nb/2⌉], index n*⌈nb/2⌉ + ⌊kb/2⌋, even kb in the LOW nibble.
 */
export interface Int4Weight {
  n: number;
  k: number;
  blockSize: number;
  packed: Uint8Array;
  scales: Float32Array;
  zeroPoints: Uint8Array;
  /** present when quantized with `compactScales`: `scales` are exactly this storage, dequantized */
  scaleStorage?: Int4ScaleStorage;
}

export interface Int4Options {
  /** K-block length: a power of two ≥ 16 (ORT's rule); default 64 */
  blockSize?: number;
  /** double-quantize the scales for storage (≈ 4.19 bits/param at block 64 instead of 4.56) */
  compactScales?: boolean;
}

export function int4BlocksPerRow(k: number, blockSize: number): number {
  return Math.ceil(k / blockSize);
}

/**
 * ORT's own range-to-scale rule (MLAS `range2scalezp`): the block range is widened to include 0 so that 0 is
 * exact, scale = (max - min)/15, zp = round(-min/scale) clamped to [0, 15], q = clamp(round(w/scale + zp)).
 */
function zeroPointFor(min: number, scale: number): number {
  if (scale === 0) return 0;
  return Math.min(15, Math.max(0, Math.round(-min / scale)));
}

export function quantizeInt4(w: Float32Array, n: number, k: number, opts: Int4Options = {}): Int4Weight {
  const bs = opts.blockSize ?? 64;
  if (!(INT4_BLOCK_SIZES as readonly number[]).includes(bs)) {
    throw new BadInputError(
      `quantizeInt4: blockSize must be one of ${INT4_BLOCK_SIZES.join('/')}, got ${bs}`,
    );
  }
  if (!Number.isInteger(n) || !Number.isInteger(k) || n <= 0 || k <= 0) {
    throw new BadInputError(`quantizeInt4: N and K must be positive integers, got N=${n} K=${k}`);
  }
  if (w.length !== n * k)
    throw new BadInputError(`quantizeInt4: weight has ${w.length} values, expected ${n * k}`);
  const nb = int4BlocksPerRow(k, bs);
  const zpRow = Math.ceil(nb / 2);
  const mins = new Float32Array(n * nb);
  let scales: Float32Array = new Float32Array(n * nb);
  for (let r = 0; r < n; r++) {
    for (let b = 0; b < nb; b++) {
      let lo = 0;
      let hi = 0;
      for (let c = b * bs; c < Math.min(k, (b + 1) * bs); c++) {
        const v = w[r * k + c]!;
        if (!Number.isFinite(v))
          throw new BadInputError(`quantizeInt4: non-finite weight at row ${r} col ${c}`);
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      mins[r * nb + b] = lo;
      scales[r * nb + b] = f((hi - lo) / 15);
    }
  }
  let scaleStorage: Int4ScaleStorage | undefined;
  if (opts.compactScales) {
    // Quantize the scales first, then encode the weights against the scales ORT will actually see, so the
    // stored form is self-consistent (unlike bitsandbytes, which encodes NF4 against the exact absmax).
    const dq = doubleQuantize(scales, 256, 'up');
    scaleStorage = { codes: dq.codes, scales: dq.scales, offset: dq.offset };
    scales = doubleDequantize(dq);
    // Rounded up, a stored scale is never below the exact one: the block's range still fits in 0…15.
  }
  const blob = bs / 2;
  const packed = new Uint8Array(n * nb * blob);
  const zeroPoints = new Uint8Array(n * zpRow);
  for (let r = 0; r < n; r++) {
    for (let b = 0; b < nb; b++) {
      const s = scales[r * nb + b]!;
      const zp = zeroPointFor(mins[r * nb + b]!, s);
      zeroPoints[r * zpRow + (b >> 1)] |= b & 1 ? zp << 4 : zp;
      const inv = s > 0 ? 1 / s : 0;
      for (let j = 0; j < bs; j++) {
        const c = b * bs + j;
        // Padding past K holds the zero point, so the padded weights are exactly 0.
        const q = c < k && s > 0 ? Math.min(15, Math.max(0, Math.round(w[r * k + c]! * inv + zp))) : zp;
        packed[(r * nb + b) * blob + (j >> 1)] |= j & 1 ? q << 4 : q;
      }
    }
  }
  return { n, k, blockSize: bs, packed, scales, zeroPoints, ...(scaleStorage ? { scaleStorage } : {}) };
}

/** The (N, K) row-major fp32 weight MatMulNBits multiplies by: (q - zp)·scale, padding dropped. */
export function dequantizeInt4(q: Int4Weight): Float32Array {
  const { n, k, blockSize: bs } = q;
  const nb = int4BlocksPerRow(k, bs);
  const zpRow = Math.ceil(nb / 2);
  const out = new Float32Array(n * k);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < k; c++) {
      const b = Math.floor(c / bs);
      const j = c % bs;
      const byte = q.packed[(r * nb + b) * (bs / 2) + (j >> 1)]!;
      const code = j & 1 ? byte >> 4 : byte & 0x0f;
      const zb = q.zeroPoints[r * zpRow + (b >> 1)]!;
      const zp = b & 1 ? zb >> 4 : zb & 0x0f;
      out[r * k + c] = f((code - zp) * q.scales[r * nb + b]!);
    }
  }
  return out;
}

/** Expand compact scale storage back to the fp32 `scales` input ORT takes (done once at load). */
export function expandInt4Scales(storage: Int4ScaleStorage): Float32Array {
  return doubleDequantize({ ...storage, blockSize: 256 });
}

/** Stored bits per weight, counting every byte: packed (with K padding) + zero points + scales in stored form. */
export function int4BitsPerParameter(q: Int4Weight): number {
  const scaleBytes = q.scaleStorage
    ? q.scaleStorage.codes.byteLength + q.scaleStorage.scales.byteLength + 4
    : q.scales.byteLength;
  const bytes = q.packed.byteLength + q.zeroPoints.byteLength + scaleBytes;
  return (bytes * 8) / (q.n * q.k);
}
