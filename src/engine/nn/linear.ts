/**
 * One linear module of the Llama graph: y = x·Wᵀ (+ bias) (+ the LoRA term), with W as an fp32
 * initializer in HF's (out, in) layout (onnxruntime folds the Transpose at load), NF4 through MatMulBnb4 or int4
 * through MatMulNBits, and LoRA side-loaded (stacked adapters gathered per row) or as trainable inputs.
 * Merged LoRA is not here: it is folded into W by weights.ts. The model wiring is llama.ts.
 */
import type { Graph } from '../ir/graph.js';
import type { Value } from '../ir/types.js';
import type { LinearModule } from '../formats/hf-config.js';
import { dequantizeAbsmax } from '../quant/nf4.js';
import type { LinearWeight } from './weights.js';

/** Where a LoRA term attaches: layer index and module name. */
export interface LoraSite {
  layer: number;
  module: LinearModule;
}

/** The LoRA term of one module, already resolved to graph values. */
export type LoraTerm =
  | {
      kind: 'sideload';
      /** (S, R, in): one adapter per slot, slot 0 the zero adapter (= base model). */
      a: Value;
      /** (S, out, R): each adapter's scale folded in. */
      b: Value;
      /** (B) int64: each row's slot. */
      slot: Value;
    }
  | {
      /**
       * The active adapters concatenated along the rank axis (each adapter a column range, ranks unpadded),
       * and a per-row column mask: every active adapter's factors are read once per step, however many rows
       * use it (the alternative, gathering a per-row copy of A and B, moves B·(in+out)·R floats per module).
       */
      kind: 'stacked';
      /** (Rtot, in): row c belongs to the adapter in slot colSlot[c]. */
      a: Value;
      /** (Rtot, out): Bᵀ with the adapter's scale folded in. */
      b: Value;
      /** (B, 1, Rtot) float: 1 where column c belongs to row b's slot. */
      mask: Value;
    }
  | {
      kind: 'train';
      /** (R, in) */
      a: Value;
      /** (out, R) */
      b: Value;
      scale: number;
      /** Applied to the adapter input (PEFT: lora_dropout before lora_A). */
      adapterInput?: (g: Graph, x: Value, site: LoraSite) => Value;
    };

/** x (…, in) · W → (…, out) for each storage kind. */
export function baseMatMul(
  g: Graph,
  x: Value,
  w: LinearWeight,
  inF: number,
  outF: number,
  name: string,
): Value {
  switch (w.kind) {
    case 'fp32': {
      // W stays in HF's (out, in) layout, shared with the checkpoint (no JS copy); onnxruntime constant-folds
      // the Transpose once at session creation.
      /** (out, in) */
      const w0 = g.initializer(name, { dtype: 'float32', shape: [outF, inF], data: w.w });
      return g.matMul(x, g.transpose(w0, [1, 0]));
    }
    case 'nf4': {
      // NOTE(fused): MatMulBnb4 is the one ORT kernel for NF4 (quant_type 1). Its absmax input is fp32, so
      // the double-quantized absmax is decoded here, at load; an in-graph Gather·scale+offset would be
      // constant-folded by ORT at session creation anyway, to the same numbers.
      const packed = g.initializer(`${name}.nf4`, {
        dtype: 'uint8',
        shape: [w.q.packed.length],
        data: w.q.packed,
      });
      const am = dequantizeAbsmax(w.q);
      const absmax = g.initializer(`${name}.absmax`, { dtype: 'float32', shape: [am.length], data: am });
      return g.op1('matMulBnb4', [x, packed, absmax], { K: inF, N: outF, blockSize: 64, quantType: 1 });
    }
    case 'int4': {
      // NOTE(fused): MatMulNBits, the fast CPU 4-bit GEMV (ENGINE.md: ~13× MatMulBnb4 at M=1).
      const q = w.q;
      const nb = Math.ceil(q.k / q.blockSize);
      const packed = g.initializer(`${name}.int4`, {
        dtype: 'uint8',
        shape: [q.n, nb, q.blockSize / 2],
        data: q.packed,
      });
      const scales = g.initializer(`${name}.scales`, {
        dtype: 'float32',
        shape: [q.scales.length],
        data: q.scales,
      });
      const zp = g.initializer(`${name}.zp`, {
        dtype: 'uint8',
        shape: [q.zeroPoints.length],
        data: q.zeroPoints,
      });
      return g.op1('matMulNBits', [x, packed, scales, zp], {
        K: inF,
        N: outF,
        bits: 4,
        blockSize: q.blockSize,
        accuracyLevel: w.accuracyLevel ?? 4,
      });
    }
  }
}

/**
 * The LoRA term for x (B, T, in) → (B, T, out).
 * Sideload semantics: for b: y[b] = x[b]·A[slot[b]]ᵀ·B[slot[b]]ᵀ (the BGMV idea: Gather, then two
 * batched MatMuls). Train: y = (adapterInput(x)·Aᵀ)·Bᵀ·scale, PEFT's order.
 */
export function loraTerm(g: Graph, x: Value, term: LoraTerm, site: LoraSite): Value {
  if (term.kind === 'sideload') {
    /** (B, R, in) */
    const a = g.gather(term.a, term.slot, 0);
    /** (B, out, R) */
    const b = g.gather(term.b, term.slot, 0);
    /** (B, T, R) */
    const xa = g.matMul(x, g.transpose(a, [0, 2, 1]));
    return g.matMul(xa, g.transpose(b, [0, 2, 1]));
  }
  if (term.kind === 'stacked') {
    // Semantics: for b: y[b] = Σ_{c: colSlot[c] = slot[b]} (x[b]·A[c]ᵀ) · B[c]
    /** (B, T, Rtot) */
    const xa = g.mul(g.matMul(x, g.transpose(term.a, [1, 0])), term.mask);
    return g.matMul(xa, term.b);
  }
  const xin = term.adapterInput ? term.adapterInput(g, x, site) : x;
  /** (B, T, R) */
  const xa = g.matMul(xin, g.transpose(term.a, [1, 0]));
  const y = g.matMul(xa, g.transpose(term.b, [1, 0]));
  return term.scale === 1 ? y : g.mul(y, g.scalar(term.scale));
}

export function linear(
  g: Graph,
  x: Value,
  w: LinearWeight,
  shape: { inFeatures: number; outFeatures: number },
  name: string,
  bias?: Float32Array,
  lora?: { term: LoraTerm; site: LoraSite },
): Value {
  let y = baseMatMul(g, x, w, shape.inFeatures, shape.outFeatures, name);
  if (bias)
    y = g.add(y, g.initializer(`${name}.bias`, { dtype: 'float32', shape: [bias.length], data: bias }));
  if (lora) y = g.add(y, loraTerm(g, x, lora.term, lora.site));
  return y;
}
