/**
 * Per-module ranks end to end: a PEFT adapter with `rank_pattern` / `alpha_pattern` (ranks that differ by
 * module and by layer, scales that differ by module) generates the same greedy tokens merged
 * (prepareWeights → mergeLora) and side-loaded (adapter-stack.ts, the CLI path), equal to the float64
 * reference forward and to an independent merge written here; the gateway's LoraColumns place each module's
 * own rank, and the serving graph's logits match the reference.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { linearShape, weightName, type LinearModule } from '../../src/engine/formats/hf-config.js';
import { parsePeftAdapter, peftWeightKey, type LoraAdapter } from '../../src/engine/formats/peft.js';
import { writeSafetensors, type TensorInput } from '../../src/engine/formats/safetensors.js';
import { ReferenceModel } from '../../src/engine/nn/reference.js';
import { buildServeGraph } from '../../src/engine/nn/llama-serve.js';
import { prepareWeights } from '../../src/engine/nn/weights.js';
import { EngineSession } from '../../src/engine/onnx/session.js';
import { buildAdapterStack, validateAdapter } from '../../src/inference/adapter-stack.js';
import { runBatchStep } from '../../src/inference/batch-step.js';
import { Engine } from '../../src/inference/engine.js';
import { KvPool } from '../../src/inference/kv-pool.js';
import { LoraColumns } from '../../src/inference/lora-columns.js';
import { LoadedModel } from '../../src/inference/model.js';
import { expectClose } from '../helpers/expect-close.js';
import { randn, randomAdapter, randomCheckpoint, rng } from '../engine/nn/fixtures.js';

const ckpt = randomCheckpoint({}, 5);
const { config } = ckpt;
const TARGETS: LinearModule[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'up_proj', 'down_proj'];

/** r = 4, lora_alpha = 8; q_proj rank 2 (alpha 4 in layer 1), down_proj rank 6 in layer 1 only, v_proj alpha 1. */
const ADAPTER_CONFIG = {
  peft_type: 'LORA',
  task_type: 'CAUSAL_LM',
  r: 4,
  lora_alpha: 8,
  target_modules: TARGETS,
  rank_pattern: { q_proj: 2, 'model.layers.1.mlp.down_proj': 6 },
  alpha_pattern: { 'layers.1.self_attn.q_proj': 4, v_proj: 1 },
};
/** What the patterns mean, spelled out independently of the parser. */
function expectedRankScale(l: number, m: LinearModule): [number, number] {
  if (m === 'q_proj') return [2, (l === 1 ? 4 : 8) / 2];
  if (m === 'down_proj' && l === 1) return [6, 8 / 6];
  if (m === 'v_proj') return [4, 1 / 4];
  return [4, 8 / 4];
}

function patternAdapter(): LoraAdapter {
  const r = rng(77);
  const t: Record<string, TensorInput> = {};
  for (let l = 0; l < config.numLayers; l++) {
    for (const m of TARGETS) {
      const { inFeatures, outFeatures } = linearShape(config, m);
      const [rank] = expectedRankScale(l, m);
      t[peftWeightKey(l, m, 'A')] = {
        dtype: 'F32',
        shape: [rank, inFeatures],
        data: randn(rank * inFeatures, 0.3, r),
      };
      t[peftWeightKey(l, m, 'B')] = {
        dtype: 'F32',
        shape: [outFeatures, rank],
        data: randn(outFeatures * rank, 0.3, r),
      };
    }
  }
  return parsePeftAdapter(ADAPTER_CONFIG, writeSafetensors(t, { format: 'pt' }), config);
}

/** base + s·B·A in float64 with the ranks and scales of expectedRankScale. */
function independentMerge(adapter: LoraAdapter) {
  const tensors = new Map(ckpt.tensors);
  for (let l = 0; l < config.numLayers; l++) {
    for (const m of TARGETS) {
      const w = adapter.weights.get(`${l}.${m}`)!;
      const [R, s] = expectedRankScale(l, m);
      const { inFeatures: inF, outFeatures: outF } = linearShape(config, m);
      const base = tensors.get(weightName(l, m))!;
      const data = new Float32Array(outF * inF);
      for (let o = 0; o < outF; o++)
        for (let i = 0; i < inF; i++) {
          let d = 0;
          for (let k = 0; k < R; k++) d += w.b[o * R + k]! * w.a[k * inF + i]!;
          data[o * inF + i] = base.data[o * inF + i]! + s * d;
        }
      tensors.set(weightName(l, m), { shape: base.shape, data });
    }
  }
  return tensors;
}

describe('adapters with rank_pattern / alpha_pattern', () => {
  const engine = new Engine(LoadedModel.fromCheckpoint(ckpt, null, { session: { threads: 1 } }));
  afterAll(() => engine.close());
  const adapter = patternAdapter();

  it('merged == side-loaded == the float64 reference == an independent merge (greedy tokens)', async () => {
    expect(() => validateAdapter(config, adapter)).not.toThrow();
    const req = { promptIds: [1, 7, 3, 12], maxTokens: 16, stopAtEos: false };
    const merged = await engine.generate({ ...req, adapter, mode: 'merged' });
    const side = await engine.generate({ ...req, adapter, mode: 'sideload' });
    expect(side.tokenIds).toEqual(merged.tokenIds);
    expect(new ReferenceModel(config, ckpt.tensors, adapter).greedy(req.promptIds, 16)).toEqual(
      merged.tokenIds,
    );
    expect(new ReferenceModel(config, independentMerge(adapter)).greedy(req.promptIds, 16)).toEqual(
      merged.tokenIds,
    );
    const base = await engine.generate(req);
    expect(base.tokenIds).not.toEqual(merged.tokenIds);
  });

  it('the side-load stack pads to the largest module rank, each module with its own scale', () => {
    const plain = randomAdapter(config, 3, 9, ['q_proj']);
    const { rank, feeds } = buildAdapterStack(config, [plain, adapter], ['q_proj', 'down_proj']);
    expect(rank).toBe(6);
    // layer 1 q_proj of the pattern adapter (slot 2): rank 2, scale 2 → B columns 0-1 = 2·B, 2-5 zero.
    const outF = config.numHeads * config.headDim;
    const B = feeds['lora.1.q_proj.B']!.data as Float32Array;
    const w = adapter.weights.get('1.q_proj')!;
    const row = B.subarray((2 * outF + 3) * 6, (2 * outF + 3) * 6 + 6);
    expect(Array.from(row)).toEqual([
      Math.fround(2 * w.b[3 * 2]!),
      Math.fround(2 * w.b[3 * 2 + 1]!),
      0,
      0,
      0,
      0,
    ]);
  });

  it('LoraColumns give a module its largest layer rank; the serving graph matches the reference', async () => {
    const other = randomAdapter(config, 3, 9, ['q_proj', 'down_proj']);
    const cols = new LoraColumns(config, undefined, 2);
    cols.place(1, other);
    cols.place(2, adapter);
    expect(cols.width('q_proj')).toBe(3 + 2);
    expect(cols.width('down_proj')).toBe(3 + 6);
    expect(cols.width('v_proj')).toBe(4);
    const stacked = await EngineSession.create(
      buildServeGraph(config, prepareWeights(ckpt), { lora: 'stacked' }),
      { threads: 1 },
    );
    const pool = new KvPool(config.numLayers, 2, config.numKvHeads, 32, config.headDim);
    pool.allocate();
    pool.allocate();
    const prompts = [
      [1, 5, 9, 2],
      [3, 8, 8, 1],
    ];
    const V = config.vocabSize;
    const logits = await runBatchStep({
      session: stacked,
      config,
      pool,
      start: 0,
      rows: [
        { ids: prompts[0]!, loraSlot: 2 },
        { ids: prompts[1]!, loraSlot: 1 },
      ],
      loraFeeds: cols.feeds(),
    });
    const ref0 = new ReferenceModel(config, ckpt.tensors, adapter).forward(prompts[0]!).slice(-V);
    const ref1 = new ReferenceModel(config, ckpt.tensors, other).forward(prompts[1]!).slice(-V);
    expectClose(logits.slice(0, V), ref0, { atol: 1e-4, rtol: 1e-4, label: 'pattern adapter row' });
    expectClose(logits.slice(V, 2 * V), ref1, { atol: 1e-4, rtol: 1e-4, label: 'plain adapter row' });
    await stacked.release();
    // Removing the pattern adapter frees its columns entirely.
    cols.remove(2);
    expect(cols.width('down_proj')).toBe(3);
  });
});
