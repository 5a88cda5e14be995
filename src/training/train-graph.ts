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
import { grad, pruneUnused } from '../engine/autodiff/grad.js';
import { linearShape, type LinearModule, type ModelConfig } from '../engine/formats/hf-config.js';
import type { Graph } from '../engine/ir/graph.js';
import type { Node, Value } from '../engine/ir/types.js';
import { buildLlamaGraph } from '../engine/nn/llama.js';
import type { LlamaWeights } from '../engine/nn/weights.js';

export interface TrainGraphOptions {
  rank: number;
  /** alpha / rank (PEFT's scale). */
  scale: number;
  modules: readonly LinearModule[];
  /** PEFT lora_dropout on the adapter input; 0 disables the masks entirely. */
  dropout: number;
  /** Recompute each half-layer's activations in the backward pass instead of keeping them (default true). */
  gradientCheckpointing?: boolean;
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
  /** Number of activation checkpoints (0: everything is kept). */
  checkpoints: number;
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
  const checkpoints =
    o.gradientCheckpointing === false ? [] : residualStream(g, lg.inputIds, config.numLayers);
  const grads = grad(g, loss, wrt, { checkpoints });
  g.output(loss, LOSS_OUTPUT);
  params.forEach((p, i) => {
    g.output(grads[2 * i]!, p.aGrad);
    g.output(grads[2 * i + 1]!, p.bGrad);
  });
  pruneUnused(g);
  return { graph: g, params, dropoutInputs, checkpoints: checkpoints.length };
}

/**
 * The residual stream at every half-layer boundary — the embedding output, then h + attention(h) and
 * h + mlp(h) per layer — found by structure: each is the one `add` that consumes the previous one. These are
 * the gradient checkpoints (what HF's gradient_checkpointing keeps, at twice the granularity). Returns []
 * when the graph does not have that shape, which only costs memory, never correctness.
 */
function residualStream(g: Graph, inputIds: Value, layers: number): Value[] {
  const consumers = new Map<Value, Node[]>();
  for (const n of g.nodes) for (const v of n.inputs) consumers.set(v, [...(consumers.get(v) ?? []), n]);
  const embed = (consumers.get(inputIds) ?? []).find((n) => n.kind === 'gather');
  if (!embed) return [];
  const stream = [embed.outputs[0]!];
  for (let k = 0; k < 2 * layers; k++) {
    const adds = (consumers.get(stream.at(-1)!) ?? []).filter((n) => n.kind === 'add');
    if (adds.length !== 1) return [];
    stream.push(adds[0]!.outputs[0]!);
  }
  return stream;
}
