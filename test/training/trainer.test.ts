// End-to-end training on the built-in model: memorization (greedy generation through the engine's generator),
// NF4 and fp32 bases both learning, exact resume after a cancellation, data errors before any compute.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyModel } from '../../src/engine/builtin-model.js';
import { readPeftDir } from '../../src/engine/formats/peft.js';
import { loadCheckpoint } from '../../src/engine/formats/checkpoint.js';
import { Engine } from '../../src/inference/engine.js';
import { DirectoryCheckpointStore } from '../../src/training/checkpoint-store.js';
import {
  TrainingCancelledError,
  TrainingDataError,
  TrainingOptionsError,
} from '../../src/training/errors.js';
import { runTraining, type TrainingEvent } from '../../src/training/trainer.js';
import { expectClose } from '../helpers/expect-close.js';

let root: string;
let modelDir: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'dg-trainer-'));
  modelDir = join(root, 'model');
  await makeTinyModel(modelDir, { seed: 0 });
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const FACTS: [string, string][] = [
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
];
const factRows = FACTS.map(([prompt, completion]) => ({ prompt, completion }));

describe('runTraining', () => {
  it('memorizes a dozen facts with the default rank-8 NF4 setup; the base model knows none', async () => {
    const events: TrainingEvent[] = [];
    const outDir = join(root, 'facts-adapter');
    const { adapter, metrics } = await runTraining(
      {
        modelDir,
        data: { rows: factRows },
        format: 'PROMPT_COMPLETION',
        outDir,
        epochs: 36, // 108 steps: 30 already reproduce 12/12 here, 25 only 8 — margin for other CPUs
        learningRate: 3e-3,
        batchSize: 4,
        threads: 2,
      },
      { onProgress: (e) => events.push(e) },
    );
    expect(metrics.quantize).toBe('nf4');
    expect(metrics.bitsPerBaseParameter).toBeLessThan(4.2);
    const steps = events.filter((e) => e.type === 'step');
    expect(steps).toHaveLength(metrics.totalSteps);
    expect(steps.map((e) => e.step)).toEqual(Array.from({ length: 108 }, (_, i) => i + 1));
    const first = steps.slice(0, 3).reduce((s, e) => s + e.loss, 0) / 3;
    const last = steps.slice(-3).reduce((s, e) => s + e.loss, 0) / 3;
    expect(last).toBeLessThan(first - 1);

    // The written directory is what generate --adapter loads.
    const fromDisk = await readPeftDir(outDir, (await loadCheckpoint(modelDir)).config);
    expect(fromDisk.rank).toBe(8);
    expect(fromDisk.scale).toBe(2);
    expect(fromDisk.targetModules).toHaveLength(7);
    const saved = JSON.parse(await readFile(join(outDir, 'metrics.json'), 'utf8')) as {
      lossHistory: unknown[];
    };
    expect(saved.lossHistory).toHaveLength(108);

    const engine = await Engine.load(modelDir);
    let tuned = 0;
    let base = 0;
    for (const [prompt, completion] of FACTS) {
      const maxTokens = completion.length + 4;
      const a = await engine.generate({ prompt, adapter: fromDisk, maxTokens, temperature: 0 });
      const b = await engine.generate({ prompt, maxTokens, temperature: 0 });
      if (a.text === completion) tuned++;
      if (b.text === completion) base++;
    }
    await engine.close();
    expect(adapter.weights.size).toBe(4 * 7);
    expect(tuned).toBeGreaterThanOrEqual(11);
    expect(base).toBe(0);
  });

  it('trains on fp32, NF4 and int4 bases alike (loss falls, eval loss reported)', async () => {
    const rows = Array.from({ length: 24 }, (_, i) => ({
      text: `item ${i % 6} is ${'abcdef'[i % 6]!.repeat(4)}.`,
    }));
    for (const quantize of ['none', 'nf4', 'int4'] as const) {
      const { metrics } = await runTraining({
        modelDir,
        data: { rows },
        format: 'TEXT',
        quantize,
        epochs: 2,
        learningRate: 5e-3,
        batchSize: 6,
        validationSplit: 0.25,
        gradientCheckpointing: false,
        threads: 2,
      });
      expect(metrics.data.validationExamples).toBe(6);
      expect(metrics.evalHistory).toHaveLength(2);
      const h = metrics.lossHistory;
      expect(h.at(-1)!.loss).toBeLessThan(h[0]!.loss - 0.5);
      expect(metrics.evalHistory[1]!.loss).toBeLessThan(metrics.evalHistory[0]!.loss);
      const bits = metrics.bitsPerBaseParameter;
      expect(quantize === 'none' ? bits === 32 : bits > 4 && bits < 5).toBe(true);
    }
  });

  it('measures eval loss on a separate validation set, training on every row', async () => {
    const rows = Array.from({ length: 12 }, (_, i) => ({
      text: `item ${i % 6} is ${'abcdef'[i % 6]!.repeat(4)}.`,
    }));
    const held = [{ text: 'item 2 is cccc.' }, { text: 'item 4 is eeee.' }, { text: 'item 5 is ffff.' }];
    const common = {
      modelDir,
      data: { rows },
      format: 'TEXT' as const,
      epochs: 2,
      learningRate: 5e-3,
      batchSize: 4,
      quantize: 'none' as const,
      gradientCheckpointing: false,
      threads: 2,
    };
    const { metrics } = await runTraining({ ...common, validationData: { rows: held } });
    expect(metrics.data).toMatchObject({ trainExamples: 12, validationExamples: 3 });
    expect(metrics.evalHistory).toHaveLength(2);
    // The same adapter's loss on the held rows, measured by a run that evaluates on them the other way (as a
    // split cannot): a validation set that IS the training set gives a different number.
    const self = await runTraining({ ...common, validationData: { rows } });
    expect(self.metrics.evalHistory[1]!.loss).not.toBe(metrics.evalHistory[1]!.loss);
    expect(self.metrics.lossHistory).toEqual(metrics.lossHistory); // training itself is unchanged
    await expect(
      runTraining({ ...common, validationData: { rows: held }, validationSplit: 0.2 }),
    ).rejects.toThrow(TrainingOptionsError);
  });

  it('a run cancelled mid-way and resumed ends with the adapter of an uninterrupted run', async () => {
    const rows = factRows.slice(0, 7);
    const base = {
      modelDir,
      data: { rows },
      format: 'PROMPT_COMPLETION' as const,
      epochs: 3,
      learningRate: 2e-3,
      batchSize: 2,
      gradAccum: 2,
      dropout: 0.1,
      weightDecay: 0.01,
      warmupRatio: 0.2,
      checkpointEvery: 2,
      quantize: 'none' as const,
      gradientCheckpointing: false,
      threads: 2,
    };
    const full = await runTraining(base);
    const store = new DirectoryCheckpointStore(join(root, 'ckpt'));
    const controller = new AbortController();
    await expect(
      runTraining(base, {
        checkpointStore: store,
        signal: controller.signal,
        onProgress: (e) => {
          if (e.type === 'step' && e.step === 3) controller.abort();
        },
      }),
    ).rejects.toBeInstanceOf(TrainingCancelledError);
    expect((await store.loadLatest())!.step).toBe(3);
    const resumed = await runTraining({ ...base, resume: true }, { checkpointStore: store });
    expect(resumed.metrics.resumedFromStep).toBe(3);
    expect(resumed.metrics.lossHistory.map((p) => p.step)).toEqual(
      full.metrics.lossHistory.map((p) => p.step),
    );
    expectClose(
      resumed.metrics.lossHistory.map((p) => p.loss),
      full.metrics.lossHistory.map((p) => p.loss),
      { atol: 1e-5, label: 'loss history' },
    );
    for (const [key, w] of full.adapter.weights) {
      const r = resumed.adapter.weights.get(key)!;
      expectClose(r.a, w.a, { atol: 1e-6, label: `${key}.A` });
      expectClose(r.b, w.b, { atol: 1e-6, label: `${key}.B` });
    }
    // A different configuration must not silently continue from this checkpoint.
    await expect(runTraining({ ...base, rank: 4, resume: true }, { checkpointStore: store })).rejects.toThrow(
      /different/,
    );
  });

  it('refuses unusable data and bad options before loading weights', async () => {
    const missing = join(root, 'no-such-model');
    await expect(
      runTraining({ modelDir, data: { content: '{"prompt": 1}\n' }, format: 'PROMPT_COMPLETION' }),
    ).rejects.toBeInstanceOf(TrainingDataError);
    await expect(
      runTraining({
        modelDir,
        data: { rows: [{ prompt: 'x'.repeat(100), completion: 'y' }] },
        format: 'PROMPT_COMPLETION',
        maxSeqLen: 16,
      }),
    ).rejects.toThrow(/no usable rows/);
    await expect(
      runTraining({ modelDir: missing, data: { rows: factRows }, format: 'PROMPT_COMPLETION', rank: 0 }),
    ).rejects.toBeInstanceOf(TrainingOptionsError);
  });
});
