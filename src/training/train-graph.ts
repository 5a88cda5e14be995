/**
 * The QLoRA training graph: the engine's Llama forward in its 'train' phase (frozen fp32 / NF4 / int4 base,
 * LoRA A/B as inputs), a token-weighted causal-LM cross-entropy, and autodiff's backward for the LoRA inputs
 * only. Dropout on each adapter input is a fed boolean keep-mask, so a step is a pure function of its feeds
 * (exact resume). Not the loop (trainer.ts) and not the rules (src/engine/autodiff/).
 *
 * Feeds: input_ids, position_ids, attention_mask (B, T) int64 · targets (B, T) int64 · loss_weights (B, T)
 * f32 · lora.{l}.{m}.A (R, in), .B (out, R) · dropout.{l}.{m} (B, T, in) bool when dropout > 0.
 * Fetches: loss (scalar: Σ weights·CE) · grad.{l}.{m}.A / .B.
 */
import { grad } from '../engine/autodiff/grad.js';
import { linearShape, type LinearModule, type ModelConfig } from '../engine/formats/hf-config.js';
import type { Graph } from '../engine/ir/graph.js';
import type { Value } from '../engine/ir/types.js';
import { buildLlamaGraph } from '../engine/nn/llama.js';
import type { LlamaWeights } from '../engine/nn/weights.js';

export interface TrainGraphOptions {
  rank: number;
  /** alpha / rank (PEFT's scale). */
  scale: number;
  modules: readonly LinearModule[];
  /** PEFT lora_dropout on the adapter input; 0 disables the masks entirely. */
  dropout: number;
}

export interface LoraParam {
  /** `${layer}.${module}` (formats' loraKey) */
  key: string;
  layer: number;
  module: LinearModule;
  inFeatures: number;
  outFeatures: number;
  aInput: string;
  bInput: string;
  aGrad: string;
  bGrad: string;
}

export interface TrainGraph {
  graph: Graph;
  params: LoraParam[];
  /** Dropout mask feeds, with the adapter input width each needs. */
  dropoutInputs: { name: string; width: number }[];
}

export const LOSS_OUTPUT = 'loss';

export function buildTrainGraph(
  config: ModelConfig,
  weights: LlamaWeights,
  o: TrainGraphOptions,
): TrainGraph {
  const dropoutInputs: { name: string; width: number }[] = [];
  const keepScale = o.dropout > 0 ? 1 / (1 - o.dropout) : 1;
  const lg = buildLlamaGraph(config, weights, {
    phase: 'train',
    name: 'llama-train',
    lora: {
      kind: 'train',
      rank: o.rank,
      scale: o.scale,
      modules: o.modules,
      adapterInput:
        o.dropout > 0
          ? (g, x, site) => {
              const width = linearShape(config, site.module).inFeatures;
              const name = `dropout.${site.layer}.${site.module}`;
              const keep = g.input(name, 'bool', ['B', 'T', width]);
              dropoutInputs.push({ name, width });
              // PEFT's nn.Dropout: kept activations scaled by 1/(1-p).
              return g.where(keep, g.mul(x, g.scalar(keepScale)), g.scalar(0));
            }
          : undefined,
    },
  });
  const g = lg.graph;
  // The trainer never fetches logits; dropping the output lets ORT skip the copy.
  g.outputs.splice(0, g.outputs.length);

  const V = config.vocabSize;
  const targets = g.input('targets', 'int64', ['B', 'T']);
  const weightsIn = g.input('loss_weights', 'float32', ['B', 'T']);
  /** (B·T, V) */
  const scores = g.reshape(lg.logits, [-1, V]);
  /** (B·T) per-token cross-entropy */
  const ce = g.op1('softmaxCrossEntropyLoss', [scores, g.reshape(targets, [-1])], { reduction: 'none' });
  /** Σ w·CE: the trainer scales w so the sum over a step's micro-batches is the mean over its target tokens. */
  const loss = g.reduceSum(g.mul(ce, g.reshape(weightsIn, [-1])), [0], false);

  const params: LoraParam[] = [];
  const wrt: Value[] = [];
  for (const [key, { a, b }] of lg.lora) {
    const dot = key.indexOf('.');
    const layer = Number(key.slice(0, dot));
    const module = key.slice(dot + 1) as LinearModule;
    const { inFeatures, outFeatures } = linearShape(config, module);
    params.push({
      key,
      layer,
      module,
      inFeatures,
      outFeatures,
      aInput: a.name,
      bInput: b.name,
      aGrad: `grad.${key}.A`,
      bGrad: `grad.${key}.B`,
    });
    wrt.push(a, b);
  }
  const grads = grad(g, loss, wrt);
  g.output(loss, LOSS_OUTPUT);
  params.forEach((p, i) => {
    g.output(grads[2 * i]!, p.aGrad);
    g.output(grads[2 * i + 1]!, p.bGrad);
  });
  return { graph: g, params, dropoutInputs };
}
