/**
 * Serving sessions off the event loop. onnxruntime-node's `run` resolves a Promise but computes synchronously
 * on the calling thread, so a step on the main thread stalls every request, socket and probe for its length.
 * A `SessionHost` is one worker thread (session-host-worker.ts) that creates and runs a model's sessions; a
 * `RemoteSession` is its handle here, with the surface batch-step.ts uses (`inputNames`, `run`, `release`)
 * plus `runStep`: a whole batch step run in the worker over its copy of a remote KV pool and a replica of the
 * LoRA column stacks, so a step sends token ids and receives logits — the cache and weights never cross.
 * A worker that dies fails its calls in flight with `SessionWorkerDiedError` and takes its sessions and cache
 * with it; the owner (serving-model.ts) starts a fresh one for the next call.
 */
import type { Worker } from 'node:worker_threads';
import type { ModelConfig } from '../engine/formats/hf-config.js';
import type { HostTensor } from '../engine/ir/types.js';
import type { SessionConfig } from '../engine/onnx/session.js';
import type { RemoteStep, StepRow } from './batch-step.js';
import type { KvPool, KvPoolOp, KvPoolState } from './kv-pool.js';
import { LoraColumns, type LoraSync } from './lora-columns.js';
import { startModuleWorker } from '../shared/worker-module.js';

/** The session worker is gone (crashed, killed or closed): its sessions and KV cache with it. */
export class SessionWorkerDiedError extends Error {
  override name = 'SessionWorkerDiedError';
}

/** A pool the worker has no copy of yet (its bookkeeping and the model's config), or the journal since. */
export type PoolSync =
  { id: number; config: ModelConfig; state: KvPoolState } | { id: number; ops: KvPoolOp[] };

export type HostRequest =
  | { t: 'create'; id: number; sid: number; bytes: Uint8Array; config: SessionConfig }
  | { t: 'run'; id: number; sid: number; feeds: Record<string, HostTensor>; fetches: string[] }
  | {
      t: 'step';
      id: number;
      sid: number;
      pool: PoolSync;
      lora?: { id: number; sync: LoraSync };
      start: number;
      rows: StepRow[];
    }
  | { t: 'release'; id: number; sid: number }
  | { t: 'forget'; id: number; pool?: number; columns?: number };

export type HostReply =
  { id: number; ok: unknown } | { id: number; error: { name: string; message: string; code?: string } };

export interface CreatedSession {
  inputNames: string[];
  outputNames: string[];
  threadId: number;
}

/** A typed array's own buffer when it spans it whole, else a compact copy (safe to transfer either way). */
function owned<T extends HostTensor['data']>(x: T): T {
  return x.byteOffset === 0 && x.byteLength === x.buffer.byteLength ? x : (x.slice() as T);
}

export class SessionHost {
  /** The worker thread (its `threadId`, `resourceUsage()`); `close()` ends it. */
  readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: unknown) => void }
  >();
  private readonly pools = new WeakMap<KvPool, number>();
  private readonly columns = new WeakMap<LoraColumns, number>();
  private readonly exitListeners: (() => void)[] = [];
  private death: SessionWorkerDiedError | null = null;
  private closing = false;
  private lastError: Error | undefined;
  /** A pool or column stack collected here is dropped in the worker too. */
  private readonly forget = new FinalizationRegistry<{ pool?: number; columns?: number }>((what) => {
    if (this.death === null) this.worker.postMessage({ t: 'forget', id: 0, ...what } satisfies HostRequest);
  });

  constructor() {
    this.worker = startModuleWorker(import.meta.url, 'session-host-worker');
    // Idle, the worker does not keep the process alive; a call in flight does (see call()).
    this.worker.unref();
    this.worker.on('error', (err) => (this.lastError = err));
    this.worker.on('message', (m: HostReply) => this.settle(m));
    this.worker.on('exit', (code) => this.died(code));
  }

  /** False once the worker has exited or `close()` was called. */
  get alive(): boolean {
    return this.death === null && !this.closing;
  }

  /** Why the worker died when it exited on its own (crash, kill, out of memory); null while alive or closed. */
  get crash(): SessionWorkerDiedError | null {
    return this.closing ? null : this.death;
  }

  /** Runs `fn` once when the worker exits (crash, kill or close). */
  onExit(fn: () => void): void {
    if (this.death) fn();
    else this.exitListeners.push(fn);
  }

  /** Creates a session in the worker from ONNX bytes (transferred: `bytes`' buffer is detached here). */
  async create(bytes: Uint8Array, config: SessionConfig = {}): Promise<RemoteSession> {
    const sid = this.nextId++;
    const data = owned(bytes);
    const made = (await this.call({ t: 'create', id: 0, sid, bytes: data, config }, [
      data.buffer as ArrayBuffer,
    ])) as CreatedSession;
    return new RemoteSession(this, sid, made);
  }

  /** Ends the worker; calls in flight fail with SessionWorkerDiedError. */
  async close(): Promise<void> {
    if (this.closing || this.death) return;
    this.closing = true;
    await this.worker.terminate();
  }

  run(
    sid: number,
    feeds: Readonly<Record<string, HostTensor>>,
    fetches: readonly string[],
  ): Promise<Record<string, HostTensor>> {
    const sent: Record<string, HostTensor> = {};
    const transfer: ArrayBuffer[] = [];
    for (const [k, t] of Object.entries(feeds)) {
      // A view is cloned with its whole buffer (a KV pool's whole layer): send a compact copy instead.
      const data = owned(t.data);
      if (data !== t.data) transfer.push(data.buffer as ArrayBuffer);
      sent[k] = { dtype: t.dtype, shape: [...t.shape], data };
    }
    return this.call({ t: 'run', id: 0, sid, feeds: sent, fetches: [...fetches] }, transfer) as Promise<
      Record<string, HostTensor>
    >;
  }

  async step(sid: number, call: RemoteStep): Promise<Float32Array> {
    if (this.death) throw this.death;
    const transfer: ArrayBuffer[] = [];
    const pool = this.poolSync(call.pool, call.config);
    let lora: { id: number; sync: LoraSync } | undefined;
    if (call.columns) {
      let id = this.columns.get(call.columns);
      const full = id === undefined;
      if (id === undefined) {
        id = this.nextId++;
        this.columns.set(call.columns, id);
        this.forget.register(call.columns, { columns: id });
      }
      const sync = call.columns.takeSync(full);
      transfer.push(...LoraColumns.transferables(sync));
      lora = { id, sync };
    }
    const rows = call.rows.map((r) => ({ ids: [...r.ids], loraSlot: r.loraSlot ?? 0 }));
    return (await this.call(
      { t: 'step', id: 0, sid, pool, lora, start: call.start, rows },
      transfer,
    )) as Float32Array;
  }

  async release(sid: number): Promise<void> {
    if (this.alive) await this.call({ t: 'release', id: 0, sid }, []);
  }

  private poolSync(pool: KvPool, config: ModelConfig): PoolSync {
    const id = this.pools.get(pool);
    if (id !== undefined) return { id, ops: pool.takeJournal() };
    // A pool new to this worker: rows that already hold tokens had them in a worker that is gone.
    const lost = pool.holding;
    if (lost > 0)
      throw new SessionWorkerDiedError(
        `the KV cache of ${lost} running row(s) was lost with an earlier session worker`,
      );
    const fresh = this.nextId++;
    this.pools.set(pool, fresh);
    this.forget.register(pool, { pool: fresh });
    return { id: fresh, config, state: pool.state() };
  }

  private call(msg: HostRequest, transfer: ArrayBuffer[]): Promise<unknown> {
    if (this.death) return Promise.reject(this.death);
    if (this.closing) return Promise.reject(new SessionWorkerDiedError('the session host is closed'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { resolve, reject });
      try {
        this.worker.postMessage({ ...msg, id }, transfer);
      } catch (err) {
        this.pending.delete(id);
        if (this.pending.size === 0) this.worker.unref();
        reject(err);
      }
    });
  }

  private settle(m: HostReply): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (this.pending.size === 0) this.worker.unref();
    if ('error' in m) p.reject(Object.assign(new Error(m.error.message), m.error));
    else p.resolve(m.ok);
  }

  private died(code: number): void {
    const why = this.closing
      ? 'the session host was closed'
      : `the session worker died (exit code ${code}${this.lastError ? `: ${this.lastError.message}` : ''})`;
    this.death = new SessionWorkerDiedError(`${why}; its sessions and KV cache are gone`, {
      cause: this.lastError,
    });
    for (const p of this.pending.values()) p.reject(this.death);
    this.pending.clear();
    for (const fn of this.exitListeners.splice(0)) fn();
  }
}

/** A session living in a SessionHost's worker. */
export class RemoteSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** The thread that runs it (never this one). */
  readonly threadId: number;
  private released = false;

  constructor(
    readonly host: SessionHost,
    private readonly sid: number,
    made: CreatedSession,
  ) {
    this.inputNames = made.inputNames;
    this.outputNames = made.outputNames;
    this.threadId = made.threadId;
  }

  /** False once released or once its worker is gone. */
  get alive(): boolean {
    return !this.released && this.host.alive;
  }

  /**
   * One graph call with feeds copied to the worker (EngineSession.run's surface). Pre-allocated outputs are
   * filled from the worker's results. The gateway's steps use `runStep`, which copies no cache.
   */
  async run(
    feeds: Readonly<Record<string, HostTensor>>,
    outputs: readonly string[] | Readonly<Record<string, HostTensor>>,
  ): Promise<Record<string, HostTensor>> {
    const names = Array.isArray(outputs) ? (outputs as readonly string[]) : Object.keys(outputs);
    const out = await this.host.run(this.sid, feeds, names);
    if (!Array.isArray(outputs))
      for (const [k, t] of Object.entries(outputs as Record<string, HostTensor>)) {
        t.data.set(out[k]!.data as never);
        out[k] = t;
      }
    return out;
  }

  /** A batch step run whole in the worker over its copy of `call.pool` (a remote pool). */
  runStep(call: RemoteStep): Promise<Float32Array> {
    return this.host.step(this.sid, call);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.host.release(this.sid);
  }
}
