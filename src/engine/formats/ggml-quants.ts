/**
 * ggml's tensor encodings, byte for byte as ggml-quants.c defines them: F32, F16, BF16, Q8_0 and Q4_0
 * (blocks of 32: an f16 scale + int8 values / packed nibbles; `quantize_row_q8_0_ref`,
 * `quantize_row_q4_0_ref`) both ways, and the k-quants Q4_K and Q6_K (super-blocks of 256) for reading.
 * Float32 arithmetic is mirrored with Math.fround so the bytes equal the C reference's. The container is
 * `gguf.ts`.
 */
import { bf16ToFloat, floatToHalf, halfToFloat } from './safetensors.js';
import { GgufError, type GgmlType } from './gguf.js';

const f = Math.fround;

/** C's roundf: halves away from zero. */
function roundf(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

/** The ggml types `encodeTensor` writes. */
export type GgmlEncoding = 'F32' | 'F16' | 'Q8_0' | 'Q4_0';

/** Float32 values → the bytes of `type` (row length must be a multiple of its block). */
export function encodeTensor(x: Float32Array, type: GgmlEncoding): Uint8Array {
  switch (type) {
    case 'F32': {
      const out = new Uint8Array(x.length * 4);
      const dv = new DataView(out.buffer);
      for (let i = 0; i < x.length; i++) dv.setFloat32(4 * i, x[i]!, true);
      return out;
    }
    case 'F16': {
      const out = new Uint8Array(x.length * 2);
      const dv = new DataView(out.buffer);
      for (let i = 0; i < x.length; i++) dv.setUint16(2 * i, floatToHalf(x[i]!), true);
      return out;
    }
    case 'Q8_0':
      return quantizeQ8_0(x);
    case 'Q4_0':
      return quantizeQ4_0(x);
  }
}

/** `quantize_row_q8_0_ref`: d = amax/127, q = roundf(x/d); 34 bytes per 32 values. */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  const nb = x.length / 32;
  const out = new Uint8Array(nb * 34);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < nb; i++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[i * 32 + j]!));
    const d = f(amax / 127);
    const id = d !== 0 ? f(1 / d) : 0;
    dv.setUint16(i * 34, floatToHalf(d), true);
    for (let j = 0; j < 32; j++) dv.setInt8(i * 34 + 2 + j, roundf(f(x[i * 32 + j]! * id)));
  }
  return out;
}

/**
 * `quantize_row_q4_0_ref`: d = max/-8 where max is the value of largest magnitude (sign kept), nibble =
 * min(15, trunc(x/d + 8.5)); low nibbles hold values 0..15 of the block, high nibbles 16..31. 18 bytes.
 */
export function quantizeQ4_0(x: Float32Array): Uint8Array {
  const nb = x.length / 32;
  const out = new Uint8Array(nb * 18);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < nb; i++) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[i * 32 + j]!;
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = f(max / -8);
    const id = d !== 0 ? f(1 / d) : 0;
    dv.setUint16(i * 18, floatToHalf(d), true);
    for (let j = 0; j < 16; j++) {
      const x0 = f(x[i * 32 + j]! * id);
      const x1 = f(x[i * 32 + 16 + j]! * id);
      const q0 = Math.min(15, Math.trunc(f(x0 + 8.5)));
      const q1 = Math.min(15, Math.trunc(f(x1 + 8.5)));
      out[i * 18 + 2 + j] = q0 | (q1 << 4);
    }
  }
  return out;
}

/** 6-bit scale and min j of a Q4_K super-block (`get_scale_min_k4`). */
function scaleMinK4(j: number, q: Uint8Array, at: number): [number, number] {
  if (j < 4) return [q[at + j]! & 63, q[at + j + 4]! & 63];
  return [
    (q[at + j + 4]! & 0xf) | ((q[at + j - 4]! >> 6) << 4),
    (q[at + j + 4]! >> 4) | ((q[at + j]! >> 6) << 4),
  ];
}

/** The types `decodeTensor` reads. */
export const DECODABLE_TYPES: readonly string[] = ['F32', 'F16', 'BF16', 'Q8_0', 'Q4_0', 'Q4_K', 'Q6_K'];

/** The bytes of a tensor of `type` → float32 values (`numel` of them), as ggml's `dequantize_row_*`. */
export function decodeTensor(bytes: Uint8Array, type: GgmlType, numel: number, tensor: string): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const y = new Float32Array(numel);
  const h = (at: number) => halfToFloat(dv.getUint16(at, true));
  switch (type.name) {
    case 'F32':
      for (let i = 0; i < numel; i++) y[i] = dv.getFloat32(4 * i, true);
      return y;
    case 'F16':
      for (let i = 0; i < numel; i++) y[i] = h(2 * i);
      return y;
    case 'BF16':
      for (let i = 0; i < numel; i++) y[i] = bf16ToFloat(dv.getUint16(2 * i, true));
      return y;
    case 'Q8_0':
      for (let i = 0; i < numel / 32; i++) {
        const d = h(i * 34);
        for (let j = 0; j < 32; j++) y[i * 32 + j] = dv.getInt8(i * 34 + 2 + j) * d;
      }
      return y;
    case 'Q4_0':
      for (let i = 0; i < numel / 32; i++) {
        const d = h(i * 18);
        for (let j = 0; j < 16; j++) {
          const q = bytes[i * 18 + 2 + j]!;
          y[i * 32 + j] = ((q & 0xf) - 8) * d;
          y[i * 32 + 16 + j] = ((q >> 4) - 8) * d;
        }
      }
      return y;
    case 'Q4_K':
      // block_q4_K: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles (144 bytes / 256).
      for (let i = 0; i < numel / 256; i++) {
        const at = i * 144;
        const d = h(at);
        const dmin = h(at + 2);
        let q = at + 16;
        let o = i * 256;
        for (let is = 0; is < 8; is += 2) {
          const [sc1, m1] = scaleMinK4(is, bytes, at + 4);
          const [sc2, m2] = scaleMinK4(is + 1, bytes, at + 4);
          const d1 = f(d * sc1);
          const mm1 = f(dmin * m1);
          const d2 = f(d * sc2);
          const mm2 = f(dmin * m2);
          for (let l = 0; l < 32; l++) y[o + l] = f(d1 * (bytes[q + l]! & 0xf)) - mm1;
          for (let l = 0; l < 32; l++) y[o + 32 + l] = f(d2 * (bytes[q + l]! >> 4)) - mm2;
          q += 32;
          o += 64;
        }
      }
      return y;
    case 'Q6_K':
      // block_q6_K: ql[128] low nibbles, qh[64] high 2 bits, int8 scales[16], f16 d (210 bytes / 256).
      for (let i = 0; i < numel / 256; i++) {
        const at = i * 210;
        const d = h(at + 208);
        for (let n = 0; n < 2; n++) {
          const ql = at + n * 64;
          const qh = at + 128 + n * 32;
          const sc = at + 192 + n * 8;
          const o = i * 256 + n * 128;
          for (let l = 0; l < 32; l++) {
            const is = l >> 4;
            const b = bytes[qh + l]!;
            const q1 = ((bytes[ql + l]! & 0xf) | ((b & 3) << 4)) - 32;
            const q2 = ((bytes[ql + l + 32]! & 0xf) | (((b >> 2) & 3) << 4)) - 32;
            const q3 = ((bytes[ql + l]! >> 4) | (((b >> 4) & 3) << 4)) - 32;
            const q4 = ((bytes[ql + l + 32]! >> 4) | (((b >> 6) & 3) << 4)) - 32;
            y[o + l] = f(d * dv.getInt8(sc + is)) * q1;
            y[o + l + 32] = f(d * dv.getInt8(sc + is + 2)) * q2;
            y[o + l + 64] = f(d * dv.getInt8(sc + is + 4)) * q3;
            y[o + l + 96] = f(d * dv.getInt8(sc + is + 6)) * q4;
          }
        }
      }
      return y;
    default:
      throw new GgufError(
        `tensor ${tensor} is ${type.name}, a type this importer cannot decode (${DECODABLE_TYPES.join(', ')} are)`,
        { tensor },
      );
  }
}
