/**
 * Hardening: adapters that could never generate are refused at import (parsePeftAdapter, used by import and
 * by the serving cache), as BAD_USER_INPUT naming the tensor — finite but overflowing weights (F32 3.4e38),
 * overflowing scales (lora_alpha 1e308), NaN/Inf in any float dtype, and a scale·|B|·|A| past the bound. The
 * safetensors header follows the strict rules: `__metadata__` is an object of string → string (never null),
 * and no header string holds a lone surrogate. Strict base64 for `weightsBase64`: src/services/validation.ts.
 * Sources: src/engine/formats/peft.ts, safetensors.ts, strict-json.ts.
 */
import { describe, expect, it } from 'vitest';
import { linearShape, parseModelConfig, type LinearModule } from '../../../src/engine/formats/hf-config.js';
import {
  AdapterConfigError,
  AdapterWeightsError,
  MAX_LORA_DELTA,
  MAX_LORA_SCALE,
  MAX_LORA_WEIGHT,
  parsePeftAdapter,
  peftWeightKey,
  serializePeftAdapter,
  type LoraWeights,
} from '../../../src/engine/formats/peft.js';
import {
  SafetensorsError,
  floatToBf16,
  floatToHalf,
  parseSafetensors,
  writeSafetensors,
  type StDType,
  type TensorInput,
} from '../../../src/engine/formats/safetensors.js';
import { parseStrictJson } from '../../../src/engine/formats/strict-json.js';
import { decodeStrictBase64 } from '../../../src/services/validation.js';

const BASE = parseModelConfig({
  model_type: 'llama',
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 50,
});
const MODULES: LinearModule[] = ['q_proj', 'v_proj'];
const R = 2;

/** A q/v adapter whose every A value is `a` and every B value `b` (or small random ones). */
function adapter(opts: { a?: number; b?: number; alpha?: number; useRslora?: boolean } = {}) {
  let s = 3;
  const rnd = () => (((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1) * 0.05;
  const weights = new Map<string, LoraWeights>();
  for (let l = 0; l < BASE.numLayers; l++) {
    for (const m of MODULES) {
      const { inFeatures, outFeatures } = linearShape(BASE, m);
      weights.set(`${l}.${m}`, {
        a: Float32Array.from({ length: R * inFeatures }, () => opts.a ?? rnd()),
        b: Float32Array.from({ length: outFeatures * R }, () => opts.b ?? rnd()),
      });
    }
  }
  const alpha = opts.alpha ?? 2 * R;
  const useRslora = opts.useRslora ?? false;
  return serializePeftAdapter({
    rank: R,
    alpha,
    useRslora,
    scale: useRslora ? alpha / Math.sqrt(R) : alpha / R,
    dropout: 0,
    targetModules: MODULES,
    baseModelName: null,
    weights,
  });
}

function caught(f: () => unknown): Error & { code?: string; details?: Record<string, unknown> } {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

/** The adapter's tensors re-encoded with one tensor replaced (dtype + raw values). */
function withTensor(key: string, dtype: StDType, values: number[] | Uint16Array): Uint8Array {
  const file = parseSafetensors(adapter().weights);
  const tensors: Record<string, TensorInput> = {};
  for (const [k, e] of file.tensors) tensors[k] = { dtype: e.dtype, shape: e.shape, data: e.bytes };
  const shape = tensors[key]!.shape;
  tensors[key] = {
    dtype,
    shape,
    data:
      values instanceof Uint16Array
        ? values
        : dtype === 'F64'
          ? Float64Array.from(values)
          : Float32Array.from(values),
  };
  return writeSafetensors(tensors, file.metadata);
}

const A0 = peftWeightKey(0, 'q_proj', 'A');
const B0 = peftWeightKey(0, 'q_proj', 'B');
const nA0 = R * BASE.hiddenSize;

describe('hostile adapters are refused at import', () => {
  it('accepts an ordinary adapter (and its rsLoRA variant)', () => {
    const ok = adapter();
    expect(parsePeftAdapter(ok.adapterConfig, ok.weights, BASE).scale).toBe(2);
    const rs = adapter({ alpha: 16, useRslora: true });
    expect(parsePeftAdapter(rs.adapterConfig, rs.weights, BASE).scale).toBeCloseTo(16 / Math.SQRT2);
  });

  it('refuses F32 weights of 3.4e38 (finite, but scale·B·A overflows float32), naming the tensor', () => {
    const { adapterConfig, weights } = adapter({ a: 3.4e38, b: 3.4e38 });
    const err = caught(() => parsePeftAdapter(adapterConfig, weights, BASE));
    expect(err).toBeInstanceOf(AdapterWeightsError);
    expect(err.code).toBe('BAD_USER_INPUT');
    expect(err.message).toContain(A0);
    expect(err.message).toMatch(/3\.4\d*e\+38/);
    expect(err.details).toEqual({ tensor: A0 });
  });

  it('refuses lora_alpha 1e308 (alpha/r past the scale bound), and an rsLoRA scale past it', () => {
    const { adapterConfig, weights } = adapter();
    for (const cfg of [
      { ...adapterConfig, lora_alpha: 1e308 },
      { ...adapterConfig, lora_alpha: MAX_LORA_SCALE * R * 2 },
      { ...adapterConfig, lora_alpha: MAX_LORA_SCALE * 2, use_rslora: true },
    ]) {
      const err = caught(() => parsePeftAdapter(cfg, weights, BASE));
      expect(err).toBeInstanceOf(AdapterConfigError);
      expect(err.code).toBe('BAD_USER_INPUT');
      expect(err.message).toMatch(/scale/);
    }
  });

  it('refuses NaN and ±Inf in every float dtype, and F64 values beyond float32', () => {
    const nanHalf = new Uint16Array(nA0).fill(floatToHalf(0.01));
    nanHalf[5] = 0x7e00;
    const infBf16 = new Uint16Array(nA0).fill(floatToBf16(0.01));
    infBf16[7] = 0xff80;
    const f32 = Array.from({ length: nA0 }, (_, i) => (i === 3 ? Infinity : 0.01));
    const f64 = Array.from({ length: nA0 }, (_, i) => (i === 4 ? 1e300 : 0.01));
    for (const [dtype, values, index] of [
      ['F16', nanHalf, 5],
      ['BF16', infBf16, 7],
      ['F32', f32, 3],
      ['F64', f64, 4],
    ] as const) {
      const err = caught(() =>
        parsePeftAdapter(adapter().adapterConfig, withTensor(A0, dtype, values), BASE),
      );
      expect([dtype, err.code, err.details]).toEqual([dtype, 'BAD_USER_INPUT', { tensor: A0 }]);
      expect(err.message).toContain(`index ${index}`);
    }
  });

  it(`refuses a weight beyond ±${MAX_LORA_WEIGHT} and a scale·|B|·|A| bound beyond ${MAX_LORA_DELTA}`, () => {
    const big = Array.from({ length: nA0 }, (_, i) => (i === 9 ? -2 * MAX_LORA_WEIGHT : 0.01));
    const err = caught(() => parsePeftAdapter(adapter().adapterConfig, withTensor(A0, 'F32', big), BASE));
    expect([err.code, err.details]).toEqual(['BAD_USER_INPUT', { tensor: A0 }]);
    expect(err.message).toContain('index 9');

    // Every value within bounds, but the product is not: scale 2 · r 2 · 100 · 100 = 4e4.
    const loud = adapter({ a: 100, b: 100 });
    const e2 = caught(() => parsePeftAdapter(loud.adapterConfig, loud.weights, BASE));
    expect(e2).toBeInstanceOf(AdapterWeightsError);
    expect(e2.message).toContain(A0);
    expect(e2.message).toContain(B0);
    expect(e2.details).toEqual({ tensor: B0 });

    // Just inside the bound: accepted (scale 2 · r 2 · 15 · 15 = 900).
    const edge = adapter({ a: 15, b: 15 });
    expect(parsePeftAdapter(edge.adapterConfig, edge.weights, BASE).rank).toBe(R);
  });
});

describe('safetensors headers follow the strict rules', () => {
  function fileWith(header: string): Uint8Array {
    const json = new TextEncoder().encode(header);
    const out = new Uint8Array(8 + json.length);
    new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
    out.set(json, 8);
    return out;
  }

  it('refuses __metadata__: null (metadata is an object of string → string)', () => {
    const err = caught(() => parseSafetensors(fileWith('{"__metadata__":null}')));
    expect(err).toBeInstanceOf(SafetensorsError);
    expect(err.message).toMatch(/__metadata__ is not an object of strings/);
  });

  it('refuses lone surrogates in metadata values, metadata keys and tensor names', () => {
    for (const header of [
      '{"__metadata__":{"format":"\\ud800"}}',
      '{"__metadata__":{"format":"pt\\udfff"}}',
      '{"__metadata__":{"\\udc00":"pt"}}',
      '{"w\\ud83d":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}',
    ]) {
      const err = caught(() => parseSafetensors(fileWith(header)));
      expect([header, err instanceof SafetensorsError, err.message]).toEqual([
        header,
        true,
        expect.stringMatching(/lone surrogate/),
      ]);
    }
    // A surrogate pair is a character: fine.
    expect(parseSafetensors(fileWith('{"__metadata__":{"emoji":"\\ud83d\\ude00"}}')).metadata).toEqual({
      emoji: '😀',
    });
  });

  it('parseStrictJson itself refuses lone surrogates anywhere', () => {
    expect(() => parseStrictJson('["\\ud800"]')).toThrow(/lone surrogate/);
    expect(() => parseStrictJson('{"a":{"\\udc00x":1}}')).toThrow(/lone surrogate/);
    expect(parseStrictJson('"\\ud83d\\ude00 ok"')).toBe('😀 ok');
  });
});

describe('strict base64 (weightsBase64)', () => {
  const bytes = Uint8Array.from({ length: 200 }, (_, i) => (i * 37) % 256);
  const b64 = Buffer.from(bytes).toString('base64');

  it('decodes canonical base64', () => {
    expect(Buffer.from(decodeStrictBase64(b64, 1000))).toEqual(Buffer.from(bytes));
  });

  it('refuses embedded newlines (MIME line wrapping), spaces, bad characters and bad padding', () => {
    const wrapped = b64.replace(/(.{76})/g, '$1\n');
    for (const bad of [
      wrapped,
      b64.replace(/(.{76})/g, '$1\r\n'),
      ` ${b64}`,
      `${b64}\n`,
      b64.slice(0, 40) + '\t' + b64.slice(40),
      b64.slice(0, 40) + '*' + b64.slice(40),
      b64.replace(/=+$/, ''),
      'QQ=A',
      'QR==', // non-zero unused bits: not what any encoder writes
      '',
    ]) {
      const err = caught(() => decodeStrictBase64(bad, 1000));
      expect([JSON.stringify(bad.slice(0, 20)), err.code]).toEqual([
        JSON.stringify(bad.slice(0, 20)),
        'BAD_USER_INPUT',
      ]);
    }
    expect(caught(() => decodeStrictBase64(wrapped, 1000)).message).toMatch(/line break|whitespace/);
  });

  it('refuses more than the size limit before decoding', () => {
    expect(caught(() => decodeStrictBase64(b64, 100)).message).toMatch(/larger than the limit of 100 bytes/);
  });
});
