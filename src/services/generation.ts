/**
 * Generation for the API: resolves an adapter reference (PRODUCT.md: `name` → its `production` alias else its
 * latest version, `name@alias`, `name@vN`, a version id, null = the base model), loads the version's PEFT files
 * from blob storage with their SHA-256 verified into a byte-budgeted LRU, picks MERGED or SIDELOAD, runs the
 * engine (src/inference/engine.ts) behind a small per-process FIFO queue, and counts usage per customer.
 * Not the multi-tenant batching gateway (a later issue); the GraphQL side is src/resolvers/generation-resolver.ts.
 */
import type { Logger } from 'pino';
import type { AdapterVersion } from '../db/repositories/adapter-versions.js';
import type { Repositories } from '../db/repositories/index.js';
import { parsePeftAdapter, type LoraAdapter } from '../engine/formats/peft.js';
import { Engine, type FinishReason as EngineFinishReason } from '../inference/engine.js';
import { sha256Hex, type BlobStore } from '../storage/blob-store.js';
import { ADAPTER_FILES } from '../storage/keys.js';
import {
  BadInputError,
  DeltagateError,
  NotFoundError,
  QuotaExceededError,
  RateLimitedError,
} from '../shared/errors.js';
import { requireCustomer, scopeOf, type Actor } from './actor.js';
import type { AdaptersService } from './adapters.js';
import type { BaseModel, BaseModelRegistry } from './base-models.js';

export type AdapterMode = 'AUTO' | 'MERGED' | 'SIDELOAD';
export type FinishReason = 'STOP' | 'LENGTH';

export interface GenerateInput {
  adapter?: string | null;
  /** Only for `adapter: null`; default: the first registered base model (the built-in one). */
  baseModelId?: string | null;
  prompt: string;
  maxTokens?: number | null;
  temperature?: number | null;
  topP?: number | null;
  topK?: number | null;
  seed?: number | null;
  stop?: string[] | null;
  mode?: AdapterMode | null;
}

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

export interface Generation {
  text: string;
  finishReason: FinishReason;
  usage: Usage;
  adapterVersion: AdapterVersion | null;
  mode: AdapterMode;
}

export interface GenerationChunk {
  text: string;
  index: number;
  finishReason: FinishReason | null;
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

export interface GenerationOptions {
  /** Bytes of adapter weights kept in memory (LRU). Default 256 MiB. */
  adapterCacheBytes?: number;
  /** Requests run at once by this process. Default 1 (the engine uses every core for one). */
  concurrency?: number;
  /** Requests allowed to wait; past it RATE_LIMITED. Default 64. */
  maxQueued?: number;
  /** maxTokens when the request gives none. Default 64. */
  defaultMaxTokens?: number;
  /** Requests for one adapter among the last `hotWindow` that make AUTO pick MERGED. Default 4 of 8. */
  hotThreshold?: number;
  hotWindow?: number;
  /** Prompt length limit in characters. Default 64 Ki. */
  maxPromptChars?: number;
}

export interface GenerationDeps {
  repos: Repositories;
  blobs: BlobStore;
  baseModels: BaseModelRegistry;
  adapters: AdaptersService;
  logger: Logger;
  options?: GenerationOptions;
  /** How a base model's engine is loaded (tests may share one). Default `Engine.load(dir)`. */
  loadEngine?: (model: BaseModel) => Promise<Engine>;
}

interface Prepared {
  customerId: string;
  base: BaseModel;
  engine: Engine;
  version: AdapterVersion | null;
  adapter: LoraAdapter | null;
  mode: AdapterMode;
  request: {
    prompt: string;
    maxTokens: number;
    temperature?: number;
    topP?: number;
    topK?: number;
    seed?: number;
    stop?: string[];
  };
}

const opt = <T>(x: T | null | undefined): T | undefined => (x === null ? undefined : x);

/** A byte-budgeted LRU of parsed adapters keyed by version id (Map order = recency). */
export class AdapterCache {
  private readonly entries = new Map<string, { adapter: LoraAdapter; bytes: number }>();
  private used = 0;

  constructor(readonly budgetBytes: number) {}

  static sizeOf(adapter: LoraAdapter): number {
    let n = 0;
    for (const w of adapter.weights.values()) n += (w.a.length + w.b.length) * 4;
    return n;
  }

  get(versionId: string): LoraAdapter | undefined {
    const e = this.entries.get(versionId);
    if (!e) return undefined;
    this.entries.delete(versionId);
    this.entries.set(versionId, e);
    return e.adapter;
  }

  /** An adapter larger than the whole budget is served but not kept. */
  set(versionId: string, adapter: LoraAdapter): void {
    const bytes = AdapterCache.sizeOf(adapter);
    this.delete(versionId);
    if (bytes > this.budgetBytes) return;
    this.entries.set(versionId, { adapter, bytes });
    this.used += bytes;
    for (const [id, e] of this.entries) {
      if (this.used <= this.budgetBytes) break;
      this.entries.delete(id);
      this.used -= e.bytes;
    }
  }

  delete(versionId: string): void {
    const e = this.entries.get(versionId);
    if (e) {
      this.entries.delete(versionId);
      this.used -= e.bytes;
    }
  }

  /** Version ids, least recently used first, and the bytes held. */
  snapshot(): { ids: string[]; bytes: number } {
    return { ids: [...this.entries.keys()], bytes: this.used };
  }
}

/** FIFO admission: at most `concurrency` run, at most `maxQueued` wait, the rest are refused. */
class RequestQueue {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly concurrency: number,
    private readonly maxQueued: number,
  ) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.concurrency) {
      if (this.waiting.length >= this.maxQueued)
        throw new RateLimitedError('the generation queue is full; retry shortly');
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else this.running++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}

export class GenerationService {
  readonly cache: AdapterCache;
  private readonly engines = new Map<string, Promise<Engine>>();
  private readonly queue: RequestQueue;
  private readonly recent: string[] = [];
  private readonly o: Required<GenerationOptions>;

  constructor(private readonly deps: GenerationDeps) {
    this.o = {
      adapterCacheBytes: 256 * 1024 * 1024,
      concurrency: 1,
      maxQueued: 64,
      defaultMaxTokens: 64,
      hotThreshold: 4,
      hotWindow: 8,
      maxPromptChars: 64 * 1024,
      ...Object.fromEntries(Object.entries(deps.options ?? {}).filter(([, v]) => v !== undefined)),
    };
    this.cache = new AdapterCache(this.o.adapterCacheBytes);
    this.queue = new RequestQueue(this.o.concurrency, this.o.maxQueued);
  }

  async generate(actor: Actor, input: GenerateInput): Promise<Generation> {
    const p = await this.prepare(actor, input);
    return this.execute(p);
  }

  /**
   * Text deltas as they are generated, then one last chunk with the finishReason. Everything that can be
   * refused (reference, quota, maxTokens) is refused before the stream starts.
   */
  async generateStream(actor: Actor, input: GenerateInput): Promise<AsyncIterableIterator<GenerationChunk>> {
    const p = await this.prepare(actor, input);
    const buffer: GenerationChunk[] = [];
    let wake: (() => void) | undefined;
    let failure: unknown = null;
    let done = false;
    let index = 0;
    const push = (c: GenerationChunk) => {
      buffer.push(c);
      wake?.();
    };
    void this.execute(p, (text) => push({ text, index: index++, finishReason: null })).then(
      (g) => {
        push({ text: '', index: index++, finishReason: g.finishReason });
        done = true;
        wake?.();
      },
      (err: unknown) => {
        failure = err;
        done = true;
        wake?.();
      },
    );
    let returned = false;
    const it: AsyncIterableIterator<GenerationChunk> = {
      async next() {
        while (!returned && buffer.length === 0 && !done) {
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
        }
        if (buffer.length > 0 && !returned) return { value: buffer.shift()!, done: false };
        if (failure !== null && !returned) {
          returned = true;
          throw failure;
        }
        return { value: undefined, done: true };
      },
      async return() {
        // The client went away: the generation finishes in the background (it is short and already paid).
        returned = true;
        wake?.();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return it;
      },
    };
    return it;
  }

  private async prepare(actor: Actor, input: GenerateInput): Promise<Prepared> {
    const { customerId } = requireCustomer(actor);
    if (typeof input.prompt !== 'string' || input.prompt.length === 0)
      throw new BadInputError('prompt must not be empty', { details: { field: 'prompt' } });
    if (input.prompt.length > this.o.maxPromptChars)
      throw new BadInputError(`prompt is longer than ${this.o.maxPromptChars} characters`);
    const stop = opt(input.stop);
    if (stop && (stop.length > 8 || stop.some((s) => s.length === 0 || s.length > 200)))
      throw new BadInputError('stop takes at most 8 non-empty sequences of at most 200 characters');

    let version: AdapterVersion | null = null;
    let base: BaseModel;
    const ref = opt(input.adapter);
    if (ref !== undefined && ref !== '') {
      version = await this.deps.adapters.resolveReference(actor, ref);
      const adapterRow = await this.deps.repos.adapters.findById(scopeOf(actor), version.adapterId);
      if (adapterRow === null) throw new NotFoundError('adapter', version.adapterId);
      base = this.deps.baseModels.require(adapterRow.baseModelId);
    } else {
      const id = opt(input.baseModelId);
      const first = this.deps.baseModels.list()[0];
      if (id === undefined && first === undefined) throw new NotFoundError('base model');
      base = id === undefined ? first! : this.deps.baseModels.require(id);
    }

    const maxTokens = opt(input.maxTokens) ?? Math.min(this.o.defaultMaxTokens, base.contextLength - 1);
    if (!Number.isSafeInteger(maxTokens) || maxTokens < 1 || maxTokens >= base.contextLength) {
      throw new BadInputError(
        `maxTokens must be an integer 1-${base.contextLength - 1} (the context of ${base.id} is ${base.contextLength})`,
        { details: { field: 'maxTokens' } },
      );
    }
    const customer = await this.deps.repos.customers.findById(scopeOf(actor), customerId);
    if (customer === null) throw new NotFoundError('customer', customerId);
    if (customer.monthlyTokenLimit !== null) {
      const used = await this.deps.repos.usage.get(customerId);
      if (used.promptTokens + used.completionTokens >= customer.monthlyTokenLimit)
        throw new QuotaExceededError(`the monthly token limit of ${customer.monthlyTokenLimit} is used up`);
    }
    const engine = await this.engineFor(base);
    const tokenizer = engine.tokenizer;
    if (tokenizer) {
      const promptTokens = tokenizer.encode(input.prompt).length;
      if (promptTokens + maxTokens > base.contextLength) {
        throw new BadInputError(
          `prompt (${promptTokens} tokens) + maxTokens (${maxTokens}) exceeds the context of ${base.contextLength}`,
          { details: { field: 'maxTokens' } },
        );
      }
    }
    const adapter = version === null ? null : await this.loadAdapter(version, base);
    const mode =
      version === null ? (opt(input.mode) ?? 'AUTO') : this.chooseMode(version.id, opt(input.mode) ?? 'AUTO');
    return {
      customerId,
      base,
      engine,
      version,
      adapter,
      mode,
      request: {
        prompt: input.prompt,
        maxTokens,
        temperature: opt(input.temperature),
        topP: opt(input.topP),
        topK: opt(input.topK),
        seed: opt(input.seed),
        stop,
      },
    };
  }

  private async execute(p: Prepared, onDelta?: (text: string) => void): Promise<Generation> {
    const result = await this.queue.run(() =>
      p.engine.generate(
        {
          ...p.request,
          ...(p.adapter ? { adapter: p.adapter, mode: p.mode === 'MERGED' ? 'merged' : 'sideload' } : {}),
        },
        onDelta,
      ),
    );
    const usage = result.usage;
    await this.deps.repos.usage
      .add(p.customerId, {
        requests: 1,
        promptTokens: usage.promptTokens,
        completionTokens: usage.completionTokens,
      })
      .catch((err: unknown) => this.deps.logger.error({ err }, 'could not record usage'));
    return {
      text: result.text,
      finishReason: finishReasonOf(result.finishReason),
      usage: { ...usage },
      adapterVersion: p.version,
      mode: p.mode,
    };
  }

  /** AUTO: MERGED for an adapter that is hot in this process (its merged weights pay off), else SIDELOAD. */
  private chooseMode(versionId: string, requested: AdapterMode): AdapterMode {
    this.recent.push(versionId);
    if (this.recent.length > this.o.hotWindow) this.recent.shift();
    if (requested !== 'AUTO') return requested;
    const uses = this.recent.filter((id) => id === versionId).length;
    return uses >= this.o.hotThreshold ? 'MERGED' : 'SIDELOAD';
  }

  private engineFor(base: BaseModel): Promise<Engine> {
    let e = this.engines.get(base.id);
    if (!e) {
      e = (this.deps.loadEngine ?? ((m: BaseModel) => Engine.load(m.dir)))(base);
      this.engines.set(base.id, e);
      e.catch(() => this.engines.delete(base.id));
    }
    return e;
  }

  /** The version's files from storage, each checked against the sha256 registered with it. */
  async loadAdapter(version: AdapterVersion, base: BaseModel): Promise<LoraAdapter> {
    const hit = this.cache.get(version.id);
    if (hit) return hit;
    const read = async (name: string, expected: string | undefined) => {
      const bytes = await this.deps.blobs.get(version.blobPrefix + name);
      if (expected === undefined || sha256Hex(bytes) !== expected) {
        this.deps.logger.error(
          { versionId: version.id, file: name },
          'adapter file failed its SHA-256 check',
        );
        throw new AdapterIntegrityError(version.id, name);
      }
      return bytes;
    };
    const expected = (name: string) => version.files.find((f) => f.name === name)?.sha256;
    const weightsSha = expected(ADAPTER_FILES.weights) ?? version.sha256;
    if (weightsSha !== version.sha256) throw new AdapterIntegrityError(version.id, ADAPTER_FILES.weights);
    const [configBytes, weights] = await Promise.all([
      read(ADAPTER_FILES.config, expected(ADAPTER_FILES.config)),
      read(ADAPTER_FILES.weights, weightsSha),
    ]);
    const config: unknown = JSON.parse(Buffer.from(configBytes).toString('utf8'));
    const adapter = parsePeftAdapter(config, weights, base.modelConfig);
    this.cache.set(version.id, adapter);
    return adapter;
  }

  async close(): Promise<void> {
    const engines = [...this.engines.values()];
    this.engines.clear();
    for (const e of engines) await (await e.catch(() => null))?.close();
  }
}

function finishReasonOf(r: EngineFinishReason): FinishReason {
  return r === 'stop' ? 'STOP' : 'LENGTH';
}
