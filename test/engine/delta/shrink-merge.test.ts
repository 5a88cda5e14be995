/**
 * src/engine/delta/shrink.ts and merge.ts against float64 references written here: a rank-16 adapter whose
 * product has true rank 4 shrinks to rank 4 exactly (dropped energy ~0, same s·B·A); below the true rank
 * shrink is the Eckart–Young truncation of the full product; merge linear/cat/svd follow PEFT's
 * add_weighted_adapter (sqrt weights on both factors; concatenation with w·s on A; Σ w·s·B·A truncated).
 */
import { describe, expect, it } from 'vitest';
import { mergeAdapters } from '../../../src/engine/delta/merge.js';
import { shrinkAdapter } from '../../../src/engine/delta/shrink.js';
import { linearShape, type LinearModule } from '../../../src/engine/formats/hf-config.js';
import { moduleRank, moduleScale, type LoraAdapter } from '../../../src/engine/formats/peft.js';
import { denseSvd } from '../../../src/engine/linalg/jacobi-svd.js';
import { BadInputError } from '../../../src/shared/errors.js';
import { randomAdapter, randomCheckpoint } from '../nn/fixtures.js';
import { lowTrueRankAdapter, product, relErr } from './planted.js';

const { config } = randomCheckpoint({}, 31);
const MODS: LinearModule[] = ['q_proj', 'k_proj', 'down_proj'];

/** The module's s·B·A from the adapter (explicit rank/scale: the fixtures set them). */
function deltaOf(ad: LoraAdapter, key: string): Float64Array {
  const w = ad.weights.get(key)!;
  return product(w.b, w.a, moduleRank(ad, w), moduleScale(ad, w));
}

/** The best rank-k approximation of d (out, in) and its spectrum, via the (separately tested) dense SVD. */
function truncation(d: Float64Array, outF: number, inF: number, k: number) {
  const svd = denseSvd({ rows: outF, cols: inF, data: d });
  const t = new Float64Array(outF * inF);
  for (let o = 0; o < outF; o++)
    for (let i = 0; i < inF; i++) {
      let x = 0;
      for (let r = 0; r < k; r++)
        x += svd.u.data[o * svd.u.cols + r]! * svd.s[r]! * svd.vt.data[r * inF + i]!;
      t[o * inF + i] = x;
    }
  return { t, s: svd.s };
}

describe('shrinkAdapter', () => {
  const ad = lowTrueRankAdapter(config, 16, 4, 3, MODS, 8); // scale 0.5

  it('a rank-16 adapter of true rank 4 shrinks to rank 4 with the same product (scale 1)', () => {
    const { adapter, report } = shrinkAdapter(ad, { rank: 4 });
    expect([adapter.rank, adapter.alpha, adapter.scale]).toEqual([4, 4, 1]);
    for (const m of report.modules) {
      expect([m.rankBefore, m.rankAfter]).toEqual([16, 4]);
      expect(m.droppedEnergy).toBeLessThan(1e-12);
    }
    for (const key of ad.weights.keys()) {
      const w = adapter.weights.get(key)!;
      expect(w.a.length / 4).toBe(linearShape(config, key.split('.')[1] as LinearModule).inFeatures);
      expect(relErr(product(w.b, w.a, 4, 1), deltaOf(ad, key)), key).toBeLessThan(1e-6);
    }
    // --energy finds the true rank in every module.
    const byEnergy = shrinkAdapter(ad, { energy: 0.999999 });
    expect(byEnergy.report.modules.map((m) => m.rankAfter)).toEqual(report.modules.map(() => 4));
  });

  it('below the true rank it is the Eckart–Young truncation; dropped energy = Σ dropped σ² / Σ σ²', () => {
    const { adapter, report } = shrinkAdapter(ad, { rank: 2 });
    for (const [i, key] of [...ad.weights.keys()].entries()) {
      const m = key.split('.')[1] as LinearModule;
      const { inFeatures: inF, outFeatures: outF } = linearShape(config, m);
      const { t, s } = truncation(deltaOf(ad, key), outF, inF, 2);
      const w = adapter.weights.get(key)!;
      expect(relErr(product(w.b, w.a, 2, 1), t), key).toBeLessThan(1e-5);
      const all = s.reduce((x, y) => x + y * y, 0);
      const drop = (s[2]! ** 2 + s[3]! ** 2) / all;
      expect(Math.abs(report.modules[i]!.droppedEnergy - drop)).toBeLessThan(1e-6 * drop + 1e-12);
    }
  });

  it('refuses a rank that does not shrink or is ≥ min(out, in)', () => {
    expect(() => shrinkAdapter(ad, { rank: 16 })).toThrow(/rank 16 is not below the adapter's rank 16/);
    const big = randomAdapter(config, 24, 1, ['k_proj']); // k_proj is (16, 32)
    expect(() => shrinkAdapter(big, { rank: 16 })).toThrow(
      /rank 16 is not below min\(out, in\) = 16 of model\.layers\.0\.self_attn\.k_proj \[16, 32\]/,
    );
  });
});

describe('mergeAdapters (PEFT add_weighted_adapter)', () => {
  const a1 = randomAdapter(config, 4, 11, ['q_proj', 'down_proj'], 8); // scale 2
  const a2 = randomAdapter(config, 4, 12, ['q_proj', 'k_proj'], 2); // scale 0.5
  const a3 = randomAdapter(config, 6, 13, ['q_proj'], 6); // scale 1
  const W = [0.7, -0.4, 1.3];

  it('linear: A = Σ sign·√|w·s|·A, B = Σ √|w·s|·B, rank r, alpha r', () => {
    const { adapter, report } = mergeAdapters(
      [
        { adapter: a1, weight: W[0]! },
        { adapter: a2, weight: W[1]! },
      ],
      { method: 'linear', config },
    );
    expect([report.method, adapter.rank, adapter.alpha, adapter.scale]).toEqual(['linear', 4, 4, 1]);
    expect(adapter.targetModules).toEqual(['q_proj', 'k_proj', 'down_proj']);
    for (let l = 0; l < config.numLayers; l++)
      for (const m of ['q_proj', 'k_proj', 'down_proj'] as const) {
        const key = `${l}.${m}`;
        const { inFeatures: inF, outFeatures: outF } = linearShape(config, m);
        const refA = new Float64Array(4 * inF);
        const refB = new Float64Array(outF * 4);
        for (const [ad, w] of [
          [a1, W[0]!],
          [a2, W[1]!],
        ] as const) {
          const x = ad.weights.get(key);
          if (!x) continue;
          const ws = w * ad.scale;
          x.a.forEach((v, i) => (refA[i]! += Math.sign(ws) * Math.sqrt(Math.abs(ws)) * v));
          x.b.forEach((v, i) => (refB[i]! += Math.sqrt(Math.abs(ws)) * v));
        }
        const got = adapter.weights.get(key)!;
        expect(relErr(got.a, refA), `${key} A`).toBeLessThan(1e-6);
        expect(relErr(got.b, refB), `${key} B`).toBeLessThan(1e-6);
      }
  });

  it('cat: rank Σ r, A rows w·s·A, B columns B — exactly Σ w·s·B·A', () => {
    const inputs = [a1, a2, a3].map((adapter, i) => ({ adapter, weight: W[i]! }));
    const { adapter } = mergeAdapters(inputs, { method: 'cat', config });
    expect(adapter.rank).toBe(14);
    const key = '1.q_proj';
    const ref = new Float64Array(deltaOf(a1, key).length);
    inputs.forEach(({ adapter: ad, weight }) => deltaOf(ad, key).forEach((v, i) => (ref[i]! += weight * v)));
    const got = adapter.weights.get(key)!;
    expect(relErr(product(got.b, got.a, 14, 1), ref)).toBeLessThan(1e-6);
    // Layout: rows 4..7 of A are w₂·s₂·A₂, columns 4..7 of B are B₂.
    const inF = config.hiddenSize;
    expect(got.a[4 * inF + 3]).toBeCloseTo(W[1]! * 0.5 * a2.weights.get(key)!.a[3]!, 6);
    expect(got.b[0 * 14 + 5]).toBe(a2.weights.get(key)!.b[1]!);
    // k_proj: only a2 targets it, its block sits first and the rest is zero.
    const k = adapter.weights.get('0.k_proj')!;
    expect(
      relErr(
        product(k.b, k.a, 14, 1),
        deltaOf(a2, '0.k_proj').map((v) => W[1]! * v),
      ),
    ).toBeLessThan(1e-6);
  });

  it('svd: Σ w·s·B·A truncated to the rank by its SVD (B = U·S, A = Vᵀ); exact at full rank', () => {
    const inputs = [a1, a2, a3].map((adapter, i) => ({ adapter, weight: W[i]! }));
    const { inFeatures: inF, outFeatures: outF } = linearShape(config, 'q_proj');
    for (const rank of [3, 6, 14]) {
      const { adapter, report } = mergeAdapters(inputs, { method: 'svd', rank, config });
      expect([adapter.rank, adapter.alpha]).toEqual([rank, rank]);
      const key = '0.q_proj';
      const ref = new Float64Array(outF * inF);
      inputs.forEach(({ adapter: ad, weight }) =>
        deltaOf(ad, key).forEach((v, i) => (ref[i]! += weight * v)),
      );
      const { t, s } = truncation(ref, outF, inF, rank);
      const got = adapter.weights.get(key)!;
      expect(relErr(product(got.b, got.a, rank, 1), t), `rank ${rank}`).toBeLessThan(1e-5);
      // A = Vᵀ: orthonormal rows.
      let rowNorm = 0;
      for (let i = 0; i < inF; i++) rowNorm += got.a[i]! ** 2;
      expect(rowNorm).toBeCloseTo(1, 5);
      const all = s.reduce((x, y) => x + y * y, 0);
      const kept = s.slice(0, rank).reduce((x, y) => x + y * y, 0);
      const d = report.dropped.find((x) => x.module === 'model.layers.0.self_attn.q_proj')!;
      expect(d.droppedEnergy).toBeCloseTo((all - kept) / all, 6);
    }
    // Default rank: the largest input rank.
    expect(mergeAdapters(inputs, { method: 'svd', config }).adapter.rank).toBe(6);
  });

  it('one adapter merges linearly (as PEFT); bad combinations are refused', () => {
    const one = mergeAdapters([{ adapter: a1, weight: 0.5 }], { method: 'svd', config });
    expect(one.report.method).toBe('linear');
    const w = one.adapter.weights.get('0.q_proj')!;
    expect(
      relErr(
        product(w.b, w.a, 4, 1),
        deltaOf(a1, '0.q_proj').map((v) => 0.5 * v),
      ),
    ).toBeLessThan(1e-6);
    const pair = [
      { adapter: a1, weight: 1 },
      { adapter: a3, weight: 1 },
    ];
    expect(() => mergeAdapters(pair, { method: 'linear', config })).toThrow(BadInputError);
    expect(() => mergeAdapters(pair, { method: 'linear', config })).toThrow(/one rank, got 4, 6/);
    expect(() => mergeAdapters(pair, { method: 'svd', rank: 32, config })).toThrow(
      /rank 32 is not below min\(out, in\) = 32 of model\.layers\.0\.self_attn\.q_proj \[32, 32\]/,
    );
    expect(() => mergeAdapters(pair, { method: 'cat', rank: 3, config })).toThrow(/svd method only/);
  });
});
