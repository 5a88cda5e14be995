/**
 * Runs a derived-version or export task (./derive-compute.ts) in a worker thread (./derive-worker.ts): the
 * float64 SVDs, merges and tensor encoding of a real model take seconds, and on embedded defaults jobs run
 * inside the API process, whose event loop must keep answering. Progress messages are relayed; an abort
 * terminates the thread at once (cancel, shutdown); a BAD_USER_INPUT failure in the thread comes back as a
 * BadInputError, anything else as an Error. Started with src/shared/worker-module.ts (sources or dist/).
 */
import { BadInputError } from '../shared/errors.js';
import { startModuleWorker } from '../shared/worker-module.js';
import type { ComputeOutput, ComputeTask, ProgressFn } from './derive-compute.js';

type Message =
  | { type: 'progress'; done: number; total: number; what: string }
  | { type: 'result'; result: ComputeOutput }
  | {
      type: 'error';
      message: string;
      code: string | null;
      name: string | null;
      details: Record<string, unknown> | null;
    };

export function runInWorkerThread(
  task: ComputeTask,
  opts: {
    signal?: AbortSignal;
    onProgress?: ProgressFn;
    /** Buffers in `task` whose memory moves to the thread (each must own its whole ArrayBuffer). */
    transfer?: Uint8Array[];
  } = {},
): Promise<ComputeOutput> {
  const { signal, onProgress } = opts;
  if (signal?.aborted) return Promise.reject(signal.reason as Error);
  const worker = startModuleWorker(import.meta.url, 'derive-worker', {
    workerData: task,
    transferList: (opts.transfer ?? []).map((b) => b.buffer as ArrayBuffer),
  });
  return new Promise<ComputeOutput>((resolve, reject) => {
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      fn();
      void worker.terminate();
    };
    const onAbort = () => settle(() => reject(signal!.reason as Error));
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.on('message', (m: Message) => {
      if (m.type === 'progress') {
        if (!settled) onProgress?.(m.done, m.total, m.what);
      } else if (m.type === 'result') settle(() => resolve(m.result));
      else
        settle(() =>
          reject(
            m.code === 'BAD_USER_INPUT'
              ? new BadInputError(m.message, m.details ? { details: m.details } : undefined)
              : Object.assign(new Error(m.message), m.name ? { name: m.name } : {}),
          ),
        );
    });
    worker.once('error', (err) => settle(() => reject(err)));
    worker.once('exit', (code) =>
      settle(() => reject(new Error(`derive worker exited with code ${code} before answering`))),
    );
  });
}
