/**
 * Next-token sampling from one row of logits: greedy (argmax, lowest index on ties) when temperature is 0 or
 * unset; otherwise softmax(logits / T), then top-k, then top-p (the smallest most-likely set whose mass ≥ p),
 * renormalised, drawn with the seeded Rng (rng.ts) so a seed reproduces a generation.
 * Not batched and not on the graph: the generator (generator.ts) calls it once per row per step.
 */
import { BadInputError } from '../shared/errors.js';
import { invariant } from '../shared/invariant.js';
import { Rng } from './rng.js';

export interface SamplingParams {
  /** 0 or unset = greedy */
  temperature?: number;
  /** keep the k most likely tokens (integer ≥ 1); unset = all */
  topK?: number;
  /** nucleus mass in (0, 1]; unset or 1 = all */
  topP?: number;
  /** reproducible draws for a given seed; unset = a random seed */
  seed?: number;
}

export interface Sampler {
  sample(logits: Float32Array): number;
  /** the generator's RNG, for checkpoints (`getState`/`setState`) */
  readonly rng: Rng;
}

/** Throws BadInputError on a parameter outside its range; returns nothing when all are valid. */
export function validateSamplingParams(p: SamplingParams): void {
  const { temperature, topK, topP, seed } = p;
  if (temperature !== undefined && !(Number.isFinite(temperature) && temperature >= 0)) {
    throw new BadInputError(`temperature must be a finite number ≥ 0, got ${temperature}`);
  }
  if (topK !== undefined && !(Number.isInteger(topK) && topK >= 1)) {
    throw new BadInputError(`topK must be an integer ≥ 1, got ${topK}`);
  }
  if (topP !== undefined && !(Number.isFinite(topP) && topP > 0 && topP <= 1)) {
    throw new BadInputError(`topP must be in (0, 1], got ${topP}`);
  }
  if (seed !== undefined && !Number.isSafeInteger(seed)) {
    throw new BadInputError(`seed must be a safe integer, got ${seed}`);
  }
}

/** Index of the largest logit; the lowest index wins a tie. NaN logits are a bug upstream. */
export function argmax(logits: Float32Array): number {
  invariant(logits.length > 0, 'argmax of empty logits');
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  invariant(!Number.isNaN(logits[best]!), () => `NaN logit at ${best}`);
  return best;
}

/** exp((logit - max) / T) for every token: the unnormalised softmax. */
function weightsOf(logits: Float32Array, temperature: number): Float64Array {
  const max = logits[argmax(logits)]!;
  invariant(max > -Infinity, 'every logit is -Infinity');
  const p = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) p[i] = Math.exp((logits[i]! - max) / temperature);
  return p;
}

/** Most likely first; ties by lower index. */
const byWeight =
  (p: Float64Array) =>
  (a: number, b: number): number =>
    p[b]! - p[a]! || a - b;

/**
 * The candidate set after top-k and top-p, most likely first, with unnormalised probabilities
 * `exp((logit - max) / T)`. Exported for tests: the distribution a sampler draws from.
 */
export function candidates(
  logits: Float32Array,
  temperature: number,
  topK?: number,
  topP?: number,
): { ids: number[]; weights: number[] } {
  const p = weightsOf(logits, temperature);
  let ids: number[];
  if (topK !== undefined && topK < p.length) ids = topKIndices(logits, topK);
  else if (topP !== undefined && topP < 1) ids = nucleusSuperset(p, topP);
  else {
    ids = [];
    for (let i = 0; i < p.length; i++) if (p[i]! > 0) ids.push(i);
    ids.sort(byWeight(p));
  }
  if (topP !== undefined && topP < 1) {
    let total = 0;
    for (const i of ids) total += p[i]!;
    if (topK === undefined || topK >= p.length) total = p.reduce((a, b) => a + b, 0);
    let mass = 0;
    let keep = 0;
    // Smallest prefix whose mass reaches p (at least one token), on the top-k-renormalised distribution.
    while (keep < ids.length && mass < topP * total) mass += p[ids[keep++]!]!;
    ids = ids.slice(0, Math.max(1, keep));
  }
  return { ids, weights: ids.map((i) => p[i]!) };
}

/**
 * A sorted prefix of the vocabulary that surely contains the nucleus, without sorting all V tokens: every token
 * with weight ≥ t, lowering t until their mass reaches p (everything left out is less likely than all kept).
 */
function nucleusSuperset(p: Float64Array, topP: number): number[] {
  let total = 0;
  for (let i = 0; i < p.length; i++) total += p[i]!;
  for (let t = 1e-3; ; t *= 1e-3) {
    const ids: number[] = [];
    let mass = 0;
    for (let i = 0; i < p.length; i++) {
      if (p[i]! >= t && p[i]! > 0) {
        ids.push(i);
        mass += p[i]!;
      }
    }
    if (mass >= topP * total || t < 1e-300) return ids.sort(byWeight(p));
  }
}

/** The k largest logits (ties: lower index), sorted: one pass with a bounded insertion, O(V) typical. */
function topKIndices(logits: Float32Array, k: number): number[] {
  const top: number[] = [];
  for (let i = 0; i < logits.length; i++) {
    const x = logits[i]!;
    // Equal logits keep the earlier (lower) index ahead, so a later equal one never displaces it.
    if (top.length === k && !(x > logits[top[k - 1]!]!)) continue;
    let j = top.length === k ? k - 1 : top.length;
    while (j > 0 && x > logits[top[j - 1]!]!) {
      top[j] = top[j - 1]!;
      j--;
    }
    top[j] = i;
  }
  return top;
}

export function createSampler(params: SamplingParams = {}): Sampler {
  validateSamplingParams(params);
  const { temperature = 0, topK, topP } = params;
  const rng = new Rng(params.seed ?? Math.floor(Math.random() * 2 ** 32));
  if (temperature === 0) return { rng, sample: argmax };
  return {
    rng,
    sample(logits: Float32Array): number {
      if (topK === 1) return argmax(logits);
      if ((topK === undefined || topK >= logits.length) && (topP === undefined || topP === 1)) {
        // The full distribution needs no ordering: walk the vocabulary in index order.
        const p = weightsOf(logits, temperature);
        let total = 0;
        for (let i = 0; i < p.length; i++) total += p[i]!;
        const u = rng.nextFloat() * total;
        let acc = 0;
        for (let i = 0; i < p.length; i++) {
          acc += p[i]!;
          if (u < acc) return i;
        }
        return argmax(logits);
      }
      const { ids, weights } = candidates(logits, temperature, topK, topP);
      let total = 0;
      for (const w of weights) total += w;
      const u = rng.nextFloat() * total;
      let acc = 0;
      for (let j = 0; j < ids.length; j++) {
        acc += weights[j]!;
        if (u < acc) return ids[j]!;
      }
      return ids[ids.length - 1]!;
    },
  };
}
