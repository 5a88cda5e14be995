/**
 * KV-cache decoding against the float64 reference (src/engine/nn/reference.ts): prompts of different lengths
 * (left padding), per-row positions, decode steps == full recomputation; side-loaded mixed batches == each row
 * alone == the reference with the adapter unmerged; merged == side-loaded; NF4/int4 logit error bounded.
 */
import { describe, expect, it } from 'vitest';
import type { Checkpoint } from '../../src/engine/formats/checkpoint.js';
import type { LoraAdapter } from '../../src/engine/formats/peft.js';
import { ReferenceModel } from '../../src/engine/nn/reference.js';
import { buildAdapterStack } from '../../src/inference/adapter-stack.js';
import { BatchDecoder } from '../../src/inference/batch-decoder.js';
import { LoadedModel, type SessionKind } from '../../src/inference/model.js';
import { LINEAR_MODULES, linearShape, weightName } from '../../src/engine/formats/hf-config.js';
import { dequantizeInt4, quantizeInt4 } from '../../src/engine/quant/int4.js';
import { dequantizeNf4, quantizeNf4 } from '../../src/engine/quant/nf4.js';
import { expectClose } from '../helpers/expect-close.js';
import { randomAdapter, randomCheckpoint } from '../engine/nn/fixtures.js';

interface RowSpec {
  prompt: number[];
  adapter?: LoraAdapter;
}

/** Runs prefill + the given forced tokens; returns per row the logits of every step. */
async function runEngine(
  model: LoadedModel,
  kind: SessionKind,
  rows: RowSpec[],
  forced: number[][],
): Promise<Float32Array[][]> {
  const adapters = [...new Set(rows.map((r) => r.adapter).filter((a): a is LoraAdapter => !!a))];
  const stack = kind.mode === 'sideload' ? buildAdapterStack(model.config, adapters).feeds : {};
  const session = await model.session(kind);
  const steps = forced[0]!.length;
  const dec = new BatchDecoder(
    session,
    model.config,
    rows.map((r) => ({ promptIds: r.prompt, slot: r.adapter ? adapters.indexOf(r.adapter) + 1 : 0 })),
    Math.max(...rows.map((r) => r.prompt.length)) + steps,
    stack,
  );
  const out: Float32Array[][] = rows.map(() => []);
  let logits = await dec.prefill();
  for (let s = 0; ; s++) {
    logits.forEach((l, b) => out[b]!.push(l));
    if (s === steps) break;
    logits = await dec.step(forced.map((f) => f[s]!));
  }
  return out;
}

function runReference(ckpt: Checkpoint, row: RowSpec, forced: number[]): ArrayLike<number>[] {
  const m = new ReferenceModel(ckpt.config, ckpt.tensors, row.adapter);
  const V = ckpt.config.vocabSize;
  const out: ArrayLike<number>[] = [m.forward(row.prompt).slice(-V)];
  for (const t of forced) out.push(m.step(t));
  return out;
}

function expectRows(
  actual: Float32Array[][],
  expected: ArrayLike<number>[][],
  label: string,
  atol = 1e-4,
): void {
  actual.forEach((steps, b) =>
    steps.forEach((l, s) =>
      expectClose(l, expected[b]![s]!, { atol, rtol: 1e-4, label: `${label} row ${b} step ${s}` }),
    ),
  );
}

/** The checkpoint with every linear weight replaced by its 4-bit round trip. */
function withDequantizedLinears(ckpt: Checkpoint, q: 'nf4' | 'int4'): Checkpoint {
  const tensors = new Map(ckpt.tensors);
  for (let l = 0; l < ckpt.config.numLayers; l++) {
    for (const m of LINEAR_MODULES) {
      const { inFeatures: k, outFeatures: n } = linearShape(ckpt.config, m);
      const t = tensors.get(weightName(l, m))!;
      const data =
        q === 'nf4' ? dequantizeNf4(quantizeNf4(t.data, n, k)) : dequantizeInt4(quantizeInt4(t.data, n, k));
      tensors.set(weightName(l, m), { shape: t.shape, data });
    }
  }
  return { ...ckpt, tensors };
}

/** ‖actual − expected‖ / ‖expected‖ over all rows and steps. */
function relativeError(actual: Float32Array[][], expected: ArrayLike<number>[][]): number {
  let sq = 0;
  let ss = 0;
  actual.forEach((steps, b) =>
    steps.forEach((l, s) =>
      l.forEach((v, i) => {
        const e = expected[b]![s]![i]!;
        sq += (v - e) ** 2;
        ss += e * e;
      }),
    ),
  );
  return Math.sqrt(sq / ss);
}

const ROWS: RowSpec[] = [{ prompt: [1, 5, 9, 13, 2, 7, 30] }, { prompt: [1, 22] }, { prompt: [3, 3, 3, 3] }];
const FORCED = [
  [4, 8, 15, 16, 23],
  [42 % 40, 0, 1, 2, 3],
  [39, 38, 37, 36, 35],
];

describe('BatchDecoder (KV cache) vs reference', () => {
  it('prefill + decode with left padding and per-row positions, GQA 2', async () => {
    const ckpt = randomCheckpoint({}, 11);
    const model = LoadedModel.fromCheckpoint(ckpt, null, { session: { threads: 1 } });
    const actual = await runEngine(model, { mode: 'base' }, ROWS, FORCED);
    expectRows(
      actual,
      ROWS.map((r, b) => runReference(ckpt, r, FORCED[b]!)),
      'base',
    );
    await model.close();
  });

  it('qwen2 biases, untied head, GQA 4', async () => {
    const ckpt = randomCheckpoint(
      { model_type: 'qwen2', num_key_value_heads: 1, tie_word_embeddings: false },
      12,
    );
    const model = LoadedModel.fromCheckpoint(ckpt, null, { session: { threads: 1 } });
    const actual = await runEngine(model, { mode: 'base' }, ROWS, FORCED);
    expectRows(
      actual,
      ROWS.map((r, b) => runReference(ckpt, r, FORCED[b]!)),
      'qwen2',
    );
    await model.close();
  });

  it('a mixed side-load batch equals each row alone and the unmerged reference', async () => {
    const ckpt = randomCheckpoint({}, 13);
    const a = randomAdapter(ckpt.config, 4, 100);
    const b = randomAdapter(ckpt.config, 2, 101, ['q_proj', 'v_proj', 'down_proj'], 8);
    const rows: RowSpec[] = [
      { prompt: ROWS[0]!.prompt, adapter: a },
      { prompt: ROWS[1]!.prompt },
      { prompt: ROWS[2]!.prompt, adapter: b },
    ];
    const model = LoadedModel.fromCheckpoint(ckpt, null, { session: { threads: 1 } });
    const mixed = await runEngine(model, { mode: 'sideload' }, rows, FORCED);
    expectRows(
      mixed,
      rows.map((r, i) => runReference(ckpt, r, FORCED[i]!)),
      'mixed vs reference',
    );
    for (let i = 0; i < rows.length; i++) {
      const alone = await runEngine(model, { mode: 'sideload' }, [rows[i]!], [FORCED[i]!]);
      expectRows(alone, [mixed[i]!.map((x) => Float64Array.from(x))], `row ${i} alone`, 2e-5);
    }
    // Merged: the same adapter materialized into W.
    const merged = await runEngine(model, { mode: 'merged', adapter: a }, [rows[0]!], [FORCED[0]!]);
    expectRows(merged, [mixed[0]!.map((x) => Float64Array.from(x))], 'merged vs sideloaded', 1e-4);
    await model.close();
  });

  it('4-bit bases: the engine equals the reference on the dequantized weights; error vs fp32 bounded', async () => {
    const ckpt = randomCheckpoint({ hidden_size: 64, intermediate_size: 128 }, 14);
    const ref = ROWS.map((r, b) => runReference(ckpt, r, FORCED[b]!));
    // int4 at accuracy_level 0 computes in fp32 (exact vs the dequantized weights); level 4, the fast CPU path,
    // also rounds the activations to int8 per block: checked by its relative error instead.
    for (const [quantize, level] of [
      ['nf4', 0],
      ['int4', 0],
      ['int4', 4],
    ] as const) {
      const deqRef = ROWS.map((r, b) => runReference(withDequantizedLinears(ckpt, quantize), r, FORCED[b]!));
      const opts = { quantize, int4AccuracyLevel: level, session: { threads: 1 } };
      const model = LoadedModel.fromCheckpoint(ckpt, null, opts);
      const q = await runEngine(model, { mode: 'base' }, ROWS, FORCED);
      const label = `${quantize} level ${level}`;
      if (level === 0) expectRows(q, deqRef, `${label} vs dequantized`, 2e-4);
      else expect(relativeError(q, deqRef), `${label} vs dequantized`).toBeLessThan(0.03);
      const rel = relativeError(q, ref);
      expect(rel, `${label}: relative rms logit error vs fp32`).toBeLessThan(0.4);
      expect(rel, `${label}: differs from fp32 at all`).toBeGreaterThan(1e-4);
      await model.close();
    }
  });
});
