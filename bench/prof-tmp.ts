import * as ort from 'onnxruntime-node';
import { readFileSync, readdirSync, unlinkSync } from 'node:fs';
import { buildLlamaGraph } from '../src/engine/nn/llama.js';
import { prepareWeights } from '../src/engine/nn/weights.js';
import { emitOnnx } from '../src/engine/onnx/emit.js';
import { benchCheckpoint } from './lib/bench-model.js';
const q = (process.argv[2] ?? 'none') as 'none';
const ck = benchCheckpoint('100m');
const { graph } = buildLlamaGraph(ck.config, prepareWeights(ck, { quantize: q }), { phase: 'decode', logits: 'last' });
const s = await ort.InferenceSession.create(emitOnnx(graph), { enableProfiling: true, profileFilePrefix: '/tmp/ortprof' });
const L = 12, CAP = 32;
const feeds: Record<string, ort.Tensor> = {
  input_ids: new ort.Tensor('int64', BigInt64Array.from([5n]), [1, 1]),
  position_ids: new ort.Tensor('int64', BigInt64Array.from([3n]), [1, 1]),
  attention_mask: new ort.Tensor('int64', new BigInt64Array(CAP + 1).fill(1n), [1, CAP + 1]),
};
for (let l = 0; l < L; l++) for (const w of ['key', 'value']) feeds[`past.${l}.${w}`] = new ort.Tensor('float32', new Float32Array(4 * CAP * 64), [1, 4, CAP, 64]);
for (let i = 0; i < 10; i++) await s.run(feeds);
s.endProfiling(); const { execSync } = await import('node:child_process'); const file = execSync('ls -t /tmp/ortprof*').toString().split('\n')[0]!.trim();
const ev = JSON.parse(readFileSync(file, 'utf8')) as { cat: string; name: string; dur: number; args?: { op_name?: string } }[];
const by = new Map<string, number>();
let total = 0;
for (const e of ev) if (e.cat === 'Node' && e.name.endsWith('_kernel_time')) { const k = e.args?.op_name ?? '?'; by.set(k, (by.get(k) ?? 0) + e.dur); total += e.dur; }
const runs = ev.filter((e) => e.name === 'model_run').map((e) => e.dur);
console.log('model_run us', runs.slice(-5));
console.log('kernel total per run us', total / 10);
console.log([...by].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([k, v]) => `${k}: ${(v / 10).toFixed(0)}us`).join('\n'));
unlinkSync(file);
