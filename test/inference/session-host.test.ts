// Sessions in a SessionHost worker: the call runs on another thread (the main thread keeps running timers and
// I/O while a long call is in flight — the same call on this thread holds it until done), a call that throws
// fails only itself, and close() ends the worker and fails what is left.
import { readFile } from 'node:fs/promises';
import { threadId } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { Graph } from '../../src/engine/ir/graph.js';
import { emitOnnx } from '../../src/engine/onnx/emit.js';
import { EngineSession } from '../../src/engine/onnx/session.js';
import { SessionHost } from '../../src/inference/session-host.js';
import { expectClose } from '../helpers/expect-close.js';

const N = 1024;
const CHAIN = 12;

/** y = x·W·W·…·W (CHAIN MatMuls of N×N: ≈ 26 GFLOP, hundreds of ms on a few cores). */
function longGraph(): Uint8Array {
  const g = new Graph('long');
  const w = new Float32Array(N * N);
  for (let i = 0; i < w.length; i++) w[i] = (((i * 2654435761) % 1000) / 1000 - 0.5) / Math.sqrt(N / 12);
  const W = g.initializer('w', { dtype: 'float32', shape: [N, N], data: w });
  let y = g.input('x', 'float32', [N, N]);
  for (let k = 0; k < CHAIN; k++) y = g.matMul(y, W);
  g.output(y, 'y');
  return emitOnnx(g);
}

const x = Float32Array.from({ length: N * N }, (_, i) => Math.sin(i));
const feeds = { x: { dtype: 'float32' as const, shape: [N, N], data: x } };
const hosts: SessionHost[] = [];
afterEach(async () => {
  for (const h of hosts.splice(0)) await h.close();
});

function track<T>(p: Promise<T>): { settled: () => boolean } {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  return { settled: () => done };
}

const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));

describe('SessionHost', () => {
  it('runs a session call on its worker thread while this thread keeps running timers and I/O', async () => {
    const bytes = longGraph();
    // Control: on this thread the native run holds the event loop, so the call has finished before any timer.
    const local = await EngineSession.create(bytes.slice());
    const localCall = local.run(feeds, ['y']);
    const localState = track(localCall);
    await tick(5);
    expect(localState.settled()).toBe(true);
    const expected = (await localCall).y!.data as Float32Array;
    await local.release();

    const host = new SessionHost();
    hosts.push(host);
    const remote = await host.create(bytes);
    expect(remote.threadId).toBe(host.worker.threadId);
    expect(remote.threadId).not.toBe(threadId);
    const call = remote.run(feeds, ['y']);
    const state = track(call);
    let timers = 0;
    for (let i = 0; i < 5; i++) {
      await tick();
      timers++;
    }
    const io = await readFile(new URL(import.meta.url));
    // Five timers and a file read happened while the call was still running on the other thread.
    expect({ timers, read: io.length > 0, settled: state.settled() }).toEqual({
      timers: 5,
      read: true,
      settled: false,
    });
    const out = await call;
    expectClose(out.y!.data as Float32Array, expected, { atol: 1e-4, rtol: 1e-4, label: 'worker vs main' });
  });

  it('fails only the call that throws, and close() fails what comes after', async () => {
    const g = new Graph('small');
    const a = g.input('a', 'float32', [2]);
    g.output(g.add(a, a), 'y');
    const host = new SessionHost();
    hosts.push(host);
    const s = await host.create(emitOnnx(g));
    await expect(
      s.run({ a: { dtype: 'float32', shape: [3], data: new Float32Array(3) } }, ['y']),
    ).rejects.toThrow(/./);
    const ok = await s.run({ a: { dtype: 'float32', shape: [2], data: Float32Array.of(1, 2) } }, ['y']);
    expect([...(ok.y!.data as Float32Array)]).toEqual([2, 4]);
    await host.close();
    expect(s.alive).toBe(false);
    await expect(
      s.run({ a: { dtype: 'float32', shape: [2], data: Float32Array.of(1, 2) } }, ['y']),
    ).rejects.toMatchObject({ name: 'SessionWorkerDiedError' });
  });
});
