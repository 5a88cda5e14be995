// The serving graph on onnxruntime's fused kernels (RotaryEmbedding, SkipSimplifiedLayerNormalization; the
// default) against the same graph on the composites (`fused: false`, the benchmark's "before") and the float64
// reference: chunked prefill at different row offsets, then mixed-adapter decode, GQA 6/2 heads.
import { describe, expect, it } from 'vitest';
import type { LoraAdapter } from '../../src/engine/formats/peft.js';
import { ReferenceModel } from '../../src/engine/nn/reference.js';
import { buildServeGraph } from '../../src/engine/nn/llama-serve.js';
import { prepareWeights } from '../../src/engine/nn/weights.js';
import { EngineSession } from '../../src/engine/onnx/session.js';
import { runBatchStep } from '../../src/inference/batch-step.js';
import { KvPool } from '../../src/inference/kv-pool.js';
import { LoraColumns } from '../../src/inference/lora-columns.js';
import { expectClose } from '../helpers/expect-close.js';
import { randomAdapter, randomCheckpoint } from '../engine/nn/fixtures.js';

describe('serving graph: fused kernels vs composites', () => {
  it('computes the same logits as the composite graph and the reference, with fewer nodes', async () => {
    const ckpt = randomCheckpoint({ hidden_size: 48, num_attention_heads: 6, num_key_value_heads: 2 }, 21);
    const { config } = ckpt;
    const V = config.vocabSize;
    const w = prepareWeights(ckpt);
    const graphs = {
      fused: buildServeGraph(config, w, { lora: 'stacked' }),
      composite: buildServeGraph(config, w, { lora: 'stacked', fused: false }),
    };
    const count = (k: keyof typeof graphs, kind: string) =>
      graphs[k].nodes.filter((n) => n.kind === kind).length;
    expect(graphs.fused.nodes.length).toBeLessThan(graphs.composite.nodes.length);
    // The fused graph: one cos/sin table per call, no rotate_half or RMSNorm primitives per layer.
    expect(['cos', 'sin', 'pow', 'sqrt', 'concat', 'neg'].map((k) => count('fused', k))).toEqual([
      1, 1, 0, 0, 0, 0,
    ]);
    expect(count('fused', 'rotaryEmbedding')).toBe(2 * config.numLayers);
    expect(count('fused', 'skipSimplifiedLayerNorm')).toBe(2 * config.numLayers);
    const adapters: LoraAdapter[] = [
      randomAdapter(config, 4, 31),
      randomAdapter(config, 2, 32, ['q_proj', 'k_proj']),
    ];
    const cols = new LoraColumns(config, undefined, 2);
    adapters.forEach((a, i) => cols.place(i + 1, a));
    const feeds = cols.feeds();
    const run = async (which: keyof typeof graphs) => {
      const session = await EngineSession.create(graphs[which]);
      const pool = new KvPool(config.numLayers, 3, config.numKvHeads, 64, config.headDim);
      for (let i = 0; i < 3; i++) pool.allocate();
      const out: Float32Array[] = [];
      const step = async (start: number, rows: { ids: number[]; loraSlot: number }[]) => {
        const logits = await runBatchStep({ session, config, pool, start, rows, loraFeeds: feeds });
        for (let b = 0; b < rows.length; b++) out.push(logits.slice(b * V, (b + 1) * V));
      };
      // Rows get different cached lengths (9, 3, 17) before decoding together.
      await step(0, [{ ids: [1, 5, 9, 2, 7, 3, 8, 4, 6], loraSlot: 1 }]);
      await step(1, [{ ids: [4, 4, 6], loraSlot: 0 }]);
      for (let at = 0; at < 17; at += 6) {
        await step(2, [
          { ids: Array.from({ length: Math.min(6, 17 - at) }, (_, i) => (at + i) % V), loraSlot: 2 },
        ]);
      }
      for (let t = 0; t < 3; t++) {
        await step(
          0,
          [0, 1, 2].map((r) => ({ ids: [(r * 5 + t * 3 + 1) % V], loraSlot: [1, 0, 2][r]! })),
        );
      }
      await session.release();
      return out;
    };
    const fused = await run('fused');
    const composite = await run('composite');
    expect(fused.length).toBe(composite.length);
    fused.forEach((f, i) =>
      expectClose(f, composite[i]!, { atol: 2e-5, rtol: 1e-4, label: `call output ${i}` }),
    );
    // The last three decode steps against the float64 reference.
    const prompts = [[1, 5, 9, 2, 7, 3, 8, 4, 6], [4, 4, 6], Array.from({ length: 17 }, (_, i) => i % V)];
    const refs = prompts.map((p, r) => {
      const ref = new ReferenceModel(config, ckpt.tensors, [adapters[0], undefined, adapters[1]][r]);
      ref.forward(p);
      return ref;
    });
    const decoded = fused.slice(-9);
    for (let t = 0; t < 3; t++) {
      for (let r = 0; r < 3; r++) {
        expectClose(decoded[t * 3 + r]!, refs[r]!.step((r * 5 + t * 3 + 1) % V), {
          atol: 1e-4,
          rtol: 1e-4,
          label: `decode ${t} row ${r}`,
        });
      }
    }
  });
});
