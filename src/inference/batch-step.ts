/**
 * One call of the serving graph over a contiguous run of KV-pool slots: a decode step (one token per row) or
 * a prefill chunk (several tokens per row; rows of a multi-row chunk must all start with an empty cache, so
 * their right padding is legal for GroupQueryAttention). Feeds, in-place cache binding, per-row logits.
 * The scheduler decides what runs (src/gateway/scheduler.ts); the graph is src/engine/nn/llama-serve.ts.
 */
import type { ModelConfig } from '../engine/formats/hf-config.js';
import type { HostTensor } from '../engine/ir/types.js';
import type { EngineSession } from '../engine/onnx/session.js';
import { invariant } from '../shared/invariant.js';
import type { KvPool } from './kv-pool.js';

export interface StepRow {
  /** Tokens to append to this row's cache this call (≥ 1). */
  ids: readonly number[];
  /** Stacked-LoRA slot of the row's adapter (0 = none); used by sessions that take `lora_slot`. */
  loraSlot?: number;
}

export interface StepCall {
  session: EngineSession;
  config: ModelConfig;
  pool: KvPool;
  /** First pool slot; rows occupy [start, start + rows.length). */
  start: number;
  rows: readonly StepRow[];
  /** `lora.*` feeds (column stacks) for sessions that take them. */
  loraFeeds?: Readonly<Record<string, HostTensor>>;
}

const i64 = (shape: number[], xs: ArrayLike<number>): HostTensor => ({
  dtype: 'int64',
  shape,
  data: BigInt64Array.from(Array.from(xs), (x) => BigInt(x)),
});

/** Runs the call; appends each row's tokens to its cache; returns (B, V) logits after each row's last token. */
export async function runBatchStep(call: StepCall): Promise<Float32Array> {
  const { session, config, pool, start, rows } = call;
  const B = rows.length;
  invariant(B > 0, 'runBatchStep with no rows');
  const S = Math.max(...rows.map((r) => r.ids.length));
  const past = rows.map((_, b) => pool.lengths[start + b]!);
  if (B > 1 && S > 1) {
    invariant(
      past.every((p) => p === 0) || rows.every((r) => r.ids.length === S),
      () => `a multi-row chunk needs empty caches or equal chunks: past ${past.join(',')}`,
    );
  }
  const ids = new Array<number>(B * S).fill(0);
  const pos = new Array<number>(B * S).fill(0);
  const seqlens = new Int32Array(B);
  const last = new Array<number>(B);
  let total = 0;
  rows.forEach((r, b) => {
    invariant(r.ids.length >= 1, () => `row ${b} has no tokens`);
    invariant(
      past[b]! + S <= pool.capacity,
      () => `row at slot ${start + b} would pass the cache capacity ${pool.capacity}`,
    );
    for (let j = 0; j < S; j++) {
      ids[b * S + j] = j < r.ids.length ? r.ids[j]! : 0;
      pos[b * S + j] = past[b]! + j;
    }
    seqlens[b] = past[b]! + r.ids.length - 1;
    last[b] = b * S + r.ids.length - 1;
    total = Math.max(total, past[b]! + S);
  });
  const feeds: Record<string, HostTensor> = {
    input_ids: i64([B, S], ids),
    position_ids: i64([B, S], pos),
    seqlens_k: { dtype: 'int32', shape: [B], data: seqlens },
    total_sequence_length: { dtype: 'int32', shape: [], data: Int32Array.of(total) },
    last_index: i64([B], last),
  };
  const { numKvHeads: KVH, headDim: D, vocabSize: V } = config;
  const shape = [B, KVH, pool.capacity, D];
  const logits = new Float32Array(B * V);
  const outputs: Record<string, HostTensor> = { logits: { dtype: 'float32', shape: [B, V], data: logits } };
  for (let l = 0; l < config.numLayers; l++) {
    const v = pool.view(l, start, B);
    const key: HostTensor = { dtype: 'float32', shape, data: v.key };
    const value: HostTensor = { dtype: 'float32', shape, data: v.value };
    feeds[`past.${l}.key`] = key;
    feeds[`past.${l}.value`] = value;
    // present shares past's buffer: the kernel writes only the new positions.
    outputs[`present.${l}.key`] = key;
    outputs[`present.${l}.value`] = value;
  }
  if (session.inputNames.includes('lora_slot')) {
    invariant(call.loraFeeds, 'a stacked-LoRA session needs loraFeeds');
    Object.assign(feeds, call.loraFeeds);
    feeds.lora_slot = i64(
      [B],
      rows.map((r) => r.loraSlot ?? 0),
    );
  }
  await session.run(feeds, outputs);
  rows.forEach((r, b) => (pool.lengths[start + b] = past[b]! + r.ids.length));
  return logits;
}
