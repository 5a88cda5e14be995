import { Graph } from '../src/engine/ir/graph.js';
import { EngineSession } from '../src/engine/onnx/session.js';
import { filler } from './ceilings.js';
const C = 768, V = 32000, reps = 4; // 4 heads in a chain-ish (sum) to exceed cache
const threads = Number(process.env.THREADS ?? 1);
async function make(chunk: number) {
  const g = new Graph();
  const x = g.input('x', 'float32', [1, C]);
  let acc;
  for (let r = 0; r < reps; r++) {
    const parts = [];
    for (let o = 0; o < V; o += chunk) {
      const n = Math.min(chunk, V - o);
      parts.push(g.matMul(x, g.initializer(`w${r}_${o}`, { dtype: 'float32', shape: [C, n], data: filler(C * n, 0.02, r * 100 + o) })));
    }
    const y = parts.length === 1 ? parts[0]! : g.concat(parts, -1);
    acc = acc ? g.add(acc, y) : y;
  }
  g.output(acc!, 'y');
  return EngineSession.create(g, { threads });
}
const sessions = { full: await make(V), c8000: await make(8000), c4096: await make(4096) };
const feed = { x: { dtype: 'float32' as const, shape: [1, C], data: filler(C, 1, 3) } };
const times: Record<string, number[]> = { full: [], c8000: [], c4096: [] };
for (let round = 0; round < 8; round++) {
  for (const [k, s] of Object.entries(sessions)) {
    const t = performance.now(); await s.run(feed); times[k]!.push(performance.now() - t);
  }
}
for (const [k, v] of Object.entries(times)) { v.sort((a, b) => a - b); const ms = v[Math.floor(v.length / 2)]!; console.log(k, ms.toFixed(1), 'ms', ((reps * C * V * 4) / ms / 1e6).toFixed(1), 'GB/s'); }
