/**
 * The graph and its builder: inputs, initializers (host tensors), nodes in topological (append) order, and
 * outputs. `g.op(kind, inputs, attrs)` is the one generic constructor; the typed helpers below are thin
 * wrappers over it. A graph stays open: autodiff appends nodes and marks outputs after the forward is built.
 * Composite layers (silu, rmsNorm, rope) are in composites.ts; ONNX serialization in ../onnx/emit.ts.
 */
import { SHAPE_RULES, IrShapeError } from './ops.js';
import type { Attrs, DType, Dim, HostTensor, Node, OpKind, Shape, TensorArray, Value } from './types.js';
import { numel } from './types.js';

export interface OpOptions {
  /** Base for the output names (made unique); default `${kind}_${nodeId}`. */
  name?: string;
}

function dtypeOf(data: TensorArray): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Uint16Array) return 'float16';
  return 'uint8';
}

export class Graph {
  readonly inputs: Value[] = [];
  readonly outputs: Value[] = [];
  readonly nodes: Node[] = [];
  /** Initializer values and their host data, in insertion order. */
  readonly initializers = new Map<Value, HostTensor>();
  private readonly names = new Set<string>();
  private nextId = 0;

  constructor(readonly name = 'deltagate') {}

  private uniqueName(base: string): string {
    let name = base;
    for (let k = 1; this.names.has(name); k++) name = `${base}_${k}`;
    this.names.add(name);
    return name;
  }

  private makeValue(
    name: string,
    dtype: DType,
    shape: Shape,
    source: Value['source'],
    producer?: Node,
  ): Value {
    return { id: this.nextId++, name, dtype, shape: [...shape], source, producer };
  }

  /** A graph input (a feed). The name is used verbatim and must be unique. */
  input(name: string, dtype: DType, shape: Shape): Value {
    if (this.names.has(name)) throw new IrShapeError(`duplicate value name ${name}`);
    this.names.add(name);
    const v = this.makeValue(name, dtype, shape, 'input');
    this.inputs.push(v);
    return v;
  }

  /** A named initializer (a weight). The name is made unique if taken. */
  initializer(name: string, tensor: HostTensor): Value {
    if (tensor.data.length !== numel(tensor.shape))
      throw new IrShapeError(`initializer ${name}: ${tensor.data.length} values for shape [${tensor.shape}]`);
    const v = this.makeValue(this.uniqueName(name), tensor.dtype, tensor.shape, 'initializer');
    this.initializers.set(v, tensor);
    return v;
  }

  /** A constant (an anonymous initializer). Scalars when shape is []. bool constants use uint8 0/1 data. */
  constant(data: TensorArray | readonly number[], shape: readonly number[] = [], dtype?: DType): Value {
    const arr: TensorArray = Array.isArray(data)
      ? dtype === 'int64'
        ? BigInt64Array.from(data as number[], (x) => BigInt(x))
        : dtype === 'int32'
          ? Int32Array.from(data as number[])
          : dtype === 'bool' || dtype === 'uint8'
            ? Uint8Array.from(data as number[])
            : Float32Array.from(data as number[])
      : (data as TensorArray);
    return this.initializer('const', { dtype: dtype ?? dtypeOf(arr), shape: [...shape], data: arr });
  }

  scalar(x: number, dtype: DType = 'float32'): Value {
    return this.constant([x], [], dtype);
  }

  /** 1-D int64 constant, e.g. a target shape for reshape/expand. */
  ints(xs: readonly number[]): Value {
    return this.constant(xs, [xs.length], 'int64');
  }

  /** The generic node constructor; returns all outputs. */
  op(kind: OpKind, inputs: readonly Value[], attrs: Attrs = {}, options: OpOptions = {}): Value[] {
    const id = this.nextId++;
    let specs;
    try {
      specs = SHAPE_RULES[kind](inputs, attrs, id);
    } catch (err) {
      const sig = inputs.map((v) => `${v.name}:${v.dtype}[${v.shape.join(',')}]`).join(', ');
      throw new IrShapeError(`${kind}(${sig}) ${JSON.stringify(attrs)}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const outputs: Value[] = [];
    const node: Node = { id, kind, inputs: [...inputs], outputs, attrs: { ...attrs } };
    const base = options.name ?? `${kind}_${id}`;
    specs.forEach((s, i) =>
      outputs.push(
        this.makeValue(this.uniqueName(i === 0 ? base : `${base}_${i}`), s.dtype, s.shape, 'node', node),
      ),
    );
    this.nodes.push(node);
    return outputs;
  }

  /** Single-output convenience over `op`. */
  op1(kind: OpKind, inputs: readonly Value[], attrs: Attrs = {}, options: OpOptions = {}): Value {
    return this.op(kind, inputs, attrs, options)[0]!;
  }

  /**
   * Marks `v` as a graph output named `name`. A node value not yet an output is renamed in place (an ONNX
   * Identity would copy the tensor on every run); otherwise an identity node carries the new name.
   */
  output(v: Value, name?: string): Value {
    let out = v;
    if (name !== undefined && name !== v.name) {
      if (this.names.has(name)) throw new IrShapeError(`duplicate value name ${name}`);
      if (v.source === 'node' && !this.outputs.includes(v)) {
        this.names.delete(v.name);
        this.names.add(name);
        (v as { name: string }).name = name;
      } else {
        out = this.op1('identity', [v], {}, { name });
        if (out.name !== name) throw new IrShapeError(`output name ${name} taken`);
      }
    }
    this.outputs.push(out);
    return out;
  }

  /** Nodes that read `v` (linear scan; autodiff builds its own index). */
  consumers(v: Value): Node[] {
    return this.nodes.filter((n) => n.inputs.includes(v));
  }

  // ---- typed helpers: one line each over `op` ----
  identity = (x: Value) => this.op1('identity', [x]);
  neg = (x: Value) => this.op1('neg', [x]);
  sqrt = (x: Value) => this.op1('sqrt', [x]);
  exp = (x: Value) => this.op1('exp', [x]);
  log = (x: Value) => this.op1('log', [x]);
  sigmoid = (x: Value) => this.op1('sigmoid', [x]);
  reciprocal = (x: Value) => this.op1('reciprocal', [x]);
  cos = (x: Value) => this.op1('cos', [x]);
  sin = (x: Value) => this.op1('sin', [x]);
  tanh = (x: Value) => this.op1('tanh', [x]);
  not = (x: Value) => this.op1('not', [x]);
  add = (a: Value, b: Value) => this.op1('add', [a, b]);
  sub = (a: Value, b: Value) => this.op1('sub', [a, b]);
  mul = (a: Value, b: Value) => this.op1('mul', [a, b]);
  div = (a: Value, b: Value) => this.op1('div', [a, b]);
  pow = (a: Value, b: Value) => this.op1('pow', [a, b]);
  max = (a: Value, b: Value) => this.op1('max', [a, b]);
  equal = (a: Value, b: Value) => this.op1('equal', [a, b]);
  less = (a: Value, b: Value) => this.op1('less', [a, b]);
  lessOrEqual = (a: Value, b: Value) => this.op1('lessOrEqual', [a, b]);
  greater = (a: Value, b: Value) => this.op1('greater', [a, b]);
  and = (a: Value, b: Value) => this.op1('and', [a, b]);
  where = (cond: Value, a: Value, b: Value) => this.op1('where', [cond, a, b]);
  cast = (x: Value, to: DType) => (x.dtype === to ? x : this.op1('cast', [x], { to }));
  matMul = (a: Value, b: Value) => this.op1('matMul', [a, b]);
  reduceSum = (x: Value, axes: readonly number[], keepdims = true) =>
    this.op1('reduceSum', [x], { axes, keepdims });
  reduceMean = (x: Value, axes: readonly number[], keepdims = true) =>
    this.op1('reduceMean', [x], { axes, keepdims });
  reduceMax = (x: Value, axes: readonly number[], keepdims = true) =>
    this.op1('reduceMax', [x], { axes, keepdims });
  softmax = (x: Value, axis = -1) => this.op1('softmax', [x], { axis });
  logSoftmax = (x: Value, axis = -1) => this.op1('logSoftmax', [x], { axis });
  gather = (data: Value, indices: Value, axis = 0) => this.op1('gather', [data, indices], { axis });
  gatherElements = (data: Value, indices: Value, axis = 0) =>
    this.op1('gatherElements', [data, indices], { axis });
  /** Static target shape: 0 copies the input dim, -1 is inferred. */
  reshape = (x: Value, shape: readonly number[] | Value) =>
    Array.isArray(shape) ? this.op1('reshape', [x], { shape }) : this.op1('reshape', [x, shape as Value]);
  transpose = (x: Value, perm: readonly number[]) => this.op1('transpose', [x], { perm });
  concat = (xs: readonly Value[], axis: number) => this.op1('concat', xs, { axis });
  slice = (
    x: Value,
    starts: readonly number[],
    ends: readonly number[],
    axes: readonly number[],
    steps?: number[],
  ) => this.op1('slice', [x], steps ? { starts, ends, axes, steps } : { starts, ends, axes });
  unsqueeze = (x: Value, axes: readonly number[]) => this.op1('unsqueeze', [x], { axes });
  squeeze = (x: Value, axes: readonly number[]) => this.op1('squeeze', [x], { axes });
  expand = (x: Value, shape: Value) => this.op1('expand', [x, shape]);
  shape = (x: Value, start?: number, end?: number) =>
    this.op1('shape', [x], {
      ...(start === undefined ? {} : { start }),
      ...(end === undefined ? {} : { end }),
    });
  range = (start: Value, limit: Value, delta: Value) => this.op1('range', [start, limit, delta]);
  constantOfShape = (shape: Value, value: number, dtype: DType = 'float32') =>
    this.op1('constantOfShape', [shape], { value, dtype });
  scatterND = (data: Value, indices: Value, updates: Value) =>
    this.op1('scatterND', [data, indices, updates]);
  /** Training-mode dropout → [y, keepMask]. */
  dropout = (x: Value, ratio: number, seed?: number) =>
    this.op('dropout', [x], seed === undefined ? { ratio } : { ratio, seed }) as [Value, Value];
}

/** A symbolic or numeric dim as written in shape comments, for messages. */
export function formatShape(shape: readonly Dim[]): string {
  return `(${shape.join(', ')})`;
}
