/**
 * Which adapters hold a side-load slot of a model's running batch: `activate` (place an adapter, or count one
 * more row on it), `release` (one row fewer), `pin`/`unpin`, and LRU eviction of unreferenced, unpinned
 * slots only when a new adapter needs room — so an adapter a running row uses is never evicted, and a hot
 * adapter stays placed between requests. The column stacks themselves are src/inference/lora-columns.ts.
 */
import type { LoraAdapter } from '../engine/formats/peft.js';
import type { LoraColumns } from '../inference/lora-columns.js';
import { invariant } from '../shared/invariant.js';

export interface SlotEntry {
  versionId: string;
  slot: number;
  /** Running rows using it. */
  refs: number;
  pinned: boolean;
}

export class SlotTable {
  private readonly byVersion = new Map<string, SlotEntry & { lastUsed: number }>();
  private clock = 0;
  /** Adapters placed and evicted over the table's life (metrics, tests). */
  placements = 0;
  evictions = 0;

  constructor(
    private readonly columns: LoraColumns,
    /** Slots 1…capacity (0 is "no adapter"). */
    readonly capacity: number,
  ) {
    invariant(capacity >= 1, () => `slot table capacity must be ≥ 1, got ${capacity}`);
  }

  /** The slot of `versionId` with one more reference, placing the adapter if needed; null when every slot is in use. */
  activate(versionId: string, adapter: LoraAdapter): number | null {
    const hit = this.byVersion.get(versionId);
    if (hit) {
      hit.refs++;
      hit.lastUsed = ++this.clock;
      return hit.slot;
    }
    const slot = this.freeSlot() ?? this.evictOne();
    if (slot === null) return null;
    this.columns.place(slot, adapter);
    this.byVersion.set(versionId, { versionId, slot, refs: 1, pinned: false, lastUsed: ++this.clock });
    this.placements++;
    return slot;
  }

  /** Whether `activate(versionId)` would succeed now without evicting a referenced or pinned slot. */
  canActivate(versionId: string): boolean {
    if (this.byVersion.has(versionId) || this.byVersion.size < this.capacity) return true;
    for (const e of this.byVersion.values()) if (e.refs === 0 && !e.pinned) return true;
    return false;
  }

  release(versionId: string): void {
    const e = this.byVersion.get(versionId);
    invariant(e && e.refs > 0, () => `release of ${versionId}, which no row holds`);
    e.refs--;
  }

  /**
   * A pinned adapter keeps its slot while unreferenced (placed now if a slot is free). At most half the slots
   * are pinned, so pins can never starve the adapters of other requests; past that it returns false.
   */
  pin(versionId: string, adapter: LoraAdapter): boolean {
    const pinned = [...this.byVersion.values()].filter((e) => e.pinned).length;
    if (!this.byVersion.get(versionId)?.pinned && pinned + 1 > Math.floor(this.capacity / 2)) return false;
    if (!this.byVersion.has(versionId)) {
      if (this.activate(versionId, adapter) === null) return false;
      this.release(versionId);
    }
    this.byVersion.get(versionId)!.pinned = true;
    return true;
  }

  unpin(versionId: string): void {
    const e = this.byVersion.get(versionId);
    if (e) e.pinned = false;
  }

  slotOf(versionId: string): number | undefined {
    return this.byVersion.get(versionId)?.slot;
  }

  /** The whole table, by slot. */
  snapshot(): SlotEntry[] {
    return [...this.byVersion.values()]
      .map(({ versionId, slot, refs, pinned }) => ({ versionId, slot, refs, pinned }))
      .sort((a, b) => a.slot - b.slot);
  }

  private freeSlot(): number | null {
    const taken = new Set([...this.byVersion.values()].map((e) => e.slot));
    for (let s = 1; s <= this.capacity; s++) if (!taken.has(s)) return s;
    return null;
  }

  private evictOne(): number | null {
    let victim: (SlotEntry & { lastUsed: number }) | undefined;
    for (const e of this.byVersion.values()) {
      if (e.refs > 0 || e.pinned) continue;
      if (!victim || e.lastUsed < victim.lastUsed) victim = e;
    }
    if (!victim) return null;
    this.columns.remove(victim.slot);
    this.byVersion.delete(victim.versionId);
    this.evictions++;
    return victim.slot;
  }
}
