/**
 * One call of the serving graph over a contiguous run of KV-pool slots: a decode step (one token per row) or
 * a prefill chunk (several tokens per row; rows of a multi-row chunk must all start with an empty cache, so
 * their right padding is legal for GroupQueryAttention). Feeds the pool's slabs as past, appends the call's
 * new keys/values to them, returns per-row logits.
 * With a remote pool (its data in a session worker) the whole call runs in that worker (session-host.ts),
 * which calls this same function on its copy of the pool.
 * The scheduler decides what runs (src/gateway/scheduler.ts); the graph is src/engine/nn/llama-serve.ts.
 */
import type { ModelConfig } from '../engine/formats/hf-config.js';
import type { HostTensor } from '../engine/ir/types.js';
import { invariant } from '../shared/invariant.js';
import type { KvPool } from './kv-pool.js';
import type { LoraColumns } from './lora-columns.js';

/** A call run whole in a session worker (its pool is remote; `columns` when the session takes lora_slot). */
export interface RemoteStep {
  config: ModelConfig;
  pool: KvPool;
  start: number;
  rows: readonly StepRow[];
  columns?: LoraColumns;
}

/** What a step needs of a session: an EngineSession here, or a RemoteSession (session-host.ts). */
export interface StepSession {
  readonly inputNames: readonly string[];
  run(
    feeds: Readonly<Record<string, HostTensor>>,
    fetches: readonly string[],
  ): Promise<Record<string, HostTensor>>;
  /** Sessions in a worker run a remote pool's steps there. */
  runStep?(call: RemoteStep): Promise<Float32Array>;
}

export interface StepRow {
  /** Tokens to append to this row's cache this call (≥ 1). */
  ids: readonly number[];
  /** Stacked-LoRA slot of the row's adapter (0 = none); used by sessions that take `lora_slot`. */
  loraSlot?: number;
}

export interface StepCall {
  session: StepSession;
  config: ModelConfig;
  pool: KvPool;
  /** First pool slot; rows occupy [start, start + rows.length). */
  start: number;
  rows: readonly StepRow[];
  /** `lora.*` feeds (column stacks) for sessions that take them … */
  loraFeeds?: Readonly<Record<string, HostTensor>>;
  /** … or the stacks themselves (their feeds, or their replica in the session's worker). */
  columns?: LoraColumns;
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
      past[b]! + S <= pool.stride,
      () => `row at slot ${start + b} would pass the cache stride ${pool.stride}`,
    );
    for (let j = 0; j < S; j++) {
      ids[b * S + j] = j < r.ids.length ? r.ids[j]! : 0;
      pos[b * S + j] = past[b]! + j;
    }
    seqlens[b] = past[b]! + r.ids.length - 1;
    last[b] = b * S + r.ids.length - 1;
    total = Math.max(total, past[b]! + S);
  });
  if (pool.remote) {
    invariant(
      session.runStep,
      'a KV pool whose data lives in a session worker needs a session of that worker',
    );
    const logits = await session.runStep({ config: call.config, pool, start, rows, columns: call.columns });
    rows.forEach((r, b) => (pool.lengths[start + b] = past[b]! + r.ids.length));
    return logits;
  }
  const feeds: Record<string, HostTensor> = {
    input_ids: i64([B, S], ids),
    position_ids: i64([B, S], pos),
    seqlens_k: { dtype: 'int32', shape: [B], data: seqlens },
    total_sequence_length: { dtype: 'int32', shape: [], data: Int32Array.of(total) },
    last_index: i64([B], last),
  };
  const { numKvHeads: KVH, headDim: D } = config;
  const shape = [B, KVH, pool.stride, D];
  const fetches = ['logits'];
  for (let l = 0; l < config.numLayers; l++) {
    const v = pool.view(l, start, B);
    feeds[`past.${l}.key`] = { dtype: 'float32', shape, data: v.key };
    feeds[`past.${l}.value`] = { dtype: 'float32', shape, data: v.value };
    fetches.push(`new.${l}.key`, `new.${l}.value`);
  }
  if (session.inputNames.includes('lora_slot')) {
    const lora = call.loraFeeds ?? call.columns?.feeds();
    invariant(lora, 'a stacked-LoRA session needs loraFeeds');
    Object.assign(feeds, lora);
    feeds.lora_slot = i64(
      [B],
      rows.map((r) => r.loraSlot ?? 0),
    );
  }
  const out = await session.run(feeds, fetches);
  // Append each row's new keys/values (its real tokens only, not right padding) at its own positions.
  for (let l = 0; l < config.numLayers; l++) {
    const v = pool.view(l, start, B);
    for (const [which, dst] of [
      ['key', v.key],
      ['value', v.value],
    ] as const) {
      const src = out[`new.${l}.${which}`]!.data as Float32Array;
      rows.forEach((r, b) => {
        for (let j = 0; j < r.ids.length; j++) {
          const from = (b * S + j) * KVH * D;
          for (let h = 0; h < KVH; h++) {
            const to = ((b * KVH + h) * pool.stride + past[b]! + j) * D;
            dst.set(src.subarray(from + h * D, from + (h + 1) * D), to);
          }
        }
      });
    }
  }
  rows.forEach((r, b) => (pool.lengths[start + b] = past[b]! + r.ids.length));
  return out.logits!.data as Float32Array;
}
