/**
 * Batch-8 decode of the serving graph (src/engine/nn/llama-serve.ts) with and without onnxruntime's fused
 * kernels (`buildServeGraph({ fused })`), on the gateway bench's model (bench/lib/gateway-setup.ts: 12 layers,
 * hidden 768, 12/4 heads, byte vocabulary, fp32 weights), against the GEMV roofline measured in between
 * (bench/lib/gemv-probe.ts). The graph is called the way the gateway's worker calls it (runBatchStep over a
 * KvPool, 8 rows, K/V appended in JS) but on this thread, without the scheduler: ms/step here is the call.
 * Variants run in alternating order, round after round, each round preceded by a GEMV probe pass, because the
 * machine is shared. `node --import tsx bench/serve-step.ts [--rounds 4] [--steps 48] [--lora both|none|stacked] [--profile [--slab 256]]`
 * Not a test: nothing asserts a time. Results: docs/PERFORMANCE.md ("Gateway: fused serving graph").
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import {
  LINEAR_MODULES,
  expectedTensors,
  linearShape,
  parseModelConfig,
} from '../src/engine/formats/hf-config.js';
import type { LinearModule } from '../src/engine/formats/hf-config.js';
import { loraKey, loraScale, type LoraAdapter } from '../src/engine/formats/peft.js';
import { buildServeGraph } from '../src/engine/nn/llama-serve.js';
import { prepareWeights } from '../src/engine/nn/weights.js';
import { emitOnnx } from '../src/engine/onnx/emit.js';
import { EngineSession } from '../src/engine/onnx/session.js';
import { runBatchStep } from '../src/inference/batch-step.js';
import { KvPool } from '../src/inference/kv-pool.js';
import { LoraColumns } from '../src/inference/lora-columns.js';
import { filler } from './ceilings.js';
import { benchArgs, emitResult } from './lib/args.js';
import { bytesPerStep } from './lib/bench-model.js';
import { GATEWAY_MODEL_CONFIG } from './lib/gateway-setup.js';
import { openGemvProbe } from './lib/gemv-probe.js';

const args = benchArgs();
const rounds = Number(args.get('rounds') ?? 4);
const steps = Number(args.get('steps') ?? 48);
const loraArg = args.get('lora') ?? 'both';
/** Slab stride of the profiled calls' past (tokens); the timed rounds use 256, as the gateway's pool would here. */
const profileSlab = Number(args.get('slab') ?? 256);
const BATCH = 8;
const PROMPT = 66;
const log = (s: string) => process.stderr.write(`${s}\n`);
const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (s.length - 1) * q;
  const lo = Math.floor(at);
  return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (at - lo);
};
const median = (xs: number[]) => quantile(xs, 0.5);

const rawConfig = { ...GATEWAY_MODEL_CONFIG } as Record<string, unknown>;
const config = parseModelConfig(rawConfig);
const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
let seed = 1;
for (const { name, shape } of expectedTensors(config)) {
  const n = shape.reduce((a, b) => a * b, 1);
  tensors.set(name, {
    shape,
    data: name.endsWith('norm.weight') ? new Float32Array(n).fill(1) : filler(n, 0.02, seed++),
  });
}
const weights = prepareWeights({ dir: '<bench serve-step>', config, rawConfig, tensors });
const weightBytes = bytesPerStep(config, weights);

/**
 * 8 adapters, rank 8 on q_proj + v_proj (the gateway bench's), one per row; the stacked graph takes all seven
 * modules, as the gateway builds it.
 */
const loraModules: LinearModule[] = ['q_proj', 'v_proj'];
const columns = new LoraColumns(config, LINEAR_MODULES, 64);
for (let s = 1; s <= BATCH; s++) {
  const w = new Map<string, { a: Float32Array; b: Float32Array }>();
  for (let l = 0; l < config.numLayers; l++) {
    for (const m of loraModules) {
      const { inFeatures, outFeatures } = linearShape(config, m);
      w.set(loraKey(l, m), {
        a: filler(8 * inFeatures, 0.02, 100 + s),
        b: filler(outFeatures * 8, 0.02, 200 + s),
      });
    }
  }
  const adapter: LoraAdapter = {
    rank: 8,
    alpha: 16,
    useRslora: false,
    scale: loraScale(16, 8, false),
    dropout: 0,
    targetModules: loraModules,
    baseModelName: null,
    weights: w,
  };
  columns.place(s, adapter);
}
const loraFeeds = columns.feeds();

/**
 * onnxruntime's own profile of 24 decode calls (batch 8, every row at 100 cached tokens in `--slab` (256) token slabs):
 * kernel ms per call by op type. Less sensitive to the shared machine than wall time per step, since time a
 * node's thread is descheduled still counts but the split between ops shows where a step goes.
 */
async function profileOps(bytes: Uint8Array, lora: boolean): Promise<Map<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'serve-step-prof-'));
  try {
    const s = await ort.InferenceSession.create(bytes, {
      enableProfiling: true,
      profileFilePrefix: join(dir, 'p'),
    });
    const { numLayers: L, numKvHeads: KVH, headDim: D } = config;
    const i64 = (xs: number[], dims: number[]) =>
      new ort.Tensor('int64', BigInt64Array.from(xs, BigInt), dims);
    const rowsOf = (f: (b: number) => number) => Array.from({ length: BATCH }, (_, b) => f(b));
    const feeds: Record<string, ort.Tensor> = {
      input_ids: i64(
        rowsOf((b) => b),
        [BATCH, 1],
      ),
      position_ids: i64(
        rowsOf(() => 100),
        [BATCH, 1],
      ),
      seqlens_k: new ort.Tensor('int32', Int32Array.from(rowsOf(() => 100)), [BATCH]),
      total_sequence_length: new ort.Tensor('int32', Int32Array.of(101), []),
      last_index: i64(
        rowsOf((b) => b),
        [BATCH],
      ),
    };
    for (let l = 0; l < L; l++) {
      for (const kv of ['key', 'value']) {
        feeds[`past.${l}.${kv}`] = new ort.Tensor(
          'float32',
          new Float32Array(BATCH * KVH * profileSlab * D),
          [BATCH, KVH, profileSlab, D],
        );
      }
    }
    if (lora) {
      feeds.lora_slot = i64(
        rowsOf((b) => b + 1),
        [BATCH],
      );
      for (const [name, t] of Object.entries(loraFeeds)) {
        if (name === 'lora_slot') continue;
        feeds[name] = new ort.Tensor(t.dtype as never, t.data as never, [...t.shape]);
      }
    }
    const calls = 24;
    for (let i = 0; i < calls; i++) await s.run(feeds);
    await s.release();
    const file = readdirSync(dir).find((f) => f.endsWith('.json'))!;
    const events = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
      cat: string;
      name: string;
      dur: number;
      args?: { op_name?: string };
    }[];
    const byOp = new Map<string, number>();
    for (const e of events) {
      if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
      const op = e.args?.op_name ?? '?';
      byOp.set(op, (byOp.get(op) ?? 0) + e.dur / 1000 / calls);
    }
    return byOp;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Nodes onnxruntime runs after its own fusions (level 'all', as EngineSession creates sessions). */
async function optimizedNodes(bytes: Uint8Array): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'serve-step-'));
  try {
    const path = join(dir, 'opt.onnx');
    const s = await ort.InferenceSession.create(bytes, {
      graphOptimizationLevel: 'all',
      optimizedModelFilePath: path,
    });
    await s.release();
    return onnxProto.onnx.ModelProto.decode(readFileSync(path)).graph?.node?.length ?? 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Variant {
  label: string;
  lora: 'none' | 'stacked';
  fused: boolean;
  session: EngineSession;
  irNodes: number;
  ortNodes: number;
  /** Every timed decode step, all rounds. */
  stepMs: number[];
}
const variants: Variant[] = [];
const profiles = new Map<string, Map<string, number>>();
for (const lora of loraArg === 'both' ? (['none', 'stacked'] as const) : [loraArg as 'none' | 'stacked']) {
  for (const fused of [false, true]) {
    const graph = buildServeGraph(config, weights, { lora, fused });
    const bytes = emitOnnx(graph);
    const ortNodes = await optimizedNodes(bytes);
    if (args.has('profile'))
      profiles.set(
        `${lora === 'none' ? 'base' : 'stacked LoRA'}, ${fused ? 'fused' : 'composite'}`,
        await profileOps(bytes, lora === 'stacked'),
      );
    const session = await EngineSession.create(bytes);
    const label = `${lora === 'none' ? 'base' : 'stacked LoRA'}, ${fused ? 'fused' : 'composite'}`;
    variants.push({
      label,
      lora,
      fused,
      session,
      irNodes: graph.nodes.length,
      ortNodes,
      stepMs: [],
    });
    log(`built ${label}: ${graph.nodes.length} IR nodes, ${ortNodes} after onnxruntime's fusions`);
  }
}

const probe = await openGemvProbe();
const gemv: number[] = [];
const slotOf = (v: Variant, b: number) => (v.lora === 'stacked' ? b + 1 : 0);
/** A fresh pool per variant and round: 8 rows, 1024-token slabs laid out with stride 256 as the gateway would. */
function open(v: Variant) {
  const pool = new KvPool(config.numLayers, BATCH, config.numKvHeads, 1024, config.headDim);
  pool.restride(256);
  for (let b = 0; b < BATCH; b++) pool.allocate();
  return (ids: (b: number) => number[]) =>
    runBatchStep({
      session: v.session,
      config,
      pool,
      start: 0,
      rows: Array.from({ length: BATCH }, (_, b) => ({ ids: ids(b), loraSlot: slotOf(v, b) })),
      ...(v.lora === 'stacked' ? { loraFeeds } : {}),
    });
}

// Each round prefills every variant's rows (66 tokens, untimed), then decodes `steps` steps per variant in
// blocks of BLOCK steps, the variants taking turns block by block (the order rotating), so the machine's load
// drifts over all variants alike. The first 2 steps of a block are not recorded: the previous block ran another
// session, whose weights pushed this one's out of the 300 MiB L3 (in the gateway one session runs step after step).
const BLOCK = 8;
for (let r = 0; r <= rounds; r++) {
  const calls = variants.map(open);
  for (const call of calls) await call((b) => Array.from({ length: PROMPT }, (_, t) => (b * 31 + t) % 256));
  if (r > 0) gemv.push(probe.bytes / (await probe.run()) / 1e6);
  for (let s0 = 0; s0 < steps; s0 += BLOCK) {
    for (let k = 0; k < variants.length; k++) {
      const i = (k + s0 / BLOCK + r) % variants.length;
      for (let s = s0; s < Math.min(steps, s0 + BLOCK); s++) {
        const t0 = performance.now();
        await calls[i]!((b) => [(b * 7 + s) % 256]);
        // Round 0 warms every session up; it is not recorded.
        if (r > 0 && s - s0 >= 2) variants[i]!.stepMs.push(performance.now() - t0);
      }
    }
  }
  if (r > 0) {
    gemv.push(probe.bytes / (await probe.run()) / 1e6);
    const last = variants
      .map((v) => `${v.label} ${median(v.stepMs.slice(-Math.round((steps * 3) / 4))).toFixed(1)}`)
      .join(', ');
    log(
      `round ${r}: median ms/step ${last}; GEMV ${gemv
        .slice(-2)
        .map((x) => x.toFixed(1))
        .join(', ')} GB/s`,
    );
  }
}
await probe.release();

const gbps = median(gemv);
const roofline = (BATCH * gbps * 1e9) / weightBytes;
console.log(
  `Batch-${BATCH} decode after ${PROMPT}-token prompts, ${rounds} rounds × ${steps} steps per graph in blocks of ${BLOCK} taking turns (2 per block untimed); weights ${(weightBytes / 1e6).toFixed(0)} MB/step; GEMV median ${gbps.toFixed(2)} GB/s → roofline ${roofline.toFixed(1)} tokens/s (${((weightBytes / (gbps * 1e9)) * 1000).toFixed(1)} ms/step)`,
);
console.log('');
console.log(
  '| graph | IR nodes | nodes after ORT fusions | ms/step p10 | ms/step median | tokens/s (median) | ÷ roofline | median step ÷ composite |',
);
console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
const rows = variants.map((v) => {
  const ms = median(v.stepMs);
  const base = variants.find((u) => u.lora === v.lora && !u.fused)!;
  const tps = (BATCH * 1000) / ms;
  console.log(
    `| ${v.label} | ${v.irNodes} | ${v.ortNodes} | ${quantile(v.stepMs, 0.1).toFixed(1)} | ${ms.toFixed(1)} | ${tps.toFixed(1)} | ${((100 * tps) / roofline).toFixed(0)}% | ${(ms / median(base.stepMs)).toFixed(3)} |`,
  );
  return {
    label: v.label,
    irNodes: v.irNodes,
    ortNodes: v.ortNodes,
    p10: quantile(v.stepMs, 0.1),
    median: ms,
    tokensPerS: tps,
    ofRoofline: tps / roofline,
  };
});
// Paired: the same step of the same round, fused vs composite (close in time).
for (const lora of new Set(variants.map((v) => v.lora))) {
  const [c, f] = [false, true].map((fused) => variants.find((v) => v.lora === lora && v.fused === fused));
  if (!c || !f) continue;
  const ratios = f.stepMs.map((ms, i) => ms / c.stepMs[i]!);
  console.log(
    `${lora === 'none' ? 'base' : 'stacked LoRA'}: fused ÷ composite per paired step, median ${median(ratios).toFixed(3)} (p25 ${quantile(ratios, 0.25).toFixed(3)}, p75 ${quantile(ratios, 0.75).toFixed(3)})`,
  );
}
if (profiles.size > 0) {
  console.log('');
  console.log(
    `onnxruntime profile, kernel ms per decode call (batch 8, 100 cached tokens per row, ${profileSlab}-token slabs):`,
  );
  console.log('');
  console.log('| graph | MatMul + FusedMatMul | GroupQueryAttention | everything else | of which | total |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const [label, byOp] of profiles) {
    const get = (k: string) => byOp.get(k) ?? 0;
    const mm = get('MatMul') + get('FusedMatMul');
    const gqa = get('GroupQueryAttention');
    const rest = [...byOp].filter(([k]) => !['MatMul', 'FusedMatMul', 'GroupQueryAttention'].includes(k));
    const restMs = rest.reduce((a, [, v]) => a + v, 0);
    const top = rest
      .sort((a, b) => b[1] - a[1])
      .slice(0, 6)
      .map(([k, v]) => `${k} ${v.toFixed(2)}`)
      .join(', ');
    console.log(
      `| ${label} | ${mm.toFixed(1)} | ${gqa.toFixed(1)} | ${restMs.toFixed(1)} | ${top} | ${(mm + gqa + restMs).toFixed(1)} |`,
    );
  }
}
console.log('');
console.log(
  `GEMV probe passes (GB/s; one before and one after each round): ${gemv.map((x) => x.toFixed(1)).join(', ')}`,
);
emitResult({
  bench: 'serve-step',
  batch: BATCH,
  steps,
  rounds,
  gemvGBps: gbps,
  rooflineTokensPerS: roofline,
  rows,
});
for (const v of variants) await v.session.release();
