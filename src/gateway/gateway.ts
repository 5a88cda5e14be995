/**
 * The serving runtime the generation service calls: one continuous-batching scheduler per loaded base model
 * (scheduler.ts), the adapter tiers (host LRU adapter-cache.ts → per-model side-load slots slot-table.ts), and
 * the models' load. It knows no customers' rights or quotas (src/services/generation.ts decides those); it
 * runs what it is given as fast and as fairly as it can.
 */
import type { Logger } from 'pino';
import type { ModelConfig } from '../engine/formats/hf-config.js';
import type { LoraAdapter } from '../engine/formats/peft.js';
import type { LoadedModel } from '../inference/model.js';
import { ServingModel } from '../inference/serving-model.js';
import type { BlobStore } from '../storage/blob-store.js';
import { AdapterCache, type StoredAdapter } from './adapter-cache.js';
import { ModelScheduler, type SchedulerOptions, type SchedulerStats } from './scheduler.js';
import type { SequenceResult, SequenceSpec } from './sequence.js';

export interface GatewayOptions extends SchedulerOptions {
  /** Bytes of parsed adapters kept in host memory (LRU; pinned adapters come on top). */
  adapterCacheBytes: number;
  /**
   * Where each model's sessions run: 'worker' (default: a session worker per model, the event loop never
   * waits for a step) or 'main' (the old behaviour, kept for bench/event-loop.ts's comparison).
   */
  sessionThread?: 'worker' | 'main';
}

export const DEFAULT_GATEWAY_OPTIONS: GatewayOptions = {
  kvCacheBytes: 1024 * 1024 * 1024,
  maxBatch: 64,
  maxSequence: 4096,
  prefillTokens: 256,
  adapterSlots: 64,
  maxRunningPerCustomer: 32,
  maxQueuedPerCustomer: 64,
  maxQueued: 256,
  autoMergeAfterSteps: 32,
  maxMergedSessions: 1,
  maxWorkerDeathsPerRow: 2,
  maxWorkerRestarts: 3,
  workerRestartBackoffMs: 250,
  adapterCacheBytes: 256 * 1024 * 1024,
};

/** A base model as the gateway sees it: an id to key it by. */
export interface ServedModelRef {
  id: string;
}

export interface GatewayDeps<M extends ServedModelRef> {
  blobs: BlobStore;
  logger: Logger;
  options?: Partial<GatewayOptions>;
  loadModel: (model: M) => Promise<LoadedModel>;
}

export interface ServedModel {
  loaded: LoadedModel;
  scheduler: ModelScheduler;
}

export class Gateway<M extends ServedModelRef = ServedModelRef> {
  readonly cache: AdapterCache;
  readonly options: GatewayOptions;
  private readonly models = new Map<string, Promise<ServedModel>>();

  constructor(private readonly deps: GatewayDeps<M>) {
    this.options = {
      ...DEFAULT_GATEWAY_OPTIONS,
      ...Object.fromEntries(Object.entries(deps.options ?? {}).filter(([, v]) => v !== undefined)),
    };
    this.cache = new AdapterCache(deps.blobs, this.options.adapterCacheBytes, (versionId, file) =>
      deps.logger.error({ versionId, file }, 'adapter file failed its SHA-256 check'),
    );
  }

  /** The model's loaded weights and scheduler (loaded once; a failed load is retried by the next call). */
  model(ref: M): Promise<ServedModel> {
    let m = this.models.get(ref.id);
    if (!m) {
      m = this.deps.loadModel(ref).then((loaded) => ({
        loaded,
        scheduler: new ModelScheduler(
          new ServingModel(loaded, { sessionThread: this.options.sessionThread }),
          this.options,
          this.deps.logger.child({ baseModel: ref.id }),
        ),
      }));
      m.catch(() => this.models.delete(ref.id));
      this.models.set(ref.id, m);
    }
    return m;
  }

  adapter(version: StoredAdapter, config: ModelConfig): Promise<LoraAdapter> {
    return this.cache.get(version, config);
  }

  /** Queues one generation; resolves when it finishes (deltas stream through `spec.onDelta`). */
  async generate(ref: M, spec: SequenceSpec): Promise<SequenceResult> {
    const { scheduler } = await this.model(ref);
    return scheduler.submit(spec).result;
  }

  /** Keeps an adapter in host memory and in a side-load slot of its base model until unpinned. */
  async pin(ref: M, version: StoredAdapter): Promise<void> {
    const { loaded, scheduler } = await this.model(ref);
    const adapter = await this.cache.pin(version, loaded.config);
    scheduler.slots.pin(version.id, adapter);
  }

  async unpin(ref: M, versionId: string): Promise<void> {
    this.cache.unpin(versionId);
    const m = this.models.get(ref.id);
    if (m) (await m).scheduler.slots.unpin(versionId);
  }

  async stats(): Promise<{
    models: Record<string, SchedulerStats>;
    adapterCache: ReturnType<AdapterCache['stats']>;
  }> {
    const models: Record<string, SchedulerStats> = {};
    for (const [id, m] of this.models) {
      const served = await m.catch(() => null);
      if (served) models[id] = served.scheduler.stats();
    }
    return { models, adapterCache: this.cache.stats() };
  }

  async close(): Promise<void> {
    const all = [...this.models.values()];
    this.models.clear();
    for (const m of all) {
      const served = await m.catch(() => null);
      if (!served) continue;
      await served.scheduler.close();
      await served.scheduler.model.close();
      await served.loaded.close();
    }
  }
}
