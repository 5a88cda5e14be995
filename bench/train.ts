/**
 * Training throughput and memory: a ~98M-parameter Llama (hidden 768, 16 layers, byte vocabulary) trained with
 * rank-8 LoRA on all seven projections at sequence length 256, NF4 base vs fp32 base, each in its own process
 * so peak RSS is its own. Reports tokens/s, achieved FLOP/s against the fp32 MatMul peak measured in the same
 * run (bench/ceilings.ts), bits per base parameter, and peak RSS against the fp32 model size.
 * Gradient checkpointing on (the default) and off. Run: `node --import tsx bench/train.ts` (≈ 6–8 min, 2 cores). Results: docs/PERFORMANCE.md, "Training".
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUILTIN_CONFIG, builtinTokenizerConfig, builtinTokenizerJson } from '../src/engine/builtin-model.js';
import { writeCheckpoint, type Tensor32 } from '../src/engine/formats/checkpoint.js';
import { expectedTensors, parameterCount, parseModelConfig } from '../src/engine/formats/hf-config.js';
import { runTraining } from '../src/training/trainer.js';
import { defaultThreads, measureMatMulPeak, printTable } from './ceilings.js';

const RAW_CONFIG = {
  ...BUILTIN_CONFIG,
  hidden_size: 768,
  intermediate_size: 2048,
  num_hidden_layers: 16,
  num_attention_heads: 12,
  num_key_value_heads: 4,
  head_dim: 64,
  max_position_embeddings: 1024,
};
const SEQ = 256;
const BATCH = 2;
const WARMUP_STEPS = 1;
const MEASURED_STEPS = 4;

function normal(n: number, std: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 2 ** 32;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = std * Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

async function writeModel(dir: string): Promise<void> {
  const config = parseModelConfig(RAW_CONFIG);
  const tensors = new Map<string, Tensor32>();
  expectedTensors(config).forEach(({ name, shape }, i) => {
    const n = shape.reduce((a, b) => a * b, 1);
    tensors.set(name, {
      shape,
      data: name.endsWith('norm.weight') ? new Float32Array(n).fill(1) : normal(n, 0.02, i + 1),
    });
  });
  await writeCheckpoint(dir, RAW_CONFIG, tensors);
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(builtinTokenizerJson()));
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(builtinTokenizerConfig()));
}

/** Matmul FLOPs per trained token: forward 2·P (projections + lm_head) + attention, backward dX the same (LoRA's own GEMMs are < 1% and not counted). */
function flopsPerToken(): number {
  const c = parseModelConfig(RAW_CONFIG);
  const C = c.hiddenSize;
  const proj =
    c.numLayers *
    (C * c.numHeads * c.headDim * 2 + C * c.numKvHeads * c.headDim * 2 + 3 * C * c.intermediateSize);
  const head = C * c.vocabSize;
  // Scores and context: 2·T·H·D each per token over the full (masked) T×T square.
  const attention = c.numLayers * 2 * 2 * SEQ * c.numHeads * c.headDim;
  return 2 * (2 * (proj + head) + attention);
}

interface ChildResult {
  quantize: string;
  checkpointing: boolean;
  rssAtStartBytes: number;
  tokensPerSecond: number;
  stepSeconds: number;
  peakRssBytes: number;
  maxRssBytes: number;
  bits: number;
}

async function child(
  modelDir: string,
  quantize: 'nf4' | 'none',
  checkpointing: boolean,
  threads: number,
): Promise<void> {
  const rows = Array.from({ length: BATCH * (WARMUP_STEPS + MEASURED_STEPS) }, (_, i) => ({
    // 254 bytes + BOS + EOS = 256 inputs after the shift.
    text: Array.from({ length: SEQ - 1 }, (_, k) => String.fromCharCode(97 + ((i * 7 + k * 13) % 26))).join(
      '',
    ),
  }));
  const stamps: number[] = [];
  const { metrics } = await runTraining(
    {
      modelDir,
      data: { rows },
      format: 'TEXT',
      quantize,
      epochs: 1,
      batchSize: BATCH,
      maxSeqLen: SEQ + 1,
      threads,
      validationSplit: 0,
      gradientCheckpointing: checkpointing,
    },
    { onProgress: (e) => e.type === 'step' && stamps.push(performance.now()) },
  );
  const measured = (stamps.at(-1)! - stamps[WARMUP_STEPS - 1]!) / 1000 / MEASURED_STEPS;
  const result: ChildResult = {
    quantize,
    checkpointing,
    rssAtStartBytes: metrics.rssAtStartBytes,
    tokensPerSecond: (BATCH * SEQ) / measured,
    stepSeconds: measured,
    peakRssBytes: metrics.peakRssBytes,
    maxRssBytes: metrics.maxRssBytes,
    bits: metrics.bitsPerBaseParameter,
  };
  console.log(`RESULT ${JSON.stringify(result)}`);
}

async function main(): Promise<void> {
  const threads = Number(process.env.THREADS ?? defaultThreads());
  const [, , mode, modelDir, quantize, ckpt] = process.argv;
  if (mode === '--child') return child(modelDir!, quantize as 'nf4' | 'none', ckpt === 'on', threads);

  const dir = await mkdtemp(join(tmpdir(), 'dg-bench-train-'));
  try {
    await writeModel(dir);
    const params = parameterCount(parseModelConfig(RAW_CONFIG));
    const peak = await measureMatMulPeak({ threads });
    const self = fileURLToPath(import.meta.url);
    const results: ChildResult[] = [];
    const configs = [
      ['nf4', 'on'],
      ['nf4', 'off'],
      ['none', 'off'],
    ] as const;
    for (const [q, ck] of configs) {
      // A fixed mmap threshold makes glibc return freed tensors to the OS, so RSS follows live memory.
      const env = { ...process.env, MALLOC_MMAP_THRESHOLD_: '131072' };
      const r = spawnSync(process.execPath, ['--import', 'tsx', self, '--child', dir, q, ck], {
        encoding: 'utf8',
        env,
      });
      const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
      if (!line) throw new Error(`child ${q}/${ck} failed: ${r.stderr.slice(-2000)}`);
      results.push(JSON.parse(line.slice(7)) as ChildResult);
    }
    const fpt = flopsPerToken();
    const fp32Bytes = params * 4;
    console.log(
      `training bench: ${(params / 1e6).toFixed(1)}M params, seq ${SEQ}, batch ${BATCH}, rank 8 on 7 modules, ${threads} threads; ` +
        `MatMul peak ${(peak.flops / 1e9).toFixed(1)} GFLOP/s (1024³, same run); fp32 model ${(fp32Bytes / 2 ** 20).toFixed(0)} MiB`,
    );
    printTable(
      results.map((r) => ({
        base: r.quantize === 'none' ? 'fp32' : r.quantize,
        'grad ckpt': r.checkpointing ? 'on' : 'off',
        'bits/param': r.bits,
        'step s': r.stepSeconds,
        'tokens/s': Math.round(r.tokensPerSecond),
        'GFLOP/s': (r.tokensPerSecond * fpt) / 1e9,
        'of peak': `${((100 * r.tokensPerSecond * fpt) / peak.flops).toFixed(0)}%`,
        'RSS at start MiB': Math.round(r.rssAtStartBytes / 2 ** 20),
        'peak RSS MiB (steps)': Math.round(r.peakRssBytes / 2 ** 20),
        'vs fp32 model': `${((100 * r.peakRssBytes) / fp32Bytes).toFixed(0)}%`,
        'max RSS MiB (incl. load)': Math.round(r.maxRssBytes / 2 ** 20),
      })),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
