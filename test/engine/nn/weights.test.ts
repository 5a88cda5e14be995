/**
 * `prepareWeights`' serving options against plain loops: NF4 run as its exact fp32 dequantization
 * (`nf4Execution: 'dequantized'`) holds NF4_LEVELS[code]·absmax with the double-quantized absmax decoded by
 * hand, and an adapter merged onto the grid (`mergeOrder: 'quantize-then-merge'`) is dequant(Q(W)) + s·B·A —
 * not Q(W + s·B·A), which the default order still gives.
 */
import { describe, expect, it } from 'vitest';
import { LINEAR_MODULES, linearShape, weightName } from '../../../src/engine/formats/hf-config.js';
import type { LinearModule } from '../../../src/engine/formats/hf-config.js';
import { loraKey, type LoraAdapter } from '../../../src/engine/formats/peft.js';
import { prepareWeights, type LinearWeight } from '../../../src/engine/nn/weights.js';
import { dequantizeInt4, quantizeInt4 } from '../../../src/engine/quant/int4.js';
import { DYNAMIC_MAP_8BIT, NF4_LEVELS, quantizeNf4, type Nf4Weight } from '../../../src/engine/quant/nf4.js';
import { expectClose, maxDiff } from '../../helpers/expect-close.js';
import { randomAdapter, randomCheckpoint } from './fixtures.js';

/** NF4 → fp32 by hand: level of the nibble (even index high) × (dynamicMap[absmax code]·scale + offset). */
function referenceDequantNf4(q: Nf4Weight): Float32Array {
  const f = Math.fround;
  const out = new Float32Array(q.n * q.k);
  for (let i = 0; i < out.length; i++) {
    const byte = q.packed[Math.floor(i / 2)]!;
    const code = i % 2 === 0 ? byte >> 4 : byte & 15;
    const block = Math.floor(i / 64);
    const scale = q.absmaxScales[Math.floor(block / 256)]!;
    const absmax = f(f(DYNAMIC_MAP_8BIT[q.absmaxCodes[block]!]! * scale) + q.absmaxOffset);
    out[i] = f(NF4_LEVELS[code]! * absmax); // one fp32 multiply, as the kernel does
  }
  return out;
}

/** W + s·B·A in float64 plain loops; W (out, in), A (R, in), B (out, R). */
function referenceMerge(w: ArrayLike<number>, a: Float32Array, b: Float32Array, rank: number, s: number) {
  const inF = a.length / rank;
  const outF = b.length / rank;
  const out = new Float64Array(outF * inF);
  for (let o = 0; o < outF; o++) {
    for (let i = 0; i < inF; i++) {
      let d = 0;
      for (let r = 0; r < rank; r++) d += b[o * rank + r]! * a[r * inF + i]!;
      out[o * inF + i] = w[o * inF + i]! + s * d;
    }
  }
  return out;
}

function fp32(w: LinearWeight): Float32Array {
  expect(w.kind).toBe('fp32');
  return (w as { w: Float32Array }).w;
}

// Odd sizes: K = 40 makes 64-blocks straddle rows; 2 layers · 7 modules.
const ckpt = randomCheckpoint({ hidden_size: 40, intermediate_size: 56, vocab_size: 48 }, 7);
const config = ckpt.config;
const raw = (l: number, m: LinearModule) => ckpt.tensors.get(weightName(l, m))!.data;
const ADAPTED: LinearModule[] = ['q_proj', 'v_proj', 'down_proj'];
const adapter: LoraAdapter = randomAdapter(config, 4, 11, ADAPTED, 8);

describe('prepareWeights: serving on the NF4 grid', () => {
  it("nf4Execution 'dequantized' gives fp32 weights equal to the reference NF4 dequantization", () => {
    const weights = prepareWeights(ckpt, { quantize: 'nf4', nf4Execution: 'dequantized' });
    const bnb4 = prepareWeights(ckpt, { quantize: 'nf4' });
    for (let l = 0; l < config.numLayers; l++) {
      for (const m of LINEAR_MODULES) {
        const { inFeatures, outFeatures } = linearShape(config, m);
        const ref = referenceDequantNf4(quantizeNf4(raw(l, m), outFeatures, inFeatures));
        const w = fp32(weights.layers[l]!.linear[m]);
        // Both are fp32 products of the same two fp32 factors: bit-identical.
        expect(maxDiff(w, ref).abs, `${l}.${m}`).toBe(0);
        expect(w).not.toBe(raw(l, m));
        // The default keeps the packed codes for MatMulBnb4: the same NF4 weight.
        const q = bnb4.layers[l]!.linear[m];
        expect(q.kind).toBe('nf4');
        expect((q as { q: Nf4Weight }).q.packed).toEqual(
          quantizeNf4(raw(l, m), outFeatures, inFeatures).packed,
        );
      }
    }
    // Not a no-op: NF4 moves the weights.
    expect(maxDiff(fp32(weights.layers[0]!.linear.q_proj), raw(0, 'q_proj')).abs).toBeGreaterThan(1e-3);
  });

  it("mergeOrder 'quantize-then-merge' gives dequant(NF4(W)) + s·B·A for the adapted modules", () => {
    for (const nf4Execution of ['dequantized', 'bnb4'] as const) {
      const weights = prepareWeights(ckpt, {
        quantize: 'nf4',
        nf4Execution,
        mergeAdapter: adapter,
        mergeOrder: 'quantize-then-merge',
      });
      for (let l = 0; l < config.numLayers; l++) {
        for (const m of LINEAR_MODULES) {
          const { inFeatures, outFeatures } = linearShape(config, m);
          const deq = referenceDequantNf4(quantizeNf4(raw(l, m), outFeatures, inFeatures));
          const got = weights.layers[l]!.linear[m];
          const lora = adapter.weights.get(loraKey(l, m));
          if (lora) {
            const ref = referenceMerge(deq, lora.a, lora.b, adapter.rank, adapter.scale);
            expectClose(fp32(got), ref, { atol: 1e-6, rtol: 1e-6, label: `${nf4Execution} ${l}.${m}` });
          } else if (nf4Execution === 'bnb4') {
            // Modules the adapter does not touch stay 4-bit.
            expect(got.kind).toBe('nf4');
          } else {
            expect(maxDiff(fp32(got), deq).abs).toBe(0);
          }
        }
      }
    }
  });

  it('the default order still quantizes the merged weight, Q(W + s·B·A), which is not the serving grid', () => {
    const before = prepareWeights(ckpt, {
      quantize: 'nf4',
      nf4Execution: 'dequantized',
      mergeAdapter: adapter,
    });
    const { inFeatures, outFeatures } = linearShape(config, 'q_proj');
    const lora = adapter.weights.get(loraKey(0, 'q_proj'))!;
    const merged = Float32Array.from(
      referenceMerge(raw(0, 'q_proj'), lora.a, lora.b, adapter.rank, adapter.scale),
    );
    const ref = referenceDequantNf4(quantizeNf4(merged, outFeatures, inFeatures));
    const got = fp32(before.layers[0]!.linear.q_proj);
    expect(maxDiff(got, ref).abs).toBeLessThan(1e-6);
    const onGrid = referenceMerge(
      referenceDequantNf4(quantizeNf4(raw(0, 'q_proj'), outFeatures, inFeatures)),
      lora.a,
      lora.b,
      adapter.rank,
      adapter.scale,
    );
    expect(maxDiff(got, onGrid).abs).toBeGreaterThan(1e-3);
  });

  it("int4 with 'quantize-then-merge': adapted modules are dequant(int4(W)) + s·B·A in fp32, the rest int4", () => {
    const weights = prepareWeights(ckpt, {
      quantize: 'int4',
      mergeAdapter: adapter,
      mergeOrder: 'quantize-then-merge',
    });
    for (let l = 0; l < config.numLayers; l++) {
      for (const m of LINEAR_MODULES) {
        const { inFeatures, outFeatures } = linearShape(config, m);
        const got = weights.layers[l]!.linear[m];
        const lora = adapter.weights.get(loraKey(l, m));
        if (!lora) {
          expect(got.kind).toBe('int4');
          continue;
        }
        const deq = dequantizeInt4(quantizeInt4(raw(l, m), outFeatures, inFeatures, { blockSize: 64 }));
        const ref = referenceMerge(deq, lora.a, lora.b, adapter.rank, adapter.scale);
        expectClose(fp32(got), ref, { atol: 1e-6, rtol: 1e-6, label: `int4 ${l}.${m}` });
      }
    }
  });

  it("'none' ignores the order: W + s·B·A either way", () => {
    const a = prepareWeights(ckpt, { mergeAdapter: adapter, mergeOrder: 'quantize-then-merge' });
    const b = prepareWeights(ckpt, { mergeAdapter: adapter });
    const lora = adapter.weights.get(loraKey(1, 'down_proj'))!;
    const ref = referenceMerge(raw(1, 'down_proj'), lora.a, lora.b, adapter.rank, adapter.scale);
    expectClose(fp32(a.layers[1]!.linear.down_proj), ref, { atol: 1e-6, rtol: 1e-6 });
    expect(fp32(a.layers[1]!.linear.down_proj)).toEqual(fp32(b.layers[1]!.linear.down_proj));
  });
});
