/**
 * Starts one of this folder's worker-thread modules (merge-worker, session-host-worker) so that it runs the
 * same way from the TypeScript sources (tests, tsx: the worker registers tsx's loader first) and from the
 * compiled dist/ (plain JavaScript). The workers themselves are merge-worker.ts and session-host-worker.ts.
 */
import { Worker } from 'node:worker_threads';

export function startWorker(name: 'merge-worker' | 'session-host-worker', workerData?: unknown): Worker {
  const fromSource = import.meta.url.endsWith('.ts');
  const url = new URL(`./${name}${fromSource ? '.ts' : '.js'}`, import.meta.url);
  return fromSource
    ? new Worker(
        `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}); })`,
        { eval: true, workerData },
      )
    : new Worker(url, { workerData });
}
