/**
 * Side-loaded LoRA in a mixed batch: decode tokens/s of a batch of 8 rows where every row uses a different
 * adapter (8 distinct, rank 16, all seven modules) against the same batch with one adapter shared by all rows,
 * and the base model without side-loading for reference. One process:
 * `node --import tsx bench/sideload.ts --preset 100m [--batch 8] [--rank 16] [--steps 16] [--threads N]`.
 */
import { LINEAR_MODULES, linearShape } from '../src/engine/formats/hf-config.js';
import { loraKey, loraScale, type LoraAdapter } from '../src/engine/formats/peft.js';
import type { ModelConfig } from '../src/engine/formats/hf-config.js';
import { filler } from './ceilings.js';
import { benchArgs, emitResult } from './lib/args.js';
import { benchCheckpoint, type Preset } from './lib/bench-model.js';
import { buildSession, interleavedMedians, openDecoder, peakRssMiB } from './lib/timing.js';

function adapter(config: ModelConfig, rank: number, seed: number): LoraAdapter {
  const weights = new Map<string, { a: Float32Array; b: Float32Array }>();
  for (let l = 0; l < config.numLayers; l++) {
    for (const m of LINEAR_MODULES) {
      const { inFeatures, outFeatures } = linearShape(config, m);
      weights.set(loraKey(l, m), {
        a: filler(rank * inFeatures, 0.02, seed * 100 + l),
        b: filler(outFeatures * rank, 0.02, seed * 100 + l + 50),
      });
    }
  }
  return {
    rank,
    alpha: 2 * rank,
    useRslora: false,
    scale: loraScale(2 * rank, rank, false),
    dropout: 0,
    targetModules: [...LINEAR_MODULES],
    baseModelName: null,
    weights,
  };
}

const args = benchArgs();
const preset = (args.get('preset') ?? '100m') as Preset;
const batch = Number(args.get('batch') ?? 8);
const rank = Number(args.get('rank') ?? 16);
const steps = Number(args.get('steps') ?? 16);
const threads = args.has('threads') ? Number(args.get('threads')) : undefined;

const ckpt = benchCheckpoint(preset);
const side = await buildSession(ckpt, 'none', { threads, sideload: true });
const base = await buildSession(ckpt, 'none', { threads });
const adapters = Array.from({ length: batch }, (_, i) => adapter(ckpt.config, rank, i + 1));
const opts = { batch, steps, promptLen: 16 };
// Round-robin steps of the three batches, so all three medians see the same machine load.
const [distinctMs, singleMs, baseMs] = await interleavedMedians(
  [
    await openDecoder(ckpt, side.session, { ...opts, adapters }),
    await openDecoder(ckpt, side.session, { ...opts, adapters: [adapters[0]!] }),
    await openDecoder(ckpt, base.session, opts),
  ],
  steps,
);
await side.session.release();
await base.session.release();
emitResult({
  bench: 'sideload',
  preset,
  batch,
  rank,
  distinctTokensPerSecond: (1000 * batch) / distinctMs!,
  singleTokensPerSecond: (1000 * batch) / singleMs!,
  baseTokensPerSecond: (1000 * batch) / baseMs!,
  peakRssMiB: peakRssMiB(),
});
