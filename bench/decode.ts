/**
 * Decode throughput of a random Llama-shaped model through the real inference path: tokens/s at a batch size
 * for one or more bases (fp32 / nf4 / int4), the weight bytes read per step, and the GEMV bandwidth probed
 * between steps (bench/lib/gemv-probe.ts). Several bases in one process run round-robin — probe, step of
 * each base, probe, … — so every number sees the same machine load; their ratios are the comparison to read.
 * `node --import tsx bench/decode.ts --preset 100m --quantize none,int4 --batch 1 [--steps 16] [--threads N]`.
 */
import type { Quantization } from '../src/engine/nn/weights.js';
import { openGemvProbe } from './lib/gemv-probe.js';
import { benchArgs, emitResult } from './lib/args.js';
import { benchCheckpoint, type Preset } from './lib/bench-model.js';
import {
  buildSession,
  interleavedMedians,
  openDecoder,
  peakRssMiB,
  type BuiltSession,
} from './lib/timing.js';

const args = benchArgs();
const preset = (args.get('preset') ?? '100m') as Preset;
const bases = (args.get('quantize') ?? 'none').split(',') as Quantization[];
const batch = Number(args.get('batch') ?? 1);
const steps = Number(args.get('steps') ?? 16);
const threads = args.has('threads') ? Number(args.get('threads')) : undefined;

const ckpt = benchCheckpoint(preset);
const built: BuiltSession[] = [];
for (const q of bases) built.push(await buildSession(ckpt, q, { threads }));
const probe = await openGemvProbe({ mib: 512, threads });
const decoders: { step(s: number): Promise<number> }[] = [];
for (const b of built) decoders.push(await openDecoder(ckpt, b.session, { batch, steps, promptLen: 16 }));
// Only the cache bookkeeping needs the config now: the JS weights are garbage once ORT holds its copies.
ckpt.tensors.clear();
const [gemvMs, ...stepMs] = await interleavedMedians([{ step: () => probe.run() }, ...decoders], steps);
const gemvBytesPerSecond = probe.bytes / (gemvMs! / 1000);
bases.forEach((quantize, i) => {
  const b = built[i]!;
  const tokensPerSecond = (1000 * batch) / stepMs[i]!;
  const rooflineTokensPerSecond = (batch * gemvBytesPerSecond) / b.bytesPerStep;
  emitResult({
    bench: 'decode',
    preset,
    quantize,
    batch,
    msPerStep: stepMs[i]!,
    tokensPerSecond,
    gemvBytesPerSecond,
    rooflineTokensPerSecond,
    rooflineRatio: tokensPerSecond / rooflineTokensPerSecond,
    vsFirst: tokensPerSecond / ((1000 * batch) / stepMs[0]!),
    bytesPerStep: b.bytesPerStep,
    bitsPerLinearParam: b.bitsPerLinearParam,
    buildMs: b.buildMs,
    peakRssMiB: peakRssMiB(),
  });
});
await probe.release();
for (const b of built) await b.session.release();
