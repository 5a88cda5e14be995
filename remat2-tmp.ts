import { Graph } from './src/engine/ir/graph.js';
import { grad, pruneUnused } from './src/engine/autodiff/grad.js';
import { EngineSession } from './src/engine/onnx/session.js';
const L = 24, N = 4096, C = 512;
const g = new Graph();
const x = g.input('x', 'float32', ['N', C]);
const as = Array.from({ length: L }, (_, l) => g.input(`a${l}`, 'float32', [C, C]));
let h = x; const cps = [h];
for (let l = 0; l < L; l++) { const w = g.constant(new Float32Array(C * C).fill(0.001), [C, C]); h = g.add(h, g.tanh(g.mul(g.tanh(g.matMul(h, g.add(w, as[l]!))), g.scalar(1.1)))); cps.push(h); }
const loss = g.reduceSum(g.mul(h, h), [0, 1], false);
const das = grad(g, loss, as, { checkpoints: process.env.CK === '1' ? cps : [] });
g.output(loss, 'loss'); das.forEach((d, i) => g.output(d, `da${i}`)); pruneUnused(g);
const s = await EngineSession.create(g, { threads: 2 });
const r0 = process.memoryUsage.rss();
const feeds: Record<string, any> = { x: { dtype: 'float32', shape: [N, C], data: new Float32Array(N * C).fill(0.1) } };
as.forEach((_, l) => feeds[`a${l}`] = { dtype: 'float32', shape: [C, C], data: new Float32Array(C * C) });
for (let k = 0; k < 3; k++) await s.run(feeds);
console.log('CK', process.env.CK, 'nodes', g.nodes.length, 'rss delta MiB', ((process.memoryUsage.rss() - r0) / 2 ** 20).toFixed(0));
