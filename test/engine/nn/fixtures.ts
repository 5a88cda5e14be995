/**
 * Test fixtures for the engine: seeded random Llama-family checkpoints of any config (untied head, GQA
 * ratio, biases, rope_theta, eps) built in memory, random LoRA adapters, and a runner that feeds a Llama
 * graph through onnxruntime. The real-weights fixture is ../shared/models/stories260k (read-only).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Checkpoint } from '../../../src/engine/formats/checkpoint.js';
import {
  LINEAR_MODULES,
  expectedTensors,
  linearShape,
  parseModelConfig,
} from '../../../src/engine/formats/hf-config.js';
import type { LinearModule, ModelConfig } from '../../../src/engine/formats/hf-config.js';
import { loraKey, loraScale, type LoraAdapter } from '../../../src/engine/formats/peft.js';

export const STORIES_DIR = join(process.cwd(), '..', 'shared', 'models', 'stories260k');
export const HAVE_STORIES = existsSync(join(STORIES_DIR, 'model.safetensors'));

/** mulberry32: deterministic uniform [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randn(n: number, std: number, r: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12);
    out[i] = std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
  }
  return out;
}

export const SMALL_CONFIG = {
  model_type: 'llama',
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 40,
  max_position_embeddings: 128,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: true,
};

/** A random checkpoint for `raw` (snake_case config.json overrides over SMALL_CONFIG). */
export function randomCheckpoint(raw: Record<string, unknown> = {}, seed = 1): Checkpoint {
  const rawConfig = { ...SMALL_CONFIG, ...raw };
  const config = parseModelConfig(rawConfig);
  const r = rng(seed);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const { name, shape } of expectedTensors(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const isNorm = name.endsWith('norm.weight');
    const data = isNorm
      ? Float32Array.from(randn(n, 0.1, r), (v) => 1 + v)
      : randn(n, name.includes('embed') ? 1 : 0.15, r);
    tensors.set(name, { shape, data });
  }
  return { dir: '<memory>', config, rawConfig, tensors };
}

export function randomAdapter(
  config: ModelConfig,
  rank: number,
  seed: number,
  modules: readonly LinearModule[] = LINEAR_MODULES,
  alpha = 2 * rank,
): LoraAdapter {
  const r = rng(seed);
  const weights = new Map<string, { a: Float32Array; b: Float32Array }>();
  for (let l = 0; l < config.numLayers; l++) {
    for (const m of modules) {
      const { inFeatures, outFeatures } = linearShape(config, m);
      weights.set(loraKey(l, m), {
        a: randn(rank * inFeatures, 0.2, r),
        b: randn(outFeatures * rank, 0.2, r),
      });
    }
  }
  return {
    rank,
    alpha,
    useRslora: false,
    scale: loraScale(alpha, rank, false),
    dropout: 0,
    targetModules: [...modules],
    baseModelName: null,
    weights,
  };
}
