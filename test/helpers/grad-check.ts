/**
 * Finite-difference gradient checks through onnxruntime: build a tiny graph, take loss = Σ y·R for a fixed
 * random R, compare autodiff's gradient with central differences of the same ONNX loss. One line per op in
 * test/engine/autodiff/rules.test.ts; the whole-model LoRA check lives in test/training/.
 * Float32 throughout, so the step and tolerances are chosen for fp32 (eps 1e-2, central differences).
 */
import { grad } from '../../src/engine/autodiff/grad.js';
import { Graph } from '../../src/engine/ir/graph.js';
import type { DType, HostTensor, Value } from '../../src/engine/ir/types.js';
import { numel } from '../../src/engine/ir/types.js';
import { EngineSession } from '../../src/engine/onnx/session.js';
import { expectClose } from './expect-close.js';

export interface CheckInput {
  shape: number[];
  /** default float32 */
  dtype?: DType;
  /** explicit data (e.g. indices); default: uniform in [lo, hi) */
  data?: HostTensor['data'];
  lo?: number;
  hi?: number;
  /** differentiate w.r.t. this input (default: float inputs) */
  wrt?: boolean;
}

/** Deterministic uniform numbers for checks (LCG; not the training RNG on purpose). */
function uniform(n: number, lo: number, hi: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = lo + ((s >>> 8) / 16777216) * (hi - lo);
  }
  return out;
}

function makeData(spec: CheckInput, seed: number): HostTensor {
  const dtype = spec.dtype ?? 'float32';
  const data = spec.data ?? uniform(numel(spec.shape), spec.lo ?? -1, spec.hi ?? 1, seed);
  return { dtype, shape: spec.shape, data };
}

export interface GradCheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
}

/**
 * Checks d(Σ build(xs)·R)/dx for every input with `wrt`. `build` receives graph inputs in order.
 * Throws (via expectClose) with the worst element on mismatch.
 */
export async function gradCheck(
  label: string,
  build: (g: Graph, xs: Value[]) => Value,
  specs: CheckInput[],
  options: GradCheckOptions = {},
): Promise<void> {
  const { eps = 1e-2, atol = 2e-3, rtol = 2e-2 } = options;
  const feeds: Record<string, HostTensor> = {};
  specs.forEach((s, i) => (feeds[`x${i}`] = makeData(s, 17 + 31 * i)));

  // Pass 1: the forward alone, to learn the output's runtime shape for R.
  const probe = new Graph('probe');
  const probeXs = specs.map((s, i) => probe.input(`x${i}`, s.dtype ?? 'float32', s.shape));
  probe.output(build(probe, probeXs), 'y');
  const probeSession = await EngineSession.create(probe, { threads: 1 });
  const y = (await probeSession.run(feeds))['y']!;
  await probeSession.release();

  const g = new Graph('gradcheck');
  const xs = specs.map((s, i) => g.input(`x${i}`, s.dtype ?? 'float32', s.shape));
  const r = g.input('r', 'float32', y.shape);
  const out = build(g, xs);
  const loss = g.reduceSum(
    g.mul(out, r),
    y.shape.map((_, i) => i),
    false,
  );
  const wrtIdx = specs
    .map((s, i) => ((s.wrt ?? (s.dtype ?? 'float32') === 'float32') ? i : -1))
    .filter((i) => i >= 0);
  const grads = grad(
    g,
    loss,
    wrtIdx.map((i) => xs[i]!),
  );
  g.output(loss, 'loss');
  grads.forEach((d, k) => g.output(d, `grad${k}`));
  const session = await EngineSession.create(g, { threads: 1, graphOptimizationLevel: 'disabled' });
  feeds['r'] = { dtype: 'float32', shape: y.shape, data: uniform(numel(y.shape), -1, 1, 99) };
  const analytic = await session.run(feeds);
  const lossAt = async (): Promise<number> => Number((await session.run(feeds, ['loss']))['loss']!.data[0]);

  for (const [k, i] of wrtIdx.entries()) {
    const x = feeds[`x${i}`]!.data as Float32Array;
    const numeric = new Float32Array(x.length);
    for (let j = 0; j < x.length; j++) {
      const keep = x[j]!;
      x[j] = keep + eps;
      const up = await lossAt();
      x[j] = keep - eps;
      const down = await lossAt();
      x[j] = keep;
      numeric[j] = (up - down) / (2 * eps);
    }
    const got = analytic[`grad${k}`]!;
    expectClose(got.data as Float32Array, numeric, { atol, rtol, label: `${label}: d/dx${i}` });
  }
  await session.release();
}
