/**
 * Timing loops for the engine benchmarks, over the real inference path (buildLlamaGraph → EngineSession →
 * BatchDecoder): decode steps/s, one prefill, and peak RSS. Sessions are built from bytes and the JS weights
 * dropped before timing, as a server would. Not a test: nothing asserts a time. Presets: bench-model.ts.
 */
import type { Checkpoint } from '../../src/engine/formats/checkpoint.js';
import type { LoraAdapter } from '../../src/engine/formats/peft.js';
import { buildLlamaGraph } from '../../src/engine/nn/llama.js';
import { prepareWeights, type Quantization } from '../../src/engine/nn/weights.js';
import { emitOnnx } from '../../src/engine/onnx/emit.js';
import { EngineSession } from '../../src/engine/onnx/session.js';
import { buildAdapterStack } from '../../src/inference/adapter-stack.js';
import { BatchDecoder } from '../../src/inference/batch-decoder.js';
import { bytesPerStep, linearBytes, linearParams } from './bench-model.js';

export interface BuiltSession {
  session: EngineSession;
  bytesPerStep: number;
  bitsPerLinearParam: number;
  buildMs: number;
}

export async function buildSession(
  ckpt: Checkpoint,
  quantize: Quantization,
  opts: { threads?: number; sideload?: boolean } = {},
): Promise<BuiltSession> {
  const t0 = performance.now();
  const weights = prepareWeights(ckpt, { quantize });
  const perStep = bytesPerStep(ckpt.config, weights);
  const bits = (8 * linearBytes(weights)) / linearParams(ckpt.config);
  const { graph } = buildLlamaGraph(ckpt.config, weights, {
    phase: 'decode',
    logits: 'last',
    lora: opts.sideload ? { kind: 'sideload' } : { kind: 'none' },
  });
  const bytes = emitOnnx(graph);
  const session = await EngineSession.create(bytes, { threads: opts.threads });
  return { session, bytesPerStep: perStep, bitsPerLinearParam: bits, buildMs: performance.now() - t0 };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Median ms per decode step of `batch` rows after a `promptLen`-token prefill. */
export async function timeDecode(
  ckpt: Checkpoint,
  session: EngineSession,
  opts: {
    batch: number;
    steps: number;
    promptLen: number;
    adapters?: LoraAdapter[];
    /** Called between steps (an interleaved ceiling probe); its ms are returned as `betweenMs`. */
    between?: () => Promise<number>;
  },
): Promise<{ msPerStep: number; prefillMs: number; betweenMs: number }> {
  const { batch, steps, promptLen } = opts;
  const V = ckpt.config.vocabSize;
  const adapters = opts.adapters ?? [];
  const stack = adapters.length > 0 ? buildAdapterStack(ckpt.config, adapters).feeds : {};
  const rows = Array.from({ length: batch }, (_, b) => ({
    promptIds: Array.from({ length: promptLen }, (_, j) => (b * 131 + j * 17 + 5) % V),
    slot: adapters.length === 0 ? 0 : (b % adapters.length) + 1,
  }));
  const dec = new BatchDecoder(session, ckpt.config, rows, promptLen + steps + 2, stack);
  const t0 = performance.now();
  await dec.prefill();
  const prefillMs = performance.now() - t0;
  const times: number[] = [];
  const between: number[] = [];
  for (let s = 0; s < steps; s++) {
    if (opts.between) between.push(await opts.between());
    const t = performance.now();
    await dec.step(rows.map((_, b) => (b * 7 + s * 13 + 3) % V));
    times.push(performance.now() - t);
  }
  // The first two steps warm ORT's allocations.
  return {
    msPerStep: times.length > 2 ? median(times.slice(2)) : NaN,
    prefillMs,
    betweenMs: between.length > 2 ? median(between.slice(2)) : NaN,
  };
}

/** A prefilled batch whose steps can be timed one at a time (to interleave several configurations). */
export async function openDecoder(
  ckpt: Checkpoint,
  session: EngineSession,
  opts: { batch: number; steps: number; promptLen: number; adapters?: LoraAdapter[] },
): Promise<{ step(s: number): Promise<number> }> {
  const V = ckpt.config.vocabSize;
  const adapters = opts.adapters ?? [];
  const stack = adapters.length > 0 ? buildAdapterStack(ckpt.config, adapters).feeds : {};
  const rows = Array.from({ length: opts.batch }, (_, b) => ({
    promptIds: Array.from({ length: opts.promptLen }, (_, j) => (b * 131 + j * 17 + 5) % V),
    slot: adapters.length === 0 ? 0 : (b % adapters.length) + 1,
  }));
  const dec = new BatchDecoder(session, ckpt.config, rows, opts.promptLen + opts.steps + 2, stack);
  await dec.prefill();
  return {
    async step(s) {
      const t = performance.now();
      await dec.step(rows.map((_, b) => (b * 7 + s * 13 + 3) % V));
      return performance.now() - t;
    },
  };
}

/** Runs the decoders' steps round-robin; returns each one's median ms per step (first two dropped). */
export async function interleavedMedians(decoders: { step(s: number): Promise<number> }[], steps: number) {
  const times: number[][] = decoders.map(() => []);
  for (let s = 0; s < steps; s++)
    for (let i = 0; i < decoders.length; i++) times[i]!.push(await decoders[i]!.step(s));
  return times.map((t) => median(t.slice(2)));
}

/** Median ms of a full prefill (fresh cache each time). */
export async function timePrefill(
  ckpt: Checkpoint,
  session: EngineSession,
  opts: { batch: number; promptLen: number; runs: number },
): Promise<number> {
  const times: number[] = [];
  for (let r = 0; r < opts.runs + 1; r++) {
    const { prefillMs } = await timeDecode(ckpt, session, {
      batch: opts.batch,
      steps: 0,
      promptLen: opts.promptLen,
    });
    if (r > 0) times.push(prefillMs);
  }
  return median(times);
}

export function peakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024;
}
