/**
 * Starts a worker thread from a module beside the caller so that it runs the same way from the TypeScript
 * sources (tests, tsx: the thread registers tsx's loader first) and from the compiled dist/ (plain
 * JavaScript): `startModuleWorker(import.meta.url, 'merge-worker', { workerData })` runs ./merge-worker.ts
 * or ./merge-worker.js next to the calling file, whichever the caller itself was loaded as.
 */
import { Worker, type TransferListItem } from 'node:worker_threads';

export function startModuleWorker(
  callerUrl: string,
  name: string,
  options: { workerData?: unknown; transferList?: readonly TransferListItem[] } = {},
): Worker {
  const fromSource = callerUrl.endsWith('.ts');
  const url = new URL(`./${name}${fromSource ? '.ts' : '.js'}`, callerUrl);
  const init = { workerData: options.workerData, transferList: [...(options.transferList ?? [])] };
  return fromSource
    ? new Worker(
        `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}); })`,
        { eval: true, ...init },
      )
    : new Worker(url, init);
}
