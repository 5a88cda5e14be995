import { loadCheckpoint } from './src/engine/formats/checkpoint.js';
import { LINEAR_MODULES } from './src/engine/formats/hf-config.js';
import { prepareWeights } from './src/engine/nn/weights.js';
import { buildLlamaGraph } from './src/engine/nn/llama.js';
import { buildTrainGraph } from './src/training/train-graph.js';
const ckpt = await loadCheckpoint('/tmp/tr/model');
const w = prepareWeights(ckpt, { quantize: 'nf4' });
const fwdCount = buildLlamaGraph(ckpt.config, w, { phase: 'train', lora: { kind: 'train', rank: 8, scale: 2, modules: LINEAR_MODULES, adapterInput: (g, x) => g.mul(x, g.scalar(1)) } }).graph.nodes.length;
const tg = buildTrainGraph(ckpt.config, w, { rank: 8, scale: 2, modules: LINEAR_MODULES, dropout: 0.05 });
const g = tg.graph;
const ids = new Map(g.nodes.map((n, i) => [n, i]));
// forward nodes = ones with id below the loss construction: approximate with node.id order
const fwdIds = new Set(g.nodes.filter((n) => !n.outputs.some((o) => o.name.startsWith('grad'))).slice(0, 0).map((n) => n.id));
void fwdIds; void ids;
const cut = g.nodes.find((n) => n.kind === 'softmaxCrossEntropyLoss')!.id;
const counts = new Map<string, number>();
for (const n of g.nodes) {
  if (n.id > cut) continue;
  for (const o of n.outputs) {
    const readers = g.nodes.filter((m) => m.id > cut + 3 && m.inputs.includes(o));
    if (readers.length > 0) { const k = `${n.kind}[${o.shape.join(',')}] <- ${readers.map((r) => r.kind).join('/')}`; counts.set(k, (counts.get(k) ?? 0) + 1); }
  }
}
console.log(fwdCount, [...counts].sort((a, b) => b[1] - a[1]).slice(0, 30));
