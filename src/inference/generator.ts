/**
 * Text generation over a LoadedModel: prompt (text or ids) → sampled continuation with greedy/temperature/
 * top-k/top-p/seed (sampler.ts), stop sequences and UTF-8-safe streaming deltas (text-stream.ts), max tokens
 * and EOS; and batched generation of several requests with different adapters in one side-load batch.
 * This is the API the GraphQL service calls. Sessions and adapters: model.ts; the step loop: batch-decoder.ts.
 */
import type { LoraAdapter } from '../engine/formats/peft.js';
import { BadInputError } from '../shared/errors.js';
import { buildAdapterStack } from './adapter-stack.js';
import { BatchDecoder } from './batch-decoder.js';
import type { LoadedModel, LoraMode, SessionKind } from './model.js';
import { createSampler, validateSamplingParams, type Sampler } from './sampler.js';
import { TextStream } from './text-stream.js';

export interface GenerateRequest {
  /** Exact ids (no BOS added). One of promptIds / prompt. */
  promptIds?: readonly number[];
  /** Text, tokenized with BOS as the tokenizer config says. */
  prompt?: string;
  adapter?: LoraAdapter;
  /** How `adapter` is applied; default 'sideload'. */
  mode?: LoraMode;
  /** Default 64. */
  maxTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  stop?: readonly string[];
  /** Stop at the model's EOS ids; default true. */
  stopAtEos?: boolean;
}

export type FinishReason = 'stop' | 'length';

export interface GenerateResult {
  promptIds: number[];
  /** Generated ids only (an EOS that ended the generation included). */
  tokenIds: number[];
  /** The generated text, cut before a stop sequence; '' for models without a tokenizer. */
  text: string;
  finishReason: FinishReason;
  usage: { promptTokens: number; completionTokens: number; totalTokens: number };
}

export type DeltaCallback = (delta: string) => void;

interface Row {
  req: GenerateRequest;
  promptIds: number[];
  maxTokens: number;
  sampler: Sampler;
  stream: TextStream | null;
  eos: Set<number>;
  tokens: number[];
  done: boolean;
  finish: FinishReason;
  onDelta?: DeltaCallback;
}

export class Generator {
  constructor(readonly model: LoadedModel) {}

  /** Token ids of a request's prompt (validated against the vocabulary). */
  promptIds(req: GenerateRequest): number[] {
    const V = this.model.config.vocabSize;
    let ids: number[];
    if (req.promptIds !== undefined) {
      if (req.prompt !== undefined) throw new BadInputError('give either prompt or promptIds, not both');
      ids = [...req.promptIds];
    } else if (req.prompt !== undefined) {
      const tk = this.model.tokenizer;
      if (!tk) throw new BadInputError('this model has no tokenizer.json: give promptIds instead of prompt');
      ids = tk.encode(req.prompt);
    } else throw new BadInputError('a prompt or promptIds is required');
    if (ids.length === 0) throw new BadInputError('the prompt is empty');
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= V)
        throw new BadInputError(`token id ${id} is outside [0, ${V})`);
    }
    return ids;
  }

  private row(req: GenerateRequest, onDelta?: DeltaCallback): Row {
    validateSamplingParams(req);
    const maxTokens = req.maxTokens ?? 64;
    if (!Number.isInteger(maxTokens) || maxTokens < 1) {
      throw new BadInputError(`maxTokens must be a positive integer, got ${maxTokens}`);
    }
    const promptIds = this.promptIds(req);
    const limit = this.model.config.maxPositionEmbeddings;
    if (promptIds.length + maxTokens > limit) {
      throw new BadInputError(
        `prompt (${promptIds.length}) + maxTokens (${maxTokens}) exceeds the context ${limit}`,
      );
    }
    const tk = this.model.tokenizer;
    const stop = [...(req.stop ?? [])];
    if (stop.length > 0 && !tk) throw new BadInputError('stop sequences need a model with a tokenizer');
    if (req.adapter) this.model.validateAdapter(req.adapter);
    // config.json and tokenizer_config.json may each name EOS tokens (Llama 3 instruct: <|eot_id|> only in one).
    const eos = new Set(
      req.stopAtEos === false ? [] : [...this.model.config.eosTokenIds, ...(tk?.eosTokenIds ?? [])],
    );
    return {
      req,
      promptIds,
      maxTokens,
      sampler: createSampler(req),
      stream: tk ? new TextStream((ids) => tk.decode(ids), stop) : null,
      eos,
      tokens: [],
      done: false,
      finish: 'length',
      onDelta,
    };
  }

  /** One request. `onDelta` receives the text as it is generated. */
  async generate(req: GenerateRequest, onDelta?: DeltaCallback): Promise<GenerateResult> {
    return (await this.generateBatch([req], onDelta ? (_i, d) => onDelta(d) : undefined))[0]!;
  }

  /**
   * Several requests in one batch where possible: without adapters or side-loaded they share one batch
   * (each row its own adapter slot); merged-adapter requests run as one batch per adapter.
   */
  async generateBatch(
    reqs: readonly GenerateRequest[],
    onDelta?: (index: number, delta: string) => void,
  ): Promise<GenerateResult[]> {
    const rows = reqs.map((r, i) => this.row(r, onDelta ? (d) => onDelta(i, d) : undefined));
    const groups = new Map<LoraAdapter | 'shared', number[]>();
    rows.forEach((r, i) => {
      const key = r.req.adapter && r.req.mode === 'merged' ? r.req.adapter : 'shared';
      groups.set(key, [...(groups.get(key) ?? []), i]);
    });
    for (const [key, idx] of groups)
      await this.runGroup(
        idx.map((i) => rows[i]!),
        key,
      );
    return rows.map((r) => ({
      promptIds: r.promptIds,
      tokenIds: r.tokens,
      text: r.stream?.text ?? '',
      finishReason: r.finish,
      usage: {
        promptTokens: r.promptIds.length,
        completionTokens: r.tokens.length,
        totalTokens: r.promptIds.length + r.tokens.length,
      },
    }));
  }

  private async runGroup(rows: Row[], key: LoraAdapter | 'shared'): Promise<void> {
    let kind: SessionKind;
    let slots: number[] = rows.map(() => 0);
    let loraFeeds = {};
    if (key !== 'shared') kind = { mode: 'merged', adapter: key };
    else {
      const adapters = [...new Set(rows.map((r) => r.req.adapter).filter((a): a is LoraAdapter => !!a))];
      if (adapters.length === 0) kind = { mode: 'base' };
      else {
        kind = { mode: 'sideload' };
        loraFeeds = buildAdapterStack(this.model.config, adapters).feeds;
        slots = rows.map((r) => (r.req.adapter ? adapters.indexOf(r.req.adapter) + 1 : 0));
      }
    }
    const session = await this.model.session(kind);
    const T = Math.max(...rows.map((r) => r.promptIds.length));
    const steps = Math.max(...rows.map((r) => r.maxTokens));
    const decoder = new BatchDecoder(
      session,
      this.model.config,
      rows.map((r, i) => ({ promptIds: r.promptIds, slot: slots[i] })),
      T + steps,
      loraFeeds,
    );
    let logits = await decoder.prefill();
    for (;;) {
      const next = rows.map((r, b) => (r.done ? 0 : this.accept(r, r.sampler.sample(logits[b]!))));
      if (rows.every((r) => r.done)) break;
      logits = await decoder.step(next);
    }
  }

  /** Records a sampled token; marks the row done on EOS, a stop sequence or its token limit. */
  private accept(r: Row, id: number): number {
    r.tokens.push(id);
    if (r.eos.has(id)) {
      r.done = true;
      r.finish = 'stop';
    } else if (r.stream) {
      const { delta, stopped } = r.stream.push(id);
      if (delta) r.onDelta?.(delta);
      if (stopped) {
        r.done = true;
        r.finish = 'stop';
      }
    }
    if (!r.done && r.tokens.length >= r.maxTokens) {
      r.done = true;
      r.finish = 'length';
    }
    // EOS or the token limit: flush what the stream held back (a stop sequence already cut it).
    if (r.done && r.stream && !r.stream.isStopped) {
      const rest = r.stream.finish();
      if (rest) r.onDelta?.(rest);
    }
    return id;
  }
}
