/**
 * src/engine/delta/extract.ts on in-memory checkpoints: a planted rank-3 ΔW (random orthonormal factors +
 * 1e-4 noise) comes back with relative error ≤ 1e-2 and kept energy ≥ 0.999, as B = U·√S, A = √S·Vᵀ with
 * scale 1; --energy picks each module's planted rank (rank_pattern + alpha_pattern, scale 1 everywhere);
 * dense and randomized SVD agree; bad input is refused naming the tensor.
 */
import { describe, expect, it } from 'vitest';
import { checkSameArchitecture, extractAdapter } from '../../../src/engine/delta/extract.js';
import { linearShape, weightName, type LinearModule } from '../../../src/engine/formats/hf-config.js';
import {
  moduleRank,
  moduleScale,
  parsePeftAdapter,
  serializePeftAdapter,
} from '../../../src/engine/formats/peft.js';
import { BadInputError } from '../../../src/shared/errors.js';
import { randomCheckpoint } from '../nn/fixtures.js';
import { plantedTuned, product, relErr } from './planted.js';

const base = randomCheckpoint({}, 21);
const { config } = base;
const SIGMA = [1, 0.5, 0.25];

describe('extractAdapter', () => {
  const { tuned, deltas } = plantedTuned(base, () => SIGMA, 1e-4);

  it('recovers a planted rank-3 ΔW: relative error ≤ 1e-2, kept energy ≥ 0.999, scale 1', () => {
    const { adapter, report } = extractAdapter(base, tuned, { rank: 3 });
    expect([adapter.rank, adapter.alpha, adapter.scale]).toEqual([3, 3, 1]);
    expect(report.modules).toHaveLength(config.numLayers * 7);
    for (const m of report.modules) {
      expect(m.rank).toBe(3);
      expect(m.keptEnergy, m.module).toBeGreaterThanOrEqual(0.999);
      expect(m.relativeError, m.module).toBeLessThanOrEqual(1e-2);
    }
    // Against the planted delta itself (float64, before the checkpoint's float32 rounding): the noise is
    // what is left, ~1e-4·√(out·in) / ‖σ‖.
    for (const [key, d] of deltas) {
      const w = adapter.weights.get(key)!;
      expect(relErr(product(w.b, w.a, 3, 1), d), key).toBeLessThan(1e-2);
    }
    // B = U·√S and A = √S·Vᵀ: the columns of B and the rows of A both have norm √σ.
    const w = adapter.weights.get('0.q_proj')!;
    const { inFeatures: inF, outFeatures: outF } = linearShape(config, 'q_proj');
    for (let r = 0; r < 3; r++) {
      let nb = 0;
      let na = 0;
      for (let o = 0; o < outF; o++) nb += w.b[o * 3 + r]! ** 2;
      for (let i = 0; i < inF; i++) na += w.a[r * inF + i]! ** 2;
      expect(Math.abs(Math.sqrt(nb) - Math.sqrt(SIGMA[r]!))).toBeLessThan(1e-3);
      expect(Math.abs(Math.sqrt(na) - Math.sqrt(SIGMA[r]!))).toBeLessThan(1e-3);
    }
    expect(report.totals.keptEnergy).toBeGreaterThan(0.999);
    expect(report.untracked).toEqual([]);
    expect(report.configDifferences).toEqual([]);
  });

  it('dense and randomized SVD give the same adapter product', () => {
    const dense = extractAdapter(base, tuned, { rank: 3, svd: { method: 'dense' } }).adapter;
    const rand = extractAdapter(base, tuned, { rank: 3, svd: { method: 'randomized', seed: 5 } }).adapter;
    for (const [key, w] of dense.weights) {
      const v = rand.weights.get(key)!;
      expect(relErr(product(v.b, v.a, 3, 1), product(w.b, w.a, 3, 1)), key).toBeLessThan(1e-6);
    }
  });

  it('--energy picks each module its planted rank and writes rank_pattern + alpha_pattern (scale 1)', () => {
    const rankOf = (l: number, m: LinearModule) =>
      m === 'q_proj' ? 2 : m === 'down_proj' && l === 1 ? 5 : 3;
    const sig = (l: number, m: LinearModule) => [1, 0.6, 0.4, 0.3, 0.2].slice(0, rankOf(l, m));
    const planted = plantedTuned(base, sig, 1e-4, ['q_proj', 'v_proj', 'down_proj'], 3);
    const { adapter, report } = extractAdapter(base, planted.tuned, {
      energy: 0.9999,
      targetModules: ['q_proj', 'v_proj', 'down_proj'],
    });
    expect(adapter.rank).toBe(5);
    for (const [key, w] of adapter.weights) {
      const [l, m] = key.split('.') as [string, LinearModule];
      expect(moduleRank(adapter, w), key).toBe(rankOf(Number(l), m));
      expect(moduleScale(adapter, w), key).toBe(1);
    }
    for (const m of report.modules) expect(m.keptEnergy).toBeGreaterThanOrEqual(0.9999);
    const s = serializePeftAdapter(adapter);
    expect(s.adapterConfig).toMatchObject({
      r: 5,
      lora_alpha: 5,
      rank_pattern: {
        'model.layers.0.mlp.down_proj': 3,
        'model.layers.0.self_attn.q_proj': 2,
        'model.layers.0.self_attn.v_proj': 3,
        'model.layers.1.self_attn.q_proj': 2,
        'model.layers.1.self_attn.v_proj': 3,
      },
      alpha_pattern: {
        'model.layers.0.mlp.down_proj': 3,
        'model.layers.0.self_attn.q_proj': 2,
        'model.layers.0.self_attn.v_proj': 3,
        'model.layers.1.self_attn.q_proj': 2,
        'model.layers.1.self_attn.v_proj': 3,
      },
    });
    // The files read back (strict import) to the same per-module ranks and scales.
    const back = parsePeftAdapter(JSON.parse(JSON.stringify(s.adapterConfig)), s.weights, config);
    expect([...back.weights].map(([k, w]) => [k, moduleRank(back, w), moduleScale(back, w)])).toEqual(
      [...adapter.weights].map(([k, w]) => [k, moduleRank(adapter, w), 1]),
    );
  });

  it('lists what a LoRA adapter cannot carry; an untouched module extracts to zeros', () => {
    const tensors = new Map(base.tensors);
    const norm = tensors.get('model.norm.weight')!;
    tensors.set('model.norm.weight', { shape: norm.shape, data: norm.data.map((x) => x + 0.5) });
    const { adapter, report } = extractAdapter(base, { ...base, dir: 'changed', tensors }, { energy: 0.9 });
    expect(report.untracked).toEqual([{ tensor: 'model.norm.weight', maxAbsDiff: expect.closeTo(0.5, 5) }]);
    expect(adapter.rank).toBe(1);
    expect(report.modules.every((m) => m.keptEnergy === 1 && m.relativeError === 0)).toBe(true);
    expect([...adapter.weights.values()].every((w) => w.a.every((x) => x === 0))).toBe(true);
  });

  it('refuses other architectures, ranks ≥ min(out, in) and non-finite weights, naming the tensor', () => {
    const wide = randomCheckpoint({ hidden_size: 48 }, 21);
    const err = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        return e as BadInputError;
      }
      throw new Error('expected a throw');
    };
    const e1 = err(() => extractAdapter(base, wide, { rank: 2 }));
    expect(e1).toBeInstanceOf(BadInputError);
    expect(e1.message).toMatch(
      /differ in architecture: tensor model\.embed_tokens\.weight has shape \[40, 32\] in .*, \[40, 48\] in .* \(config differs in hiddenSize/,
    );
    const deep = randomCheckpoint({ num_hidden_layers: 3 }, 21);
    expect(() => checkSameArchitecture(base, deep)).toThrow(
      /tensor model\.layers\.2\.input_layernorm\.weight is in .* but not in/,
    );
    // k_proj is (16, 32): rank 16 is no compression.
    expect(err(() => extractAdapter(base, tuned, { rank: 16 })).message).toMatch(
      /rank 16 is not below min\(out, in\) = 16 of model\.layers\.0\.self_attn\.k_proj\.weight \[16, 32\]/,
    );
    const nan = new Map(tuned.tensors);
    const q = nan.get(weightName(1, 'up_proj'))!;
    const data = Float32Array.from(q.data);
    data[7] = NaN;
    nan.set(weightName(1, 'up_proj'), { shape: q.shape, data });
    const e3 = err(() => extractAdapter(base, { ...tuned, tensors: nan }, { rank: 2 }));
    expect(e3.message).toMatch(
      /tensor model\.layers\.1\.mlp\.up_proj\.weight in .* has a non-finite value \(NaN\) at index 7/,
    );
    expect(e3.details).toEqual({ tensor: 'model.layers.1.mlp.up_proj.weight' });
    expect(() => extractAdapter(base, tuned, { energy: 1.5 })).toThrow(/energy must be in \(0, 1\]/);
  });
});
