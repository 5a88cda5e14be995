/**
 * The KV cache of one batch: per layer a key and a value buffer of fixed capacity (B, KVH, CAP, D), allocated
 * once and fed to every step as the graph's `past.{l}.*` input without copying; the graph returns only this
 * step's new K/V (`present.*`, (B, KVH, T, D)), which `append` writes into the next slots. Slot validity per
 * row (left padding, finished prompts) is the attention mask. Not the graph (src/engine/nn/llama.ts).
 */
import type { HostTensor } from '../engine/ir/types.js';
import { invariant } from '../shared/invariant.js';

export class CacheFullError extends Error {
  override name = 'CacheFullError';
}

export class KvCache {
  readonly keys: Float32Array[];
  readonly values: Float32Array[];
  /** (B, CAP): 1 where the slot holds a real token of that row. */
  readonly valid: Uint8Array;
  /** Slots written so far (the same for every row: rows advance together). */
  length = 0;

  constructor(
    readonly layers: number,
    readonly batch: number,
    readonly kvHeads: number,
    readonly capacity: number,
    readonly headDim: number,
  ) {
    const n = batch * kvHeads * capacity * headDim;
    this.keys = Array.from({ length: layers }, () => new Float32Array(n));
    this.values = Array.from({ length: layers }, () => new Float32Array(n));
    this.valid = new Uint8Array(batch * capacity);
  }

  /** Bytes held by the buffers. */
  get bytes(): number {
    return 2 * this.layers * this.keys[0]!.byteLength + this.valid.byteLength;
  }

  /**
   * Slots the graph sees as past: the whole capacity once anything is cached (unused slots are masked out),
   * none before the first step — so a prefill attends over its own T tokens only, not over CAP empty slots.
   */
  get pastWidth(): number {
    return this.length === 0 ? 0 : this.capacity;
  }

  /** The `past.{l}.key/value` feeds: (B, KVH, pastWidth, D), the cache buffers themselves (no copy). */
  pastFeeds(): Record<string, HostTensor> {
    const p = this.pastWidth;
    const shape = [this.batch, this.kvHeads, p, this.headDim];
    const empty = new Float32Array(0);
    const feeds: Record<string, HostTensor> = {};
    for (let l = 0; l < this.layers; l++) {
      feeds[`past.${l}.key`] = { dtype: 'float32', shape, data: p === 0 ? empty : this.keys[l]! };
      feeds[`past.${l}.value`] = { dtype: 'float32', shape, data: p === 0 ? empty : this.values[l]! };
    }
    return feeds;
  }

  /**
   * The `attention_mask` feed (B, pastWidth + T): the cache's valid slots, then `newMask` (B, T) for this
   * step's tokens (1 = real, 0 = padding).
   */
  attentionMask(newMask: Uint8Array, t: number): HostTensor {
    const p = this.pastWidth;
    const w = p + t;
    const data = new BigInt64Array(this.batch * w);
    for (let b = 0; b < this.batch; b++) {
      for (let s = 0; s < this.length; s++) if (this.valid[b * this.capacity + s]) data[b * w + s] = 1n;
      for (let j = 0; j < t; j++) if (newMask[b * t + j]) data[b * w + p + j] = 1n;
    }
    return { dtype: 'int64', shape: [this.batch, w], data };
  }

  /** Writes this step's present K/V (B, KVH, T, D) into slots [length, length + T). */
  append(present: Record<string, HostTensor>, newMask: Uint8Array, t: number): void {
    if (this.length + t > this.capacity) {
      throw new CacheFullError(`KV cache full: ${this.length} + ${t} > capacity ${this.capacity}`);
    }
    const { kvHeads: KVH, capacity: CAP, headDim: D } = this;
    for (let l = 0; l < this.layers; l++) {
      for (const [which, dst] of [
        ['key', this.keys[l]!],
        ['value', this.values[l]!],
      ] as const) {
        const src = present[`present.${l}.${which}`];
        invariant(src, () => `missing present.${l}.${which}`);
        const data = src.data as Float32Array;
        for (let b = 0; b < this.batch; b++) {
          for (let h = 0; h < KVH; h++) {
            const from = (b * KVH + h) * t * D;
            const to = ((b * KVH + h) * CAP + this.length) * D;
            dst.set(data.subarray(from, from + t * D), to);
          }
        }
      }
    }
    for (let b = 0; b < this.batch; b++) {
      for (let j = 0; j < t; j++) this.valid[b * CAP + this.length + j] = newMask[b * t + j]!;
    }
    this.length += t;
  }
}
