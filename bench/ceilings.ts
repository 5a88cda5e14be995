/**
 * The machine's measured ceilings, which other benchmarks report their ratios against (docs/ENGINE.md):
 * GEMV weight bandwidth through ORT over ≥ 512 MiB (above the 300 MiB L3), fp32 MatMul peak FLOP/s, and the
 * speed of MatMulBnb4 (NF4) vs MatMulNBits (int4) vs fp32 at M=1 and M=256. Exported for other benchmarks and
 * runnable alone: `node --import tsx bench/ceilings.ts`. Not a test: nothing here asserts a time.
 */
import os from 'node:os';
import { pathToFileURL } from 'node:url';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { dequantizeAbsmax, nf4BitsPerParameter, quantizeNf4 } from '../src/engine/quant/nf4.js';
import { int4BitsPerParameter, quantizeInt4 } from '../src/engine/quant/int4.js';

const { onnx } = onnxProto;

export interface NodeSpec {
  opType: string;
  domain?: string;
  inputs: string[];
  output: string;
  attrs?: Record<string, number>;
}
export interface Initializer {
  name: string;
  dims: number[];
  data: Float32Array | Uint8Array;
}

/** A graph of nodes over one float input `X` and output `Y`, constants as initializers (so ORT prepacks them). */
export function buildModel(
  nodes: NodeSpec[],
  inits: Initializer[],
  xDims: number[],
  yDims: number[],
): Uint8Array {
  const info = (name: string, dims: number[]) => ({
    name,
    type: { tensorType: { elemType: 1, shape: { dim: dims.map((d) => ({ dimValue: d })) } } },
  });
  const model = onnx.ModelProto.fromObject({
    irVersion: 8,
    opsetImport: [
      { domain: '', version: 17 },
      { domain: 'com.microsoft', version: 1 },
    ],
    graph: {
      name: 'bench',
      node: nodes.map((n) => ({
        opType: n.opType,
        domain: n.domain ?? '',
        input: n.inputs,
        output: [n.output],
        attribute: Object.entries(n.attrs ?? {}).map(([name, i]) => ({ name, type: 2, i })),
      })),
      initializer: inits.map((c) => ({
        name: c.name,
        dims: c.dims,
        dataType: c.data instanceof Float32Array ? 1 : 2,
        rawData: new Uint8Array(c.data.buffer, c.data.byteOffset, c.data.byteLength),
      })),
      input: [info('X', xDims)],
      output: [info('Y', yDims)],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

/** Median and fastest wall time (ms) of `runs` calls after `warmup` calls (the fastest shows what a shared
 * machine hides: on the 2-core CI box other processes inflate the median). */
export async function timeMs(
  fn: () => Promise<unknown>,
  runs = 7,
  warmup = 2,
): Promise<{ median: number; min: number }> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)]!, min: times[0]! };
}

/** Median wall time (ms) of `runs` calls after `warmup` calls. */
export async function medianMs(fn: () => Promise<unknown>, runs = 7, warmup = 2): Promise<number> {
  return (await timeMs(fn, runs, warmup)).median;
}

/** Cheap non-degenerate fill: a random block of N(0, std²)-ish values repeated (content does not change speed). */
export function filler(count: number, std: number, seed = 1): Float32Array {
  const block = new Float32Array(Math.min(count, 65_536));
  let s = seed;
  for (let i = 0; i < block.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    block[i] = ((s / 2 ** 32) * 2 - 1) * std * Math.sqrt(3);
  }
  const out = new Float32Array(count);
  for (let off = 0; off < count; off += block.length)
    out.set(block.subarray(0, Math.min(block.length, count - off)), off);
  return out;
}

export async function session(bytes: Uint8Array, threads: number): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(bytes, { intraOpNumThreads: threads, interOpNumThreads: 1 });
}

export const defaultThreads = (): number => os.availableParallelism();

/**
 * fp32 weight bytes read per second by a decode-shaped chain of 1×K · K×K MatMuls (K = 4096, 64 MiB each)
 * totalling `mib` MiB — far above the L3, like a real model's layers read once per token.
 */
export async function measureGemvBandwidth(opts: { mib?: number; threads?: number } = {}): Promise<{
  /** from the median run */
  bytesPerSecond: number;
  /** from the fastest run */
  bestBytesPerSecond: number;
  ms: number;
  bytes: number;
}> {
  const { mib = 768, threads = defaultThreads() } = opts;
  const k = 4096;
  const layers = Math.max(1, Math.round((mib * 2 ** 20) / (k * k * 4)));
  const nodes: NodeSpec[] = [];
  const inits: Initializer[] = [];
  const w = filler(k * k, 1 / Math.sqrt(k));
  for (let l = 0; l < layers; l++) {
    // The same values under different names: ORT stores (and streams) each one separately.
    inits.push({ name: `W${l}`, dims: [k, k], data: w });
    nodes.push({
      opType: 'MatMul',
      inputs: [l === 0 ? 'X' : `h${l}`, `W${l}`],
      output: l === layers - 1 ? 'Y' : `h${l + 1}`,
    });
  }
  const s = await session(buildModel(nodes, inits, [1, k], [1, k]), threads);
  const x = new ort.Tensor('float32', filler(k, 1, 7), [1, k]);
  const t = await timeMs(() => s.run({ X: x }), 7, 2);
  await s.release();
  const bytes = layers * k * k * 4;
  return {
    bytesPerSecond: bytes / (t.median / 1e3),
    bestBytesPerSecond: bytes / (t.min / 1e3),
    ms: t.median,
    bytes,
  };
}

/** FLOP/s of one fp32 size×size · size×size MatMul (constant B). */
export async function measureMatMulPeak(opts: { size?: number; threads?: number } = {}): Promise<{
  /** from the median run */
  flops: number;
  /** from the fastest run */
  bestFlops: number;
  ms: number;
}> {
  const { size = 1024, threads = defaultThreads() } = opts;
  const s = await session(
    buildModel(
      [{ opType: 'MatMul', inputs: ['X', 'W'], output: 'Y' }],
      [{ name: 'W', dims: [size, size], data: filler(size * size, 0.03) }],
      [size, size],
      [size, size],
    ),
    threads,
  );
  const x = new ort.Tensor('float32', filler(size * size, 1, 3), [size, size]);
  const t = await timeMs(() => s.run({ X: x }), 7, 2);
  await s.release();
  return {
    flops: (2 * size ** 3) / (t.median / 1e3),
    bestFlops: (2 * size ** 3) / (t.min / 1e3),
    ms: t.median,
  };
}

export interface FormatTiming {
  format: string;
  bitsPerParameter: number;
  /** weight bytes as ORT holds them in this graph (packed codes + scales) */
  weightBytes: number;
  /** medians */
  msM1: number;
  msM256: number;
  /** fastest runs */
  bestMsM1: number;
  bestMsM256: number;
  /** weight bytes / M=1 time */
  bytesPerSecondM1: number;
  /** 2·M·N·K / M=256 time */
  flopsM256: number;
}

/** M=1 and M=256 through one 4096×4096 (or n×k) weight: fp32 MatMul, NF4 MatMulBnb4, int4 MatMulNBits. */
export async function measureBnb4AndNBits(
  opts: { n?: number; k?: number; threads?: number; int4BlockSize?: number } = {},
): Promise<FormatTiming[]> {
  const { n = 4096, k = 4096, threads = defaultThreads(), int4BlockSize = 64 } = opts;
  const w = filler(n * k, 0.02, 11);
  const nf4 = quantizeNf4(w, n, k);
  const int4 = quantizeInt4(w, n, k, { blockSize: int4BlockSize });
  const nb = Math.ceil(k / int4BlockSize);
  const wT = new Float32Array(k * n); // MatMul wants (K, N)
  for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) wT[c * n + r] = w[r * k + c]!;
  const absmax = dequantizeAbsmax(nf4);
  const variants = [
    {
      format: 'fp32 MatMul',
      bits: 32,
      node: { opType: 'MatMul', inputs: ['X', 'W'], output: 'Y' },
      inits: [{ name: 'W', dims: [k, n], data: wT }],
    },
    {
      format: 'NF4 MatMulBnb4',
      bits: nf4BitsPerParameter(nf4),
      node: {
        opType: 'MatMulBnb4',
        domain: 'com.microsoft',
        inputs: ['X', 'B', 'absmax'],
        output: 'Y',
        attrs: { K: k, N: n, block_size: 64, quant_type: 1 },
      },
      inits: [
        { name: 'B', dims: [nf4.packed.length], data: nf4.packed },
        { name: 'absmax', dims: [absmax.length], data: absmax },
      ],
    },
    ...[4, 0].map((level) => ({
      format: `int4 MatMulNBits b${int4BlockSize} acc${level}`,
      bits: int4BitsPerParameter(int4),
      node: {
        opType: 'MatMulNBits',
        domain: 'com.microsoft',
        inputs: ['X', 'B', 'scales', 'zero_points'],
        output: 'Y',
        attrs: { K: k, N: n, bits: 4, block_size: int4BlockSize, accuracy_level: level },
      },
      inits: [
        { name: 'B', dims: [n, nb, int4BlockSize / 2], data: int4.packed },
        { name: 'scales', dims: [int4.scales.length], data: int4.scales },
        { name: 'zero_points', dims: [int4.zeroPoints.length], data: int4.zeroPoints },
      ],
    })),
  ];
  const rows: FormatTiming[] = [];
  for (const v of variants) {
    const weightBytes = v.inits.reduce((a, c) => a + c.data.byteLength, 0);
    const ms: number[] = [];
    const best: number[] = [];
    for (const m of [1, 256]) {
      const s = await session(buildModel([v.node], v.inits, [m, k], [m, n]), threads);
      const x = new ort.Tensor('float32', filler(m * k, 1, 5), [m, k]);
      const t = await timeMs(() => s.run({ X: x }), m === 1 ? 15 : 5, 2);
      ms.push(t.median);
      best.push(t.min);
      await s.release();
    }
    rows.push({
      format: v.format,
      bitsPerParameter: v.bits,
      weightBytes,
      msM1: ms[0]!,
      msM256: ms[1]!,
      bestMsM1: best[0]!,
      bestMsM256: best[1]!,
      bytesPerSecondM1: weightBytes / (ms[0]! / 1e3),
      flopsM256: (2 * 256 * n * k) / (ms[1]! / 1e3),
    });
  }
  return rows;
}

/** measureBnb4AndNBits as table rows (bench/ceilings.ts and bench/quant.ts print the same table). */
export async function bnb4AndNBitsRows(threads: number): Promise<Record<string, string | number>[]> {
  return (await measureBnb4AndNBits({ threads })).map((r) => ({
    format: r.format,
    'bits/param': r.bitsPerParameter,
    'M=1 ms': r.msM1,
    'M=1 best ms': r.bestMsM1,
    'M=1 weight GB/s': r.bytesPerSecondM1 / 1e9,
    'M=256 ms': r.msM256,
    'M=256 best ms': r.bestMsM256,
    'M=256 GFLOP/s': r.flopsM256 / 1e9,
  }));
}

export function printTable(rows: Record<string, string | number>[]): void {
  const cols = Object.keys(rows[0] ?? {});
  const cell = (v: string | number) =>
    typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : v;
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]!).length)));
  console.log(cols.map((c, i) => c.padEnd(widths[i]!)).join('  '));
  for (const r of rows) console.log(cols.map((c, i) => cell(r[c]!).padStart(widths[i]!)).join('  '));
}

async function main(): Promise<void> {
  const threads = Number(process.env.THREADS ?? defaultThreads());
  console.log(
    `ceilings: onnxruntime-node ${ort.env.versions.common}, ${threads} intra-op threads, ${os.cpus()[0]?.model}`,
  );
  const gemv = await measureGemvBandwidth({ threads });
  const peak1 = await measureMatMulPeak({ threads: 1 });
  const peak = await measureMatMulPeak({ threads });
  const row = (ceiling: string, median: number, best: number, unit: string, ms: number) => ({
    ceiling,
    median,
    best,
    unit,
    'median ms': ms,
  });
  printTable([
    row(
      `GEMV fp32 weights (${gemv.bytes / 2 ** 20} MiB)`,
      gemv.bytesPerSecond / 1e9,
      gemv.bestBytesPerSecond / 1e9,
      'GB/s',
      gemv.ms,
    ),
    row('MatMul 1024³ fp32, 1 thread', peak1.flops / 1e9, peak1.bestFlops / 1e9, 'GFLOP/s', peak1.ms),
    row(`MatMul 1024³ fp32, ${threads} threads`, peak.flops / 1e9, peak.bestFlops / 1e9, 'GFLOP/s', peak.ms),
  ]);
  console.log('\n4096×4096 weight, M=1 (decode) and M=256 (prefill/training):');
  printTable(await bnb4AndNBitsRows(threads));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
