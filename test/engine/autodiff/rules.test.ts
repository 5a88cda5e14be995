// Finite-difference checks of every differentiable rule in GRAD_RULES, one line per op (test/helpers/grad-check.ts).
import { describe, expect, it } from 'vitest';
import { grad, NotDifferentiableError } from '../../../src/engine/autodiff/grad.js';
import { GRAD_RULES } from '../../../src/engine/autodiff/rules.js';
import { Graph } from '../../../src/engine/ir/graph.js';
import { OP_KINDS } from '../../../src/engine/ir/types.js';
import { quantizeInt4 } from '../../../src/engine/quant/int4.js';
import { dequantizeAbsmax, quantizeNf4 } from '../../../src/engine/quant/nf4.js';
import { gradCheck } from '../../helpers/grad-check.js';

const idx = (xs: number[]) => BigInt64Array.from(xs, (x) => BigInt(x));

describe('gradient rules (finite differences)', () => {
  it('identity', () => gradCheck('identity', (g, [x]) => g.identity(x!), [{ shape: [2, 3] }]));
  it('neg', () => gradCheck('neg', (g, [x]) => g.neg(x!), [{ shape: [2, 3] }]));
  it('sqrt', () => gradCheck('sqrt', (g, [x]) => g.sqrt(x!), [{ shape: [2, 3], lo: 0.5, hi: 2 }]));
  it('exp', () => gradCheck('exp', (g, [x]) => g.exp(x!), [{ shape: [2, 3] }]));
  it('log', () => gradCheck('log', (g, [x]) => g.log(x!), [{ shape: [2, 3], lo: 0.5, hi: 2 }]));
  it('sigmoid', () => gradCheck('sigmoid', (g, [x]) => g.sigmoid(x!), [{ shape: [2, 3] }]));
  it('reciprocal', () =>
    gradCheck('reciprocal', (g, [x]) => g.reciprocal(x!), [{ shape: [2, 3], lo: 0.5, hi: 2 }]));
  it('cos', () => gradCheck('cos', (g, [x]) => g.cos(x!), [{ shape: [2, 3] }]));
  it('sin', () => gradCheck('sin', (g, [x]) => g.sin(x!), [{ shape: [2, 3] }]));
  it('tanh', () => gradCheck('tanh', (g, [x]) => g.tanh(x!), [{ shape: [2, 3] }]));
  it('add (broadcast)', () =>
    gradCheck('add', (g, [a, b]) => g.add(a!, b!), [{ shape: [2, 3] }, { shape: [3] }]));
  it('sub (broadcast)', () =>
    gradCheck('sub', (g, [a, b]) => g.sub(a!, b!), [{ shape: [2, 1] }, { shape: [2, 3] }]));
  it('mul (broadcast)', () =>
    gradCheck('mul', (g, [a, b]) => g.mul(a!, b!), [{ shape: [2, 2, 3] }, { shape: [2, 1, 3] }]));
  it('div', () =>
    gradCheck('div', (g, [a, b]) => g.div(a!, b!), [{ shape: [2, 3] }, { shape: [1, 3], lo: 0.5, hi: 2 }]));
  it('pow', () =>
    gradCheck('pow', (g, [a, b]) => g.pow(a!, b!), [{ shape: [2, 3], lo: 0.5, hi: 2 }, { shape: [3] }]));
  it('pow (constant exponents 2 and 3)', async () => {
    await gradCheck('pow2', (g, [a]) => g.pow(a!, g.scalar(2)), [{ shape: [2, 3] }]);
    await gradCheck('pow3', (g, [a]) => g.pow(a!, g.scalar(3)), [{ shape: [2, 3] }]);
  });
  it('max', () => gradCheck('max', (g, [a, b]) => g.max(a!, b!), [{ shape: [2, 3] }, { shape: [2, 3] }]));
  it('where', () =>
    gradCheck('where', (g, [c, a, b]) => g.where(g.cast(c!, 'bool'), a!, b!), [
      { shape: [2, 3], dtype: 'uint8', data: Uint8Array.from([1, 0, 1, 0, 0, 1]) },
      { shape: [2, 3] },
      { shape: [3] },
    ]));
  it('cast', () =>
    gradCheck('cast', (g, [x]) => g.cast(g.cast(x!, 'float16'), 'float32'), [{ shape: [4] }], {
      atol: 1e-2,
    }));
  it('matMul (batched · shared)', () =>
    gradCheck('matMul', (g, [a, b]) => g.matMul(a!, b!), [{ shape: [2, 3, 4] }, { shape: [4, 5] }]));
  it('matMul (batched both)', () =>
    gradCheck('matMul', (g, [a, b]) => g.matMul(a!, b!), [{ shape: [2, 3, 4] }, { shape: [2, 4, 2] }]));
  it('reduceSum', () =>
    gradCheck('reduceSum', (g, [x]) => g.reduceSum(x!, [1], false), [{ shape: [2, 3, 2] }]));
  it('reduceMean', () =>
    gradCheck('reduceMean', (g, [x]) => g.reduceMean(x!, [-1], true), [{ shape: [2, 3, 4] }]));
  it('reduceMax', () => gradCheck('reduceMax', (g, [x]) => g.reduceMax(x!, [1], false), [{ shape: [3, 4] }]));
  it('softmax', () => gradCheck('softmax', (g, [x]) => g.softmax(x!, -1), [{ shape: [2, 5] }]));
  it('logSoftmax', () => gradCheck('logSoftmax', (g, [x]) => g.logSoftmax(x!, 1), [{ shape: [2, 5, 2] }]));
  it('gather (axis 0)', () =>
    gradCheck('gather', (g, [d, i]) => g.gather(d!, i!, 0), [
      { shape: [5, 3] },
      { shape: [2, 3], dtype: 'int64', data: idx([4, 0, 4, 2, 1, 0]) },
    ]));
  it('gatherElements', () =>
    gradCheck('gatherElements', (g, [d, i]) => g.gatherElements(d!, i!, 1), [
      { shape: [3, 4] },
      { shape: [3, 2], dtype: 'int64', data: idx([3, 3, 0, 1, 2, 0]) },
    ]));
  it('reshape', () =>
    gradCheck('reshape', (g, [x]) => g.reshape(g.mul(x!, x!), [3, -1]), [{ shape: [2, 3, 2] }]));
  it('transpose', () =>
    gradCheck('transpose', (g, [x]) => g.transpose(x!, [2, 0, 1]), [{ shape: [2, 3, 4] }]));
  it('concat', () =>
    gradCheck('concat', (g, [a, b]) => g.concat([a!, b!], 1), [{ shape: [2, 3] }, { shape: [2, 2] }]));
  it('slice', () =>
    gradCheck('slice', (g, [x]) => g.slice(x!, [1, 0], [4, 5], [1, 2], [2, 1]), [{ shape: [2, 5, 3] }]));
  it('unsqueeze', () => gradCheck('unsqueeze', (g, [x]) => g.unsqueeze(x!, [0, 2]), [{ shape: [2, 3] }]));
  it('squeeze', () => gradCheck('squeeze', (g, [x]) => g.squeeze(x!, [1]), [{ shape: [2, 1, 3] }]));
  it('expand', () => gradCheck('expand', (g, [x]) => g.expand(x!, g.ints([2, 4, 3])), [{ shape: [4, 1] }]));
  it('scatterND (data)', () =>
    gradCheck(
      'scatterND',
      (g, [d]) => g.scatterND(d!, g.constant([1], [1, 1], 'int64'), g.constant(new Float32Array(3), [1, 3])),
      [{ shape: [3, 3] }],
    ));
  it('softmaxCrossEntropyLoss (mean, ignoreIndex)', () =>
    gradCheck(
      'sce',
      (g, [s, l]) => g.op1('softmaxCrossEntropyLoss', [s!, l!], { reduction: 'mean', ignoreIndex: -100 }),
      [{ shape: [4, 5] }, { shape: [4], dtype: 'int64', data: idx([1, -100, 4, 0]) }],
    ));
  it('softmaxCrossEntropyLoss (none)', () =>
    gradCheck('sce', (g, [s, l]) => g.op1('softmaxCrossEntropyLoss', [s!, l!], { reduction: 'none' }), [
      { shape: [3, 4] },
      { shape: [3], dtype: 'int64', data: idx([1, 2, 3]) },
    ]));
  it('matMulBnb4 (activation; NF4 weight frozen)', () => {
    const [N, K] = [6, 64];
    const w = Float32Array.from({ length: N * K }, (_, i) => Math.sin(i * 0.37));
    const q = quantizeNf4(w, N, K);
    return gradCheck(
      'matMulBnb4',
      (g, [a]) =>
        g.op1(
          'matMulBnb4',
          [a!, g.constant(q.packed, [q.packed.length]), g.constant(dequantizeAbsmax(q), [(N * K) / 64])],
          {
            K,
            N,
            blockSize: 64,
            quantType: 1,
          },
        ),
      [{ shape: [2, 3, K] }],
    );
  });
  it('matMulNBits (activation; int4 weight frozen)', () => {
    const [N, K] = [5, 80];
    const w = Float32Array.from({ length: N * K }, (_, i) => Math.cos(i * 0.21));
    const q = quantizeInt4(w, N, K, { blockSize: 32 });
    const nb = Math.ceil(K / 32);
    return gradCheck(
      'matMulNBits',
      (g, [a]) =>
        g.op1(
          'matMulNBits',
          [
            a!,
            g.constant(q.packed, [N, nb, 16]),
            g.constant(q.scales, [N * nb]),
            g.constant(q.zeroPoints, [q.zeroPoints.length]),
          ],
          { K, N, bits: 4, blockSize: 32, accuracyLevel: 0 },
        ),
      [{ shape: [3, K] }],
    );
  });
  it('composite: rmsNorm-like chain through shared inputs', () =>
    gradCheck(
      'chain',
      (g, [x, w]) =>
        g.mul(g.mul(x!, g.reciprocal(g.sqrt(g.add(g.reduceMean(g.mul(x!, x!), [-1]), g.scalar(1e-5))))), w!),
      [{ shape: [2, 3, 4] }, { shape: [4] }],
    ));

  it('dropout: dx = dy·mask/(1−p), read back from the same run', async () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [64]);
    const [y] = g.dropout(x, 0.25, 7);
    const loss = g.reduceSum(y, [0], false);
    const [dx] = grad(g, loss, [x]);
    g.output(y, 'y');
    g.output(dx!, 'dx');
    const { EngineSession } = await import('../../../src/engine/onnx/session.js');
    const s = await EngineSession.create(g, { threads: 1 });
    const data = Float32Array.from({ length: 64 }, (_, i) => 1 + i);
    const out = await s.run({ x: { dtype: 'float32', shape: [64], data } });
    const ys = out['y']!.data as Float32Array;
    const dxs = out['dx']!.data as Float32Array;
    let dropped = 0;
    for (let i = 0; i < 64; i++) {
      const kept = ys[i] !== 0;
      if (!kept) dropped++;
      expect(dxs[i]).toBeCloseTo(kept ? 1 / 0.75 : 0, 5);
    }
    expect(dropped).toBeGreaterThan(0);
    await s.release();
  });

  it('covers every op kind and refuses gradients through non-differentiable ops', () => {
    expect(Object.keys(GRAD_RULES).sort()).toEqual([...OP_KINDS].sort());
    const g = new Graph();
    const x = g.input('x', 'float32', [3]);
    const loss = g.reduceSum(g.cast(g.greater(x, g.scalar(0)), 'float32'), [0], false);
    // The only path goes through a comparison: no gradient flows, so x gets zeros rather than an error.
    expect(grad(g, loss, [x])).toHaveLength(1);
    const h = new Graph();
    const w = h.input('w', 'float32', [4, 2]);
    const i = h.input('i', 'int64', [2]);
    const sel = h.gather(w, i, 1);
    expect(() => grad(h, h.reduceSum(sel, [0, 1], false), [w])).toThrow(/axis 0/);
    expect(NotDifferentiableError).toBeDefined();
  });
});
