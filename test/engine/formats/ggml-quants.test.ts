/**
 * ggml's encodings (src/engine/formats/ggml-quants.ts) against reference vectors made by gguf-py's
 * numpy implementation (llama.cpp c392e50, gguf-py/gguf/quants.py: `quantize` of x.f32 to Q8_0/Q4_0,
 * `dequantize` of random Q4_K/Q6_K/Q8_0/Q4_0 blocks; files in ./ggml-ref), hand-made blocks that pin the
 * nibble order, and the error bounds of a quantize → dequantize round trip.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  decodeTensor,
  encodeTensor,
  quantizeQ4_0,
  quantizeQ8_0,
} from '../../../src/engine/formats/ggml-quants.js';
import { GgufError, ggmlType } from '../../../src/engine/formats/gguf.js';
import { floatToHalf } from '../../../src/engine/formats/safetensors.js';

const REF = join(import.meta.dirname, 'ggml-ref');
const bytes = (f: string) => new Uint8Array(readFileSync(join(REF, f)));
const floats = (f: string) => new Float32Array(bytes(f).buffer);

describe('the same bytes and values as gguf-py', () => {
  it.each(['Q4_K', 'Q6_K', 'Q8_0', 'Q4_0'])('dequantizes %s blocks exactly', (t) => {
    const want = floats(`${t}.f32`);
    const got = decodeTensor(bytes(`${t}.bin`), ggmlType(t), want.length, t);
    expect(Array.from(got)).toEqual(Array.from(want));
  });

  it('quantizes to Q8_0 and Q4_0 byte for byte (a zero block and a zero value included)', () => {
    const x = floats('x.f32');
    expect(Array.from(quantizeQ8_0(x))).toEqual(Array.from(bytes('x.q8_0')));
    expect(Array.from(quantizeQ4_0(x))).toEqual(Array.from(bytes('x.q4_0')));
  });
});

describe('block layouts', () => {
  it('Q8_0: f16 d = amax/127, then 32 int8 values rounded half away from zero', () => {
    const x = Float32Array.from({ length: 32 }, (_, i) => (i - 16) / 2);
    const b = quantizeQ8_0(x);
    expect(b.length).toBe(34);
    expect(new DataView(b.buffer).getUint16(0, true)).toBe(floatToHalf(8 / 127));
    const q = new Int8Array(b.buffer, 2, 32);
    expect([q[0], q[16], q[31]]).toEqual([-127, 0, Math.round((7.5 * 127) / 8)]);
  });

  it('Q4_0: low nibbles hold values 0..15, high nibbles 16..31, offset by 8; d = max / -8', () => {
    const x = new Float32Array(32);
    x[0] = -8; // the largest magnitude: d = 1
    x[16] = 7;
    x[1] = 3;
    const b = quantizeQ4_0(x);
    expect(new DataView(b.buffer).getUint16(0, true)).toBe(floatToHalf(1));
    // value v → nibble trunc(v / d + 8.5) with d = -8 / -8 = 1: -8 → 0, 7 → 15, 3 → 11, 0 → 8
    expect(b[2]).toBe(0 | (15 << 4));
    expect(b[3]).toBe(11 | (8 << 4));
    expect(Array.from(decodeTensor(b, ggmlType('Q4_0'), 32, 't')).slice(0, 2)).toEqual([-8, 3]);
  });

  it('Q4_K: sub-block j uses 6-bit scale/min j (packed as get_scale_min_k4), low nibbles then high', () => {
    const block = new Uint8Array(144);
    const dv = new DataView(block.buffer);
    dv.setUint16(0, floatToHalf(0.5), true); // d
    dv.setUint16(2, floatToHalf(0.25), true); // dmin
    const sc = [1, 2, 3, 4, 5, 6, 7, 63];
    const mn = [0, 1, 2, 3, 4, 5, 6, 62];
    for (let j = 0; j < 4; j++) {
      block[4 + j] = sc[j]! | ((sc[j + 4]! >> 4) << 6);
      block[8 + j] = mn[j]! | ((mn[j + 4]! >> 4) << 6);
      block[12 + j] = (sc[j + 4]! & 0xf) | ((mn[j + 4]! & 0xf) << 4);
    }
    for (let i = 0; i < 128; i++) block[16 + i] = (i % 16) | ((15 - (i % 16)) << 4);
    const y = decodeTensor(block, ggmlType('Q4_K'), 256, 't');
    const want = new Float32Array(256);
    for (let chunk = 0; chunk < 4; chunk++) {
      for (let l = 0; l < 32; l++) {
        const q = block[16 + chunk * 32 + l]!;
        want[chunk * 64 + l] = 0.5 * sc[2 * chunk]! * (q & 0xf) - 0.25 * mn[2 * chunk]!;
        want[chunk * 64 + 32 + l] = 0.5 * sc[2 * chunk + 1]! * (q >> 4) - 0.25 * mn[2 * chunk + 1]!;
      }
    }
    expect(Array.from(y)).toEqual(Array.from(want));
  });
});

describe('round trips', () => {
  const x = Float32Array.from({ length: 32 * 64 }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 97) / 50));
  it.each<['Q8_0' | 'Q4_0', number]>([
    // half a step, plus the f16 rounding of d (2^-11 relative) times the largest code
    ['Q8_0', (0.5 + 127 / 2048) / 127],
    ['Q4_0', 1.05 / 8],
  ])('%s: every value within its block scale bound', (t, bound) => {
    const y = decodeTensor(encodeTensor(x, t), ggmlType(t), x.length, 't');
    for (let b = 0; b < x.length / 32; b++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]!));
      for (let j = 0; j < 32; j++)
        expect(Math.abs(y[b * 32 + j]! - x[b * 32 + j]!)).toBeLessThanOrEqual(bound * amax + 1e-6);
    }
  });

  it('F32 and F16 are exact for values F16 can hold', () => {
    const v = Float32Array.from([0, 1, -2.5, 65504, 2 ** -24]);
    expect(Array.from(decodeTensor(encodeTensor(v, 'F32'), ggmlType('F32'), 5, 't'))).toEqual(Array.from(v));
    expect(Array.from(decodeTensor(encodeTensor(v, 'F16'), ggmlType('F16'), 5, 't'))).toEqual(Array.from(v));
  });

  it('a type it cannot decode is refused naming the tensor', () => {
    let err: unknown;
    try {
      decodeTensor(new Uint8Array(176), ggmlType('Q5_K'), 256, 'blk.3.ffn_down.weight');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GgufError);
    expect({ message: (err as GgufError).message, details: (err as GgufError).details }).toEqual({
      message:
        'gguf: tensor blk.3.ffn_down.weight is Q5_K, a type this importer cannot decode (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K are)',
      details: { tensor: 'blk.3.ffn_down.weight' },
    });
  });
});
