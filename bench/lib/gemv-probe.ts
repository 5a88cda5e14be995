/**
 * A GEMV bandwidth probe that can be run step by step, interleaved with the decode steps it is the ceiling
 * for: the same graph as bench/ceilings.ts `measureGemvBandwidth` (a chain of 1×4096·4096×4096 fp32 MatMuls,
 * 512 MiB, far above the L3), kept open. Alternating probe and step means both see the same machine load.
 */
import * as ort from 'onnxruntime-node';
import { buildModel, filler, type Initializer, type NodeSpec } from '../ceilings.js';

export interface GemvProbe {
  bytes: number;
  /** One pass over all weights; returns its ms. */
  run(): Promise<number>;
  release(): Promise<void>;
}

export async function openGemvProbe(opts: { mib?: number; threads?: number } = {}): Promise<GemvProbe> {
  const k = 4096;
  const layers = Math.max(1, Math.round(((opts.mib ?? 512) * 2 ** 20) / (k * k * 4)));
  const nodes: NodeSpec[] = [];
  const inits: Initializer[] = [];
  for (let l = 0; l < layers; l++) {
    inits.push({ name: `W${l}`, dims: [k, k], data: filler(k * k, 1 / Math.sqrt(k), l + 1) });
    nodes.push({
      opType: 'MatMul',
      inputs: [l === 0 ? 'X' : `h${l}`, `W${l}`],
      output: l === layers - 1 ? 'Y' : `h${l + 1}`,
    });
  }
  const s = await ort.InferenceSession.create(buildModel(nodes, inits, [1, k], [1, k]), {
    ...(opts.threads === undefined ? {} : { intraOpNumThreads: opts.threads, interOpNumThreads: 1 }),
  });
  const x = new ort.Tensor('float32', filler(k, 1, 7), [1, k]);
  return {
    bytes: layers * k * k * 4,
    async run() {
      const t0 = performance.now();
      await s.run({ X: x });
      return performance.now() - t0;
    },
    release: () => s.release(),
  };
}
