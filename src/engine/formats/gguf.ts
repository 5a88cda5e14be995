/**
 * The GGUF container (llama.cpp's model file, version 3): a strict reader that trusts no count, length or
 * offset before checking it against the file, and a writer that lays a file out as gguf-py's GGUFWriter
 * does (magic · version · tensor count · kv count · kv pairs · tensor infos · padding to the alignment ·
 * tensor data, each padded). Block formats (Q8_0, Q4_K, …) are `ggml-quants.ts`; what the keys and tensor
 * names mean for a Llama model is `gguf-llama.ts` and the vocabulary `gguf-vocab.ts`.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { BadInputError } from '../../shared/errors.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Caps on what one file may claim, so a hostile header cannot make the reader allocate in proportion. */
export const GGUF_LIMITS = {
  /** Bytes from the start of the file to the end of the tensor infos. */
  maxHeaderBytes: 512 * 1024 * 1024,
  maxStringBytes: 64 * 1024 * 1024,
  maxArrayLength: 1 << 24,
  maxTensors: 1 << 20,
  maxKeyValues: 1 << 20,
} as const;

/** A malformed, hostile or unsupported GGUF file; the message names the key or tensor where known. */
export class GgufError extends BadInputError {
  constructor(message: string, options?: { cause?: unknown; tensor?: string; key?: string }) {
    const details: Record<string, string> = {};
    if (options?.tensor !== undefined) details.tensor = options.tensor;
    if (options?.key !== undefined) details.key = options.key;
    super(`gguf: ${message}`, {
      cause: options?.cause,
      details: Object.keys(details).length > 0 ? details : undefined,
    });
  }
}

export type GgufScalarType =
  | 'uint8'
  | 'int8'
  | 'uint16'
  | 'int16'
  | 'uint32'
  | 'int32'
  | 'float32'
  | 'bool'
  | 'string'
  | 'uint64'
  | 'int64'
  | 'float64';

export type GgufScalar = number | bigint | boolean | string;

export type GgufValue =
  | {
      type: 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32' | 'float64';
      value: number;
    }
  | { type: 'uint64' | 'int64'; value: bigint }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; itemType: GgufScalarType; value: GgufScalar[] };

const VALUE_TYPE_IDS: Readonly<Record<GgufScalarType | 'array', number>> = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
};
const VALUE_TYPES = Object.fromEntries(Object.entries(VALUE_TYPE_IDS).map(([k, v]) => [v, k])) as Record<
  number,
  GgufScalarType | 'array'
>;
/** Smallest encoding of each scalar type (a string is at least its 8-byte length). */
const MIN_SIZE: Readonly<Record<GgufScalarType, number>> = {
  uint8: 1,
  int8: 1,
  bool: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  float32: 4,
  string: 8,
  uint64: 8,
  int64: 8,
  float64: 8,
};

/** A ggml tensor type: elements come in blocks of `blockSize` stored in `typeSize` bytes. */
export interface GgmlType {
  id: number;
  name: string;
  blockSize: number;
  typeSize: number;
}

const QK_K = 256;
/** gguf-py's GGML_QUANT_SIZES, every type a file may name (whether or not this engine decodes it). */
export const GGML_TYPES: readonly GgmlType[] = (
  [
    [0, 'F32', 1, 4],
    [1, 'F16', 1, 2],
    [2, 'Q4_0', 32, 2 + 16],
    [3, 'Q4_1', 32, 2 + 2 + 16],
    [6, 'Q5_0', 32, 2 + 4 + 16],
    [7, 'Q5_1', 32, 2 + 2 + 4 + 16],
    [8, 'Q8_0', 32, 2 + 32],
    [9, 'Q8_1', 32, 4 + 4 + 32],
    [10, 'Q2_K', QK_K, 2 + 2 + QK_K / 16 + QK_K / 4],
    [11, 'Q3_K', QK_K, 2 + QK_K / 4 + QK_K / 8 + 12],
    [12, 'Q4_K', QK_K, 2 + 2 + QK_K / 2 + 12],
    [13, 'Q5_K', QK_K, 2 + 2 + QK_K / 2 + QK_K / 8 + 12],
    [14, 'Q6_K', QK_K, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16],
    [15, 'Q8_K', QK_K, 4 + QK_K + QK_K / 8],
    [16, 'IQ2_XXS', QK_K, 2 + QK_K / 4],
    [17, 'IQ2_XS', QK_K, 2 + QK_K / 4 + QK_K / 32],
    [18, 'IQ3_XXS', QK_K, 2 + QK_K / 4 + QK_K / 8],
    [19, 'IQ1_S', QK_K, 2 + QK_K / 8 + QK_K / 16],
    [20, 'IQ4_NL', 32, 2 + 16],
    [21, 'IQ3_S', QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4],
    [22, 'IQ2_S', QK_K, 2 + QK_K / 4 + QK_K / 16],
    [23, 'IQ4_XS', QK_K, 2 + 2 + QK_K / 2 + QK_K / 64],
    [24, 'I8', 1, 1],
    [25, 'I16', 1, 2],
    [26, 'I32', 1, 4],
    [27, 'I64', 1, 8],
    [28, 'F64', 1, 8],
    [29, 'IQ1_M', QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32],
    [30, 'BF16', 1, 2],
    [34, 'TQ1_0', QK_K, 2 + 4 * 13],
    [35, 'TQ2_0', QK_K, 2 + 64],
  ] as const
).map(([id, name, blockSize, typeSize]) => ({ id, name, blockSize, typeSize }));

const TYPE_BY_ID = new Map(GGML_TYPES.map((t) => [t.id, t]));

export function ggmlType(name: string): GgmlType {
  const t = GGML_TYPES.find((x) => x.name === name);
  if (!t) throw new Error(`invariant failed: unknown ggml type ${name}`);
  return t;
}

export interface GgufTensorInfo {
  name: string;
  type: GgmlType;
  /** ggml order: ne[0] is the innermost (contiguous) dimension. */
  dims: number[];
  /** Row-major shape (dims reversed), as safetensors/numpy write it. */
  shape: number[];
  numel: number;
  /** Absolute byte offset in the file. */
  offset: number;
  nbytes: number;
}

export interface GgufFile {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Where the tensor data section starts. */
  dataOffset: number;
  size: number;
}

/** Random access to a file's bytes (synchronous: the header is many small reads through a window). */
export interface ByteSource {
  readonly size: number;
  read(offset: number, length: number): Uint8Array;
}

export function bytesSource(bytes: Uint8Array): ByteSource {
  return { size: bytes.length, read: (offset, length) => bytes.subarray(offset, offset + length) };
}

/** A file opened for reading; `close()` when done. */
export function fileSource(path: string): ByteSource & { close(): void } {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (cause) {
    throw new GgufError(`cannot open ${path}: ${(cause as Error).message}`, { cause });
  }
  const size = fstatSync(fd).size;
  return {
    size,
    read(offset, length) {
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const n = readSync(fd, out, done, length - done, offset + done);
        if (n === 0) throw new GgufError(`${path} ended at byte ${offset + done} (it shrank while read)`);
        done += n;
      }
      return out;
    },
    close: () => closeSync(fd),
  };
}

const WINDOW = 1 << 20;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A bounds-checked little-endian cursor over a ByteSource, reading through a 1 MiB window. */
class Cursor {
  pos = 0;
  private win: Uint8Array = new Uint8Array(0);
  private winStart = 0;

  constructor(
    private readonly src: ByteSource,
    private readonly limit: number,
  ) {}

  get remaining(): number {
    return this.limit - this.pos;
  }

  /** `n` bytes at the cursor (a view valid until the next call), or an error naming `what`. */
  take(n: number, what: string): Uint8Array {
    if (n > this.remaining) {
      throw new GgufError(
        this.limit < this.src.size
          ? `${what} runs past the ${this.limit}-byte header limit (at byte ${this.pos})`
          : `file ends inside ${what} (at byte ${this.pos}, ${n} bytes needed, ${this.remaining} left)`,
      );
    }
    const start = this.pos;
    this.pos += n;
    if (start < this.winStart || start + n > this.winStart + this.win.length) {
      this.winStart = start;
      this.win = this.src.read(start, Math.min(Math.max(n, WINDOW), this.limit - start));
    }
    return this.win.subarray(start - this.winStart, start - this.winStart + n);
  }

  private view(n: number, what: string): DataView {
    const b = this.take(n, what);
    return new DataView(b.buffer, b.byteOffset, n);
  }

  u32(what: string): number {
    return this.view(4, what).getUint32(0, true);
  }

  u64(what: string): bigint {
    return this.view(8, what).getBigUint64(0, true);
  }

  /** A u64 that must be a safe integer no larger than `max`. */
  count(what: string, max: number): number {
    const v = this.u64(what);
    if (v > BigInt(max)) throw new GgufError(`${what} ${v} is more than ${max}`);
    return Number(v);
  }

  string(what: string): string {
    const n = this.count(`length of ${what}`, Math.min(GGUF_LIMITS.maxStringBytes, this.remaining));
    try {
      return utf8.decode(this.take(n, what));
    } catch (cause) {
      if (cause instanceof GgufError) throw cause;
      throw new GgufError(`${what} is not valid UTF-8`, { cause });
    }
  }

  scalar(type: GgufScalarType, what: string): GgufScalar {
    switch (type) {
      case 'uint8':
        return this.take(1, what)[0]!;
      case 'int8':
        return this.view(1, what).getInt8(0);
      case 'uint16':
        return this.view(2, what).getUint16(0, true);
      case 'int16':
        return this.view(2, what).getInt16(0, true);
      case 'uint32':
        return this.view(4, what).getUint32(0, true);
      case 'int32':
        return this.view(4, what).getInt32(0, true);
      case 'float32':
        return this.view(4, what).getFloat32(0, true);
      case 'float64':
        return this.view(8, what).getFloat64(0, true);
      case 'uint64':
        return this.view(8, what).getBigUint64(0, true);
      case 'int64':
        return this.view(8, what).getBigInt64(0, true);
      case 'bool': {
        const b = this.take(1, what)[0]!;
        if (b > 1) throw new GgufError(`${what} is a bool of value ${b}`);
        return b === 1;
      }
      case 'string':
        return this.string(what);
    }
  }
}

function valueType(id: number, what: string, key: string): GgufScalarType | 'array' {
  const t = VALUE_TYPES[id];
  if (t === undefined) throw new GgufError(`${what} has unknown value type ${id}`, { key });
  return t;
}

function readValue(c: Cursor, key: string): GgufValue {
  const what = `value of ${JSON.stringify(key)}`;
  const type = valueType(c.u32(`type of ${JSON.stringify(key)}`), what, key);
  if (type !== 'array') return { type, value: c.scalar(type, what) } as GgufValue;
  const itemType = valueType(c.u32(`item type of ${JSON.stringify(key)}`), what, key);
  if (itemType === 'array') throw new GgufError(`${what} is an array of arrays (not supported)`, { key });
  // Each item takes at least MIN_SIZE bytes, so the file itself bounds the count before anything is allocated.
  const max = Math.min(GGUF_LIMITS.maxArrayLength, Math.floor(c.remaining / MIN_SIZE[itemType]));
  const n = c.count(`length of ${what}`, max);
  const value: GgufScalar[] = new Array<GgufScalar>(n);
  for (let i = 0; i < n; i++) value[i] = c.scalar(itemType, `${what}[${i}]`);
  return { type: 'array', itemType, value };
}

/** Parse the header of a GGUF file and check every tensor's place in it (no tensor data is read). */
export function parseGguf(src: ByteSource): GgufFile {
  const c = new Cursor(src, Math.min(src.size, GGUF_LIMITS.maxHeaderBytes));
  if (src.size < 24) throw new GgufError(`file is ${src.size} bytes, too short for a GGUF header`);
  const magic = c.u32('magic');
  if (magic !== GGUF_MAGIC) {
    throw new GgufError(`not a GGUF file (magic 0x${magic.toString(16).padStart(8, '0')}, want "GGUF")`);
  }
  const version = c.u32('version');
  if (version !== 2 && version !== 3)
    throw new GgufError(`version ${version} is not supported (2 and 3 are)`);
  // A tensor info takes at least 8 (name length) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset) bytes,
  // a key/value 8 (key length) + 4 (type) + 1: counts past what the file could hold are refused up front.
  const tensorCount = c.count('tensor count', Math.min(GGUF_LIMITS.maxTensors, Math.floor(src.size / 32)));
  const kvCount = c.count('metadata count', Math.min(GGUF_LIMITS.maxKeyValues, Math.floor(src.size / 13)));

  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = c.string(`key #${i}`);
    if (metadata.has(key)) throw new GgufError(`key ${JSON.stringify(key)} appears twice`, { key });
    metadata.set(key, readValue(c, key));
  }
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const al = metadata.get('general.alignment');
  if (al !== undefined) {
    if (al.type !== 'uint32' || al.value === 0 || (al.value & (al.value - 1)) !== 0) {
      throw new GgufError(`general.alignment must be a power-of-two uint32, got ${describe(al)}`, {
        key: 'general.alignment',
      });
    }
    alignment = al.value;
  }

  const raw: Array<{ name: string; type: GgmlType; dims: number[]; numel: number; rel: bigint }> = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = c.string(`name of tensor #${i}`);
    if (names.has(name)) throw new GgufError(`tensor ${name} appears twice`, { tensor: name });
    names.add(name);
    const nDims = c.u32(`dimension count of tensor ${name}`);
    if (nDims < 1 || nDims > 4)
      throw new GgufError(`tensor ${name} has ${nDims} dimensions (1 to 4 allowed)`, { tensor: name });
    const dims: number[] = [];
    let numel = 1n;
    for (let d = 0; d < nDims; d++) {
      const v = c.u64(`dimension ${d} of tensor ${name}`);
      if (v === 0n) throw new GgufError(`tensor ${name} has an empty dimension ${d}`, { tensor: name });
      numel *= v;
      // BigInt: [2^40, 2^40] must not wrap into a plausible size.
      if (numel > BigInt(Number.MAX_SAFE_INTEGER))
        throw new GgufError(`tensor ${name} has more elements than any file could hold`, { tensor: name });
      dims.push(Number(v));
    }
    const typeId = c.u32(`type of tensor ${name}`);
    const type = TYPE_BY_ID.get(typeId);
    if (!type) throw new GgufError(`tensor ${name} has unknown ggml type ${typeId}`, { tensor: name });
    if (dims[0]! % type.blockSize !== 0) {
      throw new GgufError(
        `tensor ${name}: row length ${dims[0]} is not a multiple of ${type.name}'s block of ${type.blockSize}`,
        { tensor: name },
      );
    }
    raw.push({ name, type, dims, numel: Number(numel), rel: c.u64(`offset of tensor ${name}`) });
  }

  const dataOffset = alignUp(c.pos, alignment);
  if (tensorCount > 0 && dataOffset > src.size)
    throw new GgufError(`tensor data would start at byte ${dataOffset}, past the end of the file`);
  const dataLen = src.size - dataOffset;
  const tensors: GgufTensorInfo[] = raw.map((t) => {
    const nbytes = (t.numel / t.type.blockSize) * t.type.typeSize;
    if (t.rel % BigInt(alignment) !== 0n)
      throw new GgufError(`tensor ${t.name}: offset ${t.rel} is not aligned to ${alignment}`, {
        tensor: t.name,
      });
    if (t.rel + BigInt(nbytes) > BigInt(dataLen)) {
      throw new GgufError(
        `tensor ${t.name}: ${nbytes} bytes at data offset ${t.rel} run past the end of the file (${dataLen} bytes of data)`,
        { tensor: t.name },
      );
    }
    return {
      name: t.name,
      type: t.type,
      dims: t.dims,
      shape: [...t.dims].reverse(),
      numel: t.numel,
      offset: dataOffset + Number(t.rel),
      nbytes,
    };
  });
  const sorted = [...tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    if (sorted[i]!.offset < prev.offset + prev.nbytes) {
      throw new GgufError(`tensor ${sorted[i]!.name}: data overlaps tensor ${prev.name}`, {
        tensor: sorted[i]!.name,
      });
    }
  }
  return { version, metadata, tensors, alignment, dataOffset, size: src.size };
}

export function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

function describe(v: GgufValue): string {
  if (v.type === 'array') return `an array of ${v.value.length} ${v.itemType}`;
  return `${v.type} ${typeof v.value === 'string' ? JSON.stringify(v.value) : String(v.value)}`;
}

/** Typed metadata access that names the key in every error. */
export class GgufMetadata {
  constructor(readonly map: ReadonlyMap<string, GgufValue>) {}

  has(key: string): boolean {
    return this.map.has(key);
  }

  string(key: string): string | undefined {
    const v = this.map.get(key);
    if (v === undefined) return undefined;
    if (v.type !== 'string') throw new GgufError(`${key} must be a string, got ${describe(v)}`, { key });
    return v.value;
  }

  /** Any integer type, as a safe non-negative integer. */
  uint(key: string): number | undefined {
    const v = this.map.get(key);
    if (v === undefined) return undefined;
    const n = typeof v.value === 'bigint' ? Number(v.value) : v.value;
    const isInt = ['uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32', 'uint64', 'int64'].includes(v.type);
    if (!isInt || typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0)
      throw new GgufError(`${key} must be a non-negative integer, got ${describe(v)}`, { key });
    return n;
  }

  float(key: string): number | undefined {
    const v = this.map.get(key);
    if (v === undefined) return undefined;
    if ((v.type !== 'float32' && v.type !== 'float64') || !Number.isFinite(v.value))
      throw new GgufError(`${key} must be a finite float, got ${describe(v)}`, { key });
    return v.value;
  }

  bool(key: string): boolean | undefined {
    const v = this.map.get(key);
    if (v === undefined) return undefined;
    if (v.type !== 'bool') throw new GgufError(`${key} must be a bool, got ${describe(v)}`, { key });
    return v.value;
  }

  array<T extends GgufScalar>(key: string, itemTypes: readonly GgufScalarType[]): T[] | undefined {
    const v = this.map.get(key);
    if (v === undefined) return undefined;
    if (v.type !== 'array' || !itemTypes.includes(v.itemType))
      throw new GgufError(`${key} must be an array of ${itemTypes.join(' or ')}, got ${describe(v)}`, {
        key,
      });
    return v.value as T[];
  }
}

// ---------------------------------------------------------------------------------------------- writing

/** A growable little-endian byte builder. */
class Bytes {
  private buf = new Uint8Array(1 << 16);
  private dv = new DataView(this.buf.buffer);
  length = 0;

  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.dv = new DataView(next.buffer);
  }

  u8(v: number): void {
    this.ensure(1);
    this.dv.setUint8(this.length++, v);
  }
  u32(v: number): void {
    this.ensure(4);
    this.dv.setUint32(this.length, v, true);
    this.length += 4;
  }
  u64(v: number | bigint): void {
    this.ensure(8);
    this.dv.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }
  raw(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  string(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.raw(b);
  }
  scalar(type: GgufScalarType, v: GgufScalar): void {
    this.ensure(8);
    const dv = this.dv;
    const at = this.length;
    switch (type) {
      case 'uint8':
      case 'int8':
      case 'bool':
        if (type === 'int8') dv.setInt8(at, v as number);
        else dv.setUint8(at, type === 'bool' ? (v ? 1 : 0) : (v as number));
        this.length += 1;
        return;
      case 'uint16':
        dv.setUint16(at, v as number, true);
        this.length += 2;
        return;
      case 'int16':
        dv.setInt16(at, v as number, true);
        this.length += 2;
        return;
      case 'uint32':
        dv.setUint32(at, v as number, true);
        this.length += 4;
        return;
      case 'int32':
        dv.setInt32(at, v as number, true);
        this.length += 4;
        return;
      case 'float32':
        dv.setFloat32(at, v as number, true);
        this.length += 4;
        return;
      case 'float64':
        dv.setFloat64(at, v as number, true);
        this.length += 8;
        return;
      case 'uint64':
        dv.setBigUint64(at, BigInt(v as number | bigint), true);
        this.length += 8;
        return;
      case 'int64':
        dv.setBigInt64(at, BigInt(v as number | bigint), true);
        this.length += 8;
        return;
      case 'string':
        this.string(v as string);
        return;
    }
  }
  value(v: GgufValue): void {
    this.u32(VALUE_TYPE_IDS[v.type]);
    if (v.type !== 'array') {
      this.scalar(v.type, v.value);
      return;
    }
    this.u32(VALUE_TYPE_IDS[v.itemType]);
    this.u64(v.value.length);
    for (const item of v.value) this.scalar(v.itemType, item);
  }
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

export interface GgufTensorPlan {
  name: string;
  type: GgmlType;
  /** Row-major shape; written reversed (ggml order). */
  shape: number[];
}

export interface GgufLayout {
  /** Everything before the tensor data, padding included. */
  header: Uint8Array;
  /** Per tensor: offset relative to the data section and its byte length (before padding). */
  offsets: number[];
  nbytes: number[];
  alignment: number;
}

export function tensorBytes(type: GgmlType, shape: readonly number[]): number {
  const numel = shape.reduce((a, b) => a * b, 1);
  const row = shape[shape.length - 1]!;
  if (row % type.blockSize !== 0)
    throw new Error(`invariant failed: row ${row} is not a multiple of ${type.name} block ${type.blockSize}`);
  return (numel / type.blockSize) * type.typeSize;
}

/** The header of a GGUF file holding `metadata` (in order) and `tensors`, whose data follows in order. */
export function layoutGguf(
  metadata: ReadonlyArray<readonly [string, GgufValue]>,
  tensors: readonly GgufTensorPlan[],
): GgufLayout {
  const keys = new Set<string>();
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  for (const [k, v] of metadata) {
    if (keys.has(k)) throw new Error(`invariant failed: metadata key ${k} given twice`);
    keys.add(k);
    if (k === 'general.alignment' && v.type === 'uint32') alignment = v.value;
  }
  const b = new Bytes();
  b.u32(GGUF_MAGIC);
  b.u32(GGUF_VERSION);
  b.u64(tensors.length);
  b.u64(metadata.length);
  for (const [k, v] of metadata) {
    b.string(k);
    b.value(v);
  }
  const offsets: number[] = [];
  const nbytes: number[] = [];
  let at = 0;
  for (const t of tensors) {
    b.string(t.name);
    b.u32(t.shape.length);
    for (let d = t.shape.length - 1; d >= 0; d--) b.u64(t.shape[d]!);
    b.u32(t.type.id);
    b.u64(at);
    const n = tensorBytes(t.type, t.shape);
    offsets.push(at);
    nbytes.push(n);
    at += alignUp(n, alignment);
  }
  const pad = alignUp(b.length, alignment) - b.length;
  b.raw(new Uint8Array(pad));
  return { header: b.bytes(), offsets, nbytes, alignment };
}
