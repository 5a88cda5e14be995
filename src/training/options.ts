/**
 * Training options: the public shape `runTraining` takes, defaults that work on the built-in model, and one
 * validation pass that turns bad values into TrainingOptionsError before any data or weights are touched.
 * The CLI (src/commands/train.ts) parses flags into this; the job handler builds it from GraphQL input.
 */
import { LINEAR_MODULES, isLinearModule, type LinearModule } from '../engine/formats/hf-config.js';
import type { Quantization } from '../engine/nn/weights.js';
import type { ExecutionProvider } from '../engine/onnx/session.js';
import type { DatasetFormat, DatasetRow } from './dataset-rows.js';
import { TrainingOptionsError } from './errors.js';

export interface TrainingOptions {
  /** A Hugging Face model directory (config.json, *.safetensors, tokenizer.json). */
  modelDir: string;
  /** Validated rows, or raw JSONL content (validated here with `validateDataset`). */
  data: { rows: readonly DatasetRow[] } | { content: string | Uint8Array };
  format: DatasetFormat;
  /** When set, the PEFT adapter directory and metrics.json are written here. */
  outDir?: string;
  /** LoRA rank (default 8). */
  rank?: number;
  /** LoRA alpha (default 16): scale = alpha / rank. */
  alpha?: number;
  /** Dropout on the adapter input (default 0.05). */
  dropout?: number;
  /** Default: all seven projections. */
  targetModules?: readonly LinearModule[];
  /** Default 3. */
  epochs?: number;
  /** Peak learning rate (default 2e-4). */
  learningRate?: number;
  /** Examples per micro-batch (default 4). */
  batchSize?: number;
  /** Micro-batches per optimizer step (default 1). */
  gradAccum?: number;
  /** Tokens per example after truncation (default 512). */
  maxSeqLen?: number;
  /** Fraction of steps spent warming up (default 0.03). */
  warmupRatio?: number;
  /** AdamW decoupled weight decay (default 0). */
  weightDecay?: number;
  /** Global gradient-norm clip; 0 disables (default 1). */
  maxGradNorm?: number;
  /** Frozen base format (default 'nf4'). */
  quantize?: Quantization;
  /** Seeds init, split, shuffling and dropout (default 0). */
  seed?: number;
  /** Checkpoint every N optimizer steps through the store; 0 = never (default 0). */
  checkpointEvery?: number;
  /** Held-out fraction for eval loss; default 0.1 when there are ≥ 50 examples, else 0. */
  validationSplit?: number;
  /** A separate validation set (same format) to measure eval loss on; then all of `data` trains and no split
   * is taken. */
  validationData?: { rows: readonly DatasetRow[] } | { content: string | Uint8Array };
  /** Evaluate every N steps (default: at the end of each epoch). */
  evalEvery?: number;
  /** Continue from the store's latest checkpoint when there is one (default false). */
  resume?: boolean;
  /** Recompute activations in the backward instead of keeping them (default true, as QLoRA does). */
  gradientCheckpointing?: boolean;
  /** ORT intra-op threads (default: ORT's choice). */
  threads?: number;
  /** onnxruntime execution provider (default 'cpu'; 'cuda' tries CUDA first, then the CPU). */
  executionProvider?: ExecutionProvider;
}

export type ResolvedOptions = Required<
  Omit<TrainingOptions, 'outDir' | 'validationSplit' | 'validationData' | 'evalEvery' | 'threads'>
> &
  Pick<TrainingOptions, 'outDir' | 'validationSplit' | 'validationData' | 'evalEvery' | 'threads'>;

export const TRAINING_DEFAULTS = {
  rank: 8,
  alpha: 16,
  dropout: 0.05,
  targetModules: LINEAR_MODULES,
  epochs: 3,
  learningRate: 2e-4,
  batchSize: 4,
  gradAccum: 1,
  maxSeqLen: 512,
  warmupRatio: 0.03,
  weightDecay: 0,
  maxGradNorm: 1,
  quantize: 'nf4',
  seed: 0,
  checkpointEvery: 0,
  resume: false,
  gradientCheckpointing: true,
  executionProvider: 'cpu',
} as const satisfies Partial<TrainingOptions>;

function need(cond: boolean, message: string): void {
  if (!cond) throw new TrainingOptionsError(message);
}

const isInt = (x: number) => Number.isSafeInteger(x);

export function resolveOptions(o: TrainingOptions): ResolvedOptions {
  const r: ResolvedOptions = {
    ...TRAINING_DEFAULTS,
    ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)),
  } as unknown as ResolvedOptions;
  need(isInt(r.rank) && r.rank > 0 && r.rank <= 1024, `rank must be an integer in [1, 1024], got ${r.rank}`);
  need(Number.isFinite(r.alpha) && r.alpha > 0, `alpha must be > 0, got ${r.alpha}`);
  need(r.dropout >= 0 && r.dropout < 1, `dropout must be in [0, 1), got ${r.dropout}`);
  need(isInt(r.epochs) && r.epochs >= 1, `epochs must be a positive integer, got ${r.epochs}`);
  need(
    Number.isFinite(r.learningRate) && r.learningRate > 0,
    `learning rate must be > 0, got ${r.learningRate}`,
  );
  need(isInt(r.batchSize) && r.batchSize >= 1, `batch size must be a positive integer, got ${r.batchSize}`);
  need(
    isInt(r.gradAccum) && r.gradAccum >= 1,
    `grad accumulation must be a positive integer, got ${r.gradAccum}`,
  );
  need(
    isInt(r.maxSeqLen) && r.maxSeqLen >= 2,
    `max sequence length must be an integer ≥ 2, got ${r.maxSeqLen}`,
  );
  need(r.warmupRatio >= 0 && r.warmupRatio < 1, `warm-up ratio must be in [0, 1), got ${r.warmupRatio}`);
  need(r.weightDecay >= 0, `weight decay must be ≥ 0, got ${r.weightDecay}`);
  need(r.maxGradNorm >= 0, `max grad norm must be ≥ 0, got ${r.maxGradNorm}`);
  need(['nf4', 'int4', 'none'].includes(r.quantize), `quantize must be nf4, int4 or none, got ${r.quantize}`);
  need(isInt(r.seed), `seed must be an integer, got ${r.seed}`);
  need(
    ['cpu', 'cuda'].includes(r.executionProvider),
    `execution provider must be cpu or cuda, got ${r.executionProvider}`,
  );
  need(isInt(r.checkpointEvery) && r.checkpointEvery >= 0, `checkpoint-every must be an integer ≥ 0`);
  need(r.targetModules.length > 0, 'target modules must not be empty');
  for (const m of r.targetModules) {
    need(
      isLinearModule(m),
      `unknown target module ${String(m)}; expected some of ${LINEAR_MODULES.join(', ')}`,
    );
  }
  // PEFT lists target modules as a set; keep LINEAR_MODULES order so outputs are deterministic.
  r.targetModules = LINEAR_MODULES.filter((m) => r.targetModules.includes(m));
  if (r.validationSplit !== undefined)
    need(r.validationSplit >= 0 && r.validationSplit < 1, 'validation split must be in [0, 1)');
  need(
    r.validationSplit === undefined || r.validationData === undefined,
    'give a validation split or a validation dataset, not both',
  );
  if (r.evalEvery !== undefined)
    need(isInt(r.evalEvery) && r.evalEvery >= 1, 'eval-every must be a positive integer');
  return r;
}
