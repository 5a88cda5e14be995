import * as ort from 'onnxruntime-node';
import { mkdtemp, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUILTIN_CONFIG, builtinTokenizerConfig, builtinTokenizerJson } from './src/engine/builtin-model.js';
import { writeCheckpoint, loadCheckpoint, type Tensor32 } from './src/engine/formats/checkpoint.js';
import { expectedTensors, parseModelConfig, LINEAR_MODULES } from './src/engine/formats/hf-config.js';
import { prepareWeights } from './src/engine/nn/weights.js';
import { buildTrainGraph } from './src/training/train-graph.js';
import { emitOnnx } from './src/engine/onnx/emit.js';
const rss = (l: string) => console.log(l, (process.memoryUsage.rss() / 2 ** 20).toFixed(0), 'MiB');
const RAW = { ...BUILTIN_CONFIG, hidden_size: 768, intermediate_size: 2048, num_hidden_layers: 8, num_attention_heads: 12, num_key_value_heads: 4, head_dim: 64, max_position_embeddings: 1024 };
const q = (process.argv[2] ?? 'nf4') as 'nf4' | 'none';
const dir = '/tmp/tr/bigmodel';
try { await readFile(join(dir, 'config.json')); } catch {
  const config = parseModelConfig(RAW);
  const tensors = new Map<string, Tensor32>();
  for (const { name, shape } of expectedTensors(config)) { const n = shape.reduce((a, b) => a * b, 1); const d = new Float32Array(n); for (let i = 0; i < n; i++) d[i] = (Math.random() - 0.5) * 0.07; tensors.set(name, { shape, data: name.endsWith('norm.weight') ? d.fill(1) : d }); }
  await writeCheckpoint(dir, RAW, tensors);
}
rss('start');
const ckpt = await loadCheckpoint(dir);
rss('loaded');
const w = prepareWeights(ckpt, { quantize: q });
rss('prepared');
const tg = buildTrainGraph(ckpt.config, w, { rank: 8, scale: 2, modules: LINEAR_MODULES, dropout: Number(process.env.DROP ?? 0.05), gradientCheckpointing: process.env.CK !== '0' });
rss('graph');
const bytes = emitOnnx(tg.graph);
rss(`emitted ${(bytes.length / 2 ** 20).toFixed(0)} MiB`);
const s = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: (process.env.OPT ?? 'all') as 'all', enableCpuMemArena: process.env.ARENA !== '0', enableProfiling: process.env.PROF === '1', profileFilePrefix: '/tmp/tr/prof' });
rss('session');
const B = Number(process.env.B ?? 2), T = 256;
const feeds: Record<string, ort.Tensor> = {};
const i64 = (f: (i: number) => number) => new ort.Tensor('int64', BigInt64Array.from({ length: B * T }, (_, i) => BigInt(f(i))), [B, T]);
feeds.input_ids = i64((i) => 3 + (i % 200)); feeds.targets = i64((i) => 3 + ((i + 1) % 200)); feeds.position_ids = i64((i) => i % T); feeds.attention_mask = i64(() => 1);
feeds.loss_weights = new ort.Tensor('float32', new Float32Array(B * T).fill(1 / (B * T)), [B, T]);
for (const p of tg.params) { feeds[p.aInput] = new ort.Tensor('float32', new Float32Array(8 * p.inFeatures).fill(0.01), [8, p.inFeatures]); feeds[p.bInput] = new ort.Tensor('float32', new Float32Array(8 * p.outFeatures).fill(0.01), [p.outFeatures, 8]); }
for (const d of tg.dropoutInputs) feeds[d.name] = new ort.Tensor('bool', new Uint8Array(B * T * d.width).fill(1), [B, T, d.width]);
const outs = ['loss', ...tg.params.flatMap((p) => [p.aGrad, p.bGrad])];
let peak = 0; const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage.rss()); }, 2);
for (let k = 0; k < 3; k++) { const t0 = performance.now(); await s.run(feeds, outs); rss(`step ${k} ${(performance.now() - t0).toFixed(0)} ms peak ${(peak / 2 ** 20).toFixed(0)}`); }
clearInterval(timer);
if (process.env.PROF === '1') { s.endProfiling(); await s.release(); }
