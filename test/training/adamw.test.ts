// AdamW, clipping and the learning-rate schedule against hand-computed values.
import { describe, expect, it } from 'vitest';
import { AdamW, clipGlobalNorm, globalNorm } from '../../src/training/adamw.js';
import { learningRateAt, warmupStepsFor } from '../../src/training/schedule.js';
import { expectClose } from '../helpers/expect-close.js';

describe('AdamW', () => {
  it('follows PyTorch AdamW: bias-corrected moments, decoupled decay', () => {
    const p = Float32Array.from([1, -2]);
    const opt = new AdamW(new Map([['w', p]]), { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 });
    const gs = [
      [0.5, -1],
      [0.25, 2],
    ];
    // Reference in float64, written out: p ← p(1 − lr·wd) − lr·m̂/(√v̂ + eps).
    const ref = [1, -2];
    const m = [0, 0];
    const v = [0, 0];
    gs.forEach((g, t) => {
      for (let i = 0; i < 2; i++) {
        m[i] = 0.9 * m[i]! + 0.1 * g[i]!;
        v[i] = 0.999 * v[i]! + 0.001 * g[i]! ** 2;
        const mh = m[i]! / (1 - 0.9 ** (t + 1));
        const vh = v[i]! / (1 - 0.999 ** (t + 1));
        ref[i] = ref[i]! * (1 - 0.01 * 0.1) - (0.01 * mh) / (Math.sqrt(vh) + 1e-8);
      }
      opt.step(new Map([['w', Float32Array.from(g)]]), 0.01);
    });
    expectClose(p, ref, { atol: 1e-6, label: 'adamw params' });
    expect(opt.stepCount).toBe(2);
    // State round-trips.
    const copy = new AdamW(new Map([['w', Float32Array.from(p)]]), opt.options);
    copy.importState(opt.exportState());
    expect(copy.exportState()).toEqual(opt.exportState());
  });

  it('clips the global norm over all tensors', () => {
    const grads = new Map([
      ['a', Float32Array.from([3, 0])],
      ['b', Float32Array.from([0, 4])],
    ]);
    expect(clipGlobalNorm(grads, 1)).toBeCloseTo(5, 6);
    expectClose(globalNorm(grads.values()), 1, { atol: 1e-6 });
    expectClose(grads.get('a')!, [0.6, 0], { atol: 1e-6 });
    expect(clipGlobalNorm(grads, 10)).toBeCloseTo(1, 5);
  });
});

describe('learning-rate schedule', () => {
  it('warms up linearly, then decays by a half cosine to zero', () => {
    const o = { peakLr: 1, totalSteps: 10, warmupSteps: warmupStepsFor(10, 0.2) };
    expect(o.warmupSteps).toBe(2);
    expectClose(
      Array.from({ length: 10 }, (_, s) => learningRateAt(s, o)),
      [1 / 3, 2 / 3, ...Array.from({ length: 8 }, (_, k) => 0.5 * (1 + Math.cos((Math.PI * k) / 8)))],
      { atol: 1e-12, label: 'lr' },
    );
    expect(learningRateAt(10, o)).toBeCloseTo(0, 12);
  });
});
