/**
 * Output dtype/shape rules for every op kind: `Record<OpKind, ShapeRule>`, so a new kind without a rule is a
 * type error. Shapes are symbolic where they cannot be known statically (a derived dim is a string such as
 * 'B*T' or 'reshape#12.1'); rank is always exact. Not the ONNX mapping (../onnx/emit.ts) and not gradients
 * (../autodiff/).
 */
import type { AttrValue, Attrs, DType, Dim, OpKind, Shape, Value } from './types.js';

export interface OutputSpec {
  dtype: DType;
  shape: Dim[];
}
export type ShapeRule = (inputs: readonly Value[], attrs: Attrs, nodeId: number) => OutputSpec[];

export class IrShapeError extends Error {
  override name = 'IrShapeError';
}

function check(cond: unknown, msg: () => string): asserts cond {
  if (!cond) throw new IrShapeError(msg());
}

export function attrNum(attrs: Attrs, key: string, fallback?: number): number {
  const v = attrs[key];
  if (v === undefined && fallback !== undefined) return fallback;
  check(typeof v === 'number', () => `attr ${key} must be a number, got ${String(v)}`);
  return v;
}

export function attrInts(attrs: Attrs, key: string): readonly number[] {
  const v: AttrValue | undefined = attrs[key];
  check(Array.isArray(v), () => `attr ${key} must be a number[], got ${String(v)}`);
  return v as readonly number[];
}

export function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  check(a >= 0 && a < rank, () => `axis ${axis} out of range for rank ${rank}`);
  return a;
}

/** Numpy broadcasting over symbolic dims: 1 yields to the other; equal symbols stay; a number wins. */
export function broadcastShapes(a: Shape, b: Shape): Dim[] {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const da = i < rank - a.length ? 1 : a[i - (rank - a.length)]!;
    const db = i < rank - b.length ? 1 : b[i - (rank - b.length)]!;
    if (da === 1) out.push(db);
    else if (db === 1 || da === db) out.push(da);
    else if (typeof da === 'number' && typeof db === 'number')
      throw new IrShapeError(`cannot broadcast [${a.join(',')}] with [${b.join(',')}]`);
    else out.push(typeof da === 'number' ? da : db);
  }
  return out;
}

const same: ShapeRule = (xs) => [{ dtype: xs[0]!.dtype, shape: [...xs[0]!.shape] }];
const binary: ShapeRule = (xs) => [
  { dtype: xs[0]!.dtype, shape: broadcastShapes(xs[0]!.shape, xs[1]!.shape) },
];
const compare: ShapeRule = (xs) => [{ dtype: 'bool', shape: broadcastShapes(xs[0]!.shape, xs[1]!.shape) }];

function reduce(xs: readonly Value[], attrs: Attrs): OutputSpec[] {
  const x = xs[0]!;
  const axes = attrInts(attrs, 'axes').map((a) => normAxis(a, x.shape.length));
  const keep = attrs.keepdims !== false;
  const shape: Dim[] = [];
  x.shape.forEach((d, i) => {
    if (!axes.includes(i)) shape.push(d);
    else if (keep) shape.push(1);
  });
  return [{ dtype: x.dtype, shape }];
}

function matMulShape(a: Shape, b: Shape): Dim[] {
  check(a.length >= 1 && b.length >= 1, () => 'matMul of a scalar');
  const a2 = a.length === 1 ? [1, a[0]!] : a;
  const b2 = b.length === 1 ? [b[0]!, 1] : b;
  const ka = a2[a2.length - 1]!;
  const kb = b2[b2.length - 2]!;
  check(
    typeof ka !== 'number' || typeof kb !== 'number' || ka === kb,
    () => `matMul inner dims differ: [${a.join(',')}] x [${b.join(',')}]`,
  );
  const batch = broadcastShapes(a2.slice(0, -2), b2.slice(0, -2));
  const out = [...batch, a2[a2.length - 2]!, b2[b2.length - 1]!];
  if (a.length === 1) out.splice(out.length - 2, 1);
  if (b.length === 1) out.splice(out.length - 1, 1);
  return out;
}

function factor(dims: readonly Dim[]): { n: number; syms: string[] } {
  let n = 1;
  const syms: string[] = [];
  for (const d of dims) {
    if (typeof d === 'number') n *= d;
    else syms.push(...d.split('*'));
  }
  return { n, syms };
}

/** total / rest over symbolic products, when rest's symbols are a sub-multiset of total's. */
function divideDims(total: readonly Dim[], rest: readonly Dim[]): Dim | undefined {
  const t = factor(total);
  const r = factor(rest);
  if (r.n === 0 || t.n % r.n !== 0) return undefined;
  const left = [...t.syms];
  for (const s of r.syms) {
    const i = left.indexOf(s);
    if (i < 0) return undefined;
    left.splice(i, 1);
  }
  const n = t.n / r.n;
  if (left.length === 0) return n;
  return (n === 1 ? left : [String(n), ...left]).join('*');
}

function reshapeShape(x: Value, target: readonly number[], nodeId: number): Dim[] {
  const out: Dim[] = target.map((d, i) => (d === 0 ? x.shape[i]! : d));
  const inf = out.indexOf(-1);
  if (inf >= 0) {
    out[inf] =
      divideDims(
        x.shape,
        out.filter((_, i) => i !== inf),
      ) ?? `reshape#${nodeId}.${inf}`;
  }
  return out;
}

function fresh(nodeId: number, rank: number): Dim[] {
  return Array.from({ length: rank }, (_, i) => `n${nodeId}.${i}`);
}

/** Static rank of a 1-D int64 shape value, when the dims are known, else undefined. */
function shapeValueLength(v: Value | undefined): number | undefined {
  const d = v?.shape[0];
  return typeof d === 'number' ? d : undefined;
}

export const SHAPE_RULES: Record<OpKind, ShapeRule> = {
  identity: same,
  neg: same,
  sqrt: same,
  exp: same,
  log: same,
  sigmoid: same,
  reciprocal: same,
  cos: same,
  sin: same,
  tanh: same,
  not: same,
  add: binary,
  sub: binary,
  mul: binary,
  div: binary,
  pow: (xs) => [{ dtype: xs[0]!.dtype, shape: broadcastShapes(xs[0]!.shape, xs[1]!.shape) }],
  max: binary,
  equal: compare,
  less: compare,
  lessOrEqual: compare,
  greater: compare,
  and: compare,
  where: (xs) => [
    {
      dtype: xs[1]!.dtype,
      shape: broadcastShapes(xs[0]!.shape, broadcastShapes(xs[1]!.shape, xs[2]!.shape)),
    },
  ],
  cast: (xs, attrs) => [{ dtype: attrs.to as DType, shape: [...xs[0]!.shape] }],
  matMul: (xs) => [{ dtype: xs[0]!.dtype, shape: matMulShape(xs[0]!.shape, xs[1]!.shape) }],
  reduceSum: reduce,
  reduceMean: reduce,
  reduceMax: reduce,
  softmax: same,
  logSoftmax: same,
  gather: (xs, attrs) => {
    const [data, idx] = xs as [Value, Value];
    const axis = normAxis(attrNum(attrs, 'axis', 0), data.shape.length);
    return [
      {
        dtype: data.dtype,
        shape: [...data.shape.slice(0, axis), ...idx.shape, ...data.shape.slice(axis + 1)],
      },
    ];
  },
  gatherElements: (xs) => [{ dtype: xs[0]!.dtype, shape: [...xs[1]!.shape] }],
  reshape: (xs, attrs, id) => {
    const x = xs[0]!;
    if (xs.length > 1) {
      const n = shapeValueLength(xs[1]);
      check(n !== undefined, () => `reshape: shape input ${xs[1]!.name} needs a static length`);
      return [{ dtype: x.dtype, shape: fresh(id, n) }];
    }
    return [{ dtype: x.dtype, shape: reshapeShape(x, attrInts(attrs, 'shape'), id) }];
  },
  transpose: (xs, attrs) => {
    const perm = attrInts(attrs, 'perm');
    check(perm.length === xs[0]!.shape.length, () => `transpose perm ${perm} vs rank ${xs[0]!.shape.length}`);
    return [{ dtype: xs[0]!.dtype, shape: perm.map((p) => xs[0]!.shape[p]!) }];
  },
  concat: (xs, attrs) => {
    const rank = xs[0]!.shape.length;
    const axis = normAxis(attrNum(attrs, 'axis'), rank);
    const shape = [...xs[0]!.shape];
    const parts = xs.map((x) => x.shape[axis]!);
    const nums = parts.filter((p): p is number => typeof p === 'number').reduce((s, p) => s + p, 0);
    const syms = parts.filter((p): p is string => typeof p === 'string');
    shape[axis] = syms.length === 0 ? nums : [...syms, ...(nums > 0 ? [String(nums)] : [])].join('+');
    return [{ dtype: xs[0]!.dtype, shape }];
  },
  slice: (xs, attrs, id) => {
    const x = xs[0]!;
    const shape = [...x.shape];
    if (xs.length > 1) {
      return [{ dtype: x.dtype, shape: shape.map((d, i) => (d === 1 ? 1 : `n${id}.${i}`)) }];
    }
    const starts = attrInts(attrs, 'starts');
    const ends = attrInts(attrs, 'ends');
    const axes = attrInts(attrs, 'axes');
    const steps = attrs.steps === undefined ? axes.map(() => 1) : attrInts(attrs, 'steps');
    axes.forEach((a0, j) => {
      const a = normAxis(a0, x.shape.length);
      const d = x.shape[a]!;
      const step = steps[j]!;
      if (typeof d === 'number' && step > 0) {
        const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + d : v, 0), d);
        shape[a] = Math.max(0, Math.ceil((clamp(ends[j]!) - clamp(starts[j]!)) / step));
      } else shape[a] = `n${id}.${a}`;
    });
    return [{ dtype: x.dtype, shape }];
  },
  unsqueeze: (xs, attrs) => {
    const x = xs[0]!;
    const rank = x.shape.length + attrInts(attrs, 'axes').length;
    const axes = attrInts(attrs, 'axes').map((a) => normAxis(a, rank));
    const shape: Dim[] = [];
    let k = 0;
    for (let i = 0; i < rank; i++) shape.push(axes.includes(i) ? 1 : x.shape[k++]!);
    return [{ dtype: x.dtype, shape }];
  },
  squeeze: (xs, attrs) => {
    const x = xs[0]!;
    const axes = attrInts(attrs, 'axes').map((a) => normAxis(a, x.shape.length));
    return [{ dtype: x.dtype, shape: x.shape.filter((_, i) => !axes.includes(i)) }];
  },
  expand: (xs, _attrs, id) => {
    const n = shapeValueLength(xs[1]);
    check(n !== undefined, () => `expand: shape input ${xs[1]!.name} needs a static length`);
    const target = fresh(id, n);
    return [{ dtype: xs[0]!.dtype, shape: broadcastShapes(xs[0]!.shape, target) }];
  },
  shape: (xs, attrs) => {
    const rank = xs[0]!.shape.length;
    const start = attrs.start === undefined ? 0 : normAxis(attrNum(attrs, 'start'), rank);
    const end =
      attrs.end === undefined
        ? rank
        : Math.min(rank, attrNum(attrs, 'end') < 0 ? attrNum(attrs, 'end') + rank : attrNum(attrs, 'end'));
    return [{ dtype: 'int64', shape: [end - start] }];
  },
  range: (xs, _a, id) => [{ dtype: xs[0]!.dtype, shape: [`n${id}.0`] }],
  constantOfShape: (xs, attrs, id) => {
    const n = shapeValueLength(xs[0]);
    check(n !== undefined, () => `constantOfShape: shape input needs a static length`);
    return [{ dtype: (attrs.dtype as DType | undefined) ?? 'float32', shape: fresh(id, n) }];
  },
  scatterND: same,
  dropout: (xs) => [
    { dtype: xs[0]!.dtype, shape: [...xs[0]!.shape] },
    { dtype: 'bool', shape: [...xs[0]!.shape] },
  ],
  softmaxCrossEntropyLoss: (xs, attrs) => [
    { dtype: xs[0]!.dtype, shape: attrs.reduction === 'none' ? [...xs[1]!.shape] : [] },
  ],
  matMulBnb4: (xs, attrs) => [
    { dtype: xs[0]!.dtype, shape: [...xs[0]!.shape.slice(0, -1), attrNum(attrs, 'N')] },
  ],
  matMulNBits: (xs, attrs) => [
    { dtype: xs[0]!.dtype, shape: [...xs[0]!.shape.slice(0, -1), attrNum(attrs, 'N')] },
  ],
  groupQueryAttention: (xs, attrs) => {
    check(xs.length === 7, () => `groupQueryAttention takes 7 inputs, got ${xs.length}`);
    const [q, , , pastKey, pastValue, seqlens, total] = xs as [
      Value,
      Value,
      Value,
      Value,
      Value,
      Value,
      Value,
    ];
    check(
      seqlens.dtype === 'int32' && total.dtype === 'int32',
      () => 'seqlensK and totalSequenceLength are int32',
    );
    check(
      attrNum(attrs, 'numHeads') % attrNum(attrs, 'kvNumHeads') === 0,
      () => 'numHeads % kvNumHeads != 0',
    );
    return [
      { dtype: q.dtype, shape: [...q.shape] },
      { dtype: pastKey.dtype, shape: [...pastKey.shape] },
      { dtype: pastValue.dtype, shape: [...pastValue.shape] },
    ];
  },
  rotaryEmbedding: (xs, attrs) => {
    check(xs.length === 4, () => `rotaryEmbedding takes 4 inputs, got ${xs.length}`);
    const [x, pos, cos, sin] = xs as [Value, Value, Value, Value];
    check(x.shape.length === 3, () => `rotaryEmbedding: x must be (B, S, N·D), got [${x.shape.join(',')}]`);
    check(
      pos.dtype === 'int64' && pos.shape.length === 2,
      () => 'rotaryEmbedding: positionIds is (B, S) int64',
    );
    check(
      cos.shape.length === 2 && sin.shape.length === 2 && cos.shape[1] === sin.shape[1],
      () => 'rotaryEmbedding: cos/sin caches are (P, D/2)',
    );
    const half = cos.shape[1];
    const width = x.shape[2];
    const heads = attrNum(attrs, 'numHeads');
    check(
      typeof half !== 'number' || typeof width !== 'number' || width === heads * 2 * half,
      () => `rotaryEmbedding: width ${String(width)} != numHeads ${heads} · 2 · ${String(half)}`,
    );
    return [{ dtype: x.dtype, shape: [...x.shape] }];
  },
  simplifiedLayerNorm: (xs) => {
    check(xs.length === 2, () => `simplifiedLayerNorm takes 2 inputs, got ${xs.length}`);
    return [{ dtype: xs[0]!.dtype, shape: [...xs[0]!.shape] }];
  },
  skipSimplifiedLayerNorm: (xs) => {
    check(xs.length === 3, () => `skipSimplifiedLayerNorm takes 3 inputs, got ${xs.length}`);
    const shape = broadcastShapes(xs[0]!.shape, xs[1]!.shape);
    check(shape.length === xs[0]!.shape.length, () => "skipSimplifiedLayerNorm: skip has x's rank");
    return [
      { dtype: xs[0]!.dtype, shape },
      { dtype: xs[0]!.dtype, shape: [...shape] },
    ];
  },
};
