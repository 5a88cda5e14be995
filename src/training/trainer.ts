/**
 * `runTraining`: a QLoRA fine-tune from a model directory and a dataset to a PEFT adapter. Data is encoded and
 * checked before any weights load; the training graph (train-graph.ts) runs forward + backward in one ORT call
 * per micro-batch; AdamW, clipping and the schedule run here on the small LoRA tensors. Each step is a pure
 * function of (seed, step, weights, optimizer state), so checkpoints resume exactly. Progress and cancellation
 * go through hooks; storage through a CheckpointStore. The CLI is src/commands/train.ts.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadCheckpoint, modelDirProblem } from '../engine/formats/checkpoint.js';
import type { ModelConfig } from '../engine/formats/hf-config.js';
import type { LoraAdapter } from '../engine/formats/peft.js';
import { writePeftDir } from '../engine/formats/peft.js';
import { loadTokenizer } from '../engine/formats/tokenizer.js';
import type { HostTensor } from '../engine/ir/types.js';
import { prepareWeights, type LlamaWeights } from '../engine/nn/weights.js';
import { EngineSession, executionProvidersFor, type SessionConfig } from '../engine/onnx/session.js';
import { int4BitsPerParameter } from '../engine/quant/int4.js';
import { nf4BitsPerParameter } from '../engine/quant/nf4.js';
import { AdamW, clipGlobalNorm } from './adamw.js';
import { epochBatches, makeBatch, splitValidation, type Batch } from './batching.js';
import { deserializeCheckpoint, serializeCheckpoint, type EvalPoint, type LossPoint } from './checkpoint.js';
import type { CheckpointStore } from './checkpoint-store.js';
import { validateDataset, type DatasetRow } from './dataset-rows.js';
import { encodeRows, type EncodedExample, type EncodeStats } from './encode-rows.js';
import { TrainingCancelledError, TrainingDataError, TrainingOptionsError } from './errors.js';
import { resolveOptions, type ResolvedOptions, type TrainingOptions } from './options.js';
import { deriveSeed, Rng } from './random.js';
import { learningRateAt, warmupStepsFor } from './schedule.js';
import { peakRssBytes, resetPeakRss, settleMemory } from './peak-memory.js';
import { buildTrainGraph, LOSS_OUTPUT, type TrainGraph } from './train-graph.js';

export interface StepEvent {
  type: 'step';
  /** 1-based optimizer step just completed. */
  step: number;
  totalSteps: number;
  /** 0-based epoch of this step. */
  epoch: number;
  loss: number;
  learningRate: number;
  gradNorm: number;
  tokensPerSecond: number;
  etaSeconds: number;
}

export interface EvalEvent {
  type: 'eval';
  step: number;
  epoch: number;
  evalLoss: number;
}

export type TrainingEvent = StepEvent | EvalEvent;

export interface TrainingHooks {
  onProgress?: (event: TrainingEvent) => void;
  /** Checked between steps; an aborted run saves a checkpoint (when a store is given) and throws TrainingCancelledError. */
  signal?: AbortSignal;
  checkpointStore?: CheckpointStore;
}

export interface TrainingMetrics {
  steps: number;
  totalSteps: number;
  epochs: number;
  lossHistory: LossPoint[];
  evalHistory: EvalPoint[];
  finalLoss: number | null;
  evalLoss: number | null;
  /** Real (non-padding) tokens through forward + backward per second of step time, this process. */
  tokensPerSecond: number;
  trainTokens: number;
  /** Peak RSS while training (kernel high-water mark reset after the model is loaded; Linux). */
  peakRssBytes: number;
  /** Whether peakRssBytes covers the steps only (false: it is the process's lifetime peak). */
  peakRssStepsOnly: boolean;
  /** The process's lifetime peak RSS (includes loading and quantizing the fp32 checkpoint). */
  maxRssBytes: number;
  /** RSS when the steps began: the loaded session, before any activation. */
  rssAtStartBytes: number;
  gradientCheckpointing: boolean;
  /** Stored bits per parameter of the frozen linear weights (NF4: codes + double-quantized absmax). */
  bitsPerBaseParameter: number;
  quantize: ResolvedOptions['quantize'];
  trainableParameters: number;
  data: EncodeStats & { trainExamples: number; validationExamples: number };
  resumedFromStep: number | null;
  durationSeconds: number;
}

export interface TrainingResult {
  adapter: LoraAdapter;
  metrics: TrainingMetrics;
}

const INIT_STREAM = 10;
const DROPOUT_STREAM = 11;

function loadRows(data: TrainingOptions['data'], format: TrainingOptions['format']): readonly DatasetRow[] {
  if ('rows' in data) return data.rows;
  const v = validateDataset(data.content, format);
  if (!v.ok) {
    const first = v.errors
      .slice(0, 5)
      .map((e) => `line ${e.line}: ${e.message}`)
      .join('; ');
    throw new TrainingDataError(`the dataset is invalid (${v.errors.length} errors): ${first}`, {
      errors: v.errors.slice(0, 20),
    });
  }
  return v.rows;
}

function bitsPerBaseParameter(weights: LlamaWeights): number {
  let bits = 0;
  let params = 0;
  for (const layer of weights.layers) {
    for (const w of Object.values(layer.linear)) {
      const n = w.kind === 'fp32' ? w.w.length : w.q.n * w.q.k;
      bits +=
        n *
        (w.kind === 'nf4' ? nf4BitsPerParameter(w.q) : w.kind === 'int4' ? int4BitsPerParameter(w.q) : 32);
      params += n;
    }
  }
  return bits / params;
}

/** PEFT init: A ~ kaiming_uniform(a=√5) = U(±1/√in), B = 0, so training starts at the base model. */
function initLora(tg: OpenBase['tg'], rank: number, seed: number): Map<string, Float32Array> {
  const rng = new Rng(deriveSeed(seed, INIT_STREAM));
  const params = new Map<string, Float32Array>();
  for (const p of tg.params) {
    const bound = 1 / Math.sqrt(p.inFeatures);
    const a = new Float32Array(rank * p.inFeatures);
    for (let i = 0; i < a.length; i++) a[i] = (2 * rng.next() - 1) * bound;
    params.set(p.aInput, a);
    params.set(p.bInput, new Float32Array(p.outFeatures * rank));
  }
  return params;
}

function batchFeeds(b: Batch, weightScale: number): Record<string, HostTensor> {
  const { batchSize: B, seqLen: T } = b;
  const positions = new BigInt64Array(B * T);
  const attention = new BigInt64Array(B * T);
  const lossWeights = new Float32Array(B * T);
  for (let i = 0; i < B; i++) {
    for (let t = 0; t < T; t++) positions[i * T + t] = BigInt(t);
  }
  // A row's real inputs are a prefix; the rest is right padding (ids 0, never attended to, never learned).
  let k = 0;
  for (let i = 0; i < B * T; i++) {
    lossWeights[i] = b.mask[i]! * weightScale;
  }
  for (const row of b.rowLengths) {
    for (let t = 0; t < T; t++) attention[k * T + t] = t < row ? 1n : 0n;
    k++;
  }
  const shape = [B, T];
  return {
    input_ids: { dtype: 'int64', shape, data: b.inputIds },
    position_ids: { dtype: 'int64', shape, data: positions },
    attention_mask: { dtype: 'int64', shape, data: attention },
    targets: { dtype: 'int64', shape, data: b.targets },
    loss_weights: { dtype: 'float32', shape, data: lossWeights },
  };
}

function dropoutFeeds(tg: OpenBase['tg'], b: Batch, p: number, rng: Rng | null): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = {};
  for (const { name, width, packed } of tg.dropoutInputs) {
    const n = b.batchSize * b.seqLen * width;
    if (packed) {
      // Bit i%8 of byte ⌊i/8⌋ keeps element i: the same draws, in the same order, as the bool layout.
      const bits = new Uint8Array(n / 8);
      if (rng === null) bits.fill(255);
      else for (let i = 0; i < n; i++) if (rng.next() >= p) bits[i >> 3] |= 1 << (i & 7);
      feeds[name] = { dtype: 'uint8', shape: [b.batchSize, b.seqLen, width / 8], data: bits };
      continue;
    }
    const keep = new Uint8Array(n);
    if (rng === null) keep.fill(1);
    else for (let i = 0; i < n; i++) keep[i] = rng.next() >= p ? 1 : 0;
    feeds[name] = { dtype: 'bool', shape: [b.batchSize, b.seqLen, width], data: keep };
  }
  return feeds;
}

function fingerprint(o: ResolvedOptions, examples: readonly EncodedExample[], modelId: string): string {
  let h = 0;
  for (const ex of examples) for (const id of ex.ids) h = (Math.imul(h, 31) + id) >>> 0;
  return JSON.stringify({
    modelId,
    rank: o.rank,
    alpha: o.alpha,
    dropout: o.dropout,
    modules: o.targetModules,
    quantize: o.quantize,
    epochs: o.epochs,
    lr: o.learningRate,
    batch: o.batchSize,
    accum: o.gradAccum,
    seed: o.seed,
    warmup: o.warmupRatio,
    decay: o.weightDecay,
    clip: o.maxGradNorm,
    n: examples.length,
    h,
  });
}

/**
 * The onnxruntime options of the training session: the configured execution provider ('cuda' → CUDA first,
 * CPU fallback), the thread count, and no CPU arena (a step's activations are freed after each run, and the
 * arena would keep its high-water mark).
 */
export function trainingSessionConfig(
  o: Pick<ResolvedOptions, 'threads' | 'executionProvider'>,
): SessionConfig {
  return {
    enableCpuMemArena: false,
    executionProviders: executionProvidersFor(o.executionProvider),
    ...(o.threads === undefined ? {} : { threads: o.threads }),
  };
}

/** What the loop keeps of the base model: the session and the names/shapes of its LoRA feeds. */
interface OpenBase {
  session: EngineSession;
  tg: Pick<TrainGraph, 'params' | 'dropoutInputs'>;
  bits: number;
  config: ModelConfig;
  baseModelName: string | null;
}

/**
 * Loads, quantizes, builds and creates the session. The checkpoint's tensors are views into one file buffer,
 * so the few fp32 tensors the graph keeps (embeddings, norms) are copied first; once ORT holds its own copy of
 * the initializers, neither the buffer, the fp32 linears, the IR graph nor its emitted bytes stay reachable.
 */
async function openBase(o: ResolvedOptions): Promise<OpenBase> {
  const ckpt = await loadCheckpoint(o.modelDir);
  const weights = prepareWeights(ckpt, { quantize: o.quantize });
  weights.embed = weights.embed.slice();
  weights.finalNorm = weights.finalNorm.slice();
  if (weights.lmHead) weights.lmHead = weights.lmHead.slice();
  for (const layer of weights.layers) {
    layer.inputNorm = layer.inputNorm.slice();
    layer.postNorm = layer.postNorm.slice();
  }
  ckpt.tensors.clear();
  const tg = buildTrainGraph(ckpt.config, weights, {
    rank: o.rank,
    scale: o.alpha / o.rank,
    modules: o.targetModules,
    dropout: o.dropout,
    gradientCheckpointing: o.gradientCheckpointing,
  });
  const session = await EngineSession.create(tg.graph, trainingSessionConfig(o));
  const name = ckpt.rawConfig._name_or_path;
  return {
    session,
    tg: { params: tg.params, dropoutInputs: tg.dropoutInputs },
    bits: bitsPerBaseParameter(weights),
    config: ckpt.config,
    baseModelName: typeof name === 'string' ? name : null,
  };
}

export async function runTraining(
  options: TrainingOptions,
  hooks: TrainingHooks = {},
): Promise<TrainingResult> {
  const started = performance.now();
  const o = resolveOptions(options);
  if (o.resume && !hooks.checkpointStore) throw new TrainingOptionsError('resume needs a checkpoint store');

  // 1. Data first: every user error surfaces before the weights are read.
  const rows = loadRows(o.data, o.format);
  const problem = await modelDirProblem(o.modelDir);
  if (problem !== null) throw new TrainingOptionsError(`model directory ${o.modelDir} ${problem}`);
  const tokenizer = await loadTokenizer(o.modelDir);
  if (!tokenizer)
    throw new TrainingOptionsError(`${o.modelDir} has no tokenizer.json; training needs text → ids`);
  const { examples, stats } = encodeRows(tokenizer, rows, { format: o.format, maxSeqLen: o.maxSeqLen });
  // A separate validation set measures eval loss on it and lets every training row train; otherwise a
  // seeded held-out split of the training rows.
  const { train, validation } =
    o.validationData === undefined
      ? splitValidation(examples, o.validationSplit ?? (examples.length >= 50 ? 0.1 : 0), o.seed)
      : {
          train: examples,
          validation: encodeRows(tokenizer, loadRows(o.validationData, o.format), {
            format: o.format,
            maxSeqLen: o.maxSeqLen,
          }).examples,
        };
  for (const ex of [...train, ...validation]) {
    for (const id of ex.ids)
      if (id >= tokenizer.vocabSize) throw new TrainingDataError(`token id ${id} outside the vocabulary`);
  }

  // 2. Weights → training graph → session. Nothing of the checkpoint outlives this call (see openBase).
  const { session, tg, bits, config, baseModelName } = await openBase(o);
  try {
    // 3. State: fresh, or restored from the latest checkpoint.
    const params = initLora(tg, o.rank, o.seed);
    const adam = new AdamW(params, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: o.weightDecay });
    const fp = fingerprint(o, train, `${config.modelType}:${config.numLayers}x${config.hiddenSize}`);
    let step = 0;
    let tokensBefore = 0;
    let lossHistory: LossPoint[] = [];
    let evalHistory: EvalPoint[] = [];
    let resumedFromStep: number | null = null;
    const store = hooks.checkpointStore;
    if (o.resume && store) {
      const latest = await store.loadLatest();
      if (latest) {
        const c = deserializeCheckpoint(latest.files, fp);
        for (const [name, p] of params) {
          const saved = c.params.get(name);
          if (!saved || saved.length !== p.length) throw new TrainingOptionsError(`checkpoint lacks ${name}`);
          p.set(saved);
        }
        adam.importState(c.optimizer);
        step = c.state.step;
        tokensBefore = c.state.tokens;
        lossHistory = c.state.lossHistory;
        evalHistory = c.state.evalHistory;
        resumedFromStep = step;
      }
    }

    const microPerEpoch = Math.ceil(train.length / o.batchSize);
    const stepsPerEpoch = Math.ceil(microPerEpoch / o.gradAccum);
    const totalSteps = o.epochs * stepsPerEpoch;
    const warmupSteps = warmupStepsFor(totalSteps, o.warmupRatio);
    const lengths = train.map((e) => e.ids.length);
    const loraFeeds: Record<string, HostTensor> = {};
    for (const p of tg.params) {
      loraFeeds[p.aInput] = { dtype: 'float32', shape: [o.rank, p.inFeatures], data: params.get(p.aInput)! };
      loraFeeds[p.bInput] = { dtype: 'float32', shape: [p.outFeatures, o.rank], data: params.get(p.bInput)! };
    }
    const gradNames = tg.params.flatMap((p) => [p.aGrad, p.bGrad]);
    const gradToParam = new Map(
      tg.params.flatMap((p) => [[p.aGrad, p.aInput] as const, [p.bGrad, p.bInput] as const]),
    );

    /**
     * Eval is the inference-mode forward (what serving computes): dropout is the identity. The graph scales
     * every kept adapter input by 1/(1-p) (PEFT's training-mode dropout), so with all-keep masks eval feeds
     * A·(1-p) instead of A: x·(1/(1-p))·((1-p)·A)ᵀ = x·Aᵀ, to float rounding.
     */
    const evalLoraFeeds = (): Record<string, HostTensor> => {
      if (o.dropout === 0) return loraFeeds;
      const feeds = { ...loraFeeds };
      for (const p of tg.params) {
        const a = feeds[p.aInput]!;
        feeds[p.aInput] = { ...a, data: (a.data as Float32Array).map((v) => v * (1 - o.dropout)) };
      }
      return feeds;
    };

    const evaluate = async (): Promise<number> => {
      let targets = 0;
      for (const ex of validation) for (let t = 1; t < ex.mask.length; t++) targets += ex.mask[t]!;
      let loss = 0;
      const lora = evalLoraFeeds();
      for (let i = 0; i < validation.length; i += o.batchSize) {
        const idx = Array.from({ length: Math.min(o.batchSize, validation.length - i) }, (_, k) => i + k);
        const b = makeBatch(validation, idx);
        const feeds = {
          ...batchFeeds(b, 1 / targets),
          ...lora,
          ...dropoutFeeds(tg, b, o.dropout, null),
        };
        // Fetching only the loss prunes the backward: eval is a forward pass.
        loss += Number((await session.run(feeds, [LOSS_OUTPUT]))[LOSS_OUTPUT]!.data[0]);
      }
      return loss;
    };

    const checkpoint = async (): Promise<void> => {
      if (!store) return;
      const epoch = Math.floor(step / stepsPerEpoch);
      await store.save(
        step,
        serializeCheckpoint({
          state: {
            step,
            epoch,
            microBatch: (step % stepsPerEpoch) * o.gradAccum,
            seed: o.seed,
            fingerprint: fp,
            lossHistory,
            evalHistory,
            tokens: tokensBefore + tokensNow,
          },
          params,
          optimizer: adam.exportState(),
        }),
      );
    };

    let tokensNow = 0;
    let stepSeconds = 0;
    const maxRssAtLoad = peakRssBytes();
    // The fp32 checkpoint and the emitted graph bytes are unreachable now; free them before the steps begin.
    await settleMemory();
    const rssAtStart = process.memoryUsage.rss();
    const stepsOnly = resetPeakRss();
    let epochPlan = null as { epoch: number; batches: number[][] } | null;
    const startStep = step;

    while (step < totalSteps) {
      if (hooks.signal?.aborted) {
        if (step > startStep) await checkpoint();
        throw new TrainingCancelledError(step);
      }
      const t0 = performance.now();
      const epoch = Math.floor(step / stepsPerEpoch);
      if (epochPlan?.epoch !== epoch)
        epochPlan = { epoch, batches: epochBatches(lengths, o.batchSize, o.seed, epoch) };
      const within = step % stepsPerEpoch;
      const micro = epochPlan.batches
        .slice(within * o.gradAccum, (within + 1) * o.gradAccum)
        .map((idx) => makeBatch(train, idx));
      const stepTargets = micro.reduce((s, b) => s + b.targetTokens, 0);

      const grads = new Map<string, Float32Array>();
      for (const name of params.keys()) grads.set(name, new Float32Array(params.get(name)!.length));
      let loss = 0;
      let tokens = 0;
      for (const [k, b] of micro.entries()) {
        const rng = o.dropout > 0 ? new Rng(deriveSeed(o.seed, DROPOUT_STREAM, step, k)) : null;
        const feeds = {
          ...batchFeeds(b, 1 / stepTargets),
          ...loraFeeds,
          ...dropoutFeeds(tg, b, o.dropout, rng),
        };
        const out = await session.run(feeds, [LOSS_OUTPUT, ...gradNames]);
        loss += Number(out[LOSS_OUTPUT]!.data[0]);
        for (const gName of gradNames) {
          const acc = grads.get(gradToParam.get(gName)!)!;
          const d = out[gName]!.data as Float32Array;
          for (let i = 0; i < acc.length; i++) acc[i] += d[i]!;
        }
        tokens += b.tokens;
      }
      const gradNorm = clipGlobalNorm(grads, o.maxGradNorm);
      const lr = learningRateAt(step, { peakLr: o.learningRate, totalSteps, warmupSteps });
      adam.step(grads, lr);
      step += 1;
      tokensNow += tokens;
      stepSeconds += (performance.now() - t0) / 1000;
      lossHistory.push({ step, loss, learningRate: lr });
      const perStep = stepSeconds / (step - startStep);
      hooks.onProgress?.({
        type: 'step',
        step,
        totalSteps,
        epoch,
        loss,
        learningRate: lr,
        gradNorm,
        tokensPerSecond: tokensNow / stepSeconds,
        etaSeconds: perStep * (totalSteps - step),
      });

      const epochEnd = step % stepsPerEpoch === 0;
      if (
        validation.length > 0 &&
        (o.evalEvery ? step % o.evalEvery === 0 || step === totalSteps : epochEnd)
      ) {
        const evalLoss = await evaluate();
        evalHistory.push({ step, loss: evalLoss });
        hooks.onProgress?.({ type: 'eval', step, epoch, evalLoss });
      }
      if (o.checkpointEvery > 0 && step % o.checkpointEvery === 0 && step < totalSteps) await checkpoint();
    }

    const adapter: LoraAdapter = {
      rank: o.rank,
      alpha: o.alpha,
      useRslora: false,
      scale: o.alpha / o.rank,
      dropout: o.dropout,
      targetModules: [...o.targetModules],
      baseModelName,
      weights: new Map(tg.params.map((p) => [p.key, { a: params.get(p.aInput)!, b: params.get(p.bInput)! }])),
    };
    const metrics: TrainingMetrics = {
      steps: step,
      totalSteps,
      epochs: o.epochs,
      lossHistory,
      evalHistory,
      finalLoss: lossHistory.at(-1)?.loss ?? null,
      evalLoss: evalHistory.at(-1)?.loss ?? null,
      tokensPerSecond: stepSeconds > 0 ? tokensNow / stepSeconds : 0,
      trainTokens: tokensBefore + tokensNow,
      peakRssBytes: peakRssBytes(),
      peakRssStepsOnly: stepsOnly,
      maxRssBytes: Math.max(maxRssAtLoad, process.resourceUsage().maxRSS * 1024),
      rssAtStartBytes: rssAtStart,
      gradientCheckpointing: o.gradientCheckpointing,
      bitsPerBaseParameter: bits,
      quantize: o.quantize,
      trainableParameters: [...params.values()].reduce((s, p) => s + p.length, 0),
      data: { ...stats, trainExamples: train.length, validationExamples: validation.length },
      resumedFromStep,
      durationSeconds: (performance.now() - started) / 1000,
    };
    if (o.outDir) {
      await mkdir(o.outDir, { recursive: true });
      await writePeftDir(o.outDir, adapter);
      await writeFile(join(o.outDir, 'metrics.json'), JSON.stringify(metrics, null, 2) + '\n');
    }
    return { adapter, metrics };
  } finally {
    await session.release();
  }
}
