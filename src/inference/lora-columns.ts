/**
 * The side-loaded adapters of a running batch as persistent column stacks, one per linear module: adapter in
 * slot s owns a contiguous column range [offset, offset + rank) of `lora.{l}.{module}.A` (cols, in) and
 * `.B` (cols, out) in every layer, and `lora.{module}.col_slot[c] = s` marks it (−1 = free). Placing or
 * removing an adapter touches only its own columns; the per-step feeds are views of the used prefix, so a
 * step reads each active adapter's factors once. With PEFT's rank_pattern a module's layers may differ in
 * rank: the slot takes the module's largest, smaller layers leave their extra columns zero. Which adapter gets a slot is src/gateway/slot-table.ts.
 * A session worker (session-host.ts) keeps a replica: `takeSync` hands it the columns that changed since the
 * last sync (an adapter placed or removed: its own columns; a resize: the whole module), never per step.
 */
import { LINEAR_MODULES, linearShape } from '../engine/formats/hf-config.js';
import type { LinearModule, ModelConfig } from '../engine/formats/hf-config.js';
import { loraKey, moduleRank, moduleScale, type LoraAdapter } from '../engine/formats/peft.js';
import type { HostTensor } from '../engine/ir/types.js';
import { invariant } from '../shared/invariant.js';

interface ModuleStack {
  inF: number;
  outF: number;
  cols: number;
  /** Per layer (cols, in) */
  a: Float32Array[];
  /** Per layer (cols, out): Bᵀ·scale */
  b: Float32Array[];
  colSlot: BigInt64Array;
  /** slot → [offset, rank] */
  ranges: Map<number, [number, number]>;
}

/** One module's changes for a replica: whole stacks (`a`, `b`) or changed column ranges (`parts`). */
export interface ModuleSync {
  module: LinearModule;
  cols: number;
  /** [slot, offset, rank] */
  ranges: [number, number, number][];
  colSlot: BigInt64Array;
  a?: Float32Array[];
  b?: Float32Array[];
  parts?: { off: number; n: number; a: Float32Array[]; b: Float32Array[] }[];
}

export interface LoraSync {
  modules: LinearModule[];
  changes: ModuleSync[];
}

/** Past this many changed ranges a module is sent whole. */
const MAX_PARTS = 16;

export class LoraColumns {
  private readonly stacks = new Map<LinearModule, ModuleStack>();
  /** Per module, what changed since the last takeSync: everything, or these [offset, count] column ranges. */
  private readonly dirty = new Map<LinearModule, 'all' | [number, number][]>();

  constructor(
    readonly config: ModelConfig,
    readonly modules: readonly LinearModule[] = LINEAR_MODULES,
    initialColumns = 64,
  ) {
    for (const m of modules) {
      const { inFeatures: inF, outFeatures: outF } = linearShape(config, m);
      const s: ModuleStack = {
        inF,
        outF,
        cols: 0,
        a: [],
        b: [],
        colSlot: new BigInt64Array(0),
        ranges: new Map(),
      };
      this.resize(s, initialColumns);
      this.stacks.set(m, s);
    }
  }

  private resize(s: ModuleStack, cols: number): void {
    const grow = <T extends Float32Array | BigInt64Array>(
      old: T | undefined,
      n: number,
      make: (n: number) => T,
    ): T => {
      const fresh = make(n);
      if (old) fresh.set(old as never);
      return fresh;
    };
    for (let l = 0; l < this.config.numLayers; l++) {
      s.a[l] = grow(s.a[l], cols * s.inF, (n) => new Float32Array(n));
      s.b[l] = grow(s.b[l], cols * s.outF, (n) => new Float32Array(n));
    }
    const slots = grow(s.colSlot, cols, (n) => new BigInt64Array(n).fill(-1n));
    slots.fill(-1n, s.cols);
    s.colSlot = slots;
    s.cols = cols;
    for (const [m, x] of this.stacks) if (x === s) this.dirty.set(m, 'all');
  }

  private touch(m: LinearModule, off: number, n: number): void {
    const d = this.dirty.get(m) ?? [];
    if (d === 'all') return;
    d.push([off, n]);
    this.dirty.set(m, d.length > MAX_PARTS ? 'all' : d);
  }

  /**
   * What a replica needs to equal these stacks: everything (`full`, a replica's first sync) or what changed
   * since the last call. Copies, so the caller may transfer their buffers (`transferables`).
   */
  takeSync(full: boolean): LoraSync {
    const changes: ModuleSync[] = [];
    for (const [m, s] of this.stacks) {
      const d = full ? 'all' : this.dirty.get(m);
      if (d === undefined) continue;
      const c: ModuleSync = {
        module: m,
        cols: s.cols,
        ranges: [...s.ranges].map(([slot, [off, r]]) => [slot, off, r]),
        colSlot: s.colSlot.slice(),
      };
      if (d === 'all') {
        c.a = s.a.map((x) => x.slice());
        c.b = s.b.map((x) => x.slice());
      } else
        c.parts = d.map(([off, n]) => ({
          off,
          n,
          a: s.a.map((x) => x.slice(off * s.inF, (off + n) * s.inF)),
          b: s.b.map((x) => x.slice(off * s.outF, (off + n) * s.outF)),
        }));
      changes.push(c);
    }
    this.dirty.clear();
    return { modules: [...this.modules], changes };
  }

  /** Applies another LoraColumns' `takeSync` to this replica. */
  applySync(sync: LoraSync): void {
    for (const c of sync.changes) {
      const s = this.stacks.get(c.module);
      invariant(s, () => `LoRA replica has no module ${c.module}`);
      if (c.a && c.b) {
        s.a = c.a;
        s.b = c.b;
      } else {
        invariant(
          s.cols === c.cols,
          () => `LoRA replica of ${c.module} has ${s.cols} columns, the sync ${c.cols}`,
        );
        for (const p of c.parts ?? [])
          for (let l = 0; l < this.config.numLayers; l++) {
            s.a[l]!.set(p.a[l]!, p.off * s.inF);
            s.b[l]!.set(p.b[l]!, p.off * s.outF);
          }
      }
      s.cols = c.cols;
      s.colSlot = c.colSlot;
      s.ranges = new Map(c.ranges.map(([slot, off, r]) => [slot, [off, r]]));
    }
  }

  /** The buffers of a sync (all fresh copies), for a postMessage transfer list. */
  static transferables(sync: LoraSync): ArrayBuffer[] {
    const out: ArrayBuffer[] = [];
    for (const c of sync.changes) {
      out.push(c.colSlot.buffer as ArrayBuffer);
      for (const x of [...(c.a ?? []), ...(c.b ?? [])]) out.push(x.buffer as ArrayBuffer);
      for (const p of c.parts ?? []) for (const x of [...p.a, ...p.b]) out.push(x.buffer as ArrayBuffer);
    }
    return out;
  }

  /** One past the last used column of module m (the width of its feeds). */
  width(m: LinearModule): number {
    let hi = 0;
    for (const [off, r] of this.stacks.get(m)!.ranges.values()) hi = Math.max(hi, off + r);
    return hi;
  }

  /** Bytes held by the stacks. */
  get bytes(): number {
    let n = 0;
    for (const s of this.stacks.values())
      n += (s.cols * (s.inF + s.outF) * this.config.numLayers + s.cols * 2) * 4;
    return n;
  }

  /** Writes `adapter` into columns owned by `slot` (≥ 1) in each module it targets. */
  place(slot: number, adapter: LoraAdapter): void {
    invariant(slot >= 1, () => `LoRA slot must be ≥ 1, got ${slot}`);
    for (const [m, s] of this.stacks) {
      invariant(!s.ranges.has(slot), () => `LoRA slot ${slot} already placed`);
      const targets = Array.from({ length: this.config.numLayers }, (_, l) =>
        adapter.weights.get(loraKey(l, m)),
      );
      if (targets.every((w) => w === undefined)) continue;
      // The module's columns: its largest rank over the layers (PEFT's rank_pattern may vary it per layer).
      const R = Math.max(...targets.map((w) => (w ? moduleRank(adapter, w) : 0)));
      const off = this.findGap(s, R);
      if (off + R > s.cols) this.resize(s, Math.max(off + R, s.cols * 2));
      targets.forEach((w, l) => {
        const a = s.a[l]!;
        const b = s.b[l]!;
        a.fill(0, off * s.inF, (off + R) * s.inF);
        b.fill(0, off * s.outF, (off + R) * s.outF);
        if (!w) return;
        // A (r, in) rows are our columns as is; B (out, r) is transposed into (r, out) with the scale folded
        // in; columns r…R stay zero.
        const r = moduleRank(adapter, w);
        const scale = moduleScale(adapter, w);
        a.set(w.a, off * s.inF);
        for (let k = 0; k < r; k++) {
          const dst = (off + k) * s.outF;
          for (let o = 0; o < s.outF; o++) b[dst + o] = scale * w.b[o * r + k]!;
        }
      });
      s.colSlot.fill(BigInt(slot), off, off + R);
      s.ranges.set(slot, [off, R]);
      this.touch(m, off, R);
    }
  }

  /** Frees the slot's columns (zeroed, so a stale value can never leak into a row through the mask). */
  remove(slot: number): void {
    for (const [m, s] of this.stacks) {
      const range = s.ranges.get(slot);
      if (!range) continue;
      const [off, R] = range;
      for (let l = 0; l < this.config.numLayers; l++) {
        s.a[l]!.fill(0, off * s.inF, (off + R) * s.inF);
        s.b[l]!.fill(0, off * s.outF, (off + R) * s.outF);
      }
      s.colSlot.fill(-1n, off, off + R);
      s.ranges.delete(slot);
      this.touch(m, off, R);
    }
  }

  /** First gap of `r` free columns between placed ranges (or the end). */
  private findGap(s: ModuleStack, r: number): number {
    const used = [...s.ranges.values()].sort((x, y) => x[0] - y[0]);
    let at = 0;
    for (const [off, n] of used) {
      if (off - at >= r) return at;
      at = off + n;
    }
    return at;
  }

  /** The `lora.*` feeds of the serving graph: views of each module's used columns (at least one, masked off). */
  feeds(): Record<string, HostTensor> {
    const out: Record<string, HostTensor> = {};
    for (const [m, s] of this.stacks) {
      const w = Math.max(1, this.width(m));
      out[`lora.${m}.col_slot`] = { dtype: 'int64', shape: [w], data: s.colSlot.subarray(0, w) };
      for (let l = 0; l < this.config.numLayers; l++) {
        out[`lora.${l}.${m}.A`] = {
          dtype: 'float32',
          shape: [w, s.inF],
          data: s.a[l]!.subarray(0, w * s.inF),
        };
        out[`lora.${l}.${m}.B`] = {
          dtype: 'float32',
          shape: [w, s.outF],
          data: s.b[l]!.subarray(0, w * s.outF),
        };
      }
    }
    return out;
  }
}
