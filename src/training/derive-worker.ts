/**
 * Worker thread of derive-thread.ts: runs one derived-version or export task (./derive-compute.ts) off the
 * API's event loop, posting `{ type: 'progress' }` messages as modules / tensors finish and one
 * `{ type: 'result' }` (the weights' buffer transferred, not copied) or `{ type: 'error' }` at the end.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { runComputeTask, type ComputeTask } from './derive-compute.js';

const task = workerData as ComputeTask;
try {
  const result = await runComputeTask(task, (done, total, what) =>
    parentPort!.postMessage({ type: 'progress', done, total, what }),
  );
  if (result.kind === 'derive') {
    const w = result.weights;
    const owned = w.byteOffset === 0 && w.byteLength === w.buffer.byteLength ? w : w.slice();
    parentPort!.postMessage({ type: 'result', result: { ...result, weights: owned } }, [
      owned.buffer as ArrayBuffer,
    ]);
  } else {
    parentPort!.postMessage({ type: 'result', result });
  }
} catch (err) {
  const e = err as { message?: unknown; code?: unknown; name?: unknown; details?: unknown };
  parentPort!.postMessage({
    type: 'error',
    message: typeof e?.message === 'string' ? e.message : String(err),
    code: typeof e?.code === 'string' ? e.code : null,
    name: typeof e?.name === 'string' ? e.name : null,
    details: e?.details ?? null,
  });
}
