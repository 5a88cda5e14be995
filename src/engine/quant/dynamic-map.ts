/**
 * bitsandbytes' 8-bit dynamic quantization map and its blockwise quantizer: the "double quantization" that
 * QLoRA applies to NF4's fp32 absmax values (and that int4.ts reuses for its scales).
 * Not a kernel: plain loops, run once at load/quantize time. The NF4 format that uses it lives in nf4.ts.
 * Source: bitsandbytes `functional.create_dynamic_map(signed=True)` and the CUDA `dQuantize<0>` search.
 */

const f = Math.fround;

/** float32 `torch.linspace(start, end, steps)` as the CPU kernel computes it (two halves, from each end). */
function linspaceF32(start: number, end: number, steps: number): number[] {
  const s = f(start);
  const e = f(end);
  const step = f(f(e - s) / (steps - 1));
  const half = Math.floor(steps / 2);
  const out: number[] = [];
  for (let i = 0; i < steps; i++) out.push(i < half ? f(s + f(step * i)) : f(e - f(step * (steps - i - 1))));
  return out;
}

/**
 * `create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)`: for each decade 1e-6 … 1, the midpoints
 * of an evenly spaced fraction grid (1, 2, 4, … 64 of them), both signs, plus 0 and 1.0; sorted ascending.
 * Index 127 is 0, index 255 is 1.0, index 0 is -0.9929…; float32 arithmetic as torch performs it.
 */
function createDynamicMap(): Float32Array {
  const data: number[] = [];
  const maxExponentBits = 7;
  const nonSignBits = 7;
  for (let i = 0; i < maxExponentBits; i++) {
    const fractionItems = 2 ** (i + nonSignBits - maxExponentBits) + 1;
    const b = linspaceF32(0.1, 1, fractionItems);
    const decade = f(10 ** (-(maxExponentBits - 1) + i));
    for (let j = 0; j + 1 < b.length; j++) {
      const mean = f(f(b[j]! + b[j + 1]!) / 2);
      data.push(f(decade * mean), -f(decade * mean));
    }
  }
  data.push(0, 1);
  data.sort((a, b) => a - b);
  return Float32Array.from(data);
}

/** The 256 signed dynamic-map levels (ascending), as bitsandbytes' `create_dynamic_map(signed=True)`. */
export const DYNAMIC_MAP_8BIT: Float32Array = createDynamicMap();

/**
 * bitsandbytes' CUDA `dQuantize<0>`: a 7-step binary search over the sorted code from pivot 127, then the
 * nearer of the two bracketing levels (ties go to the pivot). Equal to nearest-level for all but exact ties.
 */
export function quantizeToCode(code: Float32Array, x: number): number {
  let pivot = 127;
  let upperPivot = 255;
  let lowerPivot = 0;
  let lower = -1;
  let upper = 1;
  let val = code[pivot]!;
  for (let i = 64; i > 0; i >>= 1) {
    if (x > val) {
      lowerPivot = pivot;
      lower = val;
      pivot += i;
    } else {
      upperPivot = pivot;
      upper = val;
      pivot -= i;
    }
    val = code[pivot]!;
  }
  if (upperPivot === 255) upper = code[upperPivot]!;
  if (lowerPivot === 0) lower = code[lowerPivot]!;
  if (x > val) return x > f(f(upper + val) * 0.5) ? upperPivot : pivot;
  return x < f(f(lower + val) * 0.5) ? lowerPivot : pivot;
}

/** Values quantized to the dynamic map in blocks, after subtracting their mean (QLoRA's double quantization). */
export interface DoubleQuantized {
  /** one 8-bit dynamic-map index per value */
  codes: Uint8Array;
  /** one fp32 absmax per `blockSize` values (of the mean-subtracted values) */
  scales: Float32Array;
  /** the subtracted mean, added back on dequantization */
  offset: number;
  blockSize: number;
}

/**
 * bitsandbytes `quantize_4bit(..., compress_statistics=True)` applied to the absmax vector:
 * `offset = mean(x)`; `quantize_blockwise(x - offset, blocksize=256)` with the signed dynamic map.
 * `rounding: 'up'` (not in bitsandbytes) picks the next level at or above each value instead of the nearest,
 * so a dequantized scale never shrinks: int4.ts uses it so no weight clips and no scale reaches ≤ 0.
 */
export function doubleQuantize(
  x: Float32Array,
  blockSize = 256,
  rounding: 'nearest' | 'up' = 'nearest',
): DoubleQuantized {
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += x[i]!;
  const offset = x.length === 0 ? 0 : f(sum / x.length);
  const nBlocks = Math.ceil(x.length / blockSize);
  const codes = new Uint8Array(x.length);
  const scales = new Float32Array(nBlocks);
  for (let b = 0; b < nBlocks; b++) {
    const lo = b * blockSize;
    const hi = Math.min(x.length, lo + blockSize);
    let absmax = 0;
    for (let i = lo; i < hi; i++) absmax = Math.max(absmax, Math.abs(f(x[i]! - offset)));
    scales[b] = absmax;
    // bitsandbytes multiplies by the float32 reciprocal; an all-equal block (absmax 0) codes to 0 exactly.
    const r = absmax === 0 ? 0 : f(1 / absmax);
    for (let i = lo; i < hi; i++) {
      const c = quantizeToCode(DYNAMIC_MAP_8BIT, f(f(x[i]! - offset) * r));
      codes[i] = rounding === 'up' ? roundUp(c, x[i]!, absmax, offset) : c;
    }
  }
  return { codes, scales, offset, blockSize };
}

/** The smallest code at or above `c` whose dequantized value is ≥ x (255 when none is, by float rounding). */
function roundUp(c: number, x: number, scale: number, offset: number): number {
  while (c < 255 && f(f(DYNAMIC_MAP_8BIT[c]! * scale) + offset) < x) c++;
  return c;
}

/** `dequantize_blockwise(codes, state2) + offset`, in float32 as bitsandbytes computes it. */
export function doubleDequantize(q: DoubleQuantized): Float32Array {
  const out = new Float32Array(q.codes.length);
  for (let i = 0; i < out.length; i++) {
    const scale = q.scales[Math.floor(i / q.blockSize)]!;
    out[i] = f(f(DYNAMIC_MAP_8BIT[q.codes[i]!]! * scale) + q.offset);
  }
  return out;
}
