/**
 * Emitter + session: every primitive op kind runs through onnxruntime and matches a plain-loop expectation.
 * The Llama-level tests are in test/engine/nn/.
 */
import { describe, expect, it } from 'vitest';
import { Graph } from '../../../src/engine/ir/index.js';
import { silu, rmsNorm } from '../../../src/engine/ir/composites.js';
import { EngineSession } from '../../../src/engine/onnx/session.js';
import { initializerBytes } from '../../../src/engine/onnx/emit.js';
import { expectClose } from '../../helpers/expect-close.js';

const f32 = (shape: number[], data: number[]) => ({
  dtype: 'float32' as const,
  shape,
  data: Float32Array.from(data),
});

describe('emitOnnx + EngineSession', () => {
  it('runs elementwise, matMul, reduce and composites with symbolic dims', async () => {
    const g = new Graph();
    /** (B, C) */
    const x = g.input('x', 'float32', ['B', 3]);
    const w = g.constant([1, 2, 3, 4, 5, 6], [3, 2]);
    const y = g.matMul(x, w);
    expect(y.shape).toEqual(['B', 2]);
    g.output(g.add(y, g.scalar(1)), 'y');
    g.output(silu(g, x), 'silu');
    g.output(rmsNorm(g, x, g.constant([1, 1, 2], [3]), 1e-5), 'norm');
    g.output(g.reduceSum(x, [1], false), 'sum');
    const s = await EngineSession.create(g, { threads: 1 });
    const out = await s.run({ x: f32([2, 3], [1, 0, -1, 2, 3, 4]) });
    expect(out.y!.shape).toEqual([2, 2]);
    expectClose(out.y!.data as Float32Array, [-3, -3, 32, 41], { label: 'matMul' });
    const sig = (v: number) => v / (1 + Math.exp(-v));
    expectClose(out.silu!.data as Float32Array, [1, 0, -1, 2, 3, 4].map(sig), { label: 'silu' });
    const r1 = 1 / Math.sqrt(2 / 3 + 1e-5);
    const r2 = 1 / Math.sqrt(29 / 3 + 1e-5);
    expectClose(out.norm!.data as Float32Array, [r1, 0, -2 * r1, 2 * r2, 3 * r2, 8 * r2], {
      label: 'rmsNorm',
    });
    expectClose(out.sum!.data as Float32Array, [0, 9], { label: 'reduceSum' });
    await s.release();
  });

  it('runs gather, reshape, transpose, slice, concat, where, range, shape, expand', async () => {
    const g = new Graph();
    const ids = g.input('ids', 'int64', ['B', 'T']);
    const emb = g.constant([0, 1, 10, 11, 20, 21], [3, 2]);
    /** (B, T, 2) */
    const e = g.gather(emb, ids);
    expect(e.shape).toEqual(['B', 'T', 2]);
    const t = g.transpose(e, [0, 2, 1]);
    g.output(g.reshape(t, [0, -1]), 'flat');
    g.output(g.slice(e, [1], [2], [-1]), 'second');
    g.output(g.concat([e, e], -1), 'cat');
    const n = g.shape(ids, 1, 2);
    const r = g.range(g.scalar(0, 'int64'), g.squeeze(n, [0]), g.scalar(1, 'int64'));
    g.output(g.where(g.less(r, g.scalar(1, 'int64')), g.scalar(5), g.scalar(-5)), 'mask');
    g.output(g.expand(g.scalar(7), g.shape(ids)), 'sevens');
    const s = await EngineSession.create(g, { threads: 1 });
    const out = await s.run({ ids: { dtype: 'int64', shape: [1, 2], data: BigInt64Array.from([2n, 0n]) } });
    expect(Array.from(out.flat!.data as Float32Array)).toEqual([20, 0, 21, 1]);
    expect(Array.from(out.second!.data as Float32Array)).toEqual([21, 1]);
    expect(Array.from(out.cat!.data as Float32Array)).toEqual([20, 21, 20, 21, 0, 1, 0, 1]);
    expect(Array.from(out.mask!.data as Float32Array)).toEqual([5, -5]);
    expect(out.sevens!.shape).toEqual([1, 2]);
  });

  it('fills a pre-allocated output in place', async () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [4]);
    g.output(g.mul(x, g.scalar(2)), 'y');
    const s = await EngineSession.create(g, { threads: 1 });
    const buf = new Float32Array(4);
    const out = await s.run(
      { x: f32([4], [1, 2, 3, 4]) },
      { y: { dtype: 'float32', shape: [4], data: buf } },
    );
    expect(Array.from(buf)).toEqual([2, 4, 6, 8]);
    expect(out.y!.data).toBe(buf);
  });
});

describe('external data (graphs past protobuf 2 GiB)', () => {
  it('a graph loaded through a temporary file with external weights computes the same', async () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [1, 512]);
    const w = new Float32Array(512 * 300).map((_, i) => Math.sin(i));
    const y = g.matMul(x, g.initializer('w', { dtype: 'float32', shape: [512, 300], data: w }));
    g.output(g.add(y, g.scalar(0.5)), 'y');
    const input = {
      x: f32(
        [1, 512],
        Array.from({ length: 512 }, (_, i) => (i % 7) - 3),
      ),
    };
    const inline = await EngineSession.create(g, { threads: 1 });
    const external = await EngineSession.create(g, { threads: 1, externalDataThresholdBytes: 1000 });
    const a = (await inline.run(input)).y!.data as Float32Array;
    const b = (await external.run(input)).y!.data as Float32Array;
    expect(Array.from(b)).toEqual(Array.from(a));
    expect(initializerBytes(g)).toBeGreaterThan(1000);
  });
});
