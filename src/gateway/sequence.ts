/**
 * One generation request inside the gateway: a state machine the scheduler alone advances
 * (waiting → prefill → decode → finished, or aborted from any state), with its sampler, UTF-8-safe text
 * stream, stop/EOS/length rules, KV-pool slot and LoRA slot, and the promise its caller awaits. Deltas go
 * to the caller's callback as tokens are accepted. A row whose KV cache died with its session worker is
 * `resume`d: prefilled again with its prompt and the tokens it has generated, it continues with the same
 * stream, sampler state, deadline and slots. The loop that drives it is scheduler.ts.
 */
import type { LoraAdapter } from '../engine/formats/peft.js';
import type { TextTokenizer } from '../engine/formats/tokenizer.js';
import {
  createSampler,
  validateSamplingParams,
  type Sampler,
  type SamplingParams,
} from '../inference/sampler.js';
import { TextStream } from '../inference/text-stream.js';
import { DeltagateError } from '../shared/errors.js';

export type ServeMode = 'AUTO' | 'MERGED' | 'SIDELOAD';
export type SequenceState = 'waiting' | 'prefill' | 'decode' | 'finished';
export type SequenceFinish = 'stop' | 'length';

export interface SequenceSpec extends SamplingParams {
  customerId: string;
  promptIds: readonly number[];
  maxTokens: number;
  stop?: readonly string[];
  adapter: { versionId: string; adapter: LoraAdapter } | null;
  mode: ServeMode;
  /** Absolute time (ms since epoch) after which the request is dropped with DEADLINE_EXCEEDED. */
  deadline?: number;
  /** Aborting it (client closed the stream or the HTTP connection) drops the row at the next step. */
  signal?: AbortSignal;
  onDelta?: (text: string) => void;
}

export interface SequenceResult {
  promptIds: number[];
  tokenIds: number[];
  text: string;
  finishReason: SequenceFinish;
  usage: { promptTokens: number; completionTokens: number; totalTokens: number };
  /** How the rows were served: 'merged' if any decode step ran on merged weights. */
  servedMerged: boolean;
}

/** The client went away (or cancelled): the row left the batch; nothing is generated for it any more. */
export class RequestAbortedError extends DeltagateError {
  constructor() {
    super('BAD_USER_INPUT', 'the request was cancelled');
    this.name = 'RequestAbortedError';
  }
}

export class DeadlineExceededError extends DeltagateError {
  constructor() {
    super('RATE_LIMITED', 'the request did not finish before its deadline; retry later', {
      details: { retryAfterSeconds: 1 },
    });
  }
}

let nextId = 1;

export class Sequence {
  readonly id = nextId++;
  state: SequenceState = 'waiting';
  /** KV-pool slot while it holds one, else −1. */
  kvSlot = -1;
  /** LoRA column slot (0 = none). */
  loraSlot = 0;
  /** Tokens of `prefillIds` already in the cache. */
  fed = 0;
  /** Times its KV cache was lost with a session worker that died (the scheduler bounds it). */
  workerDeaths = 0;
  /** The sampled token the next decode step feeds. */
  pending: number | null = null;
  readonly tokens: number[] = [];
  finish: SequenceFinish = 'length';
  servedMerged = false;
  readonly enqueuedAt = performance.now();
  firstTokenAt: number | null = null;
  readonly result: Promise<SequenceResult>;
  private readonly sampler: Sampler;
  private readonly stream: TextStream | null;
  private readonly eos: Set<number>;
  /** What prefill feeds: the prompt, or after `resume` the prompt and the tokens generated so far. */
  private prefillIds: readonly number[];
  /** Prompt tokens ever fed (a resumed row's prefix is recomputation, not new prompt). */
  private promptFed = 0;
  private settle!: { resolve: (r: SequenceResult) => void; reject: (e: unknown) => void };

  constructor(
    readonly spec: SequenceSpec,
    tokenizer: TextTokenizer | null,
    eosIds: readonly number[],
  ) {
    validateSamplingParams(spec);
    this.sampler = createSampler(spec);
    this.stream = tokenizer ? new TextStream((ids) => tokenizer.decode(ids), [...(spec.stop ?? [])]) : null;
    this.eos = new Set(eosIds);
    this.prefillIds = spec.promptIds;
    this.result = new Promise<SequenceResult>((resolve, reject) => (this.settle = { resolve, reject }));
    // Callers may never await a request they abandoned; the rejection is theirs to see, not unhandled.
    this.result.catch(() => undefined);
  }

  get versionId(): string | null {
    return this.spec.adapter?.versionId ?? null;
  }

  /** Tokens prefill has still to feed. */
  get prefillLeft(): number {
    return this.prefillIds.length - this.fed;
  }

  /** The next `n` tokens prefill feeds (all that are left when `n` is omitted). */
  prefillChunk(n = this.prefillLeft): number[] {
    return this.prefillIds.slice(this.fed, this.fed + n);
  }

  /** `n` prefill tokens reached the cache; returns how many were new prompt and how many recomputed. */
  feed(n: number): { prompt: number; recomputed: number } {
    const end = Math.min(this.fed + n, this.spec.promptIds.length);
    const prompt = Math.max(0, end - Math.max(this.fed, this.promptFed));
    this.promptFed = Math.max(this.promptFed, end);
    this.fed += n;
    return { prompt, recomputed: n - prompt };
  }

  /**
   * Its KV cache is gone (the session worker died): prefill again from the start with the prompt and every
   * token generated so far, so the logits after them give the token the lost step would have. The stream,
   * the sampler's state and the slots are kept: the output continues as if nothing happened.
   */
  resume(): void {
    this.prefillIds = [...this.spec.promptIds, ...this.tokens];
    this.fed = 0;
    this.pending = null;
    this.state = 'prefill';
  }

  /** Tokens of context this row needs at most. */
  get contextNeed(): number {
    return this.spec.promptIds.length + this.spec.maxTokens;
  }

  /** Why the row must leave now (cancelled, past its deadline), or null. `now`: ms since epoch. */
  abortReason(now: number): DeltagateError | null {
    if (this.spec.signal?.aborted) return new RequestAbortedError();
    if (this.spec.deadline !== undefined && now > this.spec.deadline) return new DeadlineExceededError();
    return null;
  }

  /** Samples from the row's logits and records the token; true when the row is finished. */
  accept(logits: Float32Array): boolean {
    const id = this.sampler.sample(logits);
    this.firstTokenAt ??= performance.now();
    this.tokens.push(id);
    let done = false;
    if (this.eos.has(id)) {
      done = true;
      this.finish = 'stop';
    } else if (this.stream) {
      const { delta, stopped } = this.stream.push(id);
      if (delta) this.spec.onDelta?.(delta);
      if (stopped) {
        done = true;
        this.finish = 'stop';
      }
    }
    if (!done && this.tokens.length >= this.spec.maxTokens) {
      done = true;
      this.finish = 'length';
    }
    // EOS or the token limit: flush what the stream held back (a stop sequence already cut it).
    if (done && this.stream && !this.stream.isStopped) {
      const rest = this.stream.finish();
      if (rest) this.spec.onDelta?.(rest);
    }
    this.pending = done ? null : id;
    return done;
  }

  complete(): void {
    this.state = 'finished';
    const p = this.spec.promptIds.length;
    this.settle.resolve({
      promptIds: [...this.spec.promptIds],
      tokenIds: [...this.tokens],
      text: this.stream?.text ?? '',
      finishReason: this.finish,
      usage: { promptTokens: p, completionTokens: this.tokens.length, totalTokens: p + this.tokens.length },
      servedMerged: this.servedMerged,
    });
  }

  fail(err: unknown): void {
    this.state = 'finished';
    this.settle.reject(err);
  }
}
