/**
 * The vector-Jacobian rule of every op kind: `Record<OpKind, GradRule>`, so a kind added to the IR without a
 * rule is a type error. Each rule builds its backward from the same primitives the forward uses. Ops with no
 * meaningful derivative (comparisons, shape arithmetic, integer ops) return undefined gradients; asking for one
 * throws in grad.ts. The traversal is grad.ts; the quantized-weight dequantization is dequant.ts.
 */
import type { Graph } from '../ir/graph.js';
import { attrInts, attrNum, normAxis } from '../ir/ops.js';
import type { DType, OpKind, Value } from '../ir/types.js';
import { invariant } from '../../shared/invariant.js';
import { dequantBnb4, dequantNBits } from './dequant.js';
import type { GradRule } from './grad.js';
import { unbroadcast } from './grad.js';

/** For ops whose output is piecewise constant or not real-valued: no gradient flows. */
const none: GradRule = ({ node }) => node.inputs.map(() => undefined);

/** Unary rule from dx = f(g, x, y, dy). */
const unary =
  (f: (g: Graph, x: Value, y: Value, dy: Value) => Value): GradRule =>
  ({ g, node, dy }) => [dy[0] ? f(g, node.inputs[0]!, node.outputs[0]!, dy[0]) : undefined];

/** Binary rule: the two partial products before unbroadcasting; only wanted ones are built. */
const binary =
  (
    da: (g: Graph, a: Value, b: Value, y: Value, dy: Value) => Value,
    db: (g: Graph, a: Value, b: Value, y: Value, dy: Value) => Value,
  ): GradRule =>
  ({ g, node, dy, wants }) => {
    const [a, b] = node.inputs as [Value, Value];
    const y = node.outputs[0]!;
    const d = dy[0];
    if (!d) return [undefined, undefined];
    return [
      wants[0] ? unbroadcast(g, da(g, a, b, y, d), a) : undefined,
      wants[1] ? unbroadcast(g, db(g, a, b, y, d), b) : undefined,
    ];
  };

/** Swaps the last two axes (rank ≥ 2). */
function transposeLast2(g: Graph, v: Value): Value {
  const r = v.shape.length;
  invariant(r >= 2, () => `transposeLast2 of rank ${r} value ${v.name}`);
  const perm = Array.from({ length: r }, (_, i) => i);
  perm[r - 2] = r - 1;
  perm[r - 1] = r - 2;
  return g.transpose(v, perm);
}

function staticDim(v: Value, axis: number, what: string): number {
  const d = v.shape[axis];
  invariant(
    typeof d === 'number',
    () => `${what}: dim ${axis} of ${v.name} must be static, got ${String(d)}`,
  );
  return d;
}

/** Float one-hot of int `indices` over `depth` classes along a new last axis: (…) → (…, depth). */
export function oneHot(g: Graph, indices: Value, depth: number, dtype: DType = 'float32'): Value {
  const classes = g.ints(Array.from({ length: depth }, (_, i) => i));
  return g.cast(g.equal(g.unsqueeze(g.cast(indices, 'int64'), [-1]), classes), dtype);
}

/** The value of a scalar float constant (an initializer of one element), else undefined. */
function scalarConstant(g: Graph, v: Value): number | undefined {
  const t = g.initializers.get(v);
  return t && t.data.length === 1 && t.data instanceof Float32Array ? t.data[0] : undefined;
}

/** Reduce-sum backward: re-insert the reduced axes and broadcast back to x's runtime shape. */
function expandBack(g: Graph, x: Value, dy: Value, axes: readonly number[], keepdims: boolean): Value {
  const r = x.shape.length;
  const norm = axes.map((a) => normAxis(a, r)).sort((p, q) => p - q);
  const kept = keepdims ? dy : g.unsqueeze(dy, norm);
  return g.expand(kept, g.shape(x));
}

/** Element count over `axes` of x, as a float scalar value (static when the dims are). */
function countOver(g: Graph, x: Value, axes: readonly number[]): Value {
  const r = x.shape.length;
  const dims = axes.map((a) => x.shape[normAxis(a, r)]!);
  if (dims.every((d) => typeof d === 'number'))
    return g.scalar((dims as number[]).reduce((p, d) => p * d, 1));
  let n: Value = g.scalar(1);
  for (const a of axes)
    n = g.mul(n, g.cast(g.gather(g.shape(x), g.constant([normAxis(a, r)], [], 'int64')), 'float32'));
  return n;
}

const matMul: GradRule = ({ g, node, dy, wants }) => {
  const [a, b] = node.inputs as [Value, Value];
  const d = dy[0];
  invariant(
    a.shape.length >= 2 && b.shape.length >= 2,
    () => `matMul grad needs rank ≥ 2 (${a.name}, ${b.name})`,
  );
  if (!d) return [undefined, undefined];
  return [
    wants[0] ? unbroadcast(g, g.matMul(d, transposeLast2(g, b)), a) : undefined,
    wants[1] ? unbroadcast(g, g.matMul(transposeLast2(g, a), d), b) : undefined,
  ];
};

/** Slice with static attrs over a static axis: dx = dy · S where S scatters the kept positions back. */
const slice: GradRule = ({ g, node, dy }) => {
  const x = node.inputs[0]!;
  const d = dy[0];
  invariant(
    node.inputs.length === 1,
    () => `slice grad supports attribute slices only (${node.outputs[0]!.name})`,
  );
  if (!d) return [undefined];
  const axes = attrInts(node.attrs, 'axes');
  const starts = attrInts(node.attrs, 'starts');
  const ends = attrInts(node.attrs, 'ends');
  const steps = node.attrs.steps === undefined ? axes.map(() => 1) : attrInts(node.attrs, 'steps');
  const r = x.shape.length;
  let out = d;
  axes.forEach((a0, j) => {
    const a = normAxis(a0, r);
    const n = staticDim(x, a, 'slice grad');
    const step = steps[j]!;
    invariant(step > 0, () => `slice grad: negative step ${step}`);
    const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + n : v, 0), n);
    const s = clamp(starts[j]!);
    const len = Math.max(0, Math.ceil((clamp(ends[j]!) - s) / step));
    const sel = new Float32Array(len * n);
    for (let i = 0; i < len; i++) sel[i * n + s + i * step] = 1;
    const S = g.constant(sel, [len, n]);
    // Move axis a last, multiply by S (len → n), move it back.
    const perm = Array.from({ length: r }, (_, i) => i);
    perm[a] = r - 1;
    perm[r - 1] = a;
    const moved = a === r - 1 ? out : g.transpose(out, perm);
    const spread = g.matMul(moved, S);
    out = a === r - 1 ? spread : g.transpose(spread, perm);
  });
  return [out];
};

const concat: GradRule = ({ g, node, dy, wants }) => {
  const d = dy[0];
  if (!d) return node.inputs.map(() => undefined);
  const r = d.shape.length;
  const axis = normAxis(attrNum(node.attrs, 'axis'), r);
  let offset: number | Value = 0;
  return node.inputs.map((x, k) => {
    const size = x.shape[axis]!;
    const start = offset;
    const sizeV = typeof size === 'number' ? size : g.gather(g.shape(x), g.constant([axis], [1], 'int64'));
    if (typeof start === 'number' && typeof sizeV === 'number') offset = start + sizeV;
    else
      offset = g.add(
        typeof start === 'number' ? g.ints([start]) : start,
        typeof sizeV === 'number' ? g.ints([sizeV]) : sizeV,
      );
    if (!wants[k]) return undefined;
    if (typeof start === 'number' && typeof offset === 'number') return g.slice(d, [start], [offset], [axis]);
    const sv = typeof start === 'number' ? g.ints([start]) : start;
    return g.op1('slice', [d, sv, offset as Value, g.ints([axis])]);
  });
};

const softmaxCrossEntropy: GradRule = ({ g, node, dy, wants }) => {
  const [scores, labels] = node.inputs as [Value, Value];
  const d = dy[0];
  invariant(!wants[1], 'softmaxCrossEntropyLoss: labels have no gradient');
  if (!d) return [undefined, undefined];
  invariant(
    scores.shape.length === 2,
    () => `softmaxCrossEntropyLoss grad supports (N, V) scores, got rank ${scores.shape.length}`,
  );
  const V = staticDim(scores, 1, 'softmaxCrossEntropyLoss grad');
  const reduction = (node.attrs.reduction as string | undefined) ?? 'mean';
  const ignore = node.attrs.ignoreIndex as number | undefined;
  /** (N, 1) 1 for counted rows */
  let keep: Value | undefined;
  if (ignore !== undefined)
    keep = g.unsqueeze(g.cast(g.not(g.equal(labels, g.constant([ignore], [], 'int64'))), 'float32'), [1]);
  /** (N, V) */
  let dScores = g.sub(g.softmax(scores, 1), oneHot(g, labels, V));
  if (keep) dScores = g.mul(dScores, keep);
  if (reduction === 'none') return [g.mul(dScores, g.unsqueeze(d, [1])), undefined];
  let scale = d;
  if (reduction === 'mean') {
    const count = keep ? g.reduceSum(keep, [0, 1], false) : countOver(g, scores, [0]);
    scale = g.div(d, count);
  }
  return [g.mul(dScores, scale), undefined];
};

const floatCast: GradRule = ({ g, node, dy }) => {
  const x = node.inputs[0]!;
  const d = dy[0];
  const from = x.dtype;
  if (!d || (from !== 'float32' && from !== 'float16')) return [undefined];
  return [g.cast(d, from)];
};

export const GRAD_RULES: Record<OpKind, GradRule> = {
  identity: unary((_g, _x, _y, dy) => dy),
  neg: unary((g, _x, _y, dy) => g.neg(dy)),
  sqrt: unary((g, _x, y, dy) => g.div(dy, g.mul(g.scalar(2), y))),
  exp: unary((g, _x, y, dy) => g.mul(dy, y)),
  log: unary((g, x, _y, dy) => g.div(dy, x)),
  sigmoid: unary((g, _x, y, dy) => g.mul(dy, g.mul(y, g.sub(g.scalar(1), y)))),
  reciprocal: unary((g, _x, y, dy) => g.neg(g.mul(dy, g.mul(y, y)))),
  cos: unary((g, x, _y, dy) => g.neg(g.mul(dy, g.sin(x)))),
  sin: unary((g, x, _y, dy) => g.mul(dy, g.cos(x))),
  tanh: unary((g, _x, y, dy) => g.mul(dy, g.sub(g.scalar(1), g.mul(y, y)))),
  not: none,
  add: binary(
    (_g, _a, _b, _y, dy) => dy,
    (_g, _a, _b, _y, dy) => dy,
  ),
  sub: binary(
    (_g, _a, _b, _y, dy) => dy,
    (g, _a, _b, _y, dy) => g.neg(dy),
  ),
  mul: binary(
    (g, _a, b, _y, dy) => g.mul(dy, b),
    (g, a, _b, _y, dy) => g.mul(dy, a),
  ),
  div: binary(
    (g, _a, b, _y, dy) => g.div(dy, b),
    (g, _a, b, y, dy) => g.neg(g.mul(dy, g.div(y, b))),
  ),
  pow: ({ g, node, dy, wants }) => {
    const [a, b] = node.inputs as [Value, Value];
    const d = dy[0];
    if (!d) return [undefined, undefined];
    // d(a^b)/da = b·a^(b-1); a constant exponent (rmsNorm's x²) folds to c·a^(c-1) with no second Pow.
    const c = scalarConstant(g, b);
    let da: Value | undefined;
    if (wants[0]) {
      const local =
        c === undefined
          ? g.mul(b, g.pow(a, g.sub(b, g.scalar(1))))
          : c === 2
            ? g.mul(a, g.scalar(2))
            : g.mul(g.scalar(c), g.pow(a, g.scalar(c - 1)));
      da = unbroadcast(g, g.mul(d, local), a);
    }
    // d/db = a^b·ln a (defined for a > 0).
    const db = wants[1] ? unbroadcast(g, g.mul(d, g.mul(node.outputs[0]!, g.log(a))), b) : undefined;
    return [da, db];
  },
  max: binary(
    // Ties split the gradient evenly, as PyTorch's maximum does.
    (g, a, b, _y, dy) =>
      g.mul(
        dy,
        g.add(g.cast(g.greater(a, b), 'float32'), g.mul(g.scalar(0.5), g.cast(g.equal(a, b), 'float32'))),
      ),
    (g, a, b, _y, dy) =>
      g.mul(
        dy,
        g.add(g.cast(g.greater(b, a), 'float32'), g.mul(g.scalar(0.5), g.cast(g.equal(a, b), 'float32'))),
      ),
  ),
  equal: none,
  less: none,
  lessOrEqual: none,
  greater: none,
  and: none,
  where: ({ g, node, dy, wants }) => {
    const [c, a, b] = node.inputs as [Value, Value, Value];
    const d = dy[0];
    if (!d) return [undefined, undefined, undefined];
    const zero = g.scalar(0);
    return [
      undefined,
      wants[1] ? unbroadcast(g, g.where(c, d, zero), a) : undefined,
      wants[2] ? unbroadcast(g, g.where(c, zero, d), b) : undefined,
    ];
  },
  cast: floatCast,
  matMul,
  reduceSum: ({ g, node, dy }) => {
    const x = node.inputs[0]!;
    const d = dy[0];
    return [d ? expandBack(g, x, d, attrInts(node.attrs, 'axes'), node.attrs.keepdims !== false) : undefined];
  },
  reduceMean: ({ g, node, dy }) => {
    const x = node.inputs[0]!;
    const d = dy[0];
    if (!d) return [undefined];
    const axes = attrInts(node.attrs, 'axes');
    return [g.div(expandBack(g, x, d, axes, node.attrs.keepdims !== false), countOver(g, x, axes))];
  },
  reduceMax: ({ g, node, dy }) => {
    const x = node.inputs[0]!;
    const y = node.outputs[0]!;
    const d = dy[0];
    if (!d) return [undefined];
    const axes = attrInts(node.attrs, 'axes');
    const keep = node.attrs.keepdims !== false;
    // Every maximal element receives the gradient (a tie is measure-zero for real-valued inputs).
    const yk = keep
      ? y
      : g.unsqueeze(
          y,
          axes.map((a) => normAxis(a, x.shape.length)),
        );
    const isMax = g.cast(g.equal(x, yk), 'float32');
    return [g.mul(expandBack(g, x, d, axes, keep), isMax)];
  },
  softmax: ({ g, node, dy }) => {
    const y = node.outputs[0]!;
    const d = dy[0];
    if (!d) return [undefined];
    const axis = attrNum(node.attrs, 'axis', -1);
    return [g.mul(y, g.sub(d, g.reduceSum(g.mul(d, y), [axis], true)))];
  },
  logSoftmax: ({ g, node, dy }) => {
    const y = node.outputs[0]!;
    const d = dy[0];
    if (!d) return [undefined];
    const axis = attrNum(node.attrs, 'axis', -1);
    return [g.sub(d, g.mul(g.exp(y), g.reduceSum(d, [axis], true)))];
  },
  gather: ({ g, node, dy, wants }) => {
    const [data, indices] = node.inputs as [Value, Value];
    const d = dy[0];
    if (!d || !wants[0]) return [undefined, undefined];
    invariant(
      normAxis(attrNum(node.attrs, 'axis', 0), data.shape.length) === 0,
      'gather grad supports axis 0',
    );
    const dims = data.shape.map((_, i) => staticDim(data, i, 'gather grad'));
    const rows = dims[0]!;
    const rest = dims.slice(1).reduce((p, x) => p * x, 1);
    /** (N, rows) */
    const hot = oneHot(g, g.reshape(indices, [-1]), rows);
    /** (N, rest) */
    const dFlat = g.reshape(d, [-1, rest]);
    return [g.reshape(g.matMul(g.transpose(hot, [1, 0]), dFlat), dims), undefined];
  },
  gatherElements: ({ g, node, dy, wants }) => {
    const [data, indices] = node.inputs as [Value, Value];
    const d = dy[0];
    if (!d || !wants[0]) return [undefined, undefined];
    const r = data.shape.length;
    const axis = normAxis(attrNum(node.attrs, 'axis', 0), r);
    const n = staticDim(data, axis, 'gatherElements grad');
    // dx[…, v, …] = Σ_k dy[…, k, …]·[idx[…, k, …] = v]: one-hot on a new last axis, sum over k, move v into place.
    const spread = g.mul(oneHot(g, indices, n), g.unsqueeze(d, [-1]));
    const summed = g.reduceSum(spread, [axis], true);
    const perm = Array.from({ length: r + 1 }, (_, i) => i);
    perm[axis] = r;
    perm[r] = axis;
    return [g.squeeze(g.transpose(summed, perm), [r]), undefined];
  },
  reshape: ({ g, node, dy }) => {
    const x = node.inputs[0]!;
    const d = dy[0];
    if (!d) return node.inputs.map(() => undefined);
    const staticShape = x.shape.every((s) => typeof s === 'number');
    const back = staticShape ? g.reshape(d, x.shape as number[]) : g.reshape(d, g.shape(x));
    return [back, ...node.inputs.slice(1).map(() => undefined)];
  },
  transpose: ({ g, node, dy }) => {
    const d = dy[0];
    if (!d) return [undefined];
    const perm = attrInts(node.attrs, 'perm');
    const inv = perm.map((_, i) => perm.indexOf(i));
    return [g.transpose(d, inv)];
  },
  concat,
  slice,
  unsqueeze: ({ g, node, dy }) => [dy[0] ? g.squeeze(dy[0], attrInts(node.attrs, 'axes')) : undefined],
  squeeze: ({ g, node, dy }) => [dy[0] ? g.unsqueeze(dy[0], attrInts(node.attrs, 'axes')) : undefined],
  expand: ({ g, node, dy }) => [dy[0] ? unbroadcast(g, dy[0], node.inputs[0]!) : undefined, undefined],
  shape: none,
  range: none,
  constantOfShape: none,
  scatterND: ({ g, node, dy, wants }) => {
    const [, indices, updates] = node.inputs as [Value, Value, Value];
    const d = dy[0];
    if (!d) return [undefined, undefined, undefined];
    // Overwritten positions do not reach the output: their gradient is zero. The updates' gradient would be
    // GatherND, which the op set lacks; nothing differentiates through updates today.
    const zeros = g.constantOfShape(g.shape(updates), 0, d.dtype);
    return [wants[0] ? g.scatterND(d, indices, zeros) : undefined, undefined, undefined];
  },
  dropout: ({ g, node, dy }) => {
    const d = dy[0];
    if (!d) return [undefined];
    const ratio = attrNum(node.attrs, 'ratio', 0.5);
    const keep = g.cast(node.outputs[1]!, d.dtype);
    return [g.mul(d, g.mul(keep, g.scalar(1 / (1 - ratio))))];
  },
  softmaxCrossEntropyLoss: softmaxCrossEntropy,
  // NOTE(fused): the frozen quantized weight has no gradient; the activation's is dy·dequant(W), dequantized
  // with plain ops for this one GEMM only, so no fp32 copy of the weight outlives its backward matmul.
  matMulBnb4: ({ g, node, dy, wants }) => {
    const d = dy[0];
    invariant(!wants[1] && !wants[2], 'matMulBnb4: the quantized weight is frozen');
    return [d && wants[0] ? g.matMul(d, dequantBnb4(g, node, d)) : undefined, undefined, undefined];
  },
  matMulNBits: ({ g, node, dy, wants }) => {
    const d = dy[0];
    invariant(!wants.slice(1).some(Boolean), 'matMulNBits: the quantized weight is frozen');
    return [
      d && wants[0] ? g.matMul(d, dequantNBits(g, node, d)) : undefined,
      ...node.inputs.slice(1).map(() => undefined),
    ];
  },
  groupQueryAttention: () => {
    throw new Error('groupQueryAttention is inference-only: training graphs use the plain attention ops');
  },
  rotaryEmbedding: () => {
    throw new Error('rotaryEmbedding is inference-only: training graphs use the rope composite');
  },
  simplifiedLayerNorm: () => {
    throw new Error('simplifiedLayerNorm is inference-only: training graphs use the rmsNorm composite');
  },
  skipSimplifiedLayerNorm: () => {
    throw new Error(
      'skipSimplifiedLayerNorm is inference-only: training graphs use add + the rmsNorm composite',
    );
  },
};
