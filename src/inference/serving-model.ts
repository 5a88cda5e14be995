/**
 * The sessions a continuously batched base model serves with, all over the serving graph
 * (src/engine/nn/llama-serve.ts) and the model's serving grid (its load options): 'base' (no LoRA inputs),
 * 'stacked' (side-loaded adapter columns + per-row slot) and merged sessions, one per adapter, whose weights
 * dequant(Q(W)) + s·B·A. Every one is prepared and serialized in a worker thread (merge-worker.ts), so a model
 * load or a merge never blocks the event loop, and then created and run in the model's session worker
 * (session-host.ts: one worker per served model, holding its sessions and its KV pool's data), so a step
 * never blocks it either. A worker that dies is replaced at the next call (sessions rebuilt; its deaths are
 * counted for the scheduler, which resumes the rows whose cache died with it). Which session a
 * row uses is the gateway's policy (src/gateway/).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { LoraAdapter } from '../engine/formats/peft.js';
import { buildServeGraph, type ServeGraphOptions } from '../engine/nn/llama-serve.js';
import { prepareWeights, type LlamaWeights, type PrepareOptions } from '../engine/nn/weights.js';
import { EngineSession } from '../engine/onnx/session.js';
import { emitOnnx } from '../engine/onnx/emit.js';
import type { StepSession } from './batch-step.js';
import type { LoadedModel } from './model.js';
import { SessionHost, type SessionWorkerDiedError } from './session-host.js';
import { startModuleWorker } from '../shared/worker-module.js';

export type ServeSessionKind = 'base' | 'stacked';

/** A serving session: an EngineSession on this thread or a RemoteSession in the model's session worker. */
export interface ServeSession extends StepSession {
  release(): Promise<void>;
}

export interface ServingModelOptions {
  /**
   * Where sessions are created and run: 'worker' (default; the model's session worker) or 'main' (this
   * thread: each step blocks the event loop — kept for comparison, bench/event-loop.ts).
   */
  sessionThread?: 'worker' | 'main';
  /** Called with each session worker as it starts (tests; a hook for metrics). */
  onSessionWorker?: (host: SessionHost) => void;
}

export class ServingModel {
  private baseWeights: LlamaWeights | undefined;
  private readonly sessions = new Map<ServeSessionKind, Promise<ServeSession>>();
  private current: SessionHost | null = null;
  private closed = false;
  /** Sessions run in a worker, and a scheduler's KV pool keeps its data there (KvPool `remote`). */
  readonly inWorker: boolean;
  /** Session workers started so far. */
  workerStarts = 0;
  /** Session workers that died on their own (crash, kill, out of memory; not `close()`), and the last's error. */
  workerDeaths = 0;
  lastWorkerDeath: SessionWorkerDiedError | null = null;

  constructor(
    readonly model: LoadedModel,
    private readonly options: ServingModelOptions = {},
  ) {
    this.inWorker = (options.sessionThread ?? 'worker') === 'worker';
  }

  /** The live session worker, if one is running. */
  get host(): SessionHost | null {
    return this.current;
  }

  private sessionHost(): SessionHost {
    if (this.closed) throw new Error('the serving model is closed');
    if (this.current?.alive) return this.current;
    const host = new SessionHost();
    this.workerStarts++;
    // Its sessions die with it: the next request builds them again in a fresh worker. The scheduler reads
    // `workerDeaths` to resume the rows whose KV cache died with it (src/gateway/scheduler.ts).
    host.onExit(() => {
      if (host.crash && !this.closed) {
        this.workerDeaths++;
        this.lastWorkerDeath = host.crash;
      }
      if (this.current !== host) return;
      this.current = null;
      this.sessions.clear();
    });
    this.current = host;
    this.options.onSessionWorker?.(host);
    return host;
  }

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

  session(kind: ServeSessionKind): Promise<ServeSession> {
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

  mergedSession(adapter: LoraAdapter): Promise<ServeSession> {
    return this.build({ ...this.prepareOptions(), mergeAdapter: adapter }, { name: 'serve-merged' });
  }

  /**
   * Weights → graph → ONNX bytes in a worker thread reading the checkpoint from disk (seconds of work for a real
   * model); an in-memory checkpoint (tests) is built on this thread.
   */
  private async build(options: PrepareOptions, graph: ServeGraphOptions): Promise<ServeSession> {
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
    if (!this.inWorker) return EngineSession.create(bytes, this.model.options.session);
    return this.sessionHost().create(bytes, this.model.options.session);
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all)
      await s.then(
        (x) => x.release(),
        () => undefined,
      );
    await this.current?.close();
    this.current = null;
  }
}

function buildInWorker(dir: string, options: PrepareOptions, graph: ServeGraphOptions): Promise<Uint8Array> {
  const worker = startModuleWorker(import.meta.url, 'merge-worker', { workerData: { dir, options, graph } });
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
