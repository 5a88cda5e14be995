/**
 * The IR builder: symbolic shape rules per op, naming, outputs, and errors on impossible shapes.
 * Execution of every op through onnxruntime is test/engine/onnx/emit.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { Graph, IrShapeError, OP_KINDS, SHAPE_RULES, broadcastShapes } from '../../../src/engine/ir/index.js';

describe('Graph shape rules', () => {
  it('has a rule for every op kind', () => {
    expect(Object.keys(SHAPE_RULES).sort()).toEqual([...OP_KINDS].sort());
  });

  it('broadcasts symbolic dims', () => {
    expect(broadcastShapes(['B', 1, 'T'], ['T'])).toEqual(['B', 1, 'T']);
    expect(broadcastShapes([4, 1], [1, 'S', 3])).toEqual([1, 4, 3]);
    expect(() => broadcastShapes([2, 3], [4, 3])).toThrow(IrShapeError);
  });

  it('infers the Llama attention shapes', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', ['B', 'T', 64]);
    const q = g.transpose(g.reshape(x, [0, 0, 2, 4, 8]), [0, 2, 3, 1, 4]);
    expect(q.shape).toEqual(['B', 2, 4, 'T', 8]);
    const k = g.input('k', 'float32', ['B', 2, 'P+T', 8]);
    const kT = g.unsqueeze(g.transpose(k, [0, 1, 3, 2]), [2]);
    expect(kT.shape).toEqual(['B', 2, 1, 8, 'P+T']);
    expect(g.matMul(q, kT).shape).toEqual(['B', 2, 4, 'T', 'P+T']);
    expect(g.reshape(x, [-1, 64]).shape).toEqual(['B*T', 64]);
    expect(g.reshape(g.input('y', 'float32', [2, 3, 4]), [-1, 4]).shape).toEqual([6, 4]);
    expect(g.slice(x, [0], [16], [-1]).shape).toEqual(['B', 'T', 16]);
    expect(g.slice(x, [-1], [Number.MAX_SAFE_INTEGER], [1]).shape[1]).toMatch(/^n\d+\.1$/);
    expect(g.concat([k, k], 2).shape).toEqual(['B', 2, 'P+T+P+T', 8]);
    expect(g.reduceMean(x, [-1]).shape).toEqual(['B', 'T', 1]);
    expect(g.reduceSum(x, [0, 1], false).shape).toEqual([64]);
    const ids = g.input('ids', 'int64', ['B', 'T']);
    expect(g.gather(g.constant(new Float32Array(10 * 4), [10, 4]), ids).shape).toEqual(['B', 'T', 4]);
    expect(g.shape(x, 1, 2).shape).toEqual([1]);
    expect(g.cast(ids, 'float32').dtype).toBe('float32');
    expect(g.less(ids, g.scalar(3, 'int64')).dtype).toBe('bool');
    const [y, mask] = g.dropout(x, 0.1);
    expect([y!.shape, mask!.dtype]).toEqual([['B', 'T', 64], 'bool']);
  });

  it('reports impossible shapes with the op and its inputs', () => {
    const g = new Graph();
    const a = g.input('a', 'float32', [2, 3]);
    const b = g.input('b', 'float32', [4, 5]);
    expect(() => g.matMul(a, b)).toThrow(/matMul\(a:float32\[2,3\], b:float32\[4,5\]\).*inner dims/);
    expect(() => g.transpose(a, [0])).toThrow(IrShapeError);
    expect(() => g.input('a', 'float32', [1])).toThrow(/duplicate/);
  });

  it('names outputs, keeps nodes open for extension, finds consumers', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [3]);
    const y = g.add(x, x);
    const out = g.output(y, 'y');
    // A node value is renamed in place (no Identity copy); naming it again needs an identity node.
    expect(out).toBe(y);
    expect(out.name).toBe('y');
    expect(g.outputs).toEqual([out]);
    const z = g.mul(y, g.scalar(2));
    g.output(z);
    expect(g.outputs.map((o) => o.name)).toEqual(['y', z.name]);
    expect(g.consumers(y).map((n) => n.kind)).toEqual(['mul']);
    const again = g.output(y, 'y2');
    expect([again.name, again.producer?.kind]).toEqual(['y2', 'identity']);
    expect(() => g.output(z, 'y')).toThrow(/duplicate/);
    expect(y.producer?.inputs).toEqual([x, x]);
  });
});
