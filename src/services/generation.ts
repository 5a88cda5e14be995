/**
 * Generation policy for the API: who may generate with what — the adapter reference (PRODUCT.md: `name` → its
 * `production` alias else its latest version, `name@alias`, `name@vN`, a version id, null = the base model)
 * in the caller's tenant, prompt and maxTokens limits against the context, the monthly token quota, the
 * request deadline — then hands the request to the serving runtime (src/gateway/: continuous batching, adapter
 * tiers, AUTO merge) and counts usage per customer. The GraphQL side is src/resolvers/generation-resolver.ts.
 */
import type { Logger } from 'pino';
import type { AdapterVersion } from '../db/repositories/adapter-versions.js';
import type { Adapter } from '../db/repositories/adapters.js';
import type { Repositories } from '../db/repositories/index.js';
import { chatPromptIds, type ChatMessage } from '../engine/formats/chat-template.js';
import type { LoraAdapter } from '../engine/formats/peft.js';
import { Gateway, type GatewayOptions } from '../gateway/gateway.js';
import { LoadedModel } from '../inference/model.js';
import type { BlobStore } from '../storage/blob-store.js';
import { BadInputError, NotFoundError, QuotaExceededError } from '../shared/errors.js';
import { ChunkQueue } from './chunk-queue.js';
import { engineLoadOptions, type ServingRuntime } from './serving-grid.js';
import { requireCustomer, scopeOf, type Actor } from './actor.js';
import type { AdaptersService } from './adapters.js';
import type { BaseModel, BaseModelRegistry } from './base-models.js';

export type AdapterMode = 'AUTO' | 'MERGED' | 'SIDELOAD';
export type FinishReason = 'STOP' | 'LENGTH';

export interface GenerateInput {
  adapter?: string | null;
  /** Only for `adapter: null`; default: the first registered base model (the built-in one). */
  baseModelId?: string | null;
  /** Text, tokenized with the base model's tokenizer. Exactly one of prompt / promptIds. */
  prompt?: string | null;
  /** Token ids as they are (no BOS added): for base models without a tokenizer. */
  promptIds?: readonly number[] | null;
  /** A conversation, rendered with the base model's chat template (the assistant's turn is generated). */
  messages?: readonly { role: string; content: string }[] | null;
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
  /** The generated token ids (an EOS that ended the generation included). */
  tokenIds: number[];
  finishReason: FinishReason;
  usage: Usage;
  adapterVersion: AdapterVersion | null;
  mode: AdapterMode;
}

export interface GenerationChunk {
  text: string;
  index: number;
  finishReason: FinishReason | null;
  /** The last chunk only (the one with the finishReason): what the whole generation counted. */
  usage?: Usage;
}

/**
 * What one generation cost and how long it took, for metrics (`GenerationService.observe`): every request
 * the gateway ran or refused after it was prepared — GraphQL and the OpenAI-compatible routes alike.
 * Latencies are measured on the text deltas the client receives: `firstDeltaMs` from queueing to the first
 * delta (the whole generation when it produced no text), `perTokenMs` the mean time per completion token
 * after that (null with fewer than two tokens).
 */
export interface GenerationObservation {
  customerId: string;
  baseModelId: string;
  /** The adapter's id, or null for the base model. */
  adapterId: string | null;
  /** 'ok', or the stable error code it failed with (a client that left is 'aborted'). */
  outcome: string;
  promptTokens: number;
  completionTokens: number;
  finishReason: FinishReason | null;
  firstDeltaMs: number | null;
  perTokenMs: number | null;
}

export { AdapterIntegrityError } from '../gateway/adapter-cache.js';

export interface GenerationOptions extends Partial<GatewayOptions> {
  /** maxTokens when the request gives none. Default 64. */
  defaultMaxTokens?: number;
  /** Prompt length limit in characters. Default 64 Ki. */
  maxPromptChars?: number;
  /** A request not finished after this long (queued or running) fails with RATE_LIMITED. Default 120 s. */
  requestTimeoutMs?: number;
}

export interface GenerationDeps {
  repos: Repositories;
  blobs: BlobStore;
  baseModels: BaseModelRegistry;
  adapters: AdaptersService;
  logger: Logger;
  options?: GenerationOptions;
  /** The process's execution provider (DELTAGATE_EXECUTION_PROVIDER); default cpu. */
  runtime?: ServingRuntime;
  /** How a base model is loaded (tests may share one). Default: its directory on its serving grid. */
  loadModel?: (model: BaseModel) => Promise<LoadedModel>;
}

/** What a caller may pass to cut a generation short (the client went away). */
export interface GenerationControl {
  signal?: AbortSignal;
}

interface Prepared {
  customerId: string;
  base: BaseModel;
  version: AdapterVersion | null;
  adapter: LoraAdapter | null;
  mode: AdapterMode;
  promptIds: number[];
  request: {
    maxTokens: number;
    temperature?: number;
    topP?: number;
    topK?: number;
    seed?: number;
    stop?: string[];
  };
}

const opt = <T>(x: T | null | undefined): T | undefined => (x === null ? undefined : x);

const CHAT_ROLES: ReadonlySet<string> = new Set(['system', 'user', 'assistant']);

function validateMessages(messages: readonly { role: string; content: string }[], maxChars: number): void {
  if (messages.length === 0 || messages.length > 256)
    throw new BadInputError('messages takes 1-256 messages', { details: { field: 'messages' } });
  let chars = 0;
  messages.forEach((m, i) => {
    if (!CHAT_ROLES.has(m.role))
      throw new BadInputError(`messages[${i}].role must be system, user or assistant`, {
        details: { field: 'messages' },
      });
    if (typeof m.content !== 'string')
      throw new BadInputError(`messages[${i}].content must be a string`, { details: { field: 'messages' } });
    chars += m.content.length;
  });
  if (chars > maxChars)
    throw new BadInputError(`messages are longer than ${maxChars} characters`, {
      details: { field: 'messages' },
    });
}

export class GenerationService {
  readonly gateway: Gateway<BaseModel>;
  private readonly o: Required<
    Pick<GenerationOptions, 'defaultMaxTokens' | 'maxPromptChars' | 'requestTimeoutMs'>
  >;
  private readonly observers = new Set<(o: GenerationObservation) => void>();

  constructor(private readonly deps: GenerationDeps) {
    const { defaultMaxTokens, maxPromptChars, requestTimeoutMs, ...gatewayOptions } = deps.options ?? {};
    this.o = {
      defaultMaxTokens: defaultMaxTokens ?? 64,
      maxPromptChars: maxPromptChars ?? 64 * 1024,
      requestTimeoutMs: requestTimeoutMs ?? 120_000,
    };
    const runtime = deps.runtime ?? { executionProvider: 'cpu' };
    this.gateway = new Gateway<BaseModel>({
      blobs: deps.blobs,
      logger: deps.logger,
      options: gatewayOptions,
      loadModel: deps.loadModel ?? ((m) => LoadedModel.load(m.dir, engineLoadOptions(m, runtime))),
    });
  }

  async generate(actor: Actor, input: GenerateInput, control: GenerationControl = {}): Promise<Generation> {
    const p = await this.prepare(actor, input);
    return this.execute(p, control.signal);
  }

  /**
   * Text deltas as they are generated, then one last chunk with the finishReason. Everything that can be
   * refused (reference, quota, maxTokens) is refused before the stream starts. Closing the iterator (the
   * client went away) takes the request out of the running batch at the next step.
   */
  async generateStream(
    actor: Actor,
    input: GenerateInput,
    control: GenerationControl = {},
  ): Promise<AsyncIterableIterator<GenerationChunk>> {
    const p = await this.prepare(actor, input);
    const abort = new AbortController();
    control.signal?.addEventListener('abort', () => abort.abort(), { once: true });
    const chunks = new ChunkQueue<GenerationChunk>(() => abort.abort());
    let index = 0;
    void this.execute(p, abort.signal, (text) =>
      chunks.push({ text, index: index++, finishReason: null }),
    ).then(
      (g) => chunks.end({ text: '', index: index++, finishReason: g.finishReason, usage: g.usage }),
      (err: unknown) => chunks.fail(err),
    );
    return chunks.iterator();
  }

  /** Calls `listener` after every generation that reached the gateway (metrics); returns the unsubscribe. */
  observe(listener: (o: GenerationObservation) => void): () => void {
    this.observers.add(listener);
    return () => this.observers.delete(listener);
  }

  private notify(o: GenerationObservation): void {
    for (const listener of this.observers) {
      try {
        listener(o);
      } catch (err) {
        this.deps.logger.error({ err }, 'generation observer failed');
      }
    }
  }

  /**
   * Makes this process's gateway follow an adapter's `pinned` flag for the version its bare name serves
   * (other processes follow it when they next resolve the adapter).
   */
  async applyPin(actor: Actor, adapter: Adapter): Promise<void> {
    let version: AdapterVersion;
    try {
      version = await this.deps.adapters.resolveReference(actor, adapter.name);
    } catch (err) {
      if (err instanceof NotFoundError) return; // no version yet: pinned when one is resolved
      throw err;
    }
    await this.followPin(adapter, version, this.deps.baseModels.require(adapter.baseModelId));
  }

  private async followPin(adapter: Adapter, version: AdapterVersion, base: BaseModel): Promise<void> {
    if (adapter.pinned && !this.gateway.cache.isPinned(version.id)) await this.gateway.pin(base, version);
    else if (!adapter.pinned && this.gateway.cache.isPinned(version.id))
      await this.gateway.unpin(base, version.id);
  }

  /**
   * The checks that need nothing loaded: a maxTokens no registered base model can take is BAD_USER_INPUT here,
   * before the caller reserves tokens for it (a reservation of a huge maxTokens would otherwise answer
   * RATE_LIMITED for a request that could never run).
   */
  precheck(input: Pick<GenerateInput, 'maxTokens'>): void {
    const maxTokens = opt(input.maxTokens);
    if (maxTokens === undefined) return;
    const context = Math.max(0, ...this.deps.baseModels.list().map((m) => m.contextLength));
    if (!Number.isSafeInteger(maxTokens) || maxTokens < 1 || maxTokens >= context)
      throw new BadInputError(`maxTokens must be an integer 1-${context - 1} (the largest context served)`, {
        details: { field: 'maxTokens' },
      });
  }

  private async prepare(actor: Actor, input: GenerateInput): Promise<Prepared> {
    const { customerId } = requireCustomer(actor);
    const text = opt(input.prompt);
    const ids = opt(input.promptIds);
    const messages = opt(input.messages);
    if ([text, ids, messages].filter((x) => x !== undefined).length !== 1)
      throw new BadInputError('give exactly one of prompt, promptIds and messages', {
        details: { field: 'prompt' },
      });
    if (messages !== undefined) validateMessages(messages, this.o.maxPromptChars);
    if (text !== undefined && (typeof text !== 'string' || text.length === 0))
      throw new BadInputError('prompt must not be empty', { details: { field: 'prompt' } });
    if ((text?.length ?? ids?.length ?? 0) > this.o.maxPromptChars)
      throw new BadInputError(`prompt is longer than ${this.o.maxPromptChars} characters (or token ids)`, {
        details: { field: text === undefined ? 'promptIds' : 'prompt' },
      });
    if (ids !== undefined && ids.length === 0)
      throw new BadInputError('promptIds must not be empty', { details: { field: 'promptIds' } });
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
      // Start the cold load now; the checks below overlap with it.
      this.gateway.cache.prefetch(version, base.modelConfig);
      await this.followPin(adapterRow, version, base);
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
    const { loaded, scheduler } = await this.gateway.model(base);
    const tokenizer = loaded.tokenizer;
    if (!tokenizer && ids === undefined)
      throw new BadInputError(`base model ${base.id} has no tokenizer.json: give promptIds instead`, {
        details: { field: text === undefined ? 'messages' : 'prompt' },
      });
    if (!tokenizer && stop !== undefined && stop.length > 0)
      throw new BadInputError(`base model ${base.id} has no tokenizer.json: stop sequences need one`, {
        details: { field: 'stop' },
      });
    const V = base.modelConfig.vocabSize;
    const bad = ids?.find((id) => !Number.isInteger(id) || id < 0 || id >= V);
    if (bad !== undefined)
      throw new BadInputError(`promptIds: ${bad} is not a token id of ${base.id} (0-${V - 1})`, {
        details: { field: 'promptIds' },
      });
    const promptIds =
      ids !== undefined
        ? [...ids]
        : messages !== undefined
          ? chatPromptIds(tokenizer!, messages as readonly ChatMessage[])
          : tokenizer!.encode(text!);
    const context = Math.min(base.contextLength, scheduler.maxContext);
    if (promptIds.length + maxTokens > context) {
      throw new BadInputError(
        `prompt (${promptIds.length} tokens) + maxTokens (${maxTokens}) exceeds the context of ${context}`,
        { details: { field: 'maxTokens' } },
      );
    }
    const adapter = version === null ? null : await this.gateway.adapter(version, base.modelConfig);
    if (adapter) loaded.validateAdapter(adapter);
    return {
      customerId,
      base,
      version,
      adapter,
      mode: opt(input.mode) ?? 'AUTO',
      promptIds,
      request: {
        maxTokens,
        temperature: opt(input.temperature),
        topP: opt(input.topP),
        topK: opt(input.topK),
        seed: opt(input.seed),
        stop,
      },
    };
  }

  private async execute(
    p: Prepared,
    signal?: AbortSignal,
    onDelta?: (text: string) => void,
  ): Promise<Generation> {
    const t0 = performance.now();
    let first: number | null = null;
    const observed = (outcome: string, r?: { usage: Usage; finishReason: 'stop' | 'length' }) => {
      const end = performance.now();
      const n = r?.usage.completionTokens ?? 0;
      this.notify({
        customerId: p.customerId,
        baseModelId: p.base.id,
        adapterId: p.version?.adapterId ?? null,
        outcome,
        promptTokens: r?.usage.promptTokens ?? 0,
        completionTokens: n,
        finishReason: r === undefined ? null : r.finishReason === 'stop' ? 'STOP' : 'LENGTH',
        firstDeltaMs: r === undefined ? null : (first ?? end) - t0,
        perTokenMs: r !== undefined && first !== null && n > 1 ? (end - first) / (n - 1) : null,
      });
    };
    const result = await this.gateway
      .generate(p.base, {
        customerId: p.customerId,
        promptIds: p.promptIds,
        ...p.request,
        adapter: p.version && p.adapter ? { versionId: p.version.id, adapter: p.adapter } : null,
        mode: p.mode,
        deadline: Date.now() + this.o.requestTimeoutMs,
        signal,
        onDelta: (text) => {
          first ??= performance.now();
          onDelta?.(text);
        },
      })
      .catch((err: unknown) => {
        if (this.observers.size > 0)
          observed(
            signal?.aborted ? 'aborted' : ((err as { code?: string }).code ?? 'INTERNAL_SERVER_ERROR'),
          );
        throw err;
      });
    if (this.observers.size > 0) observed('ok', result);
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
      tokenIds: result.tokenIds,
      finishReason: result.finishReason === 'stop' ? 'STOP' : 'LENGTH',
      usage: { ...usage },
      adapterVersion: p.version,
      // AUTO reports what it chose: MERGED when the row ran on merged weights.
      mode:
        p.version === null
          ? p.mode
          : p.mode !== 'AUTO'
            ? p.mode
            : result.servedMerged
              ? 'MERGED'
              : 'SIDELOAD',
    };
  }

  close(): Promise<void> {
    return this.gateway.close();
  }
}
