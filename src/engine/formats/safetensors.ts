/**
 * The one safetensors reader (strict: every header claim is checked against the file before it is used)
 * and writer (the reference layout: header padded with spaces to 8 bytes, tensors sorted as
 * huggingface/safetensors sorts them). Not a model loader: `checkpoint.ts` maps names to a model and
 * `peft.ts` to an adapter. The duplicate-key-aware JSON parser lives in `strict-json.ts`.
 */
import { BadInputError } from '../../shared/errors.js';
import { parseStrictJson } from './strict-json.js';

export type StDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export interface TensorEntry {
  dtype: StDType;
  shape: number[];
  /** A view into the file's bytes (no copy). */
  bytes: Uint8Array;
}

export interface SafetensorsFile {
  metadata: Record<string, string>;
  tensors: Map<string, TensorEntry>;
}

/** What `writeSafetensors` accepts as a tensor's data: raw bytes, or a typed array of the dtype's values. */
export type TensorData =
  | Float32Array
  | Float64Array
  | Uint16Array
  | Int32Array
  | Int16Array
  | Int8Array
  | BigInt64Array
  | Uint8Array;

export interface TensorInput {
  dtype: StDType;
  shape: number[];
  data: TensorData;
}

/** A malformed or hostile safetensors file. The message names the problem and, where known, the tensor. */
export class SafetensorsError extends BadInputError {
  constructor(message: string, options?: { cause?: unknown; tensor?: string }) {
    super(
      `safetensors: ${message}`,
      options?.tensor === undefined
        ? { cause: options?.cause }
        : { cause: options.cause, details: { tensor: options.tensor } },
    );
  }
}

export const DTYPE_SIZE: Readonly<Record<StDType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/**
 * The reference writer sorts by dtype descending in its enum order (so that larger, more aligned dtypes
 * come first), then by name. Higher rank = earlier in the file.
 */
const DTYPE_RANK: Readonly<Record<StDType, number>> = {
  BOOL: 0,
  U8: 1,
  I8: 2,
  I16: 3,
  F16: 4,
  BF16: 5,
  I32: 6,
  F32: 7,
  F64: 8,
  I64: 9,
};

export const DEFAULT_MAX_HEADER_BYTES = 100 * 1024 * 1024;
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function isDType(s: unknown): s is StDType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZE, s);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isNonNegSafeInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

export function parseSafetensors(bytes: Uint8Array, opts: { maxHeaderBytes?: number } = {}): SafetensorsFile {
  const maxHeader = opts.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  if (bytes.length < 8)
    throw new SafetensorsError(`file is ${bytes.length} bytes, shorter than the 8-byte header length`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = dv.getBigUint64(0, true);
  if (n > BigInt(maxHeader))
    throw new SafetensorsError(`header length ${n} exceeds the cap of ${maxHeader} bytes`);
  if (n > BigInt(bytes.length - 8)) {
    throw new SafetensorsError(
      `header length ${n} runs past the end of the file (${bytes.length - 8} bytes after the length)`,
    );
  }
  const headerLen = Number(n);
  if (headerLen < 2) throw new SafetensorsError(`header length ${headerLen} is too short for a JSON object`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(
      bytes.subarray(8, 8 + headerLen),
    );
  } catch (cause) {
    throw new SafetensorsError('header is not valid UTF-8', { cause });
  }
  let header: unknown;
  try {
    header = parseStrictJson(text, { maxDepth: 8 });
  } catch (cause) {
    throw new SafetensorsError(`header is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  if (!isPlainObject(header)) throw new SafetensorsError('header JSON is not an object');

  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  let metadata: Record<string, string> = {};
  const spans: Array<{ name: string; begin: number; end: number }> = [];
  const tensors = new Map<string, TensorEntry>();

  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      // Strict: an object of string → string when present; null is not "no metadata", it is malformed.
      if (!isPlainObject(raw)) throw new SafetensorsError('__metadata__ is not an object of strings');
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== 'string') throw new SafetensorsError(`__metadata__["${k}"] is not a string`);
      }
      // fromEntries defines own properties, so a "__proto__" key stays data.
      metadata = Object.fromEntries(Object.entries(raw)) as Record<string, string>;
      continue;
    }
    if (!isPlainObject(raw))
      throw new SafetensorsError(`tensor "${name}": entry is not an object`, { tensor: name });
    const { dtype, shape, data_offsets: offsets } = raw;
    if (!isDType(dtype)) {
      throw new SafetensorsError(`tensor "${name}": unknown dtype ${JSON.stringify(dtype)}`, {
        tensor: name,
      });
    }
    if (!Array.isArray(shape) || !shape.every(isNonNegSafeInt)) {
      throw new SafetensorsError(
        `tensor "${name}": shape ${JSON.stringify(shape)} is not a list of non-negative integers`,
        {
          tensor: name,
        },
      );
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegSafeInt)) {
      throw new SafetensorsError(
        `tensor "${name}": data_offsets ${JSON.stringify(offsets)} is not two non-negative integers`,
        {
          tensor: name,
        },
      );
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end)
      throw new SafetensorsError(`tensor "${name}": data_offsets begin ${begin} > end ${end}`, {
        tensor: name,
      });
    if (end > dataLen) {
      throw new SafetensorsError(
        `tensor "${name}": data_offsets end ${end} is past the data section (${dataLen} bytes)`,
        {
          tensor: name,
        },
      );
    }
    // BigInt: a hostile shape like [2^52, 2^52] must not overflow into a plausible size.
    let numel = 1n;
    for (const d of shape as number[]) numel *= BigInt(d);
    const expected = numel * BigInt(DTYPE_SIZE[dtype]);
    if (expected !== BigInt(end - begin)) {
      throw new SafetensorsError(
        `tensor "${name}": shape ${JSON.stringify(shape)} of ${dtype} needs ${expected} bytes but data_offsets span ${end - begin}`,
        { tensor: name },
      );
    }
    spans.push({ name, begin, end });
    tensors.set(name, {
      dtype,
      shape: [...(shape as number[])],
      bytes: bytes.subarray(dataStart + begin, dataStart + end),
    });
  }

  // Like the reference reader: sorted by offset, the tensors tile the data section exactly (no overlap,
  // no hole, nothing trailing), so no byte of the file is unaccounted for.
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const s of spans) {
    if (s.begin < cursor)
      throw new SafetensorsError(`tensor "${s.name}": data overlaps the previous tensor`, { tensor: s.name });
    if (s.begin > cursor) {
      throw new SafetensorsError(`tensor "${s.name}": gap of ${s.begin - cursor} bytes before its data`, {
        tensor: s.name,
      });
    }
    cursor = s.end;
  }
  if (cursor !== dataLen)
    throw new SafetensorsError(`${dataLen - cursor} trailing bytes after the last tensor`);
  return { metadata, tensors };
}

export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** IEEE half → float, exact (every half is representable as a float). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1024 + frac) * 2 ** (exp - 25);
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** float → IEEE half bits, round to nearest even (as torch's `.half()`). */
export function floatToHalf(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    // Subnormal half: shift the implicit-1 mantissa down, rounding to nearest even.
    const m = mant | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = m & ((1 << shift) - 1);
    let r = m >>> shift;
    if (rest > half || (rest === half && r & 1)) r++;
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) r++; // may carry into the exponent: correct, up to Inf
  return sign | r;
}

/** float → bfloat16 bits, round to nearest even; NaN stays a quiet NaN. */
export function floatToBf16(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0]!;
  if ((bits & 0x7f800000) === 0x7f800000 && bits & 0x7fffff) return ((bits >>> 16) | 0x40) & 0xffff;
  const rounded = bits + 0x7fff + ((bits >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

export function bf16ToFloat(b: number): number {
  u32Scratch[0] = (b & 0xffff) << 16;
  return f32Scratch[0]!;
}

/**
 * Values as float32. F32 on a little-endian host with a 4-aligned view is returned WITHOUT copying (a view
 * into the file: do not mutate the file buffer while it is in use). F16/BF16 are exact; F64 and 64-bit
 * integers round to the nearest float32.
 */
export function toFloat32(entry: TensorEntry): Float32Array {
  const { bytes, dtype } = entry;
  const n = bytes.byteLength / DTYPE_SIZE[dtype];
  if (dtype === 'F32' && LITTLE_ENDIAN_HOST && bytes.byteOffset % 4 === 0) {
    return new Float32Array(bytes.buffer, bytes.byteOffset, n);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
      break;
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true);
      break;
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = halfToFloat(dv.getUint16(2 * i, true));
      break;
    case 'BF16': {
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u[i] = dv.getUint16(2 * i, true) << 16;
      break;
    }
    case 'I64':
      for (let i = 0; i < n; i++) out[i] = Number(dv.getBigInt64(8 * i, true));
      break;
    case 'I32':
      for (let i = 0; i < n; i++) out[i] = dv.getInt32(4 * i, true);
      break;
    case 'I16':
      for (let i = 0; i < n; i++) out[i] = dv.getInt16(2 * i, true);
      break;
    case 'I8':
      for (let i = 0; i < n; i++) out[i] = dv.getInt8(i);
      break;
    case 'U8':
    case 'BOOL':
      for (let i = 0; i < n; i++) out[i] = bytes[i]!;
      break;
  }
  return out;
}

/** Encode one tensor's data as little-endian bytes of its dtype (float arrays are converted to F16/BF16/F64). */
function encodeData(name: string, t: TensorInput): Uint8Array {
  const n = numelOf(t.shape);
  const size = DTYPE_SIZE[t.dtype];
  const fail = (why: string): never => {
    throw new SafetensorsError(`tensor "${name}": ${why}`, { tensor: name });
  };
  const d = t.data;
  if (d instanceof Uint8Array) {
    if (d.byteLength !== n * size)
      fail(`${d.byteLength} raw bytes for ${n} × ${t.dtype} (${n * size} bytes)`);
    return d;
  }
  if (d.length !== n) fail(`${d.length} values for shape ${JSON.stringify(t.shape)} (${n} elements)`);
  const out = new Uint8Array(n * size);
  const dv = new DataView(out.buffer);
  const isFloat = d instanceof Float32Array || d instanceof Float64Array;
  switch (t.dtype) {
    case 'F32':
      if (!isFloat) fail('F32 data must be a Float32Array or Float64Array');
      for (let i = 0; i < n; i++) dv.setFloat32(4 * i, (d as Float32Array)[i]!, true);
      break;
    case 'F64':
      if (!isFloat) fail('F64 data must be a Float32Array or Float64Array');
      for (let i = 0; i < n; i++) dv.setFloat64(8 * i, (d as Float64Array)[i]!, true);
      break;
    case 'F16':
    case 'BF16': {
      // A Uint16Array is taken as the raw bits; float arrays are rounded to nearest even.
      const conv = t.dtype === 'F16' ? floatToHalf : floatToBf16;
      if (d instanceof Uint16Array) for (let i = 0; i < n; i++) dv.setUint16(2 * i, d[i]!, true);
      else if (isFloat) for (let i = 0; i < n; i++) dv.setUint16(2 * i, conv((d as Float32Array)[i]!), true);
      else fail(`${t.dtype} data must be a Uint16Array of bits or a float array`);
      break;
    }
    case 'I64':
      if (!(d instanceof BigInt64Array)) fail('I64 data must be a BigInt64Array');
      for (let i = 0; i < n; i++) dv.setBigInt64(8 * i, (d as BigInt64Array)[i]!, true);
      break;
    case 'I32':
      if (!(d instanceof Int32Array)) fail('I32 data must be an Int32Array');
      for (let i = 0; i < n; i++) dv.setInt32(4 * i, (d as Int32Array)[i]!, true);
      break;
    case 'I16':
      if (!(d instanceof Int16Array)) fail('I16 data must be an Int16Array');
      for (let i = 0; i < n; i++) dv.setInt16(2 * i, (d as Int16Array)[i]!, true);
      break;
    case 'I8':
      if (!(d instanceof Int8Array)) fail('I8 data must be an Int8Array');
      for (let i = 0; i < n; i++) dv.setInt8(i, (d as Int8Array)[i]!);
      break;
    case 'U8':
    case 'BOOL':
      fail(`${t.dtype} data must be a Uint8Array`);
  }
  return out;
}

/** Serialize tensors (+ string metadata) to the safetensors layout, deterministically. */
export function writeSafetensors(
  tensors: Record<string, TensorInput>,
  metadata?: Record<string, string>,
): Uint8Array {
  const names = Object.keys(tensors).sort((a, b) => {
    const r = DTYPE_RANK[tensors[b]!.dtype] - DTYPE_RANK[tensors[a]!.dtype];
    return r !== 0 ? r : a < b ? -1 : a > b ? 1 : 0;
  });
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    const m: Record<string, string> = {};
    for (const k of Object.keys(metadata).sort()) m[k] = metadata[k]!;
    header.__metadata__ = m;
  }
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    if (name === '__metadata__') throw new SafetensorsError('"__metadata__" cannot be a tensor name');
    const t = tensors[name]!;
    if (!isDType(t.dtype))
      throw new SafetensorsError(`tensor "${name}": unknown dtype ${String(t.dtype)}`, { tensor: name });
    if (!t.shape.every(isNonNegSafeInt)) {
      throw new SafetensorsError(`tensor "${name}": bad shape ${JSON.stringify(t.shape)}`, { tensor: name });
    }
    const data = encodeData(name, t);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + data.byteLength] };
    chunks.push(data);
    offset += data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded);
  let at = 8 + padded;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}
