/**
 * Prefill throughput of a random Llama-shaped model: one T-token prompt per row through the decode graph
 * (empty cache), tokens/s and matmul FLOP/s (bench/run.ts divides by the MatMul peak it measures in the same
 * run). One configuration per process:
 * `node --import tsx bench/prefill.ts --preset 100m --quantize nf4 --batch 8 [--tokens 128] [--threads N]`.
 */
import type { Quantization } from '../src/engine/nn/weights.js';
import { measureMatMulPeak } from './ceilings.js';
import { benchArgs, emitResult } from './lib/args.js';
import { benchCheckpoint, prefillFlops, type Preset } from './lib/bench-model.js';
import { buildSession, peakRssMiB, timePrefill } from './lib/timing.js';

const args = benchArgs();
const preset = (args.get('preset') ?? '100m') as Preset;
const quantize = (args.get('quantize') ?? 'none') as Quantization;
const batch = Number(args.get('batch') ?? 1);
const tokens = Number(args.get('tokens') ?? 128);
const threads = args.has('threads') ? Number(args.get('threads')) : undefined;

const ckpt = benchCheckpoint(preset);
const built = await buildSession(ckpt, quantize, { threads });
ckpt.tensors.clear();
const peak = await measureMatMulPeak({ threads: threads ?? undefined });
const ms = await timePrefill(ckpt, built.session, { batch, promptLen: tokens, runs: 3 });
const flops = prefillFlops(ckpt.config, batch, tokens);
emitResult({
  bench: 'prefill',
  preset,
  quantize,
  batch,
  tokens,
  ms,
  tokensPerSecond: (1000 * batch * tokens) / ms,
  flopsPerSecond: flops / (ms / 1000),
  matMulPeakFlops: peak.flops,
  peakRatio: flops / (ms / 1000) / peak.flops,
  bitsPerLinearParam: built.bitsPerLinearParam,
  peakRssMiB: peakRssMiB(),
});
await built.session.release();
