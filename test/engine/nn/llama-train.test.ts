/**
 * The 'train' forward (the graph autodiff differentiates) and right-padded prefill: LoRA A/B fed as graph
 * inputs give the reference's logits with the adapter applied, for rows of different lengths padded on the
 * right (positions 0…len-1, attention mask 0 on the padding); the adapter-input hook sees every site.
 */
import { describe, expect, it } from 'vitest';
import type { HostTensor } from '../../../src/engine/ir/types.js';
import { buildLlamaGraph } from '../../../src/engine/nn/llama.js';
import { ReferenceModel } from '../../../src/engine/nn/reference.js';
import { prepareWeights } from '../../../src/engine/nn/weights.js';
import { EngineSession } from '../../../src/engine/onnx/session.js';
import { expectClose } from '../../helpers/expect-close.js';
import { randomAdapter, randomCheckpoint } from './fixtures.js';

const i64 = (shape: number[], xs: number[]): HostTensor => ({
  dtype: 'int64',
  shape,
  data: BigInt64Array.from(xs, (x) => BigInt(x)),
});

describe("buildLlamaGraph phase 'train'", () => {
  it('right-padded rows with LoRA inputs equal the reference with the adapter unmerged', async () => {
    const ckpt = randomCheckpoint({ num_key_value_heads: 1, attention_bias: true }, 8);
    const modules = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'down_proj'] as const;
    const adapter = randomAdapter(ckpt.config, 3, 9, modules, 6);
    const sites: string[] = [];
    const built = buildLlamaGraph(ckpt.config, prepareWeights(ckpt), {
      phase: 'train',
      lora: {
        kind: 'train',
        rank: 3,
        scale: adapter.scale,
        modules,
        adapterInput: (_g, x, s) => {
          sites.push(`${s.layer}.${s.module}`);
          return x;
        },
      },
    });
    expect(sites).toEqual([0, 1].flatMap((l) => modules.map((m) => `${l}.${m}`)));
    expect(built.logits.shape).toEqual(['B', 'T', ckpt.config.vocabSize]);
    expect([...built.lora.keys()]).toEqual(sites);
    const rows = [
      [1, 4, 9, 16, 25, 36],
      [1, 2, 3],
    ];
    const T = 6;
    const ids = rows.flatMap((r) => [...r, ...Array<number>(T - r.length).fill(0)]);
    const mask = rows.flatMap((r) => Array.from({ length: T }, (_, j) => (j < r.length ? 1 : 0)));
    const pos = rows.flatMap(() => Array.from({ length: T }, (_, j) => j));
    const feeds: Record<string, HostTensor> = {
      input_ids: i64([2, T], ids),
      position_ids: i64([2, T], pos),
      attention_mask: i64([2, T], mask),
    };
    for (const [key, { a, b }] of built.lora) {
      const w = adapter.weights.get(key)!;
      feeds[a.name] = { dtype: 'float32', shape: a.shape as number[], data: w.a };
      feeds[b.name] = { dtype: 'float32', shape: b.shape as number[], data: w.b };
    }
    const s = await EngineSession.create(built.graph, { threads: 1 });
    const logits = (await s.run(feeds, ['logits'])).logits!.data as Float32Array;
    const V = ckpt.config.vocabSize;
    rows.forEach((r, b) => {
      const ref = new ReferenceModel(ckpt.config, ckpt.tensors, adapter).forward(r);
      expectClose(logits.subarray(b * T * V, (b * T + r.length) * V), ref, {
        atol: 1e-4,
        rtol: 1e-4,
        label: `row ${b}`,
      });
    });
    await s.release();
  });
});
