/**
 * The sessions a continuously batched base model serves with, all over the serving graph
 * (src/engine/nn/llama-serve.ts) and the model's serving grid (its load options): 'base' (no LoRA inputs),
 * 'stacked' (side-loaded adapter columns + per-row slot) and merged sessions, one per adapter, whose weights
 * dequant(Q(W)) + s·B·A. Every one is prepared and serialized in a worker thread (merge-worker.ts), so a model
 * load or a merge never blocks the event loop. Which session a row uses is the gateway's policy (src/gateway/).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { LoraAdapter } from '../engine/formats/peft.js';
import { buildServeGraph, type ServeGraphOptions } from '../engine/nn/llama-serve.js';
import { prepareWeights, type LlamaWeights, type PrepareOptions } from '../engine/nn/weights.js';
import { EngineSession } from '../engine/onnx/session.js';
import { emitOnnx } from '../engine/onnx/emit.js';
import type { LoadedModel } from './model.js';

export type ServeSessionKind = 'base' | 'stacked';

export class ServingModel {
  private baseWeights: LlamaWeights | undefined;
  private readonly sessions = new Map<ServeSessionKind, Promise<EngineSession>>();

  constructor(readonly model: LoadedModel) {}

  private prepareOptions(): PrepareOptions {
    const o = this.model.options;
    return {
      quantize: o.quantize,
      nf4Execution: o.nf4Execution,
      mergeOrder: o.mergeOrder ?? 'quantize-then-merge',
      int4BlockSize: o.int4BlockSize,
      int4AccuracyLevel: o.int4AccuracyLevel,
    };
  }

  session(kind: ServeSessionKind): Promise<EngineSession> {
    let s = this.sessions.get(kind);
    if (!s) {
      s = this.build(this.prepareOptions(), {
        lora: kind === 'stacked' ? 'stacked' : 'none',
        name: `serve-${kind}`,
      });
      // A failed build is not cached: the next request tries again.
      s.catch(() => this.sessions.delete(kind));
      this.sessions.set(kind, s);
    }
    return s;
  }

  mergedSession(adapter: LoraAdapter): Promise<EngineSession> {
    return this.build({ ...this.prepareOptions(), mergeAdapter: adapter }, { name: 'serve-merged' });
  }

  /**
   * Weights → graph → ONNX bytes in a worker thread reading the checkpoint from disk (seconds of work for a real
   * model); an in-memory checkpoint (tests) is built on this thread.
   */
  private async build(options: PrepareOptions, graph: ServeGraphOptions): Promise<EngineSession> {
    const dir = this.model.checkpoint.dir;
    let bytes: Uint8Array;
    if (existsSync(join(dir, 'config.json'))) bytes = await buildInWorker(dir, options, graph);
    else {
      const weights =
        options.mergeAdapter === undefined
          ? (this.baseWeights ??= prepareWeights(this.model.checkpoint, options))
          : prepareWeights(this.model.checkpoint, options);
      bytes = emitOnnx(buildServeGraph(this.model.config, weights, graph));
    }
    return EngineSession.create(bytes, this.model.options.session);
  }

  async close(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all)
      await s.then(
        (x) => x.release(),
        () => undefined,
      );
  }
}

function buildInWorker(dir: string, options: PrepareOptions, graph: ServeGraphOptions): Promise<Uint8Array> {
  // From source (tests, tsx) the worker is a .ts file that needs tsx's loader; from dist/ it is plain JS.
  const fromSource = import.meta.url.endsWith('.ts');
  const url = new URL(`./merge-worker${fromSource ? '.ts' : '.js'}`, import.meta.url);
  const worker = fromSource
    ? new Worker(
        `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}); })`,
        { eval: true, workerData: { dir, options, graph } },
      )
    : new Worker(url, { workerData: { dir, options, graph } });
  return new Promise<Uint8Array>((resolve, reject) => {
    worker.once('message', (m: Uint8Array | { error: string }) => {
      if (m instanceof Uint8Array) resolve(m);
      else reject(new Error(`merge worker: ${m.error}`));
      void worker.terminate();
    });
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`merge worker exited with code ${code}`));
    });
  });
}
