/**
 * Test helper: a one-node ONNX model (opset 17 + com.microsoft 1) built with onnx-proto, run through
 * onnxruntime-node. Constant inputs become initializers (as in the engine's graphs, so ORT prepacks them);
 * the activation A is a graph input. The engine's real emitter lives in src/engine/onnx.
 */
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';

const { onnx } = onnxProto;

export type Attr = number | number[];
export interface Constant {
  name: string;
  dims: number[];
  data: Float32Array | Uint8Array;
}

export function oneNodeModel(
  opType: string,
  domain: string,
  attrs: Record<string, Attr>,
  input: { name: string; dims: number[] },
  constants: (Constant | null)[],
  outDims: number[],
): Uint8Array {
  const dtype = (d: Float32Array | Uint8Array): number =>
    d instanceof Float32Array ? onnx.TensorProto.DataType.FLOAT : onnx.TensorProto.DataType.UINT8;
  const valueInfo = (name: string, dims: number[]) => ({
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: dims.map((d) => ({ dimValue: d })) },
      },
    },
  });
  const model = onnx.ModelProto.fromObject({
    irVersion: 8,
    opsetImport: [
      { domain: '', version: 17 },
      { domain: 'com.microsoft', version: 1 },
    ],
    graph: {
      name: 'one-node',
      node: [
        {
          opType,
          domain,
          input: [input.name, ...constants.map((c) => c?.name ?? '')],
          output: ['Y'],
          attribute: Object.entries(attrs).map(([name, v]) =>
            Array.isArray(v)
              ? { name, type: onnx.AttributeProto.AttributeType.INTS, ints: v }
              : { name, type: onnx.AttributeProto.AttributeType.INT, i: v },
          ),
        },
      ],
      initializer: constants
        .filter((c): c is Constant => c !== null)
        .map((c) => ({
          name: c.name,
          dims: c.dims,
          dataType: dtype(c.data),
          rawData: new Uint8Array(c.data.buffer, c.data.byteOffset, c.data.byteLength),
        })),
      input: [valueInfo(input.name, input.dims)],
      output: [valueInfo('Y', outDims)],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

/** Run the model once on A and return Y's data. */
export async function runOnce(
  bytes: Uint8Array,
  inputName: string,
  a: Float32Array,
  dims: number[],
): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
  try {
    const out = await session.run({ [inputName]: new ort.Tensor('float32', a, dims) });
    return out.Y!.data as Float32Array;
  } finally {
    await session.release();
  }
}

/** Y = A·Wᵀ in float64 plain loops: A (M, K), W (N, K) row-major → Y (M, N). */
export function matMulWeightT(
  a: Float32Array,
  m: number,
  k: number,
  w: Float32Array,
  n: number,
): Float32Array {
  const y = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let c = 0; c < k; c++) s += a[i * k + c]! * w[j * k + c]!;
      y[i * n + j] = s;
    }
  }
  return y;
}

/** Deterministic standard-normal test data (Box–Muller over a small LCG). */
export function gaussian(count: number, seed: number, std = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const u = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 2 ** 32;
  };
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = std * Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}
