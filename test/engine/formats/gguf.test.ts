/**
 * The GGUF container (src/engine/formats/gguf.ts): every value type written and read back, the layout
 * gguf-py writes (magic, version, counts, aligned offsets), and hostile headers — huge counts and lengths,
 * offsets outside the file, overlaps, unknown types — each a GgufError naming the key or tensor, never a
 * huge allocation or another exception; plus random byte flips and every truncation of a valid file.
 */
import { describe, expect, it } from 'vitest';
import {
  GGUF_MAGIC,
  GgufError,
  bytesSource,
  ggmlType,
  layoutGguf,
  parseGguf,
  type GgufValue,
} from '../../../src/engine/formats/gguf.js';

const META: Array<[string, GgufValue]> = [
  ['general.architecture', { type: 'string', value: 'llama' }],
  ['general.alignment', { type: 'uint32', value: 32 }],
  ['a.u8', { type: 'uint8', value: 255 }],
  ['a.i8', { type: 'int8', value: -128 }],
  ['a.u16', { type: 'uint16', value: 65535 }],
  ['a.i16', { type: 'int16', value: -32768 }],
  ['a.u32', { type: 'uint32', value: 4294967295 }],
  ['a.i32', { type: 'int32', value: -2147483648 }],
  ['a.f32', { type: 'float32', value: 1.5 }],
  ['a.f64', { type: 'float64', value: 1e-300 }],
  ['a.u64', { type: 'uint64', value: 2n ** 64n - 1n }],
  ['a.i64', { type: 'int64', value: -(2n ** 63n) }],
  ['a.bool', { type: 'bool', value: true }],
  ['a.str', { type: 'string', value: 'héllo ▁ 🚀' }],
  ['a.strs', { type: 'array', itemType: 'string', value: ['x', '', 'ü'] }],
  ['a.i32s', { type: 'array', itemType: 'int32', value: [1, -2, 3] }],
  ['a.empty', { type: 'array', itemType: 'string', value: [] }],
];

/** A valid file: the metadata above and two tensors (F32 [3] and Q8_0 [2, 32]) with their data. */
function validFile(): Uint8Array {
  const tensors = [
    { name: 'a.weight', type: ggmlType('F32'), shape: [3] },
    { name: 'b.weight', type: ggmlType('Q8_0'), shape: [2, 32] },
  ];
  const layout = layoutGguf(META, tensors);
  const dataLen = layout.offsets[1]! + layout.nbytes[1]!;
  const out = new Uint8Array(layout.header.length + dataLen);
  out.set(layout.header);
  out.fill(7, layout.header.length);
  return out;
}

/** A hand-written header: magic, version, counts, then whatever `rest` appends. */
function header(tensors: bigint, kvs: bigint, rest: (b: Builder) => void, pad = 64): Uint8Array {
  const b = new Builder();
  b.u32(GGUF_MAGIC);
  b.u32(3);
  b.u64(tensors);
  b.u64(kvs);
  rest(b);
  for (let i = 0; i < pad; i++) b.u8(0);
  return b.bytes();
}

class Builder {
  private parts: number[] = [];
  u8(v: number) {
    this.parts.push(v & 0xff);
  }
  u32(v: number) {
    for (let i = 0; i < 4; i++) this.u8(v >>> (8 * i));
  }
  u64(v: bigint) {
    for (let i = 0n; i < 8n; i++) this.u8(Number((v >> (8n * i)) & 0xffn));
  }
  str(s: string) {
    const b = new TextEncoder().encode(s);
    this.u64(BigInt(b.length));
    b.forEach((x) => this.u8(x));
  }
  tensor(name: string, dims: bigint[], type: number, offset: bigint) {
    this.str(name);
    this.u32(dims.length);
    dims.forEach((d) => this.u64(d));
    this.u32(type);
    this.u64(offset);
  }
  bytes() {
    return Uint8Array.from(this.parts);
  }
}

function refusal(bytes: Uint8Array): GgufError {
  try {
    parseGguf(bytesSource(bytes));
  } catch (e) {
    if (e instanceof GgufError) return e;
    throw e;
  }
  throw new Error('parsed without error');
}

describe('GGUF write → read', () => {
  it('every value type round-trips, in order', () => {
    const g = parseGguf(bytesSource(validFile()));
    expect(g.version).toBe(3);
    expect([...g.metadata.entries()]).toEqual(META);
  });

  it('lays tensors out as gguf-py does: ggml dim order, offsets aligned to 32 after a padded header', () => {
    const bytes = validFile();
    const g = parseGguf(bytesSource(bytes));
    expect(g.dataOffset % 32).toBe(0);
    expect(
      g.tensors.map((t) => [t.name, t.type.name, t.dims, t.shape, t.offset - g.dataOffset, t.nbytes]),
    ).toEqual([
      ['a.weight', 'F32', [3], [3], 0, 12],
      ['b.weight', 'Q8_0', [32, 2], [2, 32], 32, 68],
    ]);
    expect(new TextDecoder().decode(bytes.subarray(0, 4))).toBe('GGUF');
  });
});

describe('hostile GGUF headers are refused cleanly', () => {
  const tooMany = 2n ** 62n;
  it.each<[string, () => Uint8Array, RegExp]>([
    [
      'bad magic',
      () => Uint8Array.from([0x47, 0x47, 0x4d, 0x4c, ...new Array<number>(40).fill(0)]),
      /not a GGUF file/,
    ],
    [
      'version 1',
      () => {
        const b = header(0n, 0n, () => undefined);
        b[4] = 1;
        return b;
      },
      /version 1 is not supported/,
    ],
    [
      'a tensor count of 2^62',
      () => header(tooMany, 0n, () => undefined),
      /tensor count 4611686018427387904 is more than/,
    ],
    [
      'a metadata count of 2^62',
      () => header(0n, tooMany, () => undefined),
      /metadata count .* is more than/,
    ],
    [
      'a key of 2^40 bytes',
      () => header(0n, 1n, (b) => b.u64(2n ** 40n)),
      /length of key #0 1099511627776 is more than/,
    ],
    [
      'a string value longer than the file',
      () =>
        header(0n, 1n, (b) => {
          b.str('k');
          b.u32(8);
          b.u64(1000n);
        }),
      /length of value of "k" 1000 is more than/,
    ],
    [
      'an array of 2^40 uint8',
      () =>
        header(0n, 1n, (b) => {
          b.str('k');
          b.u32(9);
          b.u32(0);
          b.u64(2n ** 40n);
        }),
      /length of value of "k" 1099511627776 is more than/,
    ],
    [
      'an array of arrays',
      () =>
        header(0n, 1n, (b) => {
          b.str('k');
          b.u32(9);
          b.u32(9);
          b.u64(1n);
        }),
      /array of arrays/,
    ],
    [
      'an unknown value type',
      () =>
        header(0n, 1n, (b) => {
          b.str('k');
          b.u32(13);
        }),
      /unknown value type 13/,
    ],
    [
      'a key given twice',
      () =>
        header(0n, 2n, (b) => {
          for (let i = 0; i < 2; i++) {
            b.str('k');
            b.u32(4);
            b.u32(1);
          }
        }),
      /key "k" appears twice/,
    ],
    [
      'an alignment of 3',
      () =>
        header(0n, 1n, (b) => {
          b.str('general.alignment');
          b.u32(4);
          b.u32(3);
        }),
      /general.alignment must be a power-of-two uint32/,
    ],
    [
      'an unknown tensor type',
      () => header(1n, 0n, (b) => b.tensor('w', [32n], 99, 0n)),
      /tensor w has unknown ggml type 99/,
    ],
    [
      '5 dimensions',
      () => header(1n, 0n, (b) => b.tensor('w', [1n, 1n, 1n, 1n, 1n], 0, 0n)),
      /tensor w has 5 dimensions/,
    ],
    [
      'an empty dimension',
      () => header(1n, 0n, (b) => b.tensor('w', [0n], 0, 0n)),
      /tensor w has an empty dimension 0/,
    ],
    [
      'dimensions whose product overflows',
      () => header(1n, 0n, (b) => b.tensor('w', [2n ** 40n, 2n ** 40n], 0, 0n)),
      /tensor w has more elements than any file could hold/,
    ],
    [
      'a row that is not whole Q8_0 blocks',
      () => header(1n, 0n, (b) => b.tensor('w', [33n], 8, 0n)),
      /tensor w: row length 33 is not a multiple of Q8_0's block of 32/,
    ],
    [
      'data past the end of the file',
      () => header(1n, 0n, (b) => b.tensor('w', [1024n], 0, 0n)),
      /tensor w: 4096 bytes at data offset 0 run past the end of the file/,
    ],
    [
      'an offset of 2^63',
      () => header(1n, 0n, (b) => b.tensor('w', [8n], 0, 2n ** 63n)),
      /tensor w: 32 bytes at data offset 9223372036854775808 run past the end/,
    ],
    [
      'an unaligned offset',
      () => header(1n, 0n, (b) => b.tensor('w', [1n], 0, 4n)),
      /tensor w: offset 4 is not aligned to 32/,
    ],
    [
      'overlapping tensors',
      () =>
        header(
          2n,
          0n,
          (b) => {
            b.tensor('w', [16n], 0, 0n);
            b.tensor('v', [16n], 0, 32n);
          },
          200,
        ),
      /tensor v: data overlaps tensor w/,
    ],
    [
      'a tensor name given twice',
      () =>
        header(2n, 0n, (b) => {
          b.tensor('w', [1n], 0, 0n);
          b.tensor('w', [1n], 0, 32n);
        }),
      /tensor w appears twice/,
    ],
    [
      'invalid UTF-8 in a key',
      () =>
        header(0n, 1n, (b) => {
          b.u64(1n);
          b.u8(0xff);
        }),
      /key #0 is not valid UTF-8/,
    ],
  ])('%s', (_, make, message) => {
    const e = refusal(make());
    expect(e.code).toBe('BAD_USER_INPUT');
    expect(e.message).toMatch(message);
  });

  it('names the tensor in details', () => {
    expect(refusal(header(1n, 0n, (b) => b.tensor('blk.0.attn_q.weight', [32n], 99, 0n))).details).toEqual({
      tensor: 'blk.0.attn_q.weight',
    });
  });

  it('fuzz: 3,000 random byte flips and every truncation either parse or throw GgufError', () => {
    const good = validFile();
    let seed = 12345;
    const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const outcomes = { parsed: 0, refused: 0 };
    const attempt = (bytes: Uint8Array) => {
      try {
        parseGguf(bytesSource(bytes));
        outcomes.parsed++;
      } catch (e) {
        if (!(e instanceof GgufError)) throw e;
        outcomes.refused++;
      }
    };
    for (let i = 0; i < 3000; i++) {
      const bytes = Uint8Array.from(good);
      const flips = 1 + Math.floor(rand() * 4);
      for (let f = 0; f < flips; f++) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
      attempt(bytes);
    }
    for (let n = 0; n < good.length; n++) attempt(good.subarray(0, n));
    expect(outcomes.refused).toBeGreaterThan(good.length);
    expect(outcomes.parsed).toBeGreaterThan(0);
  });
});
