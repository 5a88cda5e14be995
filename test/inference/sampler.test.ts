/**
 * The sampler and its RNG: exact greedy/top-k=1 behaviour, candidate sets of top-k/top-p, empirical
 * distributions against the renormalised softmax (a chi-square statistic with a fixed seed), reproducibility
 * per seed, RNG state checkpoint/restore, and parameter validation.
 */
import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/inference/rng.js';
import { argmax, candidates, createSampler, type SamplingParams } from '../../src/inference/sampler.js';
import { expectClose } from '../helpers/expect-close.js';

const logits = Float32Array.of(1.0, 3.0, 2.5, -1.0, 3.0, 0.0, 2.0, -Infinity);

/** Pearson's chi-square of `n` draws against the expected probabilities over `ids` (0 draws elsewhere). */
function chiSquare(params: SamplingParams, ids: number[], probs: number[], n: number): number {
  const s = createSampler(params);
  const counts = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const t = s.sample(logits);
    counts.set(t, (counts.get(t) ?? 0) + 1);
  }
  for (const t of counts.keys()) expect(ids, `drew ${t} outside the candidate set`).toContain(t);
  return ids.reduce((x2, id, j) => x2 + ((counts.get(id) ?? 0) - n * probs[j]!) ** 2 / (n * probs[j]!), 0);
}

function softmax(xs: number[], t: number): number[] {
  const e = xs.map((x) => Math.exp(x / t));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

describe('greedy', () => {
  it('is argmax with the lowest index on ties, for temperature 0, unset, and topK 1', () => {
    expect(argmax(logits)).toBe(1);
    expect(createSampler().sample(logits)).toBe(1);
    expect(createSampler({ temperature: 0, topP: 0.5 }).sample(logits)).toBe(1);
    const topK1 = createSampler({ temperature: 5, topK: 1, seed: 1 });
    expect(Array.from({ length: 50 }, () => topK1.sample(logits))).toEqual(Array(50).fill(1));
  });
});

describe('candidate sets', () => {
  it('top-k keeps the k most likely (ties by index), most likely first', () => {
    expect(candidates(logits, 1, 3).ids).toEqual([1, 4, 2]);
    expect(candidates(logits, 1).ids).toEqual([1, 4, 2, 6, 0, 5, 3]); // -Infinity excluded
  });

  it('top-p keeps the smallest prefix whose mass reaches p, after top-k', () => {
    const p = softmax([3, 3, 2.5, 2, 1, 0, -1], 1); // sorted logits of ids 1,4,2,6,0,5,3
    expect(candidates(logits, 1, undefined, p[0]! + p[1]! - 1e-9).ids).toEqual([1, 4]);
    expect(candidates(logits, 1, undefined, p[0]! + p[1]! + 1e-9).ids).toEqual([1, 4, 2]);
    expect(candidates(logits, 1, undefined, 1e-6).ids).toEqual([1]);
    const k3 = softmax([3, 3, 2.5], 1);
    expect(candidates(logits, 1, 3, k3[0]! + k3[1]! + 1e-9).ids).toEqual([1, 4, 2]);
  });
});

describe('sampling distributions (fixed seed, chi-square)', () => {
  const n = 20_000;
  // 99.9% quantiles of chi-square: df 6 → 22.46, df 2 → 13.82, df 1 → 10.83.
  it('temperature 0.7 over all tokens follows softmax(logits / T)', () => {
    const ids = [0, 1, 2, 3, 4, 5, 6];
    const x2 = chiSquare(
      { temperature: 0.7, seed: 42 },
      ids,
      softmax(
        ids.map((i) => logits[i]!),
        0.7,
      ),
      n,
    );
    expect(x2).toBeLessThan(22.46);
  });

  it('top-k 3 renormalises over the three most likely', () => {
    const ids = [1, 4, 2];
    const x2 = chiSquare({ temperature: 1, topK: 3, seed: 7 }, ids, softmax([3, 3, 2.5], 1), n);
    expect(x2).toBeLessThan(13.82);
  });

  it('top-p 0.5 at temperature 1.3 renormalises over its nucleus', () => {
    const sorted = [3, 3, 2.5, 2, 1, 0, -1];
    const p = softmax(sorted, 1.3);
    let keep = 0;
    for (let mass = 0; mass < 0.5; keep++) mass += p[keep]!;
    expect(keep).toBe(2);
    const x2 = chiSquare({ temperature: 1.3, topP: 0.5, seed: 3 }, [1, 4], [0.5, 0.5], n);
    expect(x2).toBeLessThan(10.83);
  });

  it('the statistic detects a wrong distribution (the test can fail)', () => {
    const x2 = chiSquare({ temperature: 1, topK: 3, seed: 7 }, [1, 4, 2], [1 / 3, 1 / 3, 1 / 3], n);
    expect(x2).toBeGreaterThan(13.82);
  });
});

describe('reproducibility', () => {
  it('the same seed gives the same tokens; another seed does not', () => {
    const draw = (seed: number) => {
      const s = createSampler({ temperature: 1, seed });
      return Array.from({ length: 64 }, () => s.sample(logits));
    };
    expect(draw(123)).toEqual(draw(123));
    expect(draw(123)).not.toEqual(draw(124));
  });

  it('rng is xoshiro128** (first outputs from state [1, 2, 3, 4], worked by hand from the reference C)', () => {
    const r = Rng.fromState([1, 2, 3, 4]);
    expect([r.nextUint32(), r.nextUint32(), r.nextUint32()]).toEqual([11520, 0, 5927040]);
  });

  it('rng state restores the stream exactly (checkpoint/resume)', () => {
    const r = new Rng(99);
    for (let i = 0; i < 10; i++) r.nextUint32();
    const state = r.getState();
    const ahead = Array.from({ length: 5 }, () => r.nextFloat());
    const restored = Rng.fromState(JSON.parse(JSON.stringify(state)) as number[]);
    expect(Array.from({ length: 5 }, () => restored.nextFloat())).toEqual(ahead);
    r.setState(state);
    expect(r.nextFloat()).toBe(ahead[0]);
  });

  it('nextFloat is uniform on [0, 1): mean ½, variance 1/12, every decile populated', () => {
    const r = new Rng(5);
    const xs = Array.from({ length: 50_000 }, () => r.nextFloat());
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length;
    expectClose([mean, variance], [0.5, 1 / 12], { atol: 0.005, rtol: 0, label: 'moments' });
    const deciles = Array(10).fill(0) as number[];
    for (const x of xs) deciles[Math.floor(x * 10)]!++;
    expect(Math.min(...deciles)).toBeGreaterThan(4700);
  });
});

describe('validation', () => {
  it.each([
    [{ temperature: -1 }, /temperature/],
    [{ temperature: NaN }, /temperature/],
    [{ topK: 0 }, /topK/],
    [{ topK: 2.5 }, /topK/],
    [{ topP: 0 }, /topP/],
    [{ topP: 1.5 }, /topP/],
    [{ seed: 1.5 }, /seed/],
  ] as [SamplingParams, RegExp][])('rejects %o', (params, message) => {
    expect(() => createSampler(params)).toThrow(message);
    try {
      createSampler(params);
    } catch (e) {
      expect((e as { code?: string }).code).toBe('BAD_USER_INPUT');
    }
  });

  it('rejects a bad rng state', () => {
    expect(() => Rng.fromState([0, 0, 0, 0])).toThrow(/all zero/);
    expect(() => Rng.fromState([1, 2, 3])).toThrow(/four uint32/);
  });
});
