/**
 * The sessions a continuously batched base model serves with, all over the serving graph
 * (src/engine/nn/llama-serve.ts) and the model's serving grid (its load options): 'base' (no LoRA inputs),
 * 'stacked' (side-loaded adapter columns + per-row slot) and merged sessions, one per adapter, whose weights
 * dequant(Q(W)) + s·B·A are merged and serialized in a worker thread (merge-worker.ts) so the event loop
 * never blocks on it. Which session a row uses is the gateway's policy (src/gateway/).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { LoraAdapter } from '../engine/formats/peft.js';
import { buildServeGraph } from '../engine/nn/llama-serve.js';
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
      this.baseWeights ??= prepareWeights(this.model.checkpoint, this.prepareOptions());
      const graph = buildServeGraph(this.model.config, this.baseWeights, {
        lora: kind === 'stacked' ? 'stacked' : 'none',
        name: `serve-${kind}`,
      });
      s = EngineSession.create(graph, this.model.options.session);
      // A failed build is not cached: the next request tries again.
      s.catch(() => this.sessions.delete(kind));
      this.sessions.set(kind, s);
    }
    return s;
  }

  /**
   * A session with `adapter` merged into the weights. The merge and the ONNX serialization run in a worker
   * thread reading the checkpoint from disk; an in-memory checkpoint (tests) is merged on this thread.
   */
  async mergedSession(adapter: LoraAdapter): Promise<EngineSession> {
    const dir = this.model.checkpoint.dir;
    const options = { ...this.prepareOptions(), mergeAdapter: adapter };
    let bytes: Uint8Array;
    if (existsSync(join(dir, 'config.json'))) bytes = await mergeInWorker(dir, options);
    else bytes = emitOnnx(buildServeGraph(this.model.config, prepareWeights(this.model.checkpoint, options)));
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

function mergeInWorker(dir: string, options: PrepareOptions): Promise<Uint8Array> {
  // From source (tests, tsx) the worker is a .ts file that needs tsx's loader; from dist/ it is plain JS.
  const fromSource = import.meta.url.endsWith('.ts');
  const url = new URL(`./merge-worker${fromSource ? '.ts' : '.js'}`, import.meta.url);
  const worker = fromSource
    ? new Worker(
        `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}); })`,
        { eval: true, workerData: { dir, options } },
      )
    : new Worker(url, { workerData: { dir, options } });
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
