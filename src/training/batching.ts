/**
 * The data schedule: a seeded validation split, per-epoch shuffling with length bucketing, and padded
 * (B, T) batches with shifted targets and per-token loss weights. Every order is a pure function of
 * (seed, epoch), so a resumed run rebuilds the exact batch sequence from its data position alone.
 * Encoding rows into ids/masks is `encode-rows.ts`; the loop that consumes batches is `trainer.ts`.
 */
import type { EncodedExample } from './encode-rows.js';
import { deriveSeed, Rng } from './random.js';

const SPLIT_STREAM = 1;
const EPOCH_STREAM = 2;

/** Holds out `ratio` of the examples (at least one when ratio > 0 and two or more examples exist). */
export function splitValidation<T>(
  items: readonly T[],
  ratio: number,
  seed: number,
): { train: T[]; validation: T[] } {
  if (ratio <= 0 || items.length < 2) return { train: [...items], validation: [] };
  const nVal = Math.min(items.length - 1, Math.max(1, Math.round(items.length * ratio)));
  const order = new Rng(deriveSeed(seed, SPLIT_STREAM)).shuffle(items.map((_, i) => i));
  const isVal = new Set(order.slice(0, nVal));
  return { train: items.filter((_, i) => !isVal.has(i)), validation: items.filter((_, i) => isVal.has(i)) };
}

/**
 * Micro-batches of one epoch, as lists of example indices. Length bucketing: shuffle, then sort
 * windows of `bucketBatches` batches by length so each batch pads little, then shuffle the batch order
 * so lengths do not trend through the epoch.
 */
export function epochBatches(
  lengths: readonly number[],
  batchSize: number,
  seed: number,
  epoch: number,
  bucketBatches = 16,
): number[][] {
  const rng = new Rng(deriveSeed(seed, EPOCH_STREAM, epoch));
  const order = rng.shuffle(lengths.map((_, i) => i));
  const window = batchSize * bucketBatches;
  const batches: number[][] = [];
  for (let w = 0; w < order.length; w += window) {
    const chunk = order.slice(w, w + window).sort((a, b) => lengths[a]! - lengths[b]! || a - b);
    for (let i = 0; i < chunk.length; i += batchSize) batches.push(chunk.slice(i, i + batchSize));
  }
  return rng.shuffle(batches);
}

/** A padded micro-batch. Targets are the inputs shifted left by one; padding has weight 0. */
export interface Batch {
  batchSize: number;
  /** T = longest example − 1 */
  seqLen: number;
  /** (B, T) int64 */
  inputIds: BigInt64Array;
  /** (B, T) int64 */
  targets: BigInt64Array;
  /** (B, T) 1 where the target is learned, else 0 (scaled by the trainer into loss weights). */
  mask: Float32Array;
  /** Number of learned target tokens. */
  targetTokens: number;
  /** Number of real (non-padding) input tokens. */
  tokens: number;
  /** Real input length of each row (the rest of its T is right padding). */
  rowLengths: number[];
}

export function makeBatch(examples: readonly EncodedExample[], indices: readonly number[], padId = 0): Batch {
  const B = indices.length;
  let T = 1;
  for (const i of indices) T = Math.max(T, examples[i]!.ids.length - 1);
  const inputIds = new BigInt64Array(B * T).fill(BigInt(padId));
  const targets = new BigInt64Array(B * T).fill(BigInt(padId));
  const mask = new Float32Array(B * T);
  let targetTokens = 0;
  let tokens = 0;
  const rowLengths: number[] = [];
  indices.forEach((ex, b) => {
    const { ids, mask: m } = examples[ex]!;
    rowLengths.push(Math.max(1, ids.length - 1));
    for (let t = 0; t + 1 < ids.length; t++) {
      inputIds[b * T + t] = BigInt(ids[t]!);
      targets[b * T + t] = BigInt(ids[t + 1]!);
      mask[b * T + t] = m[t + 1]!;
      targetTokens += m[t + 1]!;
      tokens += 1;
    }
  });
  return { batchSize: B, seqLen: T, inputIds, targets, mask, targetTokens, tokens, rowLengths };
}
