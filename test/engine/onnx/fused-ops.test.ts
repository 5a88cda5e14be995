/**
 * The fused inference ops of the serving graph (rotaryEmbedding, simplifiedLayerNorm, skipSimplifiedLayerNorm)
 * run through onnxruntime against plain float64 loops: random shapes, query and key heads of a GQA layer in
 * one graph, per-row position offsets, and against the composites the training graph uses.
 */
import { describe, expect, it } from 'vitest';
import { Graph } from '../../../src/engine/ir/index.js';
import type { Value } from '../../../src/engine/ir/types.js';
import { rmsNorm, rope, ropeTables } from '../../../src/engine/ir/composites.js';
import { GRAD_RULES } from '../../../src/engine/autodiff/rules.js';
import { EngineSession } from '../../../src/engine/onnx/session.js';
import { expectClose } from '../../helpers/expect-close.js';
import { randn, rng } from '../nn/fixtures.js';

const f32 = (shape: number[], data: Float32Array) => ({ dtype: 'float32' as const, shape, data });

/** cos/sin (P, D/2) of p · invFreq[i], as RotaryEmbedding's caches take them. */
function ropeCache(invFreq: Float32Array, positions: number): { cos: Float32Array; sin: Float32Array } {
  const half = invFreq.length;
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(p * invFreq[i]!);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

/** Plain loop: HF rotate_half RoPE of x (B, S, N·D) at positions (B, S), angles in float64. */
function ropeLoop(x: Float32Array, pos: number[], n: number, d: number, invFreq: Float32Array): Float64Array {
  const y = new Float64Array(x.length);
  const half = d / 2;
  for (let bs = 0; bs < pos.length; bs++) {
    for (let h = 0; h < n; h++) {
      const o = (bs * n + h) * d;
      for (let i = 0; i < half; i++) {
        const a = pos[bs]! * invFreq[i]!;
        const [x1, x2] = [x[o + i]!, x[o + i + half]!];
        y[o + i] = x1 * Math.cos(a) - x2 * Math.sin(a);
        y[o + i + half] = x2 * Math.cos(a) + x1 * Math.sin(a);
      }
    }
  }
  return y;
}

/** Plain loop: x / sqrt(mean(x²) + eps) · w over the last axis of width c. */
function rmsLoop(x: ArrayLike<number>, w: Float32Array, eps: number): Float64Array {
  const c = w.length;
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / c; r++) {
    let ms = 0;
    for (let i = 0; i < c; i++) ms += x[r * c + i]! ** 2;
    const inv = 1 / Math.sqrt(ms / c + eps);
    for (let i = 0; i < c; i++) y[r * c + i] = x[r * c + i]! * inv * w[i]!;
  }
  return y;
}

describe('fused inference ops', () => {
  it('rotaryEmbedding matches the rotate_half loop and the rope composite, for query and key heads (GQA)', async () => {
    const r = rng(7);
    for (const { b, s, h, kvh, d, theta } of [
      { b: 3, s: 1, h: 6, kvh: 2, d: 16, theta: 10000 },
      { b: 2, s: 5, h: 4, kvh: 4, d: 8, theta: 500000 },
      { b: 1, s: 3, h: 8, kvh: 1, d: 32, theta: 10000 },
    ]) {
      const maxPos = 300;
      const invFreq = Float32Array.from({ length: d / 2 }, (_, i) => 1 / theta ** ((2 * i) / d));
      // Each row continues after its own cached prefix: positions offset_b + s.
      const offsets = Array.from({ length: b }, () => Math.floor(r() * (maxPos - s)));
      const pos = offsets.flatMap((o) => Array.from({ length: s }, (_, t) => o + t));
      const g = new Graph();
      const q = g.input('q', 'float32', ['B', 'S', h * d]);
      const k = g.input('k', 'float32', ['B', 'S', kvh * d]);
      const positions = g.input('pos', 'int64', ['B', 'S']);
      const cache = ropeCache(invFreq, maxPos);
      const cos = g.constant(cache.cos, [maxPos, d / 2]);
      const sin = g.constant(cache.sin, [maxPos, d / 2]);
      g.output(g.op1('rotaryEmbedding', [q, positions, cos, sin], { numHeads: h }), 'q_fused');
      g.output(g.op1('rotaryEmbedding', [k, positions, cos, sin], { numHeads: kvh }), 'k_fused');
      const tables = ropeTables(g, positions, invFreq);
      const composite = (x: Value, n: number) =>
        g.reshape(
          rope(g, g.reshape(x, [0, 0, n, d]), g.unsqueeze(tables.cos, [2]), g.unsqueeze(tables.sin, [2]), d),
          [0, 0, n * d],
        );
      g.output(composite(q, h), 'q_composite');
      g.output(composite(k, kvh), 'k_composite');
      const qx = randn(b * s * h * d, 1, r);
      const kx = randn(b * s * kvh * d, 1, r);
      const session = await EngineSession.create(g, { threads: 1 });
      const out = await session.run({
        q: f32([b, s, h * d], qx),
        k: f32([b, s, kvh * d], kx),
        pos: { dtype: 'int64', shape: [b, s], data: BigInt64Array.from(pos, BigInt) },
      });
      const label = `B${b} S${s} H${h}/${kvh} D${d}`;
      // fp32 angles at positions < 300 carry up to ≈ 300 · 2⁻²⁴ rad of rounding.
      const tol = { atol: 5e-5, rtol: 1e-4 };
      expectClose(out.q_fused!.data as Float32Array, ropeLoop(qx, pos, h, d, invFreq), {
        ...tol,
        label: `q ${label}`,
      });
      expectClose(out.k_fused!.data as Float32Array, ropeLoop(kx, pos, kvh, d, invFreq), {
        ...tol,
        label: `k ${label}`,
      });
      expectClose(out.q_fused!.data as Float32Array, out.q_composite!.data as Float32Array, {
        atol: 1e-5,
        label: `q fused vs composite ${label}`,
      });
      expectClose(out.k_fused!.data as Float32Array, out.k_composite!.data as Float32Array, {
        atol: 1e-5,
        label: `k fused vs composite ${label}`,
      });
      await session.release();
    }
  });

  it('simplifiedLayerNorm and skipSimplifiedLayerNorm match the RMSNorm loop (3-D and 2-D), and the composite', async () => {
    const r = rng(11);
    for (const shape of [
      [2, 3, 24],
      [5, 64],
    ]) {
      const c = shape[shape.length - 1]!;
      const n = shape.reduce((p, q) => p * q, 1);
      const eps = 1e-6;
      const dims = shape.map((v, i) => (i === shape.length - 1 ? v : `d${i}`));
      const g = new Graph();
      const x = g.input('x', 'float32', dims);
      const skip = g.input('skip', 'float32', dims);
      const w = g.constant(
        Float32Array.from(randn(c, 0.2, r), (v) => 1 + v),
        [c],
      );
      g.output(g.op1('simplifiedLayerNorm', [x, w], { epsilon: eps }), 'norm');
      const [y, sum] = g.op('skipSimplifiedLayerNorm', [x, skip, w], { epsilon: eps });
      expect(y!.shape).toEqual(dims);
      g.output(y!, 'skip_norm');
      g.output(sum!, 'sum');
      g.output(rmsNorm(g, g.add(x, skip), w, eps), 'composite');
      const xs = randn(n, 2, r);
      const ss = randn(n, 2, r);
      const session = await EngineSession.create(g, { threads: 1 });
      const out = await session.run({ x: f32(shape, xs), skip: f32(shape, ss) });
      const wData = g.initializers.get(w)!.data as Float32Array;
      const total = Float64Array.from(xs, (v, i) => v + ss[i]!);
      const label = `[${shape.join(',')}]`;
      expectClose(out.norm!.data as Float32Array, rmsLoop(xs, wData, eps), { label: `norm ${label}` });
      expectClose(out.sum!.data as Float32Array, total, { atol: 1e-6, label: `sum ${label}` });
      expectClose(out.skip_norm!.data as Float32Array, rmsLoop(total, wData, eps), {
        label: `skip norm ${label}`,
      });
      expectClose(out.skip_norm!.data as Float32Array, out.composite!.data as Float32Array, {
        atol: 1e-5,
        label: `skip norm vs composite ${label}`,
      });
      await session.release();
    }
  });

  it('the fused ops are inference-only: their gradient rules refuse', () => {
    for (const kind of ['rotaryEmbedding', 'simplifiedLayerNorm', 'skipSimplifiedLayerNorm'] as const) {
      expect(() => GRAD_RULES[kind]({} as never)).toThrow(/inference-only/);
    }
  });
});
