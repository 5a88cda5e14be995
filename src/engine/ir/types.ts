/**
 * The graph IR's data types: values (name, dtype, symbolic shape), nodes (op kind, inputs, outputs, attrs),
 * host tensors for initializers, and the closed op set `OpKind`. Not the builder (graph.ts), not the shape
 * rules (ops.ts), not serialization (../onnx/emit.ts). Autodiff (../autodiff/) keys its
 * `Record<OpKind, GradRule>` on `OP_KINDS`, so adding a kind here is a deliberate, type-checked change.
 */

/** Element types the engine uses. `float16` data travels as raw IEEE half bits in a Uint16Array. */
export type DType = 'float32' | 'float16' | 'int64' | 'int32' | 'bool' | 'uint8';

/** A dimension: a number when known, otherwise a symbol ('B', 'T', 'S', …) or a derived expression. */
export type Dim = number | string;
export type Shape = readonly Dim[];

/** Attribute values. Which are ints and which are floats is fixed per op by the emitter table. */
export type AttrValue = number | readonly number[] | string | boolean;
export type Attrs = Readonly<Record<string, AttrValue>>;

/**
 * The closed op set. Primitives map 1:1 to an ONNX node (a few also emit constant initializers for
 * their static axes/shape attributes). Composites (silu, rmsNorm, rope, …) live in composites.ts.
 * Conventions (inputs; attrs):
 * - unary: identity neg sqrt exp log sigmoid reciprocal cos sin tanh not (x)
 * - binary, numpy broadcasting: add sub mul div pow max equal less lessOrEqual greater and (a, b)
 * - where (cond, a, b); cast (x) {to: DType}
 * - matMul (a, b): numpy matmul with batch broadcasting
 * - reduceSum reduceMean reduceMax (x) {axes: number[], keepdims: boolean}
 * - softmax logSoftmax (x) {axis}
 * - gather (data, indices) {axis}; gatherElements (data, indices) {axis}
 * - reshape (x) {shape: number[]} (0 copies a dim, -1 infers) OR (x, shape: int64 value)
 * - transpose (x) {perm}; concat (...xs) {axis}; unsqueeze squeeze (x) {axes}
 * - slice (x) {starts, ends, axes, steps?} OR (x, starts, ends, axes[, steps]) as int64 values
 * - expand (x, shape: int64 value); shape (x) {start?, end?} → int64 (rank); range (start, limit, delta)
 * - constantOfShape (shape: int64 value) {value: number, dtype: DType}
 * - scatterND (data, indices, updates)
 * - dropout (x) {ratio, seed?} → [y, mask (bool)]: training-mode dropout, y = x·mask/(1-ratio)
 * - softmaxCrossEntropyLoss (scores (N, V) or (N, V, d…), labels int64) {reduction: 'mean'|'sum'|'none',
 *   ignoreIndex?} → loss
 * - matMulBnb4 (a, packed uint8, absmax f32) {K, N, blockSize, quantType}: NOTE(fused) y = a·dequant(W)ᵀ
 * - matMulNBits (a, packed uint8 (N, K/bs, bs/2), scales f32, zeroPoints uint8?) {K, N, bits, blockSize,
 *   accuracyLevel}: NOTE(fused) y = a·dequant(W)ᵀ, the fast CPU 4-bit GEMV (see ENGINE.md)
 * - groupQueryAttention (q (B, S, H·D), k (B, S, KVH·D), v (B, S, KVH·D), pastKey (B, KVH, CAP, D),
 *   pastValue, seqlensK (B) int32, totalSequenceLength () int32) {numHeads, kvNumHeads, localWindowSize?}
 *   → [out (B, S, H·D), presentKey, presentValue (B, KVH, CAP, D)]: NOTE(fused) com.microsoft's attention over
 *   a per-row cache — row b's S new tokens sit at [seqlensK[b] + 1 − S, seqlensK[b] + 1), attend causally to
 *   that row's own prefix only, and are written into present (which shares past's buffer). Inference only.
 * - rotaryEmbedding (x (B, S, N·D), positionIds (B, S) int64, cosCache (P, D/2), sinCache (P, D/2)) {numHeads}
 *   → (B, S, N·D): NOTE(fused) com.microsoft.RotaryEmbedding, non-interleaved (HF rotate_half): for each
 *   head, i < D/2: y[i] = x[i]·cos[p, i] − x[i + D/2]·sin[p, i], y[i + D/2] = x[i + D/2]·cos[p, i] +
 *   x[i]·sin[p, i], p = positionIds[b, s]. Inference only.
 * - simplifiedLayerNorm (x (…, C), w (C)) {epsilon} → (…, C): NOTE(fused) RMSNorm, the ONNX-domain
 *   SimplifiedLayerNormalization kernel: x / sqrt(mean(x², -1) + eps) · w. Inference only.
 * - skipSimplifiedLayerNorm (x (…, C), skip (…, C), w (C)) {epsilon} → [y, sum]: NOTE(fused)
 *   com.microsoft.SkipSimplifiedLayerNormalization: sum = x + skip (the residual stream), y = rmsNorm(sum)·w.
 *   Inference only.
 */
export const OP_KINDS = [
  'identity',
  'neg',
  'sqrt',
  'exp',
  'log',
  'sigmoid',
  'reciprocal',
  'cos',
  'sin',
  'tanh',
  'not',
  'add',
  'sub',
  'mul',
  'div',
  'pow',
  'max',
  'equal',
  'less',
  'lessOrEqual',
  'greater',
  'and',
  'where',
  'cast',
  'matMul',
  'reduceSum',
  'reduceMean',
  'reduceMax',
  'softmax',
  'logSoftmax',
  'gather',
  'gatherElements',
  'reshape',
  'transpose',
  'concat',
  'slice',
  'unsqueeze',
  'squeeze',
  'expand',
  'shape',
  'range',
  'constantOfShape',
  'scatterND',
  'dropout',
  'softmaxCrossEntropyLoss',
  'matMulBnb4',
  'matMulNBits',
  'groupQueryAttention',
  'rotaryEmbedding',
  'simplifiedLayerNorm',
  'skipSimplifiedLayerNorm',
] as const;
export type OpKind = (typeof OP_KINDS)[number];

export type ValueSource = 'input' | 'initializer' | 'node';

/**
 * An SSA value. Identity is the object; its unique `name` changes only when `Graph.output` names a node
 * value (so key maps by object, not by name). Shape and dtype never change.
 */
export interface Value {
  readonly id: number;
  readonly name: string;
  readonly dtype: DType;
  readonly shape: Shape;
  readonly source: ValueSource;
  /** The node that computes it (source 'node'), else undefined. */
  readonly producer: Node | undefined;
}

export interface Node {
  readonly id: number;
  readonly kind: OpKind;
  readonly inputs: readonly Value[];
  readonly outputs: readonly Value[];
  readonly attrs: Attrs;
}

export type TensorArray = Float32Array | Uint16Array | BigInt64Array | Int32Array | Uint8Array;

/** A host tensor (initializer or feed). `data.length` equals the product of `shape`. */
export interface HostTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: TensorArray;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function isFloat(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float16';
}
