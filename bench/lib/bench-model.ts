/**
 * Benchmark models: Llama-shaped checkpoints with random weights generated in memory (content does not change
 * speed), in two presets — '100m' (≈100M parameters, ≈400 MB fp32) and '1g' (≈350M parameters, fp32 weights
 * over 1 GB, for the 4-bit vs fp32 decode comparison) — and the byte/FLOP accounting the ratios need.
 * Not a test fixture (test/engine/nn/fixtures.ts) and not the timing loops (bench/lib/timing.ts).
 */
import type { Checkpoint } from '../../src/engine/formats/checkpoint.js';
import {
  LINEAR_MODULES,
  expectedTensors,
  linearShape,
  parseModelConfig,
} from '../../src/engine/formats/hf-config.js';
import type { ModelConfig } from '../../src/engine/formats/hf-config.js';
import type { LlamaWeights } from '../../src/engine/nn/weights.js';
import { filler } from '../ceilings.js';

export const PRESETS = {
  '100m': {
    model_type: 'llama',
    hidden_size: 768,
    intermediate_size: 2048,
    num_hidden_layers: 12,
    num_attention_heads: 12,
    num_key_value_heads: 4,
    vocab_size: 32000,
    max_position_embeddings: 2048,
    tie_word_embeddings: true,
  },
  '1g': {
    model_type: 'llama',
    hidden_size: 1536,
    intermediate_size: 4096,
    num_hidden_layers: 12,
    num_attention_heads: 12,
    num_key_value_heads: 4,
    vocab_size: 32000,
    max_position_embeddings: 2048,
    tie_word_embeddings: true,
  },
} as const;
export type Preset = keyof typeof PRESETS;

export function benchCheckpoint(preset: Preset): Checkpoint {
  const rawConfig = { ...PRESETS[preset] } as Record<string, unknown>;
  const config = parseModelConfig(rawConfig);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  let seed = 1;
  for (const { name, shape } of expectedTensors(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = name.endsWith('norm.weight') ? new Float32Array(n).fill(1) : filler(n, 0.02, seed++);
    tensors.set(name, { shape, data });
  }
  return { dir: `<bench ${preset}>`, config, rawConfig, tensors };
}

/** Parameters of the linear modules (what a quantized base quantizes). */
export function linearParams(config: ModelConfig): number {
  let n = 0;
  for (const m of LINEAR_MODULES) {
    const { inFeatures, outFeatures } = linearShape(config, m);
    n += inFeatures * outFeatures;
  }
  return n * config.numLayers;
}

/** Bytes the linear modules occupy in the graph (packed codes + scales for 4-bit). */
export function linearBytes(weights: LlamaWeights): number {
  let b = 0;
  for (const layer of weights.layers) {
    for (const w of Object.values(layer.linear)) {
      if (w.kind === 'fp32') b += w.w.byteLength;
      else if (w.kind === 'nf4')
        b += w.q.packed.byteLength + w.q.absmaxCodes.byteLength + w.q.absmaxScales.byteLength;
      else b += w.q.packed.byteLength + w.q.scales.byteLength + w.q.zeroPoints.byteLength;
    }
  }
  return b;
}

/**
 * Weight bytes read per decode step: the linears, the fp32 lm_head (V·C) and the norms (embedding rows
 * gathered per token are negligible). NF4 is counted as stored (double-quantized absmax).
 */
export function bytesPerStep(config: ModelConfig, weights: LlamaWeights): number {
  const C = config.hiddenSize;
  return linearBytes(weights) + config.vocabSize * C * 4 + (2 * config.numLayers + 1) * C * 4;
}

/** Matmul FLOPs of a prefill of T tokens per row (lm_head on the last token only, causal attention). */
export function prefillFlops(config: ModelConfig, batch: number, t: number): number {
  const { numLayers: L, numHeads: H, headDim: D, vocabSize: V, hiddenSize: C } = config;
  return batch * (2 * t * linearParams(config) + 2 * V * C + 2 * L * H * D * t * t);
}
