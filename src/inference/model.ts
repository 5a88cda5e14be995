/**
 * A loaded base model: checkpoint + tokenizer + the onnxruntime sessions built from it on demand — 'base'
 * (no LoRA), 'sideload' (stacked adapters as inputs, one session for every adapter mix) and 'merged' (one
 * session per adapter, W + s·B·A materialized; a small LRU). Every session is the same decode graph with a
 * KV cache (prefill = a decode step of T tokens over an empty cache). The sampling loop is generator.ts.
 */
import { loadCheckpoint, type Checkpoint } from '../engine/formats/checkpoint.js';
import type { ModelConfig } from '../engine/formats/hf-config.js';
import type { LoraAdapter } from '../engine/formats/peft.js';
import { loadTokenizer, type TextTokenizer } from '../engine/formats/tokenizer.js';
import type { HostTensor } from '../engine/ir/types.js';
import { buildLlamaGraph } from '../engine/nn/llama.js';
import {
  prepareWeights,
  type LlamaWeights,
  type MergeOrder,
  type Nf4Execution,
  type Quantization,
} from '../engine/nn/weights.js';
import { EngineSession, type SessionConfig } from '../engine/onnx/session.js';
import { validateAdapter } from './adapter-stack.js';

export type LoraMode = 'merged' | 'sideload';

export interface ModelLoadOptions {
  /** Base weights of the linear modules; default 'none' (fp32). */
  quantize?: Quantization;
  /** With quantize 'nf4': MatMulBnb4 ('bnb4', default) or its exact fp32 dequantization ('dequantized'). */
  nf4Execution?: Nf4Execution;
  /** Merged adapters: Q(W + s·B·A) (default) or dequant(Q(W)) + s·B·A ('quantize-then-merge'). */
  mergeOrder?: MergeOrder;
  session?: SessionConfig;
  int4BlockSize?: number;
  /** MatMulNBits accuracy_level: 4 (default, int8 activations, fast) or 0 (fp32 activations, exact). */
  int4AccuracyLevel?: number;
  /** Merged-adapter sessions kept (each holds a full copy of the weights); default 2. */
  maxMergedSessions?: number;
}

export type SessionKind = { mode: 'base' } | { mode: 'sideload' } | { mode: 'merged'; adapter: LoraAdapter };

export class LoadedModel {
  private baseWeights: LlamaWeights | undefined;
  private readonly sessions = new Map<string, Promise<EngineSession>>();
  private readonly merged = new Map<LoraAdapter, Promise<EngineSession>>();

  private constructor(
    readonly checkpoint: Checkpoint,
    readonly tokenizer: TextTokenizer | null,
    readonly options: ModelLoadOptions,
  ) {}

  static async load(dir: string, options: ModelLoadOptions = {}): Promise<LoadedModel> {
    const [checkpoint, tokenizer] = await Promise.all([loadCheckpoint(dir), loadTokenizer(dir)]);
    return new LoadedModel(checkpoint, tokenizer, options);
  }

  static fromCheckpoint(
    checkpoint: Checkpoint,
    tokenizer: TextTokenizer | null,
    options: ModelLoadOptions = {},
  ) {
    return new LoadedModel(checkpoint, tokenizer, options);
  }

  get config(): ModelConfig {
    return this.checkpoint.config;
  }

  get quantization(): Quantization {
    return this.options.quantize ?? 'none';
  }

  /** Throws AdapterShapeMismatchError / BadInputError when `adapter` does not fit this base. */
  validateAdapter(adapter: LoraAdapter): void {
    validateAdapter(this.config, adapter);
  }

  private weights(): LlamaWeights {
    this.baseWeights ??= prepareWeights(this.checkpoint, {
      quantize: this.quantization,
      nf4Execution: this.options.nf4Execution,
      int4BlockSize: this.options.int4BlockSize,
      int4AccuracyLevel: this.options.int4AccuracyLevel,
    });
    return this.baseWeights;
  }

  private create(weights: LlamaWeights, sideload: boolean): Promise<EngineSession> {
    const { graph } = buildLlamaGraph(this.config, weights, {
      phase: 'decode',
      logits: 'last',
      lora: sideload ? { kind: 'sideload' } : { kind: 'none' },
    });
    return EngineSession.create(graph, this.options.session);
  }

  session(kind: SessionKind): Promise<EngineSession> {
    if (kind.mode !== 'merged') {
      let s = this.sessions.get(kind.mode);
      if (!s) {
        const created = this.create(this.weights(), kind.mode === 'sideload');
        // A failed build is not cached: the next request tries again.
        created.catch(() => this.sessions.delete(kind.mode));
        this.sessions.set(kind.mode, created);
        s = created;
      }
      return s;
    }
    const hit = this.merged.get(kind.adapter);
    if (hit) {
      // Refresh its LRU position.
      this.merged.delete(kind.adapter);
      this.merged.set(kind.adapter, hit);
      return hit;
    }
    this.validateAdapter(kind.adapter);
    const weights = prepareWeights(this.checkpoint, {
      quantize: this.quantization,
      nf4Execution: this.options.nf4Execution,
      mergeAdapter: kind.adapter,
      mergeOrder: this.options.mergeOrder,
      int4BlockSize: this.options.int4BlockSize,
      int4AccuracyLevel: this.options.int4AccuracyLevel,
    });
    const s = this.create(weights, false);
    s.catch(() => this.merged.delete(kind.adapter));
    this.merged.set(kind.adapter, s);
    const max = this.options.maxMergedSessions ?? 2;
    while (this.merged.size > max) {
      const [oldest, old] = this.merged.entries().next().value!;
      this.merged.delete(oldest);
      void old.then((o) => o.release()).catch(() => undefined);
    }
    return s;
  }

  async close(): Promise<void> {
    const all = [...this.sessions.values(), ...this.merged.values()];
    this.sessions.clear();
    this.merged.clear();
    for (const s of all)
      await s.then(
        (x) => x.release(),
        () => undefined,
      );
  }
}

/** int64 tensor from numbers. */
export function int64(shape: number[], xs: ArrayLike<number>): HostTensor {
  return { dtype: 'int64', shape, data: BigInt64Array.from(Array.from(xs), (x) => BigInt(x)) };
}
