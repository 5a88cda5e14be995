import { Graph } from './src/engine/ir/graph.js';
import { grad, pruneUnused } from './src/engine/autodiff/grad.js';
import { EngineSession } from './src/engine/onnx/session.js';
const L = 24, N = 4096, C = 512;
const g = new Graph();
const x = g.input('x', 'float32', ['N', C]);
const a = g.input('a', 'float32', [C, C]);
let h = x; const cps = [h];
for (let l = 0; l < L; l++) { const w = g.constant(new Float32Array(C * C).fill(0.001), [C, C]); h = g.add(h, g.tanh(g.mul(g.tanh(g.matMul(h, g.add(w, a))), g.scalar(1.1)))); cps.push(h); }
const loss = g.reduceSum(g.mul(h, h), [0, 1], false);
const [da] = grad(g, loss, [a], { checkpoints: process.env.CK === '1' ? cps : [] });
g.output(loss, 'loss'); g.output(da!, 'da'); pruneUnused(g);
const s = await EngineSession.create(g, { threads: 2 });
const r0 = process.memoryUsage.rss();
for (let k = 0; k < 3; k++) await s.run({ x: { dtype: 'float32', shape: [N, C], data: new Float32Array(N * C).fill(0.1) }, a: { dtype: 'float32', shape: [C, C], data: new Float32Array(C * C) } });
console.log('CK', process.env.CK, 'nodes', g.nodes.length, 'rss delta MiB', ((process.memoryUsage.rss() - r0) / 2 ** 20).toFixed(0), 'act/layer MiB', (N * C * 4 / 2 ** 20).toFixed(0));
