/**
 * The safetensors reader against hostile headers (every check must answer SafetensorsError, never crash
 * or allocate what the header claims), a byte-flip fuzz loop, writer round trips and the reference layout,
 * and F16/BF16 conversions on known bit patterns. Source: src/engine/formats/safetensors.ts.
 */
import { describe, expect, it } from 'vitest';
import { BadInputError } from '../../../src/shared/errors.js';
import {
  SafetensorsError,
  bf16ToFloat,
  floatToBf16,
  floatToHalf,
  halfToFloat,
  parseSafetensors,
  toFloat32,
  writeSafetensors,
} from '../../../src/engine/formats/safetensors.js';
import { expectClose } from '../../helpers/expect-close.js';

/** A file from a raw header string (no padding) and a data section of `dataLen` zero bytes. */
function fileWith(header: string, dataLen = 0, lengthOverride?: bigint): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + dataLen);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

function expectStError(bytes: Uint8Array, pattern: RegExp): SafetensorsError {
  let caught: unknown;
  try {
    parseSafetensors(bytes);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(SafetensorsError);
  expect(caught).toBeInstanceOf(BadInputError);
  expect((caught as SafetensorsError).code).toBe('BAD_USER_INPUT');
  expect((caught as Error).message).toMatch(pattern);
  return caught as SafetensorsError;
}

const t = (dtype: string, shape: unknown, offsets: unknown): string =>
  JSON.stringify({ dtype, shape, data_offsets: offsets });

describe('parseSafetensors: hostile headers', () => {
  it('rejects a file shorter than the length prefix', () => {
    expectStError(new Uint8Array(5), /shorter than the 8-byte header length/);
  });

  it('rejects a huge header length without allocating it', () => {
    expectStError(fileWith('{}', 0, 0xffff_ffff_ffff_ffffn), /exceeds the cap/);
    expectStError(fileWith('{}', 0, 200n * 1024n * 1024n), /exceeds the cap/);
  });

  it('honours a custom header cap', () => {
    const f = fileWith('{"__metadata__":{"a":"b"}}');
    expect(() => parseSafetensors(f, { maxHeaderBytes: 10 })).toThrow(/exceeds the cap of 10/);
    expect(parseSafetensors(f).metadata).toEqual({ a: 'b' });
  });

  it('rejects a header length past the end of the file', () => {
    expectStError(fileWith('{}', 0, 1n), /too short/);
    expectStError(fileWith('{}', 0, 100n), /runs past the end of the file/);
  });

  it('rejects invalid JSON, invalid UTF-8, and non-object headers', () => {
    expectStError(fileWith('{"a": '), /not valid JSON/);
    expectStError(fileWith('{"a":1,}'), /not valid JSON/);
    expectStError(fileWith('{} trailing'), /not valid JSON/);
    expectStError(fileWith('[1,2]'), /not an object/);
    expectStError(fileWith('"str"'), /not an object/);
    expectStError(fileWith('null'), /not an object/);
    const bad = fileWith('{"\u00e9":1}');
    bad[10] = 0xff; // break the UTF-8 of the key
    expectStError(bad, /not valid UTF-8/);
  });

  it('rejects duplicate keys at the top level and inside entries, even spelled with escapes', () => {
    const e = t('F32', [1], [0, 4]);
    expectStError(fileWith(`{"w":${e},"w":${e}}`, 4), /duplicate key "w"/);
    expectStError(fileWith(`{"w":${e},"\\u0077":${e}}`, 4), /duplicate key "w"/);
    expectStError(
      fileWith('{"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}', 4),
      /duplicate key "dtype"/,
    );
    expectStError(fileWith('{"__metadata__":{"a":"1","a":"2"}}'), /duplicate key "a"/);
  });

  it('rejects deep nesting without overflowing the stack', () => {
    expectStError(fileWith('{"a":' + '['.repeat(100_000) + ']'.repeat(100_000) + '}'), /nesting deeper/);
  });

  it('rejects a bad __metadata__', () => {
    expectStError(fileWith('{"__metadata__":{"a":1}}'), /__metadata__\["a"\] is not a string/);
    expectStError(fileWith('{"__metadata__":["a"]}'), /__metadata__ is not an object/);
    // Strict: null is malformed, not "no metadata" (test/engine/formats/hostile-adapters.test.ts).
    expectStError(fileWith('{"__metadata__":null}'), /__metadata__ is not an object/);
  });

  it('rejects unknown dtypes, naming the tensor', () => {
    const err = expectStError(
      fileWith(`{"w":${t('F8_E4M3', [1], [0, 1])}}`, 1),
      /tensor "w": unknown dtype "F8_E4M3"/,
    );
    expect(err.details).toEqual({ tensor: 'w' });
    expectStError(fileWith(`{"w":${t('f32', [1], [0, 4])}}`, 4), /unknown dtype/);
    expectStError(fileWith('{"w":[1,2]}'), /tensor "w": entry is not an object/);
  });

  it('rejects negative, fractional, huge and non-numeric dims', () => {
    expectStError(fileWith(`{"w":${t('F32', [-1], [0, 4])}}`, 4), /tensor "w": shape \[-1\]/);
    expectStError(fileWith(`{"w":${t('F32', [1.5], [0, 4])}}`, 4), /shape/);
    expectStError(fileWith(`{"w":${t('F32', [1e300], [0, 4])}}`, 4), /shape/);
    expectStError(fileWith(`{"w":${t('F32', ['1'], [0, 4])}}`, 4), /shape/);
    expectStError(fileWith(`{"w":${t('F32', 4, [0, 4])}}`, 4), /shape/);
  });

  it('rejects malformed and out-of-file offsets', () => {
    expectStError(fileWith(`{"w":${t('F32', [1], [0])}}`, 4), /data_offsets \[0\] is not two/);
    expectStError(fileWith(`{"w":${t('F32', [1], [0, 4, 8])}}`, 4), /not two/);
    expectStError(fileWith(`{"w":${t('F32', [1], [-4, 0])}}`, 4), /not two non-negative/);
    expectStError(fileWith(`{"w":${t('F32', [1], [4, 0])}}`, 4), /begin 4 > end 0/);
    expectStError(
      fileWith(`{"w":${t('F32', [2], [0, 8])}}`, 4),
      /end 8 is past the data section \(4 bytes\)/,
    );
    expectStError(fileWith(`{"w":${t('F32', [1], [0, 9007199254740993])}}`, 4), /not two/);
  });

  it('rejects a size that does not match shape × dtype', () => {
    expectStError(
      fileWith(`{"w":${t('F32', [3], [0, 8])}}`, 8),
      /tensor "w": shape \[3\] of F32 needs 12 bytes but data_offsets span 8/,
    );
    expectStError(fileWith(`{"w":${t('F16', [2, 2], [0, 16])}}`, 16), /needs 8 bytes/);
  });

  it('rejects numel overflow (a product past 2^53 must not wrap into a plausible size)', () => {
    // 2^32 · 2^32 · 0 would be 0; 2^52 · 2^52 in float math is ~2^104, never equal; BigInt keeps it exact.
    expectStError(
      fileWith(`{"w":${t('U8', [4294967296, 4294967296], [0, 0])}}`),
      /needs 18446744073709551616 bytes/,
    );
    expectStError(fileWith(`{"w":${t('F64', [4503599627370496, 4503599627370496], [0, 8])}}`, 8), /needs/);
    // A zero dim makes a legal empty tensor whatever the other dims claim.
    expect(
      parseSafetensors(fileWith(`{"w":${t('F32', [4294967296, 0], [0, 0])}}`)).tensors.get('w')?.bytes.length,
    ).toBe(0);
  });

  it('rejects overlapping tensors, gaps and trailing bytes', () => {
    expectStError(
      fileWith(`{"a":${t('F32', [2], [0, 8])},"b":${t('F32', [1], [4, 8])}}`, 8),
      /tensor "b": data overlaps/,
    );
    expectStError(fileWith(`{"a":${t('F32', [1], [0, 4])},"b":${t('F32', [1], [0, 4])}}`, 4), /overlaps/);
    expectStError(fileWith(`{"a":${t('F32', [1], [4, 8])}}`, 8), /gap of 4 bytes/);
    expectStError(fileWith(`{"a":${t('F32', [1], [0, 4])}}`, 12), /8 trailing bytes/);
  });

  it('treats "__proto__" as an ordinary name', () => {
    const f = fileWith(`{"__proto__":${t('U8', [1], [0, 1])},"__metadata__":{"__proto__":"x"}}`, 1);
    const parsed = parseSafetensors(f);
    expect([...parsed.tensors.keys()]).toEqual(['__proto__']);
    expect(Object.getOwnPropertyDescriptor(parsed.metadata, '__proto__')?.value).toBe('x');
    expect(Object.getPrototypeOf(parsed.metadata)).toBe(Object.prototype);
  });
});

describe('parseSafetensors: fuzz', () => {
  it('byte flips of a valid file either parse or throw SafetensorsError, never anything else', () => {
    const valid = writeSafetensors(
      {
        'a.weight': { dtype: 'F32', shape: [3, 2], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
        'b.bias': { dtype: 'F16', shape: [4], data: new Float32Array([0.5, -1, 2, 65504]) },
        'c.ids': { dtype: 'I64', shape: [2], data: new BigInt64Array([1n, -2n]) },
      },
      { format: 'pt' },
    );
    const headerEnd = 8 + Number(new DataView(valid.buffer).getBigUint64(0, true));
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    let parsed = 0;
    let rejected = 0;
    for (let iter = 0; iter < 3000; iter++) {
      const f = valid.slice();
      const flips = 1 + rand(3);
      for (let k = 0; k < flips; k++) {
        // Mostly the length prefix and header, where the checks are.
        const at = rand(4) === 0 ? rand(f.length) : rand(headerEnd);
        f[at] = rand(4) === 0 ? f[at]! ^ (1 << rand(8)) : rand(256);
      }
      try {
        const p = parseSafetensors(f);
        for (const e of p.tensors.values()) toFloat32(e);
        parsed++;
      } catch (e) {
        if (!(e instanceof SafetensorsError))
          throw new Error(`iteration ${iter}: non-SafetensorsError ${String(e)}`);
        rejected++;
      }
    }
    expect(parsed + rejected).toBe(3000);
    expect(rejected).toBeGreaterThan(1000);
    // Truncations at every length.
    for (let n = 0; n < valid.length; n++) {
      expect(() => parseSafetensors(valid.subarray(0, n))).toThrow(SafetensorsError);
    }
  });
});

describe('writeSafetensors', () => {
  it('round-trips every dtype with metadata', () => {
    const bytes = writeSafetensors(
      {
        f32: { dtype: 'F32', shape: [2, 2], data: new Float32Array([1.5, -2, 3.25, 1e-30]) },
        f64: { dtype: 'F64', shape: [2], data: new Float64Array([Math.PI, -1e300]) },
        f16: { dtype: 'F16', shape: [3], data: new Float32Array([1, -0.5, 0.1]) },
        bf16: { dtype: 'BF16', shape: [2], data: new Float32Array([1, -3.140625]) },
        i64: { dtype: 'I64', shape: [1], data: new BigInt64Array([-5n]) },
        i32: { dtype: 'I32', shape: [2], data: new Int32Array([-7, 7]) },
        i16: { dtype: 'I16', shape: [1], data: new Int16Array([-300]) },
        i8: { dtype: 'I8', shape: [2], data: new Int8Array([-1, 1]) },
        u8: { dtype: 'U8', shape: [2], data: new Uint8Array([0, 255]) },
        flag: { dtype: 'BOOL', shape: [2], data: new Uint8Array([1, 0]) },
        empty: { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
        scalar: { dtype: 'F32', shape: [], data: new Float32Array([42]) },
      },
      { format: 'pt', note: 'é' },
    );
    const p = parseSafetensors(bytes);
    expect(p.metadata).toEqual({ format: 'pt', note: 'é' });
    const vals = (k: string): number[] => Array.from(toFloat32(p.tensors.get(k)!));
    expect(vals('f32')).toEqual([1.5, -2, 3.25, Math.fround(1e-30)]);
    expect(vals('f64')).toEqual([Math.fround(Math.PI), -Infinity]);
    expect(vals('f16')).toEqual([1, -0.5, 0.0999755859375]); // 0.1 → nearest half 0x2e66
    expect(vals('bf16')).toEqual([1, -3.140625]);
    expect(vals('i64')).toEqual([-5]);
    expect(vals('i32')).toEqual([-7, 7]);
    expect(vals('i16')).toEqual([-300]);
    expect(vals('i8')).toEqual([-1, 1]);
    expect(vals('u8')).toEqual([0, 255]);
    expect(vals('flag')).toEqual([1, 0]);
    expect(p.tensors.get('empty')!.shape).toEqual([0, 4]);
    expect(p.tensors.get('scalar')!.shape).toEqual([]);
    expect(vals('scalar')).toEqual([42]);
  });

  it('writes the reference layout: space-padded header, __metadata__ first, dtype-then-name order', () => {
    const bytes = writeSafetensors(
      {
        b: { dtype: 'F32', shape: [1], data: new Float32Array([2]) },
        a: { dtype: 'F32', shape: [1], data: new Float32Array([1]) },
        h: { dtype: 'F16', shape: [1], data: new Uint16Array([0x3c00]) },
        d: { dtype: 'F64', shape: [1], data: new Float64Array([4]) },
      },
      { z: '1', format: 'pt' },
    );
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const header = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(header).toBe(
      '{"__metadata__":{"format":"pt","z":"1"},' +
        '"d":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},' +
        '"a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},' +
        '"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]},' +
        '"h":{"dtype":"F16","shape":[1],"data_offsets":[16,18]}}' +
        ' '.repeat(n - header.trimEnd().length),
    );
    expect(bytes.length).toBe(8 + n + 18);
  });

  it('returns F32 without copying when aligned, and copies when not', () => {
    const bytes = writeSafetensors({ w: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) } });
    const e = parseSafetensors(bytes).tensors.get('w')!;
    const f = toFloat32(e);
    expect(f.buffer).toBe(bytes.buffer);
    // Shift the whole file by one byte: the view is unaligned and must be copied.
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    const g = toFloat32(parseSafetensors(shifted.subarray(1)).tensors.get('w')!);
    expect(g.buffer).not.toBe(shifted.buffer);
    expect(Array.from(g)).toEqual([1, 2]);
  });

  it('refuses data that does not match the shape', () => {
    expect(() => writeSafetensors({ w: { dtype: 'F32', shape: [3], data: new Float32Array(2) } })).toThrow(
      /2 values for shape \[3\]/,
    );
    expect(() => writeSafetensors({ w: { dtype: 'F32', shape: [3], data: new Uint8Array(8) } })).toThrow(
      /8 raw bytes/,
    );
    expect(() => writeSafetensors({ w: { dtype: 'I32', shape: [1], data: new Float32Array(1) } })).toThrow(
      /Int32Array/,
    );
    expect(() => writeSafetensors({ w: { dtype: 'F32', shape: [-1], data: new Float32Array(0) } })).toThrow(
      /bad shape/,
    );
  });
});

describe('half and bfloat16 conversions', () => {
  it('decodes known F16 bit patterns exactly', () => {
    const cases: Array<[number, number]> = [
      [0x0000, 0],
      [0x3c00, 1],
      [0xc000, -2],
      [0x3555, 0.333251953125],
      [0x7bff, 65504],
      [0x0400, 2 ** -14],
      [0x0001, 2 ** -24],
      [0x03ff, 1023 * 2 ** -24],
      [0x7c00, Infinity],
      [0xfc00, -Infinity],
    ];
    for (const [bits, value] of cases) expect(halfToFloat(bits)).toBe(value);
    expect(Object.is(halfToFloat(0x8000), -0)).toBe(true);
    expect(halfToFloat(0x7e00)).toBeNaN();
    for (const [bits, value] of cases) expect(floatToHalf(value)).toBe(bits);
  });

  it('rounds float → F16 to nearest even, with overflow to Inf and underflow to subnormals/zero', () => {
    expect(floatToHalf(1 + 2 ** -11)).toBe(0x3c00); // tie → even (down)
    expect(floatToHalf(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (up)
    expect(floatToHalf(65520)).toBe(0x7c00); // rounds past the max half
    expect(floatToHalf(65519)).toBe(0x7bff);
    expect(floatToHalf(2 ** -25)).toBe(0x0000); // tie between 0 and the smallest subnormal → 0
    expect(floatToHalf(3 * 2 ** -25)).toBe(0x0002);
    expect(floatToHalf(2 ** -30)).toBe(0);
    expect(floatToHalf(NaN) & 0x7c00).toBe(0x7c00);
    // Exhaustive: every finite half survives half → float → half.
    const broken: number[] = [];
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00 && h & 0x3ff) continue;
      if (floatToHalf(halfToFloat(h)) !== h) broken.push(h);
    }
    expect(broken).toEqual([]);
  });

  it('converts BF16 both ways on known patterns', () => {
    expect(bf16ToFloat(0x3f80)).toBe(1);
    expect(bf16ToFloat(0xc049)).toBe(-3.140625);
    expect(bf16ToFloat(0x7f80)).toBe(Infinity);
    expect(floatToBf16(1)).toBe(0x3f80);
    expect(floatToBf16(Math.PI)).toBe(0x4049); // 3.14159 → 0x40490fdb → round down
    expect(floatToBf16(1 + 2 ** -8)).toBe(0x3f80); // tie → even
    expect(floatToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(bf16ToFloat(floatToBf16(NaN))).toBeNaN();
  });

  it('toFloat32 converts F16/BF16 tensors against a plain decode', () => {
    const bits = new Uint16Array([0x3c00, 0xbc00, 0x3800, 0x0001, 0x4049]);
    const bytes = writeSafetensors({
      h: { dtype: 'F16', shape: [5], data: bits },
      b: { dtype: 'BF16', shape: [5], data: bits },
    });
    const p = parseSafetensors(bytes);
    expectClose(toFloat32(p.tensors.get('h')!), Array.from(bits, halfToFloat), {
      atol: 0,
      rtol: 0,
      label: 'F16',
    });
    expectClose(toFloat32(p.tensors.get('b')!), Array.from(bits, bf16ToFloat), {
      atol: 0,
      rtol: 0,
      label: 'BF16',
    });
  });
});
