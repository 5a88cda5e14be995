/**
 * The ONNX Llama graph against the float64 reference forward (src/engine/nn/reference.ts): prefill and
 * decode with a cache, GQA ratios, untied head, large rope_theta, small eps, biases, sliding window.
 */
import { describe, it } from 'vitest';
import { loadCheckpoint } from '../../../src/engine/formats/checkpoint.js';
import type { Checkpoint } from '../../../src/engine/formats/checkpoint.js';
import { buildLlamaGraph } from '../../../src/engine/nn/llama.js';
import { ReferenceModel } from '../../../src/engine/nn/reference.js';
import { prepareWeights } from '../../../src/engine/nn/weights.js';
import { EngineSession } from '../../../src/engine/onnx/session.js';
import type { HostTensor } from '../../../src/engine/ir/types.js';
import { expectClose } from '../../helpers/expect-close.js';
import { HAVE_STORIES, STORIES_DIR, randomCheckpoint } from './fixtures.js';

const i64 = (shape: number[], xs: number[]): HostTensor => ({
  dtype: 'int64',
  shape,
  data: BigInt64Array.from(xs, (x) => BigInt(x)),
});

async function prefillLogits(ckpt: Checkpoint, tokens: number[]): Promise<Float32Array> {
  const { graph } = buildLlamaGraph(ckpt.config, prepareWeights(ckpt), { phase: 'prefill' });
  const s = await EngineSession.create(graph, { threads: 1 });
  const T = tokens.length;
  const out = await s.run(
    {
      input_ids: i64([1, T], tokens),
      position_ids: i64(
        [1, T],
        tokens.map((_, i) => i),
      ),
      attention_mask: i64(
        [1, T],
        tokens.map(() => 1),
      ),
    },
    ['logits'],
  );
  await s.release();
  return out.logits!.data as Float32Array;
}

function refLogits(ckpt: Checkpoint, tokens: number[]): Float64Array {
  return new ReferenceModel(ckpt.config, ckpt.tensors).forward(tokens);
}

const TOKENS = [1, 7, 3, 19, 5, 30, 2, 11, 8, 8, 21];

describe('buildLlamaGraph prefill vs reference', () => {
  const cases: Array<[string, Record<string, unknown>]> = [
    ['GQA 2 (tied)', {}],
    ['GQA 1 (MHA), untied head', { num_key_value_heads: 4, tie_word_embeddings: false }],
    ['GQA 4, large rope_theta', { num_key_value_heads: 1, rope_theta: 1_000_000 }],
    ['small eps, head_dim override', { rms_norm_eps: 1e-8, head_dim: 16 }],
    ['qwen2 biases', { model_type: 'qwen2', num_key_value_heads: 2, use_sliding_window: false }],
    ['llama with all biases', { attention_bias: true, mlp_bias: true }],
    ['mistral sliding window 4', { model_type: 'mistral', sliding_window: 4, num_key_value_heads: 2 }],
  ];
  for (const [label, raw] of cases) {
    it(label, async () => {
      const ckpt = randomCheckpoint(raw, 3);
      expectClose(await prefillLogits(ckpt, TOKENS), refLogits(ckpt, TOKENS), {
        atol: 1e-4,
        rtol: 1e-4,
        label,
      });
    });
  }

  it.skipIf(!HAVE_STORIES)('stories260k', async () => {
    const ckpt = await loadCheckpoint(STORIES_DIR);
    const tokens = [1, 403, 407, 261, 378, 263, 275, 1212 % 512, 301];
    expectClose(await prefillLogits(ckpt, tokens), refLogits(ckpt, tokens), { atol: 1e-4, rtol: 1e-4 });
  });
});
