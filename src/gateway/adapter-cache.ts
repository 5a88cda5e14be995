/**
 * The host-memory tier of adapters: parsed PEFT adapters by version id in a byte-bounded LRU (`lru-cache`),
 * pinned versions outside the LRU (never evicted), concurrent loads of one version shared, and the cold load
 * from blob storage with every file's SHA-256 checked against what was registered — an adapter that fails
 * its check is never parsed, cached or served. The tier above it (slots of a running batch) is slot-table.ts.
 */
import { LRUCache } from 'lru-cache';
import type { ModelConfig } from '../engine/formats/hf-config.js';
import type { LoraAdapter } from '../engine/formats/peft.js';
import { parsePeftAdapterOffThread } from '../engine/formats/peft-thread.js';
import { DeltagateError } from '../shared/errors.js';
import { sha256HexSliced, type BlobStore } from '../storage/blob-store.js';
import { ADAPTER_FILES } from '../storage/keys.js';

/** What the cache needs to know of a stored adapter version. */
export interface StoredAdapter {
  id: string;
  blobPrefix: string;
  /** sha256 of adapter_model.safetensors */
  sha256: string;
  files: readonly { name: string; sha256: string }[];
}

/** A stored adapter file whose bytes no longer hash to what was registered: never served. */
export class AdapterIntegrityError extends DeltagateError {
  constructor(versionId: string, file: string) {
    super(
      'INTERNAL_SERVER_ERROR',
      `adapter version ${versionId}: ${file} failed its SHA-256 check; refusing to load it`,
      {
        details: { versionId, file },
      },
    );
  }
}

export interface AdapterCacheStats {
  hits: number;
  misses: number;
  evictions: number;
  bytes: number;
  entries: number;
  pinned: number;
  /** Cold loads and their total milliseconds (blob GET + hash + parse). */
  coldLoads: number;
  coldLoadMs: number;
}

export function adapterBytes(adapter: LoraAdapter): number {
  let n = 0;
  for (const w of adapter.weights.values()) n += (w.a.length + w.b.length) * 4;
  return n;
}

export class AdapterCache {
  private readonly lru: LRUCache<string, LoraAdapter>;
  private readonly pinned = new Map<string, LoraAdapter>();
  private readonly loading = new Map<string, Promise<LoraAdapter>>();
  private readonly counts = { hits: 0, misses: 0, evictions: 0, coldLoads: 0, coldLoadMs: 0 };

  constructor(
    private readonly blobs: BlobStore,
    readonly budgetBytes: number,
    private readonly onIntegrityFailure: (versionId: string, file: string) => void = () => undefined,
  ) {
    this.lru = new LRUCache<string, LoraAdapter>({
      maxSize: Math.max(1, budgetBytes),
      sizeCalculation: (a) => Math.max(1, adapterBytes(a)),
      // An adapter larger than the whole budget is served but not kept.
      maxEntrySize: Math.max(1, budgetBytes),
      dispose: (_value, _key, reason) => {
        if (reason === 'evict') this.counts.evictions++;
      },
    });
  }

  /** The parsed adapter, from memory or storage (checked); concurrent calls for one version share one load. */
  async get(version: StoredAdapter, config: ModelConfig): Promise<LoraAdapter> {
    const hit = this.pinned.get(version.id) ?? this.lru.get(version.id);
    if (hit) {
      this.counts.hits++;
      return hit;
    }
    let p = this.loading.get(version.id);
    if (!p) {
      // One miss per load, however many requests wait for it (prefetch and the request itself, say).
      this.counts.misses++;
      p = this.load(version, config).finally(() => this.loading.delete(version.id));
      this.loading.set(version.id, p);
    }
    return p;
  }

  /** Starts loading without waiting (a reference was just resolved); errors surface on the real `get`. */
  prefetch(version: StoredAdapter, config: ModelConfig): void {
    if (this.pinned.has(version.id) || this.lru.has(version.id) || this.loading.has(version.id)) return;
    void this.get(version, config).catch(() => undefined);
  }

  /** Keeps the version in memory regardless of the LRU budget until `unpin`. */
  async pin(version: StoredAdapter, config: ModelConfig): Promise<LoraAdapter> {
    const adapter = await this.get(version, config);
    this.pinned.set(version.id, adapter);
    this.lru.delete(version.id);
    return adapter;
  }

  unpin(versionId: string): void {
    const a = this.pinned.get(versionId);
    if (!a) return;
    this.pinned.delete(versionId);
    this.lru.set(versionId, a);
  }

  isPinned(versionId: string): boolean {
    return this.pinned.has(versionId);
  }

  has(versionId: string): boolean {
    return this.pinned.has(versionId) || this.lru.has(versionId);
  }

  delete(versionId: string): void {
    this.pinned.delete(versionId);
    this.lru.delete(versionId);
  }

  stats(): AdapterCacheStats {
    let pinnedBytes = 0;
    for (const a of this.pinned.values()) pinnedBytes += adapterBytes(a);
    return {
      ...this.counts,
      bytes: this.lru.calculatedSize + pinnedBytes,
      entries: this.lru.size + this.pinned.size,
      pinned: this.pinned.size,
    };
  }

  private async load(version: StoredAdapter, config: ModelConfig): Promise<LoraAdapter> {
    const t0 = performance.now();
    const expected = (name: string) => version.files.find((f) => f.name === name)?.sha256;
    const weightsSha = expected(ADAPTER_FILES.weights) ?? version.sha256;
    if (weightsSha !== version.sha256) this.refuse(version.id, ADAPTER_FILES.weights);
    const read = async (name: string, sha: string | undefined) => {
      const bytes = await this.blobs.get(version.blobPrefix + name);
      if (sha === undefined || (await sha256HexSliced(bytes)) !== sha) this.refuse(version.id, name);
      return bytes;
    };
    const [configBytes, weights] = await Promise.all([
      read(ADAPTER_FILES.config, expected(ADAPTER_FILES.config)),
      read(ADAPTER_FILES.weights, weightsSha),
    ]);
    // A large adapter is parsed (and its weights checked) in a worker thread; its bytes are not needed after.
    const adapter = await parsePeftAdapterOffThread(
      JSON.parse(Buffer.from(configBytes).toString('utf8')),
      weights,
      config,
      { transfer: true },
    );
    this.lru.set(version.id, adapter);
    this.counts.coldLoads++;
    this.counts.coldLoadMs += performance.now() - t0;
    return adapter;
  }

  private refuse(versionId: string, file: string): never {
    this.onIntegrityFailure(versionId, file);
    throw new AdapterIntegrityError(versionId, file);
  }
}
