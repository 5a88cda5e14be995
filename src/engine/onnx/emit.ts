/**
 * Serializes an IR Graph to ONNX ModelProto bytes (opset 18 + com.microsoft 1). One emitter per op kind in
 * `Record<OpKind, Emitter>`: static axes/shapes kept as IR attributes become int64 constant initializers
 * here, because ONNX ≥ 13 takes them as inputs. Not execution: ./session.ts is the only onnxruntime import.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import type { Graph } from '../ir/graph.js';
import type { Attrs, DType, HostTensor, Node, OpKind, Value } from '../ir/types.js';

const { onnx } = onnxProto;
type INodeProto = onnxProto.onnx.INodeProto;
type IAttributeProto = onnxProto.onnx.IAttributeProto;
type ITensorProto = onnxProto.onnx.ITensorProto;
type IValueInfoProto = onnxProto.onnx.IValueInfoProto;

export const OPSET = 18;
export const MS_DOMAIN = 'com.microsoft';

const ONNX_DTYPE: Record<DType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float16: onnx.TensorProto.DataType.FLOAT16,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  bool: onnx.TensorProto.DataType.BOOL,
  uint8: onnx.TensorProto.DataType.UINT8,
};

export function tensorProto(name: string, t: HostTensor): ITensorProto {
  const d = t.data;
  return {
    name,
    dataType: ONNX_DTYPE[t.dtype],
    dims: [...t.shape],
    rawData: new Uint8Array(d.buffer, d.byteOffset, d.byteLength),
  };
}

const AT = onnx.AttributeProto.AttributeType;
const int = (name: string, i: number): IAttributeProto => ({ name, type: AT.INT, i });
const float = (name: string, f: number): IAttributeProto => ({ name, type: AT.FLOAT, f });
const ints = (name: string, xs: readonly number[]): IAttributeProto => ({
  name,
  type: AT.INTS,
  ints: [...xs],
});
const str = (name: string, s: string): IAttributeProto => ({
  name,
  type: AT.STRING,
  s: new TextEncoder().encode(s),
});

/** What an emitter may do beyond returning its node: add constant initializers (static attrs as inputs). */
export interface EmitContext {
  constInts(xs: readonly number[]): string;
  constScalar(t: HostTensor): string;
  name(v: Value): string;
}

type Emitter = (n: Node, ctx: EmitContext) => INodeProto;

function nodeProto(
  n: Node,
  ctx: EmitContext,
  opType: string,
  attribute: IAttributeProto[] = [],
  extraInputs: string[] = [],
  domain = '',
): INodeProto {
  return {
    name: `n${n.id}_${n.kind}`,
    opType,
    domain,
    input: [...n.inputs.map((v) => ctx.name(v)), ...extraInputs],
    output: n.outputs.map((v) => ctx.name(v)),
    attribute,
  };
}

const simple =
  (opType: string): Emitter =>
  (n, ctx) =>
    nodeProto(n, ctx, opType);

const a = (attrs: Attrs, k: string) => attrs[k] as number;
const as = (attrs: Attrs, k: string) => attrs[k] as readonly number[];

const reduce =
  (opType: string): Emitter =>
  (n, ctx) =>
    nodeProto(
      n,
      ctx,
      opType,
      [int('keepdims', n.attrs.keepdims === false ? 0 : 1)],
      [ctx.constInts(as(n.attrs, 'axes'))],
    );

const axisOp =
  (opType: string): Emitter =>
  (n, ctx) =>
    nodeProto(n, ctx, opType, [int('axis', a(n.attrs, 'axis') ?? 0)]);

const ONNX_EMITTERS: Record<OpKind, Emitter> = {
  identity: simple('Identity'),
  neg: simple('Neg'),
  sqrt: simple('Sqrt'),
  exp: simple('Exp'),
  log: simple('Log'),
  sigmoid: simple('Sigmoid'),
  reciprocal: simple('Reciprocal'),
  cos: simple('Cos'),
  sin: simple('Sin'),
  tanh: simple('Tanh'),
  not: simple('Not'),
  add: simple('Add'),
  sub: simple('Sub'),
  mul: simple('Mul'),
  div: simple('Div'),
  pow: simple('Pow'),
  max: simple('Max'),
  equal: simple('Equal'),
  less: simple('Less'),
  lessOrEqual: simple('LessOrEqual'),
  greater: simple('Greater'),
  and: simple('And'),
  where: simple('Where'),
  cast: (n, ctx) => nodeProto(n, ctx, 'Cast', [int('to', ONNX_DTYPE[n.attrs.to as DType])]),
  matMul: simple('MatMul'),
  reduceSum: reduce('ReduceSum'),
  reduceMean: reduce('ReduceMean'),
  reduceMax: reduce('ReduceMax'),
  softmax: (n, ctx) => nodeProto(n, ctx, 'Softmax', [int('axis', a(n.attrs, 'axis'))]),
  logSoftmax: (n, ctx) => nodeProto(n, ctx, 'LogSoftmax', [int('axis', a(n.attrs, 'axis'))]),
  gather: axisOp('Gather'),
  gatherElements: axisOp('GatherElements'),
  reshape: (n, ctx) =>
    nodeProto(n, ctx, 'Reshape', [], n.inputs.length > 1 ? [] : [ctx.constInts(as(n.attrs, 'shape'))]),
  transpose: (n, ctx) => nodeProto(n, ctx, 'Transpose', [ints('perm', as(n.attrs, 'perm'))]),
  concat: (n, ctx) => nodeProto(n, ctx, 'Concat', [int('axis', a(n.attrs, 'axis'))]),
  slice: (n, ctx) => {
    if (n.inputs.length > 1) return nodeProto(n, ctx, 'Slice');
    const axes = as(n.attrs, 'axes');
    const steps = n.attrs.steps === undefined ? axes.map(() => 1) : as(n.attrs, 'steps');
    return nodeProto(
      n,
      ctx,
      'Slice',
      [],
      [as(n.attrs, 'starts'), as(n.attrs, 'ends'), axes, steps].map((xs) => ctx.constInts(xs)),
    );
  },
  unsqueeze: (n, ctx) => nodeProto(n, ctx, 'Unsqueeze', [], [ctx.constInts(as(n.attrs, 'axes'))]),
  squeeze: (n, ctx) => nodeProto(n, ctx, 'Squeeze', [], [ctx.constInts(as(n.attrs, 'axes'))]),
  expand: simple('Expand'),
  shape: (n, ctx) =>
    nodeProto(n, ctx, 'Shape', [
      ...(n.attrs.start === undefined ? [] : [int('start', a(n.attrs, 'start'))]),
      ...(n.attrs.end === undefined ? [] : [int('end', a(n.attrs, 'end'))]),
    ]),
  range: simple('Range'),
  constantOfShape: (n, ctx) => {
    const dtype = (n.attrs.dtype as DType | undefined) ?? 'float32';
    const v = a(n.attrs, 'value');
    const data =
      dtype === 'int64'
        ? BigInt64Array.of(BigInt(v))
        : dtype === 'int32'
          ? Int32Array.of(v)
          : dtype === 'bool' || dtype === 'uint8'
            ? Uint8Array.of(v)
            : Float32Array.of(v);
    const t = tensorProto('value', { dtype, shape: [1], data });
    return nodeProto(n, ctx, 'ConstantOfShape', [{ name: 'value', type: AT.TENSOR, t }]);
  },
  scatterND: simple('ScatterND'),
  dropout: (n, ctx) =>
    nodeProto(n, ctx, 'Dropout', n.attrs.seed === undefined ? [] : [int('seed', a(n.attrs, 'seed'))], [
      ctx.constScalar({ dtype: 'float32', shape: [], data: Float32Array.of(a(n.attrs, 'ratio')) }),
      ctx.constScalar({ dtype: 'bool', shape: [], data: Uint8Array.of(1) }),
    ]),
  softmaxCrossEntropyLoss: (n, ctx) =>
    nodeProto(n, ctx, 'SoftmaxCrossEntropyLoss', [
      str('reduction', (n.attrs.reduction as string | undefined) ?? 'mean'),
      ...(n.attrs.ignoreIndex === undefined ? [] : [int('ignore_index', a(n.attrs, 'ignoreIndex'))]),
    ]),
  matMulBnb4: (n, ctx) =>
    nodeProto(
      n,
      ctx,
      'MatMulBnb4',
      [
        int('K', a(n.attrs, 'K')),
        int('N', a(n.attrs, 'N')),
        int('block_size', a(n.attrs, 'blockSize')),
        int('quant_type', a(n.attrs, 'quantType') ?? 1),
      ],
      [],
      MS_DOMAIN,
    ),
  matMulNBits: (n, ctx) =>
    nodeProto(
      n,
      ctx,
      'MatMulNBits',
      [
        int('K', a(n.attrs, 'K')),
        int('N', a(n.attrs, 'N')),
        int('bits', a(n.attrs, 'bits') ?? 4),
        int('block_size', a(n.attrs, 'blockSize')),
        int('accuracy_level', a(n.attrs, 'accuracyLevel') ?? 0),
      ],
      [],
      MS_DOMAIN,
    ),
  groupQueryAttention: (n, ctx) =>
    nodeProto(
      n,
      ctx,
      'GroupQueryAttention',
      [
        int('num_heads', a(n.attrs, 'numHeads')),
        int('kv_num_heads', a(n.attrs, 'kvNumHeads')),
        ...(n.attrs.localWindowSize === undefined
          ? []
          : [int('local_window_size', a(n.attrs, 'localWindowSize'))]),
      ],
      [],
      MS_DOMAIN,
    ),
  rotaryEmbedding: (n, ctx) =>
    nodeProto(
      n,
      ctx,
      'RotaryEmbedding',
      [int('interleaved', 0), int('num_heads', a(n.attrs, 'numHeads'))],
      [],
      MS_DOMAIN,
    ),
  // SimplifiedLayerNormalization is an onnxruntime contrib kernel registered in the ONNX domain (it is what ORT
  // fuses the rmsNorm composite into); stash_type 1 keeps the statistics in fp32.
  simplifiedLayerNorm: (n, ctx) =>
    nodeProto(n, ctx, 'SimplifiedLayerNormalization', [
      int('axis', -1),
      float('epsilon', a(n.attrs, 'epsilon')),
      int('stash_type', 1),
    ]),
  // Outputs: output, mean, inv_std_var, input_skip_bias_sum; the two statistics are not wanted ('' = absent).
  skipSimplifiedLayerNorm: (n, ctx) => ({
    ...nodeProto(
      n,
      ctx,
      'SkipSimplifiedLayerNormalization',
      [float('epsilon', a(n.attrs, 'epsilon'))],
      [],
      MS_DOMAIN,
    ),
    output: [ctx.name(n.outputs[0]!), '', '', ctx.name(n.outputs[1]!)],
  }),
};

const SIMPLE_DIM = /^[A-Za-z_][A-Za-z0-9_]*$/;

function valueInfo(v: Value, name: string): IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ONNX_DTYPE[v.dtype],
        shape: {
          dim: v.shape.map((d) =>
            typeof d === 'number' ? { dimValue: d } : SIMPLE_DIM.test(d) ? { dimParam: d } : {},
          ),
        },
      },
    },
  };
}

/** Where large initializers go instead of the protobuf (ONNX external data; protobuf caps a model at 2 GiB). */
export interface ExternalDataSink {
  /** Initializers of at least this many bytes are written to the sink. */
  minBytes: number;
  /** Appends the bytes; returns their offset in the file named `location`. */
  write(bytes: Uint8Array): number;
  location: string;
}

/** Builds the ModelProto object (not yet encoded); exported for tests that inspect it. */
export function toModelProto(graph: Graph, external?: ExternalDataSink): onnxProto.onnx.IModelProto {
  const initializer: ITensorProto[] = [];
  let constCount = 0;
  const intCache = new Map<string, string>();
  const ctx: EmitContext = {
    name: (v) => v.name,
    constInts(xs) {
      const key = xs.join(',');
      let name = intCache.get(key);
      if (name === undefined) {
        name = `__ints_${constCount++}`;
        intCache.set(key, name);
        initializer.push(
          tensorProto(name, {
            dtype: 'int64',
            shape: [xs.length],
            data: BigInt64Array.from(xs, (x) => BigInt(x)),
          }),
        );
      }
      return name;
    },
    constScalar(t) {
      const name = `__scalar_${constCount++}`;
      initializer.push(tensorProto(name, t));
      return name;
    },
  };
  for (const [v, t] of graph.initializers) {
    if (external && t.data.byteLength >= external.minBytes) {
      const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      const offset = external.write(bytes);
      initializer.push({
        name: v.name,
        dataType: ONNX_DTYPE[t.dtype],
        dims: [...t.shape],
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [
          { key: 'location', value: external.location },
          { key: 'offset', value: String(offset) },
          { key: 'length', value: String(bytes.byteLength) },
        ],
      });
    } else initializer.push(tensorProto(v.name, t));
  }
  const node = graph.nodes.map((n) => ONNX_EMITTERS[n.kind](n, ctx));
  return {
    irVersion: 8,
    producerName: 'deltagate',
    opsetImport: [
      { domain: '', version: OPSET },
      { domain: MS_DOMAIN, version: 1 },
    ],
    graph: {
      name: graph.name,
      node,
      initializer,
      input: graph.inputs.map((v) => valueInfo(v, v.name)),
      output: graph.outputs.map((v) => valueInfo(v, v.name)),
    },
  };
}

/** ONNX ModelProto bytes for `InferenceSession.create`. */
export function emitOnnx(graph: Graph): Uint8Array {
  return onnx.ModelProto.encode(toModelProto(graph)).finish();
}

/**
 * Writes `dir/model.onnx` with every initializer of ≥ `minBytes` in `dir/weights.bin` (offsets aligned to
 * 4 KiB so onnxruntime can map them), streaming tensor by tensor. Returns the model path. For graphs whose
 * weights pass protobuf's 2 GiB limit (a 1B-parameter fp32 model).
 */
export function writeOnnxWithExternalData(graph: Graph, dir: string, minBytes = 1024): string {
  const fd = openSync(join(dir, 'weights.bin'), 'w');
  let pos = 0;
  const pad = new Uint8Array(4096);
  try {
    const proto = toModelProto(graph, {
      minBytes,
      location: 'weights.bin',
      write(bytes) {
        const gap = (4096 - (pos % 4096)) % 4096;
        if (gap > 0) pos += writeSync(fd, pad, 0, gap);
        const offset = pos;
        for (let off = 0; off < bytes.byteLength;) off += writeSync(fd, bytes, off, bytes.byteLength - off);
        pos += bytes.byteLength;
        return offset;
      },
    });
    const path = join(dir, 'model.onnx');
    const model = onnx.ModelProto.encode(proto).finish();
    const mfd = openSync(path, 'w');
    try {
      writeSync(mfd, model);
    } finally {
      closeSync(mfd);
    }
    return path;
  } finally {
    closeSync(fd);
  }
}

/** Bytes of all initializers: what the protobuf would have to hold. */
export function initializerBytes(graph: Graph): number {
  let n = 0;
  for (const t of graph.initializers.values()) n += t.data.byteLength;
  return n;
}
