/**
 * The QLoRA training graph: the engine's Llama forward in its 'train' phase (frozen fp32 / NF4 / int4 base,
 * LoRA A/B as inputs), a token-weighted causal-LM cross-entropy, and autodiff's backward for the LoRA inputs
 * only. Dropout on each adapter input is a fed (bit-packed) keep-mask, so a step is a pure function of its feeds
 * (exact resume). Not the loop (trainer.ts) and not the rules (src/engine/autodiff/).
 *
 * Feeds: input_ids, position_ids, attention_mask (B, T) int64 · targets (B, T) int64 · loss_weights (B, T)
 * f32 · lora.{l}.{m}.A (R, in), .B (out, R) · dropout.{l}.{m} when dropout > 0: (B, T, in/8) uint8 bit-packed
 * keep-mask (bool (B, T, in) when in is not a multiple of 8).
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
  /**
   * Dropout mask feeds, with the adapter input width each needs. packed: a uint8 (B, T, width/8) feed, bit k
   * (LSB first) of byte j keeping element 8j+k; otherwise (width not a multiple of 8) a bool (B, T, width) feed.
   */
  dropoutInputs: DropoutInput[];
  /** Number of activation checkpoints (0: everything is kept). */
  checkpoints: number;
}

export interface DropoutInput {
  name: string;
  width: number;
  packed: boolean;
}

export const LOSS_OUTPUT = 'loss';

/** (256, 8) bool: byte → its 8 bits, least significant first. */
function bitTable(): Uint8Array {
  const t = new Uint8Array(256 * 8);
  for (let b = 0; b < 256; b++) for (let k = 0; k < 8; k++) t[8 * b + k] = (b >> k) & 1;
  return t;
}

/**
 * (B, T, width) bool keep-mask from its bit-packed (B, T, width/8) uint8 feed: one Gather on a byte → bits
 * table. The packed feeds are 1/8 the size of bool ones (≈ 54 → 7 MiB per micro-batch at B=2, T=256 on the
 * 100M bench model), and they stay alive for the whole run. The indices are offset by a runtime zero taken
 * from x, so with gradient checkpointing the unpacked mask is a recomputed value (rebuilt in the backward,
 * like x) rather than a forward value kept across the run.
 */
function unpackKeepMask(g: Graph, packed: Value, x: Value, width: number): Value {
  const zero = g.cast(g.mul(g.shape(x, 0, 1), g.ints([0])), 'int32');
  /** (B, T, width/8, 8) */
  const bits = g.gather(g.constant(bitTable(), [256, 8], 'bool'), g.add(g.cast(packed, 'int32'), zero), 0);
  return g.reshape(bits, [0, 0, width]);
}

export function buildTrainGraph(
  config: ModelConfig,
  weights: LlamaWeights,
  o: TrainGraphOptions,
): TrainGraph {
  const dropoutInputs: DropoutInput[] = [];
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
              const packed = width % 8 === 0;
              dropoutInputs.push({ name, width, packed });
              const keep = packed
                ? unpackKeepMask(g, g.input(name, 'uint8', ['B', 'T', width / 8]), x, width)
                : g.input(name, 'bool', ['B', 'T', width]);
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
  orderLeavesForOrt(g);
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

/**
 * Moves the graph's leaves (nodes nothing consumes: the loss and the gradient fetches) to the end of the node
 * list, the earliest-computed last. onnxruntime's default execution order is a post-order DFS from the leaves
 * that starts at the LAST leaf; in emission order that is layer 0's gradient, whose ancestry is the whole
 * backward dX chain, so every layer's weight-gradient branch (and the recomputed adapter inputs it reads) would
 * wait until the end — measured ≈ 28 MiB per layer held at B=2, T=256. Reversed, ORT finishes each layer's
 * LoRA gradients before the backward moves on, as grad() emitted them. Order only: the graph is unchanged.
 */
function orderLeavesForOrt(g: Graph): void {
  const consumed = new Set<Node>();
  for (const n of g.nodes) for (const v of n.inputs) if (v.producer) consumed.add(v.producer);
  const leaves = g.nodes.filter((n) => !consumed.has(n));
  const rest = g.nodes.filter((n) => consumed.has(n));
  g.nodes.splice(0, g.nodes.length, ...rest, ...leaves.reverse());
}
