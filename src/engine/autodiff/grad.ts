/**
 * Reverse-mode automatic differentiation over the graph IR: `grad(g, loss, wrt)` appends the backward nodes
 * to `g` and returns one gradient value per `wrt` entry. Only nodes on a path from a `wrt` value to the loss
 * are differentiated, and each rule is told which of its inputs need a gradient, so frozen weights cost no
 * backward GEMM. The per-op vector-Jacobian rules are in rules.ts (`Record<OpKind, GradRule>`).
 */
import type { Graph } from '../ir/graph.js';
import type { Dim, Node, Value } from '../ir/types.js';
import { isFloat } from '../ir/types.js';
import { GRAD_RULES } from './rules.js';

/** A gradient was asked of something no rule can differentiate (integer input, frozen quantized weight, …). */
export class NotDifferentiableError extends Error {
  override name = 'NotDifferentiableError';
}

/** What a rule sees: the node, the gradients of its outputs, and which inputs need gradients. */
export interface GradContext {
  g: Graph;
  node: Node;
  /** One per output; undefined when no gradient reaches that output. */
  dy: readonly (Value | undefined)[];
  /** One per input: whether a gradient is wanted. */
  wants: readonly boolean[];
}

/** Returns one gradient per input (undefined where not wanted or not defined). */
export type GradRule = (ctx: GradContext) => (Value | undefined)[];

/**
 * Sums `grad` (shaped like a broadcast result) down to `target`'s shape: leading extra axes are summed away,
 * axes where target has 1 and grad does not are summed with keepdims. Symbolic dims that differ only by name
 * are assumed equal (the IR's broadcasting already rejected real mismatches it could see).
 */
export function unbroadcast(g: Graph, grad: Value, target: Value): Value {
  const gs: readonly Dim[] = grad.shape;
  const ts: readonly Dim[] = target.shape;
  let out = grad;
  const extra = gs.length - ts.length;
  if (extra > 0) {
    out = g.reduceSum(
      out,
      Array.from({ length: extra }, (_, i) => i),
      false,
    );
  }
  const axes: number[] = [];
  for (let i = 0; i < ts.length; i++) {
    if (ts[i] === 1 && out.shape[i] !== 1) axes.push(i);
  }
  if (axes.length > 0) out = g.reduceSum(out, axes, true);
  return out;
}

/** Values reachable forward from `wrt` (those whose gradient can be non-zero). */
function dependents(g: Graph, wrt: readonly Value[]): Set<Value> {
  const live = new Set<Value>(wrt);
  for (const node of g.nodes) {
    if (node.inputs.some((v) => live.has(v))) for (const o of node.outputs) if (isFloat(o.dtype)) live.add(o);
  }
  return live;
}

/** Values the loss depends on (backward reachability). */
function ancestors(loss: Value): Set<Value> {
  return ancestorsOf([loss]);
}

function ancestorsOf(roots: Iterable<Value>): Set<Value> {
  const seen = new Set<Value>();
  const stack = [...roots];
  while (stack.length > 0) {
    const v = stack.pop()!;
    if (seen.has(v)) continue;
    seen.add(v);
    if (v.producer) for (const i of v.producer.inputs) stack.push(i);
  }
  return seen;
}

export interface GradOptions {
  /** The gradient of `loss` (default: ones of loss's shape — a scalar 1 for a scalar loss). */
  seed?: Value;
  /**
   * Activation checkpoints (gradient checkpointing, https://arxiv.org/abs/1604.06174): forward values computed
   * from these are not kept for the backward pass but recomputed from the nearest checkpoint when the backward
   * reaches them. Costs about one extra forward; live activations fall to the checkpoints plus one segment.
   */
  checkpoints?: readonly Value[];
}

/**
 * Rematerialization: clones of forward nodes, rooted at checkpoints offset by a zero computed from a backward
 * gradient. The offset makes the clones distinct from the originals (ORT's CSE cannot merge them back) and
 * makes them runnable only once the backward has reached their segment, so ORT schedules them there.
 */
class Remat {
  private readonly dependent = new Set<Value>();
  private readonly clones = new Map<Value, Value>();
  constructor(
    private readonly g: Graph,
    private readonly checkpoints: ReadonlySet<Value>,
    forward: readonly Node[],
  ) {
    // Recomputed: values downstream of a checkpoint that a later checkpoint needs (the segments between
    // checkpoints). What follows the last checkpoint (head, loss) is kept as computed.
    const feeds = ancestorsOf(checkpoints);
    for (const node of forward) {
      if (node.inputs.some((v) => checkpoints.has(v) || this.dependent.has(v))) {
        for (const o of node.outputs) if (!checkpoints.has(o) && feeds.has(o)) this.dependent.add(o);
      }
    }
  }

  /** Whether differentiating `node` must read recomputed values. */
  involves(node: Node): boolean {
    return node.inputs.some((v) => this.dependent.has(v)) || node.outputs.some((v) => this.dependent.has(v));
  }

  value(v: Value, anchor: Value): Value {
    if (!this.dependent.has(v) && !this.checkpoints.has(v)) return v;
    const known = this.clones.get(v);
    if (known) return known;
    const g = this.g;
    if (this.checkpoints.has(v)) {
      const zero = g.mul(g.cast(g.shape(g.reshape(anchor, [-1]), 0, 1), v.dtype), g.scalar(0));
      const anchored = g.add(v, zero);
      this.clones.set(v, anchored);
      return anchored;
    }
    const node = v.producer!;
    const inputs = node.inputs.map((i) => this.value(i, anchor));
    const outputs = g.op(node.kind, inputs, node.attrs);
    node.outputs.forEach((o, k) => this.clones.set(o, outputs[k]!));
    return this.clones.get(v)!;
  }

  node(node: Node, anchor: Value): Node {
    return {
      ...node,
      inputs: node.inputs.map((v) => this.value(v, anchor)),
      outputs: node.outputs.map((v) => this.value(v, anchor)),
    };
  }
}

/**
 * Removes nodes that no graph output depends on (rules may build values they end up not using, e.g. a
 * recomputed input whose gradient rule needs only its shape). Call after the outputs are marked.
 */
export function pruneUnused(g: Graph): number {
  const live = new Set<Value>();
  const stack = [...g.outputs];
  while (stack.length > 0) {
    const v = stack.pop()!;
    if (live.has(v)) continue;
    live.add(v);
    if (v.producer) stack.push(...v.producer.inputs);
  }
  const before = g.nodes.length;
  const kept = g.nodes.filter((n) => n.outputs.some((o) => live.has(o)));
  g.nodes.splice(0, g.nodes.length, ...kept);
  return before - kept.length;
}

/**
 * Appends the backward pass of `loss` with respect to each of `wrt` and returns the gradients, shaped like
 * `wrt`. A `wrt` value the loss does not depend on gets zeros.
 */
export function grad(g: Graph, loss: Value, wrt: readonly Value[], options: GradOptions = {}): Value[] {
  const fwd = dependents(g, wrt);
  const bwd = ancestors(loss);
  const needs = (v: Value) => fwd.has(v) && bwd.has(v) && isFloat(v.dtype);
  const grads = new Map<Value, Value>();
  const accumulate = (v: Value, d: Value) => {
    const prev = grads.get(v);
    grads.set(v, prev === undefined ? d : g.add(prev, d));
  };
  grads.set(
    loss,
    options.seed ??
      (loss.shape.length === 0
        ? g.scalar(1)
        : g.op1('constantOfShape', [g.shape(loss)], { value: 1, dtype: 'float32' })),
  );

  const forward = [...g.nodes];
  const remat = options.checkpoints?.length ? new Remat(g, new Set(options.checkpoints), forward) : null;
  for (let i = forward.length - 1; i >= 0; i--) {
    const node = forward[i]!;
    if (!node.outputs.some((o) => grads.has(o))) continue;
    const wants = node.inputs.map(needs);
    if (!wants.some(Boolean)) continue;
    const dy = node.outputs.map((o) => grads.get(o));
    const anchor = dy.find((d) => d !== undefined)!;
    const seen = remat?.involves(node) ? remat.node(node, anchor) : node;
    const dx = GRAD_RULES[node.kind]({ g, node: seen, dy, wants });
    node.inputs.forEach((input, k) => {
      if (!wants[k]) return;
      const d = dx[k];
      if (d === undefined) {
        throw new NotDifferentiableError(`${node.kind} gives no gradient for input ${k} (${input.name})`);
      }
      accumulate(input, d);
    });
  }
  return wrt.map((v) => grads.get(v) ?? zerosLike(g, v));
}

function zerosLike(g: Graph, v: Value): Value {
  const staticShape = v.shape.every((d) => typeof d === 'number');
  return staticShape
    ? g.op1('constantOfShape', [g.ints(v.shape as number[])], { value: 0, dtype: v.dtype })
    : g.op1('constantOfShape', [g.shape(v)], { value: 0, dtype: v.dtype });
}
