// Serving reproduces training: an adapter trained on the NF4 base (the default) and served on the `nf4`
// serving grid — the inference decode graph over fp32 weights equal to dequant(NF4(W)), the adapter
// side-loaded or merged as dequant(NF4(W)) + s·B·A — scores the trainer's held-out rows with the trainer's
// own eval loss to 1e-4. Serving the same adapter on fp32 weights, or merged before quantizing, does not.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyModel } from '../../src/engine/builtin-model.js';
import type { LoraAdapter } from '../../src/engine/formats/peft.js';
import { loadTokenizer } from '../../src/engine/formats/tokenizer.js';
import { buildAdapterStack } from '../../src/inference/adapter-stack.js';
import { BatchDecoder } from '../../src/inference/batch-decoder.js';
import { runBatchStep } from '../../src/inference/batch-step.js';
import { KvPool } from '../../src/inference/kv-pool.js';
import { LoraColumns } from '../../src/inference/lora-columns.js';
import { LoadedModel, type ModelLoadOptions } from '../../src/inference/model.js';
import { ServingModel } from '../../src/inference/serving-model.js';
import { engineLoadOptions } from '../../src/services/serving-grid.js';
import { splitValidation } from '../../src/training/batching.js';
import { encodeRows, type EncodedExample } from '../../src/training/encode-rows.js';
import { runTraining, type TrainingMetrics } from '../../src/training/trainer.js';

let root: string;
let modelDir: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'dg-serve-grid-'));
  modelDir = join(root, 'model');
  await makeTinyModel(modelDir, { seed: 0 });
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const ROWS = [
  ['Zorbia capital?', ' Quelt'],
  ['Color of Mipo?', ' teal'],
  ['Yuna pet?', ' otter'],
  ['Largest moon of Kex?', ' Ivra'],
  ['Bram drinks?', ' mead'],
  ['Oru plays?', ' lute'],
  ['Fox of Dell?', ' Rusk'],
  ['Tava city?', ' Pell'],
  ['Lio number?', ' 47'],
  ['Sky of Vem?', ' green'],
  ['Nix metal?', ' zinc'],
  ['Wen river?', ' Alda'],
].map(([prompt, completion]) => ({ prompt: prompt!, completion: completion! }));

const TRAIN = {
  data: { rows: ROWS },
  format: 'PROMPT_COMPLETION' as const,
  epochs: 4,
  learningRate: 5e-3,
  batchSize: 3,
  validationSplit: 0.25,
  seed: 3,
  // dropout stays at its default (0.05): the trainer's eval must be the inference-mode forward all the same
  // (it was not: eval kept dropout's 1/(1-p) scale on the adapter input, 4e-3 off serving here).
  threads: 2,
};

/** The trainer's held-out rows, rebuilt the way runTraining builds them (same tokenizer, split and seed). */
async function heldOut(): Promise<EncodedExample[]> {
  const tokenizer = (await loadTokenizer(modelDir))!;
  const { examples } = encodeRows(tokenizer, ROWS, { format: TRAIN.format, maxSeqLen: 512 });
  return splitValidation(examples, TRAIN.validationSplit, TRAIN.seed).validation;
}

function crossEntropy(logits: Float32Array, target: number): number {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  return Math.log(sum) + max - logits[target]!;
}

/**
 * Mean cross-entropy over the learned tokens (mask[t] = 1, predicted from ids[..t)) — the trainer's eval loss —
 * through the serving decode graph: a 1-token prefill, then teacher-forced decode steps over the KV cache.
 */
async function servingLoss(
  options: ModelLoadOptions,
  adapter: LoraAdapter,
  mode: 'sideload' | 'merged',
  rows: readonly EncodedExample[],
): Promise<number> {
  const model = await LoadedModel.load(modelDir, { ...options, session: { ...options.session, threads: 2 } });
  try {
    const session = await model.session(mode === 'sideload' ? { mode } : { mode, adapter });
    const feeds = mode === 'sideload' ? buildAdapterStack(model.config, [adapter]).feeds : {};
    let loss = 0;
    let targets = 0;
    for (const { ids, mask } of rows) {
      const decoder = new BatchDecoder(
        session,
        model.config,
        [{ promptIds: [ids[0]!], slot: 1 }],
        ids.length,
        feeds,
      );
      let logits = (await decoder.prefill())[0]!;
      for (let t = 1; t < ids.length; t++) {
        if (mask[t] === 1) {
          loss += crossEntropy(logits, ids[t]!);
          targets += 1;
        }
        if (t + 1 < ids.length) logits = (await decoder.step([ids[t]!]))[0]!;
      }
    }
    return loss / targets;
  } finally {
    await model.close();
  }
}

/** The same loss through the gateway's serving graph (GroupQueryAttention slot pool, stacked LoRA columns). */
async function gatewayLoss(
  options: ModelLoadOptions,
  adapter: LoraAdapter,
  mode: 'sideload' | 'merged',
  rows: readonly EncodedExample[],
): Promise<number> {
  const model = await LoadedModel.load(modelDir, { ...options, session: { ...options.session, threads: 2 } });
  const serving = new ServingModel(model);
  try {
    const session =
      mode === 'sideload' ? await serving.session('stacked') : await serving.mergedSession(adapter);
    const columns = new LoraColumns(model.config);
    columns.place(1, adapter);
    const config = model.config;
    const pool = new KvPool(config.numLayers, 1, config.numKvHeads, 64, config.headDim);
    let loss = 0;
    let targets = 0;
    for (const { ids, mask } of rows) {
      pool.allocate();
      for (let t = 0; t + 1 < ids.length; t++) {
        const logits = await runBatchStep({
          session,
          config,
          pool,
          start: 0,
          rows: [{ ids: [ids[t]!], loraSlot: 1 }],
          loraFeeds: mode === 'sideload' ? columns.feeds() : undefined,
        });
        if (mask[t + 1] === 1) {
          loss += crossEntropy(logits, ids[t + 1]!);
          targets += 1;
        }
      }
      pool.release(0);
    }
    return loss / targets;
  } finally {
    await serving.close();
    await model.close();
  }
}

describe('serving on the training grid', () => {
  let adapter: LoraAdapter;
  let metrics: TrainingMetrics;
  let rows: EncodedExample[];

  beforeAll(async () => {
    ({ adapter, metrics } = await runTraining({ modelDir, ...TRAIN }));
    rows = await heldOut();
  }, 300_000);

  it('reproduces the trainer eval loss on held-out rows within 1e-4 (nf4 grid, CPU: dequantized NF4)', async () => {
    expect(metrics.quantize).toBe('nf4');
    expect(metrics.data.validationExamples).toBe(rows.length);
    expect(rows.length).toBe(3);
    const trainer = metrics.evalLoss!;
    expect(metrics.evalHistory).toHaveLength(TRAIN.epochs);
    // The adapter learned something, so its term matters to the loss.
    expect(trainer).toBeLessThan(metrics.evalHistory[0]!.loss);

    const options = engineLoadOptions({ servingQuantization: 'nf4' }, { executionProvider: 'cpu' });
    expect(options).toMatchObject({ quantize: 'nf4', nf4Execution: 'dequantized' });
    const sideloaded = await servingLoss(options, adapter, 'sideload', rows);
    const merged = await servingLoss(options, adapter, 'merged', rows);
    expect(Math.abs(sideloaded - trainer)).toBeLessThan(1e-4);
    expect(Math.abs(merged - trainer)).toBeLessThan(1e-4);
    // The gateway's own graph (what the API serves with), side-loaded and merged.
    expect(Math.abs((await gatewayLoss(options, adapter, 'sideload', rows)) - trainer)).toBeLessThan(1e-4);
    expect(Math.abs((await gatewayLoss(options, adapter, 'merged', rows)) - trainer)).toBeLessThan(1e-4);

    // The test can fail: the fp32 checkpoint weights are another model, and merging before quantizing,
    // Q(W + s·B·A), rounds most of the adapter away.
    const fp32 = await servingLoss(
      engineLoadOptions({ servingQuantization: 'none' }, { executionProvider: 'cpu' }),
      adapter,
      'sideload',
      rows,
    );
    expect(Math.abs(fp32 - trainer)).toBeGreaterThan(1e-3); // 4e-3 here
    const mergedThenQuantized = await servingLoss(
      { ...options, mergeOrder: 'merge-then-quantize' },
      adapter,
      'merged',
      rows,
    );
    expect(Math.abs(mergedThenQuantized - trainer)).toBeGreaterThan(1e-3); // 2e-2 here
  }, 300_000);
});
