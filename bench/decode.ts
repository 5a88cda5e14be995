/**
 * Decode throughput of a random Llama-shaped model through the real inference path: tokens/s at a batch size,
 * fp32 / nf4 / int4 base, plus the weight bytes read per step (for the roofline ratio bench/run.ts computes
 * against the GEMV bandwidth it measures in the same run) and peak RSS. One configuration per process:
 * `node --import tsx bench/decode.ts --preset 100m --quantize int4 --batch 1 [--steps 16] [--threads N]`.
 */
import type { Quantization } from '../src/engine/nn/weights.js';
import { openGemvProbe } from './lib/gemv-probe.js';
import { benchArgs, emitResult } from './lib/args.js';
import { benchCheckpoint, type Preset } from './lib/bench-model.js';
import { buildSession, peakRssMiB, timeDecode } from './lib/timing.js';

const args = benchArgs();
const preset = (args.get('preset') ?? '100m') as Preset;
const quantize = (args.get('quantize') ?? 'none') as Quantization;
const batch = Number(args.get('batch') ?? 1);
const steps = Number(args.get('steps') ?? 16);
const threads = args.has('threads') ? Number(args.get('threads')) : undefined;

const ckpt = benchCheckpoint(preset);
const built = await buildSession(ckpt, quantize, { threads });
// Keep only what the loop needs: the JS weights are garbage once ORT holds its copy.
ckpt.tensors.clear();
// The ceiling is measured in this process, one GEMV pass before each decode step: on a shared machine the
// load drifts, and alternating makes both numbers see the same load.
const probe = await openGemvProbe({ mib: 512, threads });
const { msPerStep, betweenMs } = await timeDecode(ckpt, built.session, {
  batch,
  steps,
  promptLen: 16,
  between: () => probe.run(),
});
await probe.release();
const gemvBytesPerSecond = probe.bytes / (betweenMs / 1000);
const rooflineTokensPerSecond = (batch * gemvBytesPerSecond) / built.bytesPerStep;
emitResult({
  bench: 'decode',
  preset,
  quantize,
  batch,
  msPerStep,
  tokensPerSecond: (1000 * batch) / msPerStep,
  gemvBytesPerSecond,
  rooflineTokensPerSecond,
  rooflineRatio: (1000 * batch) / msPerStep / rooflineTokensPerSecond,
  bytesPerStep: built.bytesPerStep,
  bitsPerLinearParam: built.bitsPerLinearParam,
  buildMs: built.buildMs,
  peakRssMiB: peakRssMiB(),
});
await built.session.release();
