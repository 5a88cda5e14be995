/**
 * Plain-op dequantization of the frozen 4-bit weights, for the backward GEMM dX = dY·W only. The forward keeps
 * the fused kernels (MatMulBnb4 / MatMulNBits). A byte → (code, code) level table turns the packed nibbles
 * into floats with one Gather, so the dequantized (N, K) tensor exists only while its one MatMul runs.
 * Layouts are quant's (src/engine/quant/nf4.ts, int4.ts); the rules that call this are in rules.ts.
 * The codes are offset by a runtime zero taken from dY's shape: that keeps ORT's constant folding from
 * precomputing (and keeping) every fp32 weight at session creation, and orders the dequant after dY exists.
 */
import type { Graph } from '../ir/graph.js';
import { attrNum } from '../ir/ops.js';
import type { Node, Value } from '../ir/types.js';
import { NF4_LEVELS } from '../quant/nf4.js';
import { invariant } from '../../shared/invariant.js';

/** (256, 2) float table: byte → [level(first nibble), level(second nibble)]. */
function byteTable(levels: ArrayLike<number>, highFirst: boolean): Float32Array {
  const t = new Float32Array(512);
  for (let b = 0; b < 256; b++) {
    const hi = b >> 4;
    const lo = b & 15;
    t[2 * b] = levels[highFirst ? hi : lo]!;
    t[2 * b + 1] = levels[highFirst ? lo : hi]!;
  }
  return t;
}

/**
 * Byte codes of a packed weight as int32 Gather indices. The flattening Reshape takes its target shape, [-1],
 * from a runtime value (0·dim0(anchor) − 1), so no node of the chain has only constant inputs.
 */
function codes(g: Graph, packed: Value, anchor: Value): Value {
  const flat = g.sub(g.mul(g.shape(anchor, 0, 1), g.ints([0])), g.ints([1]));
  return g.cast(g.reshape(packed, flat), 'int32');
}

/** (N, K) fp32 weight of a matMulBnb4 node: NF4_LEVELS[code]·absmax[flat/blockSize]. */
export function dequantBnb4(g: Graph, node: Node, anchor: Value): Value {
  const [, packed, absmax] = node.inputs as [Value, Value, Value];
  const K = attrNum(node.attrs, 'K');
  const N = attrNum(node.attrs, 'N');
  const bs = attrNum(node.attrs, 'blockSize');
  invariant(attrNum(node.attrs, 'quantType', 1) === 1, 'matMulBnb4 backward supports NF4 (quantType 1) only');
  invariant(
    (N * K) % bs === 0 && bs % 2 === 0,
    () => `matMulBnb4 backward: N·K=${N * K} not a multiple of ${bs}`,
  );
  const table = g.constant(byteTable(NF4_LEVELS, true), [256, 2]);
  /** (N·K/2, 2) */
  const pairs = g.gather(table, codes(g, packed, anchor), 0);
  /** (N·K/bs, bs) · (N·K/bs, 1) */
  const scaled = g.mul(g.reshape(pairs, [(N * K) / bs, bs]), g.reshape(absmax, [-1, 1]));
  return g.reshape(scaled, [N, K]);
}

/** (N, K) fp32 weight of a matMulNBits node (4 bits): (code − zeroPoint)·scale, K padding dropped. */
export function dequantNBits(g: Graph, node: Node, anchor: Value): Value {
  const [, packed, scales, zeroPoints] = node.inputs as [Value, Value, Value, Value | undefined];
  const K = attrNum(node.attrs, 'K');
  const N = attrNum(node.attrs, 'N');
  const bs = attrNum(node.attrs, 'blockSize');
  invariant(attrNum(node.attrs, 'bits', 4) === 4, 'matMulNBits backward supports 4 bits only');
  const nb = Math.ceil(K / bs);
  const identity = Array.from({ length: 16 }, (_, i) => i);
  const table = g.constant(byteTable(identity, false), [256, 2]);
  /** (N, nb, bs) codes as floats */
  const q = g.reshape(g.gather(table, codes(g, packed, anchor), 0), [N, nb, bs]);
  /** (N, nb, 1) */
  let zp: Value;
  if (zeroPoints === undefined) zp = g.scalar(8);
  else {
    const zpRow = Math.ceil(nb / 2);
    const zpPairs = g.reshape(g.gather(table, g.cast(g.reshape(zeroPoints, [-1]), 'int32'), 0), [
      N,
      zpRow * 2,
    ]);
    zp = g.unsqueeze(zpRow * 2 === nb ? zpPairs : g.slice(zpPairs, [0], [nb], [1]), [2]);
  }
  const w = g.mul(g.sub(q, zp), g.reshape(scales, [N, nb, 1]));
  const flat = g.reshape(w, [N, nb * bs]);
  return nb * bs === K ? flat : g.slice(flat, [0], [K], [1]);
}
