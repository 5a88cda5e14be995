/**
 * The KV cache of a continuously batched model: a fixed pool of row slabs, one per running sequence, laid out
 * per layer as (SLOTS, KVH, CAP, D) so that any contiguous run of slots is a (B, KVH, CAP, D) batch view
 * GroupQueryAttention reads and writes in place. Allocated once from a byte budget; a sequence joining or
 * leaving never reallocates it. `arrange` moves whole rows (their valid prefix only) so the scheduler can
 * keep each call's rows contiguous. Not the graph (src/engine/nn/llama-serve.ts), not the step (batch-step.ts).
 *
 * A `remote` pool keeps only the bookkeeping (slots in use, lengths, stride) on this thread: its data lives in
 * the session worker that runs the model (session-host.ts), the way a GPU server's cache lives on the device.
 * Every change to the bookkeeping is journaled, and the worker replays the journal on its own local pool
 * before the next step, so both sides take the same decisions (onnxruntime-node cannot read a
 * SharedArrayBuffer, so a shared pool would cost a copy of every call's past per step).
 */
import type { ModelConfig } from '../engine/formats/hf-config.js';
import { invariant } from '../shared/invariant.js';

/** A change to a remote pool's bookkeeping, replayed in order on the worker's copy. */
export type KvPoolOp =
  | { op: 'allocate'; slot: number }
  | { op: 'release'; slot: number }
  | { op: 'restride'; stride: number }
  | { op: 'arrange'; moves: [number, number][] };

/** Everything a worker needs to build its copy of a pool (used slots must hold no tokens yet). */
export interface KvPoolState {
  layers: number;
  slots: number;
  kvHeads: number;
  capacity: number;
  headDim: number;
  stride: number;
  used: Uint8Array;
  lengths: Int32Array;
}

export interface KvPoolOptions {
  /** Data in a session worker, bookkeeping here (see the file header). Default false. */
  remote?: boolean;
}

export class KvPool {
  readonly keys: Float32Array[];
  readonly values: Float32Array[];
  /** Tokens cached per slot. */
  readonly lengths: Int32Array;
  private readonly used: Uint8Array;
  /**
   * Tokens per slab in the current layout (≤ capacity). The buffers hold `capacity`-token slabs, but rows are
   * laid out with this stride so a call's past is (B, KVH, stride, D): work that scales with the past's shape
   * follows what the running rows need, not the largest request the pool could take. `restride` changes it.
   */
  stride: number;
  /** The data lives in a session worker: `keys`/`values` are empty here, `view` throws. */
  readonly remote: boolean;
  private journal: KvPoolOp[] = [];

  constructor(
    readonly layers: number,
    readonly slots: number,
    readonly kvHeads: number,
    readonly capacity: number,
    readonly headDim: number,
    options: KvPoolOptions = {},
  ) {
    invariant(
      slots >= 1 && capacity >= 1,
      () => `KvPool needs slots ≥ 1 and capacity ≥ 1, got ${slots}, ${capacity}`,
    );
    this.stride = capacity;
    this.remote = options.remote ?? false;
    const floats = this.remote ? 0 : slots * kvHeads * capacity * headDim;
    // Large zeroed buffers are mapped lazily by the OS: untouched slots cost address space, not RSS.
    this.keys = Array.from({ length: this.remote ? 0 : layers }, () => new Float32Array(floats));
    this.values = Array.from({ length: this.remote ? 0 : layers }, () => new Float32Array(floats));
    this.lengths = new Int32Array(slots);
    this.used = new Uint8Array(slots);
  }

  /** Bytes of one slot across layers, keys and values. */
  static slotBytes(config: ModelConfig, capacity: number): number {
    return 2 * config.numLayers * config.numKvHeads * capacity * config.headDim * 4;
  }

  /** As many slots as `budgetBytes` holds (at least 1, at most `maxSlots`). */
  static forBudget(
    config: ModelConfig,
    capacity: number,
    budgetBytes: number,
    maxSlots: number,
    options: KvPoolOptions = {},
  ): KvPool {
    const n = Math.max(1, Math.min(maxSlots, Math.floor(budgetBytes / KvPool.slotBytes(config, capacity))));
    return new KvPool(config.numLayers, n, config.numKvHeads, capacity, config.headDim, options);
  }

  /** A local pool with `state`'s layout and bookkeeping (a session worker's copy of a remote pool). */
  static fromState(state: KvPoolState): KvPool {
    const pool = new KvPool(state.layers, state.slots, state.kvHeads, state.capacity, state.headDim);
    const holding = [...state.used.keys()].filter((s) => state.used[s] && state.lengths[s]! > 0);
    invariant(holding.length === 0, () => `a new pool copy cannot hold tokens (slots ${holding.join(', ')})`);
    pool.stride = state.stride;
    pool.used.set(state.used);
    return pool;
  }

  /** This pool's bookkeeping, for a worker that has no copy yet; forgets the journal it supersedes. */
  state(): KvPoolState {
    this.journal = [];
    const { layers, slots, kvHeads, capacity, headDim, stride } = this;
    return {
      layers,
      slots,
      kvHeads,
      capacity,
      headDim,
      stride,
      used: this.used.slice(),
      lengths: this.lengths.slice(),
    };
  }

  /** The bookkeeping changes since the last call (remote pools only journal). */
  takeJournal(): KvPoolOp[] {
    const ops = this.journal;
    this.journal = [];
    return ops;
  }

  /** Replays a remote pool's journal on this (local) copy. */
  apply(ops: readonly KvPoolOp[]): void {
    for (const o of ops) {
      if (o.op === 'allocate') {
        const got = this.allocate();
        invariant(got === o.slot, () => `pool copy allocated slot ${got}, the pool ${o.slot}`);
      } else if (o.op === 'release') this.release(o.slot);
      else if (o.op === 'restride') this.restride(o.stride);
      else this.arrange(new Map(o.moves));
    }
  }

  /**
   * A remote pool whose worker died: its data is gone, so every used slot is emptied (kept allocated) and the
   * journal dropped — the next worker builds its copy from `state()`, and the rows are prefilled again.
   */
  dropData(): void {
    invariant(this.remote, 'dropData: only a remote pool loses its data with a worker');
    this.lengths.fill(0);
    this.journal = [];
  }

  /** Rows holding tokens (their data would be lost with a remote pool's worker). */
  get holding(): number {
    let n = 0;
    for (let s = 0; s < this.slots; s++) if (this.used[s] && this.lengths[s]! > 0) n++;
    return n;
  }

  get bytes(): number {
    return 2 * this.layers * this.slots * this.kvHeads * this.capacity * this.headDim * 4;
  }

  /** Floats of one slot in one layer's buffer in the current layout: KVH·stride·D. */
  get slab(): number {
    return this.kvHeads * this.stride * this.headDim;
  }

  /**
   * Lays every row out with `stride` tokens per slab, moving each row's valid prefix (memmove-safe order:
   * from the end when growing, from the start when shrinking). Rows must fit: length ≤ stride.
   */
  restride(stride: number): void {
    invariant(stride >= 1 && stride <= this.capacity, () => `stride ${stride} outside 1..${this.capacity}`);
    if (stride === this.stride) return;
    if (this.remote) {
      for (let slot = 0; slot < this.slots; slot++)
        invariant(
          !this.used[slot] || this.lengths[slot]! <= stride,
          () => `slot ${slot} holds ${this.lengths[slot]} > stride ${stride}`,
        );
      this.journal.push({ op: 'restride', stride });
      this.stride = stride;
      return;
    }
    const { kvHeads: KVH, headDim: D } = this;
    const old = this.stride;
    const blocks: { src: number; dst: number; n: number }[] = [];
    for (let slot = 0; slot < this.slots; slot++) {
      if (!this.used[slot]) continue;
      const n = this.lengths[slot]! * D;
      invariant(
        this.lengths[slot]! <= stride,
        () => `slot ${slot} holds ${this.lengths[slot]} > stride ${stride}`,
      );
      for (let h = 0; h < KVH; h++)
        blocks.push({ src: (slot * KVH + h) * old * D, dst: (slot * KVH + h) * stride * D, n });
    }
    if (stride > old) blocks.reverse();
    for (const buf of [...this.keys, ...this.values])
      for (const b of blocks) if (b.n > 0 && b.src !== b.dst) buf.copyWithin(b.dst, b.src, b.src + b.n);
    this.stride = stride;
  }

  get free(): number {
    let n = 0;
    for (const u of this.used) if (!u) n++;
    return n;
  }

  /** The lowest free slot (its length reset to 0), or null when the pool is full. */
  allocate(): number | null {
    const s = this.used.indexOf(0);
    if (s < 0) return null;
    this.used[s] = 1;
    this.lengths[s] = 0;
    if (this.remote) this.journal.push({ op: 'allocate', slot: s });
    return s;
  }

  release(slot: number): void {
    invariant(this.used[slot] === 1, () => `release of free KV slot ${slot}`);
    this.used[slot] = 0;
    this.lengths[slot] = 0;
    if (this.remote) this.journal.push({ op: 'release', slot });
  }

  isUsed(slot: number): boolean {
    return this.used[slot] === 1;
  }

  /** (count, KVH, stride, D) views of layer l's keys and values for slots [start, start + count). */
  view(l: number, start: number, count: number): { key: Float32Array; value: Float32Array } {
    invariant(!this.remote, 'this KV pool keeps its data in a session worker: run its steps there');
    const a = start * this.slab;
    const b = (start + count) * this.slab;
    return { key: this.keys[l]!.subarray(a, b), value: this.values[l]!.subarray(a, b) };
  }

  /**
   * Moves rows: `moves` maps a used slot to its new slot; targets must be free or themselves moved away.
   * Only each row's valid prefix is copied (through a scratch copy, so moves may form cycles).
   */
  arrange(moves: ReadonlyMap<number, number>): void {
    if (moves.size === 0) return;
    const targets = new Set(moves.values());
    invariant(targets.size === moves.size, 'arrange: two rows moved to one slot');
    for (const [from, to] of moves) {
      invariant(this.used[from] === 1, () => `arrange: slot ${from} is free`);
      invariant(!this.used[to] || moves.has(to), () => `arrange: slot ${to} is taken`);
    }
    if (this.remote) {
      this.journal.push({ op: 'arrange', moves: [...moves] });
      const lens = [...moves].map(([from, to]) => [to, this.lengths[from]!] as const);
      for (const from of moves.keys()) {
        this.used[from] = 0;
        this.lengths[from] = 0;
      }
      for (const [to, len] of lens) {
        this.used[to] = 1;
        this.lengths[to] = len;
      }
      return;
    }
    const { kvHeads: KVH, stride: CAP, headDim: D } = this;
    const saved = [...moves].map(([from, to]) => {
      const n = this.lengths[from]! * D;
      const copy = (buf: Float32Array) => {
        const out = new Float32Array(KVH * n);
        for (let h = 0; h < KVH; h++)
          out.set(buf.subarray((from * KVH + h) * CAP * D, (from * KVH + h) * CAP * D + n), h * n);
        return out;
      };
      return { to, len: this.lengths[from]!, k: this.keys.map(copy), v: this.values.map(copy) };
    });
    for (const from of moves.keys()) {
      this.used[from] = 0;
      this.lengths[from] = 0;
    }
    for (const s of saved) {
      const n = s.len * D;
      for (let l = 0; l < this.layers; l++) {
        for (let h = 0; h < KVH; h++) {
          const dst = (s.to * KVH + h) * CAP * D;
          this.keys[l]!.set(s.k[l]!.subarray(h * n, (h + 1) * n), dst);
          this.values[l]!.set(s.v[l]!.subarray(h * n, (h + 1) * n), dst);
        }
      }
      this.used[s.to] = 1;
      this.lengths[s.to] = s.len;
    }
  }
}
