/**
 * QLoRA's NF4 weight format, exactly as bitsandbytes stores it and as ORT's `com.microsoft.MatMulBnb4`
 * (quant_type=1) reads it: flat blocks of 64 over the row-major (N, K) weight, absmax scaling, 16 NormalFloat
 * levels, two codes per byte (even flat index in the HIGH nibble), absmax double-quantized (dynamic-map.ts).
 * This is the plain-loop reference and the quantizer, not a kernel; the ONNX node is emitted by src/engine/onnx.
 */
import { BadInputError } from '../../shared/errors.js';
import { doubleDequantize, doubleQuantize } from './dynamic-map.js';

export { DYNAMIC_MAP_8BIT } from './dynamic-map.js';

const f = Math.fround;

/** bitsandbytes `get_4bit_type('nf4')` / the CUDA `nf4_data` table (float32). Index = 4-bit code. */
export const NF4_LEVELS: Float32Array = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
  -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
  0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]);

/**
 * The decision thresholds of bitsandbytes' CUDA `dQuantizeNF4` tree (midpoints of adjacent levels, as float32
 * literals): code c is chosen when THRESHOLDS[c-1] < x <= THRESHOLDS[c]. A value exactly on a threshold goes DOWN.
 */
export const NF4_THRESHOLDS: Float32Array = Float32Array.from([
  -0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544, -0.23460740596055984,
  -0.13791173323988914, -0.045525018125772476, 0.03979014977812767, 0.1202552504837513, 0.2035212516784668,
  0.2920137718319893, 0.3893125355243683, 0.5016634166240692, 0.6427869200706482, 0.8614784181118011,
]);

/** The NF4 code of a value already scaled into [-1, 1]: the same comparisons as `dQuantizeNF4` (x > t ⇒ up). */
export function nf4Code(x: number): number {
  // A linear scan over 15 thresholds is the tree flattened; NaN (0/0 blocks are handled by the caller) maps to 0.
  let c = 0;
  while (c < 15 && x > NF4_THRESHOLDS[c]!) c++;
  return c;
}

export const NF4_BLOCK_SIZE = 64;
export const NF4_ABSMAX_BLOCK_SIZE = 256;

export interface Nf4Weight {
  /** rows = out_features */
  n: number;
  /** columns = in_features */
  k: number;
  blockSize: 64;
  /** ceil(N*K/2) bytes; flat index i = n*K + k; even i in the high nibble */
  packed: Uint8Array;
  /** ceil(N*K/64) dynamic-map codes of the per-block absmax (after subtracting absmaxOffset) */
  absmaxCodes: Uint8Array;
  /** one fp32 scale per 256 absmax codes */
  absmaxScales: Float32Array;
  /** the mean absmax, subtracted before the 8-bit quantization */
  absmaxOffset: number;
}

/**
 * Quantize an HF Linear weight (N=out, K=in, row-major). Blocks are flat over N*K, so any K works — a block may
 * straddle two rows (K=172 does), exactly as bitsandbytes and MatMulBnb4 treat the flattened tensor; the last
 * block may be short and an odd N*K leaves the low nibble of the last byte 0. No padding is ever added.
 * Like bitsandbytes, the weights are encoded against the exact fp32 absmax; the double quantization then
 * perturbs the scale by < 0.5 of a dynamic-map step (see dequantizeAbsmax).
 */
export function quantizeNf4(w: Float32Array, n: number, k: number): Nf4Weight {
  if (!Number.isInteger(n) || !Number.isInteger(k) || n <= 0 || k <= 0) {
    throw new BadInputError(`quantizeNf4: N and K must be positive integers, got N=${n} K=${k}`);
  }
  const numel = n * k;
  if (w.length !== numel)
    throw new BadInputError(`quantizeNf4: weight has ${w.length} values, expected N*K=${numel}`);
  const nBlocks = Math.ceil(numel / NF4_BLOCK_SIZE);
  const absmax = new Float32Array(nBlocks);
  const packed = new Uint8Array(Math.ceil(numel / 2));
  for (let b = 0; b < nBlocks; b++) {
    const lo = b * NF4_BLOCK_SIZE;
    const hi = Math.min(numel, lo + NF4_BLOCK_SIZE);
    let m = 0;
    for (let i = lo; i < hi; i++) m = Math.max(m, Math.abs(w[i]!));
    if (!Number.isFinite(m)) throw new BadInputError(`quantizeNf4: non-finite weight in block ${b}`);
    absmax[b] = m;
    // bitsandbytes scales by the float32 reciprocal. An all-zero block: bitsandbytes' 0·inf = NaN lands on
    // code 0 (-1·0); we write code 7 (0.0) instead — the dequantized values are the same zeros.
    const r = m === 0 ? 0 : f(1 / m);
    for (let i = lo; i < hi; i++) {
      const c = m === 0 ? 7 : nf4Code(f(w[i]! * r));
      packed[i >> 1] |= i & 1 ? c : c << 4;
    }
  }
  const dq = doubleQuantize(absmax, NF4_ABSMAX_BLOCK_SIZE);
  return {
    n,
    k,
    blockSize: NF4_BLOCK_SIZE,
    packed,
    absmaxCodes: dq.codes,
    absmaxScales: dq.scales,
    absmaxOffset: dq.offset,
  };
}

/** The fp32 absmax per 64-block that MatMulBnb4's `absmax` input takes: dynamic-map[code]·scale + offset. */
export function dequantizeAbsmax(q: Nf4Weight): Float32Array {
  return doubleDequantize({
    codes: q.absmaxCodes,
    scales: q.absmaxScales,
    offset: q.absmaxOffset,
    blockSize: NF4_ABSMAX_BLOCK_SIZE,
  });
}

/** The (N, K) row-major fp32 weight the format stands for: NF4_LEVELS[code] · absmax[flat / 64]. */
export function dequantizeNf4(q: Nf4Weight): Float32Array {
  const absmax = dequantizeAbsmax(q);
  const numel = q.n * q.k;
  const out = new Float32Array(numel);
  for (let i = 0; i < numel; i++) {
    const byte = q.packed[i >> 1]!;
    const c = i & 1 ? byte & 0x0f : byte >> 4;
    out[i] = f(NF4_LEVELS[c]! * absmax[Math.floor(i / NF4_BLOCK_SIZE)]!);
  }
  return out;
}

/** Stored bits per weight: packed codes + absmax codes + absmax scales + the offset (everything but N, K). */
export function nf4BitsPerParameter(q: Nf4Weight): number {
  const bytes = q.packed.byteLength + q.absmaxCodes.byteLength + q.absmaxScales.byteLength + 4;
  return (bytes * 8) / (q.n * q.k);
}
