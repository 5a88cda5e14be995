// The training graph on the built-in model: loss value against an independent prefill forward, the whole
// LoRA gradient against central finite differences (fp32 base and NF4 base), and the bit-packed dropout masks
// against the same dropout written into A.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyModel } from '../../src/engine/builtin-model.js';
import { loadCheckpoint, type Checkpoint } from '../../src/engine/formats/checkpoint.js';
import type { HostTensor } from '../../src/engine/ir/types.js';
import { buildLlamaGraph } from '../../src/engine/nn/llama.js';
import { prepareWeights, type Quantization } from '../../src/engine/nn/weights.js';
import { EngineSession } from '../../src/engine/onnx/session.js';
import { buildTrainGraph, LOSS_OUTPUT } from '../../src/training/train-graph.js';
import { Rng } from '../../src/training/random.js';
import { expectClose } from '../helpers/expect-close.js';

let dir: string;
let ckpt: Checkpoint;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dg-train-graph-'));
  await makeTinyModel(dir, { seed: 3 });
  ckpt = await loadCheckpoint(dir);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const B = 2;
const T = 5;
const ids = [1, 40, 41, 42, 43, 44, 1, 50, 51, 0, 0, 0];
/** row 1 has 3 real inputs, then padding */
const lens = [T, 3];

function feedsFor(
  rank: number,
  params: Map<string, Float32Array>,
  shapes: Map<string, number[]>,
): Record<string, HostTensor> {
  const input = new BigInt64Array(B * T);
  const targets = new BigInt64Array(B * T);
  const pos = new BigInt64Array(B * T);
  const att = new BigInt64Array(B * T);
  const w = new Float32Array(B * T);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      input[b * T + t] = BigInt(ids[b * (T + 1) + t]!);
      targets[b * T + t] = BigInt(ids[b * (T + 1) + t + 1]!);
      pos[b * T + t] = BigInt(t);
      att[b * T + t] = t < lens[b]! ? 1n : 0n;
      // learn positions 1.. of each real row (a masked prompt token at t = 0)
      w[b * T + t] = t >= 1 && t < lens[b]! ? 1 : 0;
    }
  }
  const feeds: Record<string, HostTensor> = {
    input_ids: { dtype: 'int64', shape: [B, T], data: input },
    targets: { dtype: 'int64', shape: [B, T], data: targets },
    position_ids: { dtype: 'int64', shape: [B, T], data: pos },
    attention_mask: { dtype: 'int64', shape: [B, T], data: att },
    loss_weights: { dtype: 'float32', shape: [B, T], data: w },
  };
  for (const [name, data] of params) feeds[name] = { dtype: 'float32', shape: shapes.get(name)!, data };
  void rank;
  return feeds;
}

async function setup(quantize: Quantization, gradientCheckpointing = true, dropout = 0) {
  const weights = prepareWeights(ckpt, { quantize });
  const rank = 2;
  const tg = buildTrainGraph(ckpt.config, weights, {
    rank,
    scale: 1.5,
    modules: ['q_proj', 'v_proj', 'down_proj'],
    dropout,
    gradientCheckpointing,
  });
  const session = await EngineSession.create(tg.graph, { threads: 1 });
  const rng = new Rng(5);
  const params = new Map<string, Float32Array>();
  const shapes = new Map<string, number[]>();
  for (const p of tg.params) {
    params.set(
      p.aInput,
      Float32Array.from({ length: rank * p.inFeatures }, () => rng.normal() * 0.3),
    );
    params.set(
      p.bInput,
      Float32Array.from({ length: p.outFeatures * rank }, () => rng.normal() * 0.3),
    );
    shapes.set(p.aInput, [rank, p.inFeatures]);
    shapes.set(p.bInput, [p.outFeatures, rank]);
  }
  return { tg, session, params, shapes, rank, weights };
}

describe('training graph', () => {
  it('loss equals Σ CE of an independent prefill forward with the adapter merged', async () => {
    const { tg, session, params, shapes, rank, weights } = await setup('none');
    const loss = Number(
      (await session.run(feedsFor(rank, params, shapes), [LOSS_OUTPUT]))[LOSS_OUTPUT]!.data[0],
    );
    // Reference: merge W += s·B·A in fp32 and run the inference prefill graph row by row.
    const merged = prepareWeights(ckpt, {
      quantize: 'none',
      mergeAdapter: {
        rank,
        alpha: 3,
        useRslora: false,
        scale: 1.5,
        dropout: 0,
        targetModules: ['q_proj', 'v_proj', 'down_proj'],
        baseModelName: null,
        weights: new Map(
          tg.params.map((p) => [p.key, { a: params.get(p.aInput)!, b: params.get(p.bInput)! }]),
        ),
      },
    });
    void weights;
    const pre = buildLlamaGraph(ckpt.config, merged, { phase: 'prefill' });
    const ref = await EngineSession.create(pre.graph, { threads: 1 });
    let expected = 0;
    const V = ckpt.config.vocabSize;
    for (let b = 0; b < B; b++) {
      const n = lens[b]!;
      const row = ids.slice(b * (T + 1), b * (T + 1) + n + 1);
      const out = await ref.run(
        {
          input_ids: { dtype: 'int64', shape: [1, n], data: BigInt64Array.from(row.slice(0, n), BigInt) },
          position_ids: {
            dtype: 'int64',
            shape: [1, n],
            data: BigInt64Array.from({ length: n }, (_, i) => BigInt(i)),
          },
          attention_mask: { dtype: 'int64', shape: [1, n], data: new BigInt64Array(n).fill(1n) },
        },
        ['logits'],
      );
      const logits = out['logits']!.data as Float32Array;
      for (let t = 1; t < n; t++) {
        let m = -Infinity;
        for (let v = 0; v < V; v++) m = Math.max(m, logits[t * V + v]!);
        let z = 0;
        for (let v = 0; v < V; v++) z += Math.exp(logits[t * V + v]! - m);
        expected += m + Math.log(z) - logits[t * V + row[t + 1]!]!;
      }
    }
    expectClose(loss, expected, { atol: 1e-3, rtol: 1e-4, label: 'train loss vs merged prefill' });
    await ref.release();
    await session.release();
  });

  it('gradient checkpointing recomputes activations without changing the gradients', async () => {
    const kept = await setup('nf4', false);
    const remat = await setup('nf4', true);
    expect([kept.tg.checkpoints, remat.tg.checkpoints]).toEqual([0, 2 * ckpt.config.numLayers + 1]);
    // More nodes (the recomputed forward), same numbers.
    expect(remat.tg.graph.nodes.length).toBeGreaterThan(kept.tg.graph.nodes.length);
    const names = kept.tg.params.flatMap((p) => [p.aGrad, p.bGrad]);
    const a = await kept.session.run(feedsFor(kept.rank, kept.params, kept.shapes), names);
    const b = await remat.session.run(feedsFor(remat.rank, remat.params, remat.shapes), names);
    for (const n of names)
      expectClose(b[n]!.data as Float32Array, a[n]!.data as Float32Array, {
        atol: 1e-5,
        rtol: 1e-3,
        label: n,
      });
    await kept.session.release();
    await remat.session.release();
  });

  for (const quantize of ['none', 'nf4'] as const) {
    it(`LoRA gradient matches finite differences (${quantize} base)`, async () => {
      const { tg, session, params, shapes, rank } = await setup(quantize);
      const feeds = feedsFor(rank, params, shapes);
      const names = tg.params.flatMap((p) => [p.aGrad, p.bGrad]);
      const out = await session.run(feeds, names);
      const lossAt = async () => Number((await session.run(feeds, [LOSS_OUTPUT]))[LOSS_OUTPUT]!.data[0]);
      const eps = 1e-2;
      const analytic: number[] = [];
      const numeric: number[] = [];
      for (const p of tg.params) {
        for (const [input, gradName] of [
          [p.aInput, p.aGrad],
          [p.bInput, p.bGrad],
        ] as const) {
          const x = params.get(input)!;
          const gv = out[gradName]!.data as Float32Array;
          // The two largest-gradient elements of each tensor: where fp32 differences are most informative.
          const order = Array.from(gv.keys()).sort((i, j) => Math.abs(gv[j]!) - Math.abs(gv[i]!));
          for (const i of order.slice(0, 2)) {
            const keep = x[i]!;
            x[i] = keep + eps;
            const up = await lossAt();
            x[i] = keep - eps;
            const down = await lossAt();
            x[i] = keep;
            analytic.push(gv[i]!);
            numeric.push((up - down) / (2 * eps));
          }
        }
      }
      expect(analytic.some((a) => Math.abs(a) > 1e-2)).toBe(true);
      expectClose(analytic, numeric, { atol: 2e-3, rtol: 3e-2, label: `LoRA grads (${quantize})` });
      await session.release();
    });
  }

  it('a bit-packed dropout mask (LSB first) equals the same mask folded into A', async () => {
    const p = 0.25;
    const drop = await setup('nf4', true, p);
    const plain = await setup('nf4', true, 0);
    expect(drop.tg.dropoutInputs.length).toBe(drop.tg.params.length);
    // 0x55 keeps bits 0, 2, 4, 6 of every byte: the even input features of every token, whatever the row.
    const feeds = feedsFor(drop.rank, drop.params, drop.shapes);
    for (const d of drop.tg.dropoutInputs) {
      feeds[d.name] = d.packed
        ? {
            dtype: 'uint8',
            shape: [B, T, d.width / 8],
            data: new Uint8Array((B * T * d.width) / 8).fill(0x55),
          }
        : {
            dtype: 'bool',
            shape: [B, T, d.width],
            data: Uint8Array.from({ length: B * T * d.width }, (_, i) => ((i % d.width) % 2 === 0 ? 1 : 0)),
          };
    }
    expect(drop.tg.dropoutInputs.some((d) => d.packed)).toBe(true);
    // Reference: no dropout, A' = A·diag(m)/(1-p) (A is (R, in): zero the odd columns).
    const folded = new Map(plain.params);
    for (const q of plain.tg.params) {
      const a = Float32Array.from(plain.params.get(q.aInput)!);
      for (let i = 0; i < a.length; i++) a[i] = (i % q.inFeatures) % 2 === 0 ? a[i]! / (1 - p) : 0;
      folded.set(q.aInput, a);
    }
    const names = [LOSS_OUTPUT, ...drop.tg.params.flatMap((q) => [q.aGrad, q.bGrad])];
    const got = await drop.session.run(feeds, names);
    const want = await plain.session.run(feedsFor(plain.rank, folded, plain.shapes), names);
    expectClose(Number(got[LOSS_OUTPUT]!.data[0]), Number(want[LOSS_OUTPUT]!.data[0]), {
      atol: 1e-5,
      rtol: 1e-5,
      label: 'loss',
    });
    for (const q of drop.tg.params) {
      expectClose(got[q.bGrad]!.data as Float32Array, want[q.bGrad]!.data as Float32Array, {
        atol: 1e-5,
        rtol: 1e-3,
        label: q.bGrad,
      });
      // dL/dA = dL/dA' · diag(m)/(1-p)
      const ga = Float32Array.from(want[q.aGrad]!.data as Float32Array, (v, i) =>
        (i % q.inFeatures) % 2 === 0 ? v / (1 - p) : 0,
      );
      expectClose(got[q.aGrad]!.data as Float32Array, ga, { atol: 1e-5, rtol: 1e-3, label: q.aGrad });
    }
    await drop.session.release();
    await plain.session.release();
  });

  it('puts the leaves last in reverse order, so ORT (a DFS from the last leaf) runs each layer grads in turn', async () => {
    const { tg, session } = await setup('nf4', true);
    const nodes = tg.graph.nodes;
    const consumed = new Set(nodes.flatMap((n) => n.inputs.map((v) => v.producer)));
    const firstLeaf = nodes.findIndex((n) => !consumed.has(n));
    expect(nodes.slice(firstLeaf).every((n) => !consumed.has(n))).toBe(true);
    const producedName = (k: number) => tg.graph.outputs.find((v) => v.producer === nodes.at(k))?.name;
    // The loss (the earliest leaf: end of the forward) is last; then a gradient of the last layer, which the
    // backward computes first; the first leaf is a gradient of layer 0.
    expect(producedName(-1)).toBe(LOSS_OUTPUT);
    const layerOf = (name: string | undefined) =>
      tg.params.find((q) => q.aGrad === name || q.bGrad === name)?.layer;
    expect(layerOf(producedName(-2))).toBe(ckpt.config.numLayers - 1);
    expect(layerOf(producedName(firstLeaf))).toBe(0);
    await session.release();
  });
});
