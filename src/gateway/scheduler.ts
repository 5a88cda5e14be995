/**
 * The continuous-batching loop of one loaded base model (vLLM's scheduler as the model). It alone owns the
 * running batch: each step it drops rows whose client left or whose deadline passed, admits waiting requests
 * by a pure plan (admission.ts: free KV slots, LoRA slots, per-tenant round-robin), feeds new prompts in
 * chunks of at most `prefillTokens` tokens, then runs one decode step for every running row — grouped by the
 * session its rows need (base, stacked side-load, or one adapter's merged weights) with each group's KV
 * slots made contiguous first. A row that finishes frees its slots at once. A failing call fails only its
 * own rows; when the model's session worker dies, the running rows (whose KV cache died with it) are resumed
 * on a fresh worker by prefilling their prompt and generated tokens again, within worker-restarts.ts's bounds.
 * Not policy (who may, quotas: src/services/generation.ts); not the graph call (batch-step.ts).
 */
import type { Logger } from 'pino';
import { runBatchStep, type StepRow } from '../inference/batch-step.js';
import { KvPool } from '../inference/kv-pool.js';
import { LoraColumns } from '../inference/lora-columns.js';
import { SessionWorkerDiedError } from '../inference/session-host.js';
import type { ServeSession, ServingModel } from '../inference/serving-model.js';
import { DeltagateError, RateLimitedError } from '../shared/errors.js';
import { planAdmission, type WaitingRequest } from './admission.js';
import { AutoMergePolicy, type PolicyEvent } from './auto-policy.js';
import { MergedSessions } from './merged-sessions.js';
import { Sequence, type SequenceSpec } from './sequence.js';
import { SlotTable } from './slot-table.js';
import {
  SessionWorkerUnavailableError,
  SessionWorkerDeathsError,
  WorkerRestarts,
  type WorkerRestartOptions,
} from './worker-restarts.js';

export interface SchedulerOptions extends WorkerRestartOptions {
  /** Bytes of KV cache for the pool (rows × layers × 2 × KVH × capacity × D × 4). */
  kvCacheBytes: number;
  /** Most rows in the running batch. */
  maxBatch: number;
  /** Tokens per row slab (≤ the model's context). */
  maxSequence: number;
  /** Prompt tokens fed per step across new rows (chunked prefill). */
  prefillTokens: number;
  /** Side-load slots (distinct adapters in one batch). */
  adapterSlots: number;
  maxRunningPerCustomer: number;
  maxQueuedPerCustomer: number;
  maxQueued: number;
  /** AUTO: consecutive single-adapter steps before serving that adapter merged. */
  autoMergeAfterSteps: number;
  /** Merged sessions kept (each holds a full copy of the weights). */
  maxMergedSessions: number;
}

export interface SchedulerStats {
  running: number;
  waiting: number;
  steps: number;
  decodeTokens: number;
  prefillTokens: number;
  /** Session workers of this model that died, rows resumed after one, and the tokens they prefilled again. */
  workerDeaths: number;
  resumedRows: number;
  recomputedTokens: number;
  kvSlots: number;
  kvSlotsFree: number;
  kvBytes: number;
  mergedFor: string | null;
  switches: number;
  adapterSlots: ReturnType<SlotTable['snapshot']>;
}

interface Call {
  key: string;
  rows: Sequence[];
  /** Tokens each row feeds. */
  ids: number[][];
  prefill: boolean;
}

const SHARED = 'shared';

export class ModelScheduler {
  readonly pool: KvPool;
  readonly columns: LoraColumns;
  readonly slots: SlotTable;
  readonly policy: AutoMergePolicy;
  private readonly restarts: WorkerRestarts;
  /** Deaths of the model's session workers already handled (ServingModel counts them as they happen). */
  private deathsSeen: number;
  private readonly waiting = new Map<string, Sequence[]>();
  private readonly running: Sequence[] = [];
  private readonly merged: MergedSessions;
  /** Merged builds that failed since the last step (their running MERGED rows fail in the loop). */
  private readonly mergedFailures = new Map<string, unknown>();
  private lastServed: string | null = null;
  private looping = false;
  private idle: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly counters = {
    steps: 0,
    decodeTokens: 0,
    prefillTokens: 0,
    switches: 0,
    workerDeaths: 0,
    resumedRows: 0,
    recomputedTokens: 0,
  };
  private stepWaiters: { at: number; resolve: () => void }[] = [];

  constructor(
    readonly model: ServingModel,
    readonly options: SchedulerOptions,
    private readonly logger: Logger,
  ) {
    const config = model.model.config;
    const capacity = Math.min(options.maxSequence, config.maxPositionEmbeddings);
    // With sessions in a worker, the pool's data lives there too (no per-step copies): only bookkeeping here.
    this.pool = KvPool.forBudget(config, capacity, options.kvCacheBytes, options.maxBatch, {
      remote: model.inWorker,
    });
    this.columns = new LoraColumns(config);
    this.slots = new SlotTable(this.columns, options.adapterSlots);
    this.policy = new AutoMergePolicy(options.autoMergeAfterSteps);
    this.restarts = new WorkerRestarts(options);
    this.merged = new MergedSessions({
      model,
      max: options.maxMergedSessions,
      logger,
      inUse: () => {
        const used = new Set<string>();
        for (const s of this.running) if (this.keyOf(s) !== SHARED) used.add(s.versionId!);
        if (this.policy.mergedFor !== null) used.add(this.policy.mergedFor);
        return used;
      },
      onFailed: (versionId, err) => this.mergedFailed(versionId, err),
    });
    this.deathsSeen = model.workerDeaths;
  }

  /** Longest prompt + maxTokens a row may have. */
  get maxContext(): number {
    return this.pool.capacity;
  }

  /** Queues a request; throws RATE_LIMITED when its customer's queue or the whole queue is full. */
  submit(spec: SequenceSpec): Sequence {
    if (this.closed) throw new RateLimitedError('the gateway is shutting down');
    const mine = this.waiting.get(spec.customerId) ?? [];
    let total = 0;
    for (const q of this.waiting.values()) total += q.length;
    // Requests the batch can still take at the next step are not "queued": only the excess counts.
    let running = 0;
    for (const s of this.running) if (s.spec.customerId === spec.customerId) running++;
    const roomForMe = Math.max(0, Math.min(this.pool.free, this.options.maxRunningPerCustomer - running));
    const queuedMine = Math.max(0, mine.length - roomForMe);
    const queuedAll = Math.max(0, total - this.pool.free);
    if (queuedMine >= this.options.maxQueuedPerCustomer || queuedAll >= this.options.maxQueued) {
      throw new RateLimitedError(
        queuedMine >= this.options.maxQueuedPerCustomer
          ? `you have ${queuedMine} generation requests waiting (the limit); retry shortly`
          : 'the generation queue is full; retry shortly',
      );
    }
    const tk = this.model.model.tokenizer;
    const eos = [...this.model.model.config.eosTokenIds, ...(tk?.eosTokenIds ?? [])];
    const seq = new Sequence(spec, tk, eos);
    mine.push(seq);
    this.waiting.set(spec.customerId, mine);
    if (spec.mode === 'MERGED' && spec.adapter)
      this.merged.ensure(spec.adapter.versionId, spec.adapter.adapter);
    this.kick();
    return seq;
  }

  stats(): SchedulerStats {
    let waiting = 0;
    for (const q of this.waiting.values()) waiting += q.length;
    return {
      running: this.running.length,
      waiting,
      ...this.counters,
      kvSlots: this.pool.slots,
      kvSlotsFree: this.pool.free,
      kvBytes: this.pool.bytes,
      mergedFor: this.policy.mergedFor,
      adapterSlots: this.slots.snapshot(),
    };
  }

  /** Fails everything queued or running and waits for the loop to stop. */
  async close(): Promise<void> {
    this.closed = true;
    const err = new RateLimitedError('the gateway is shutting down');
    for (const q of this.waiting.values()) for (const s of q) s.fail(err);
    this.waiting.clear();
    await this.idle;
    for (const s of [...this.running]) this.retire(s, err);
    this.merged.close();
  }

  /** Resolves after `n` more steps have run (or when the loop goes idle first). */
  waitForSteps(n: number): Promise<void> {
    if (!this.looping) return Promise.resolve();
    return new Promise((resolve) => this.stepWaiters.push({ at: this.counters.steps + n, resolve }));
  }

  private wakeStepWaiters(all: boolean): void {
    const due = this.stepWaiters.filter((w) => all || w.at <= this.counters.steps);
    this.stepWaiters = this.stepWaiters.filter((w) => !due.includes(w));
    for (const w of due) w.resolve();
  }

  private kick(): void {
    if (this.looping) return;
    this.looping = true;
    this.idle = this.loop();
  }

  private async loop(): Promise<void> {
    try {
      while (!this.closed && (this.running.length > 0 || this.hasWaiting())) {
        const worked = await this.step();
        // Let new requests and cancellations in between steps; back off while only unready work waits.
        await new Promise<void>((resolve) => (worked ? setImmediate(resolve) : setTimeout(resolve, 5)));
      }
    } finally {
      this.looping = false;
      this.wakeStepWaiters(true);
    }
  }

  private hasWaiting(): boolean {
    for (const q of this.waiting.values()) if (q.length > 0) return true;
    return false;
  }

  /** One iteration; false when nothing could run. */
  async step(): Promise<boolean> {
    this.reap();
    this.recover([]); // a worker that died between steps
    if (this.restarts.waitMs(Date.now()) > 0) return false;
    this.admit();
    this.rebuildMerged();
    const calls = [...this.prefillCalls(), ...this.decodeCalls()];
    if (calls.length === 0) return false;
    this.fitStride();
    this.arrange(calls);
    // A call whose worker died has reset every running row (recover): the step's other calls are moot.
    for (const call of calls) if (!(await this.run(call))) break;
    this.counters.steps++;
    this.wakeStepWaiters(false);
    const decodeRows = this.running.filter((s) => s.state === 'decode');
    this.apply(
      this.policy.observe(
        decodeRows.map((s) => ({ versionId: s.versionId, mode: s.spec.mode })),
        (v) => this.merged.ready(v) !== null,
      ),
    );
    return true;
  }

  /** Rows whose client left or whose deadline passed leave now, waiting or running. */
  private reap(): void {
    const now = Date.now();
    for (const s of [...this.running]) {
      const why = s.abortReason(now);
      if (why) this.retire(s, why);
    }
    for (const [c, q] of this.waiting) {
      const keep = q.filter((s) => {
        const why = s.abortReason(now);
        if (why) s.fail(why);
        return !why;
      });
      if (keep.length === 0) this.waiting.delete(c);
      else this.waiting.set(c, keep);
    }
  }

  private admit(): void {
    const waiting = new Map<string, WaitingRequest[]>();
    const byId = new Map<number, Sequence>();
    for (const [c, q] of this.waiting) {
      waiting.set(
        c,
        q.map((s) => {
          byId.set(s.id, s);
          const merged = s.spec.mode === 'MERGED' && s.spec.adapter !== null;
          return {
            id: s.id,
            customerId: c,
            loraVersion: merged ? null : s.versionId,
            ready: !merged || this.merged.ready(s.versionId!) !== null,
          };
        }),
      );
    }
    const runningByCustomer = new Map<string, number>();
    for (const s of this.running)
      runningByCustomer.set(s.spec.customerId, (runningByCustomer.get(s.spec.customerId) ?? 0) + 1);
    const table = this.slots.snapshot();
    const placed = new Set(table.map((e) => e.versionId));
    const reclaimable = table.filter((e) => e.refs === 0 && !e.pinned).length;
    const plan = planAdmission({
      waiting,
      freeKvSlots: this.pool.free,
      runningByCustomer,
      maxRunningPerCustomer: this.options.maxRunningPerCustomer,
      placedVersions: placed,
      freeLoraSlots: this.slots.capacity - table.length + reclaimable,
      lastServed: this.lastServed,
    });
    this.lastServed = plan.lastServed;
    for (const id of plan.admit) {
      const s = byId.get(id)!;
      const q = this.waiting.get(s.spec.customerId)!;
      q.splice(q.indexOf(s), 1);
      if (q.length === 0) this.waiting.delete(s.spec.customerId);
      s.kvSlot = this.pool.allocate()!;
      if (s.spec.adapter && s.spec.mode !== 'MERGED') {
        s.loraSlot = this.slots.activate(s.spec.adapter.versionId, s.spec.adapter.adapter)!;
      }
      s.state = 'prefill';
      this.running.push(s);
    }
  }

  /**
   * Keeps the pool's row stride at the next power of two (≥ 64) of what the running rows may need: the
   * attention's past is (B, KVH, stride, D), and onnxruntime's work on it follows its shape. Grows at once;
   * shrinks only when 4× too large, so it does not flap.
   */
  private fitStride(): void {
    let need = 64;
    for (const s of this.running) need = Math.max(need, s.contextNeed);
    const want = Math.min(this.pool.capacity, 2 ** Math.ceil(Math.log2(need)));
    if (want > this.pool.stride || want * 4 <= this.pool.stride) this.pool.restride(want);
  }

  /** A MERGED row waits while its merged session is (re)built, e.g. after a worker death. */
  private parked(s: Sequence): boolean {
    return s.spec.mode === 'MERGED' && s.versionId !== null && this.merged.ready(s.versionId) === null;
  }

  /** The session group a row runs in this step. */
  private keyOf(s: Sequence): string {
    const v = s.versionId;
    if (v !== null && (s.spec.mode === 'MERGED' || (s.spec.mode === 'AUTO' && this.policy.mergedFor === v)))
      return this.merged.ready(v) ? `merged:${v}` : SHARED;
    return SHARED;
  }

  private prefillCalls(): Call[] {
    let budget = this.options.prefillTokens;
    const fresh = new Map<string, Call>();
    const calls: Call[] = [];
    for (const s of this.running) {
      if (s.state !== 'prefill' || budget <= 0 || this.parked(s)) continue;
      const key = this.keyOf(s);
      const left = s.prefillLeft;
      if (s.fed === 0 && left <= budget) {
        // New (or resumed) rows with empty caches share one right-padded call per session group.
        let call = fresh.get(key);
        if (!call) fresh.set(key, (call = { key, rows: [], ids: [], prefill: true }));
        call.rows.push(s);
        call.ids.push(s.prefillChunk());
        budget -= left;
      } else {
        const n = Math.min(left, budget);
        calls.push({ key, rows: [s], ids: [s.prefillChunk(n)], prefill: true });
        budget -= n;
      }
    }
    return [...fresh.values(), ...calls];
  }

  private decodeCalls(): Call[] {
    const groups = new Map<string, Call>();
    for (const s of this.running) {
      if (s.state !== 'decode' || this.parked(s)) continue;
      const key = this.keyOf(s);
      let call = groups.get(key);
      if (!call) groups.set(key, (call = { key, rows: [], ids: [], prefill: false }));
      call.rows.push(s);
      call.ids.push([s.pending!]);
    }
    return [...groups.values()];
  }

  /**
   * Moves KV rows so every multi-row call occupies a contiguous run of slots; rows already inside their
   * call's run (or, for single-row calls and idle rows, outside every run) stay where they are.
   */
  private arrange(calls: Call[]): void {
    const range = new Map<Sequence, [number, number]>();
    let end = 0;
    for (const c of calls) {
      if (c.rows.length < 2) continue;
      for (const s of c.rows) range.set(s, [end, end + c.rows.length]);
      end += c.rows.length;
    }
    const inPlace = (s: Sequence) => {
      const r = range.get(s);
      return r ? s.kvSlot >= r[0] && s.kvSlot < r[1] : s.kvSlot >= end;
    };
    const holders = this.running.filter((s) => s.kvSlot >= 0);
    const taken = new Set(holders.filter(inPlace).map((s) => s.kvSlot));
    const moves = new Map<number, number>();
    const movers: Sequence[] = [];
    for (const s of holders) {
      if (inPlace(s)) continue;
      const [lo, hi] = range.get(s) ?? [end, this.pool.slots];
      let to = lo;
      while (to < hi && taken.has(to)) to++;
      taken.add(to);
      moves.set(s.kvSlot, to);
      movers.push(s);
    }
    this.pool.arrange(moves);
    for (const s of movers) s.kvSlot = moves.get(s.kvSlot)!;
    // Each call's rows in slot order, so row b of the call is slot start + b.
    for (const c of calls) {
      const order = c.rows.map((s, i) => ({ s, ids: c.ids[i]! })).sort((a, b) => a.s.kvSlot - b.s.kvSlot);
      c.rows = order.map((o) => o.s);
      c.ids = order.map((o) => o.ids);
    }
  }

  private async sessionFor(call: Call): Promise<ServeSession> {
    if (call.key.startsWith('merged:')) return this.merged.use(call.key.slice('merged:'.length));
    return this.model.session(call.rows.some((s) => s.loraSlot > 0) ? 'stacked' : 'base');
  }

  /** Runs one call and takes its tokens; false when the model's session worker died (rows reset). */
  private async run(call: Call): Promise<boolean> {
    const rows = call.rows.filter((s) => s.state !== 'finished');
    if (rows.length !== call.rows.length) return true; // a row failed earlier this step; it runs next step
    let logits: Float32Array;
    let sent = false;
    try {
      const session = await this.sessionFor(call);
      sent = true;
      const stepRows: StepRow[] = rows.map((s, i) => ({ ids: call.ids[i]!, loraSlot: s.loraSlot }));
      logits = await runBatchStep({
        session,
        config: this.model.model.config,
        pool: this.pool,
        start: rows[0]!.kvSlot,
        rows: stepRows,
        columns: session.inputNames.includes('lora_slot') ? this.columns : undefined,
      });
    } catch (err) {
      if (err instanceof SessionWorkerDiedError) {
        // The rows whose step was in flight lost it with the worker, whether or not they held a cache there.
        this.recover(sent ? rows : [], err);
        return false;
      }
      this.logger.error(
        { err, rows: rows.length, key: call.key },
        'a generation step failed; failing its rows',
      );
      const failure = new DeltagateError('INTERNAL_SERVER_ERROR', 'generation failed in the model step', {
        cause: err,
      });
      for (const s of rows) this.retire(s, failure);
      return true;
    }
    this.restarts.succeeded();
    const V = this.model.model.config.vocabSize;
    const merged = call.key !== SHARED;
    rows.forEach((s, b) => {
      const n = call.ids[b]!.length;
      if (call.prefill) {
        const fed = s.feed(n);
        this.counters.prefillTokens += fed.prompt;
        this.counters.recomputedTokens += fed.recomputed;
        if (s.prefillLeft > 0) return;
        s.state = 'decode';
        // A resumed row's first token is the one its lost decode step would have given.
        if (s.tokens.length > 0) this.counters.decodeTokens++;
      } else this.counters.decodeTokens++;
      if (merged) s.servedMerged = true;
      if (s.accept(logits.subarray(b * V, (b + 1) * V))) this.retire(s);
    });
    return true;
  }

  /**
   * Handles the deaths of the model's session worker not handled yet (ServingModel counts them as they
   * happen): the KV cache died with the worker, so every running row is resumed — prefilled again on a fresh
   * worker — unless it has lost its cache too often; after too many deaths with no step between them, every
   * row waiting on the model fails. `inFlight`: rows whose step the worker was running; `err`: the error a
   * call got (without a counted death, the model was closed under the loop: its rows fail as before).
   */
  private recover(inFlight: readonly Sequence[], err?: SessionWorkerDiedError): void {
    const deaths = this.model.workerDeaths - this.deathsSeen;
    if (deaths === 0) {
      if (err === undefined) return;
      this.logger.error({ err }, 'the session worker is closed; failing the running rows');
      const failure = new DeltagateError('INTERNAL_SERVER_ERROR', 'generation failed in the model step', {
        cause: err,
      });
      for (const s of [...this.running]) this.retire(s, failure);
      this.dropDeadMerged();
      return;
    }
    this.deathsSeen += deaths;
    this.counters.workerDeaths += deaths;
    const cause = this.model.lastWorkerDeath ?? err;
    this.dropDeadMerged();
    if (this.restarts.died(deaths, Date.now()) === 'give-up') {
      const failure = new SessionWorkerUnavailableError(this.options.maxWorkerRestarts, cause);
      let waiting = 0;
      for (const q of this.waiting.values()) {
        for (const s of q) s.fail(failure);
        waiting += q.length;
      }
      this.waiting.clear();
      this.logger.error(
        { err: cause, running: this.running.length, waiting, event: 'session-worker-unavailable' },
        "the model's session worker keeps dying before it completes a step; failing the requests waiting for it",
      );
      for (const s of [...this.running]) this.retire(s, failure);
      return;
    }
    const stepped = new Set(inFlight);
    let resumed = 0;
    let failed = 0;
    for (const s of [...this.running]) {
      if ((s.kvSlot >= 0 && this.pool.lengths[s.kvSlot]! > 0) || stepped.has(s)) s.workerDeaths++;
      if (this.restarts.mayResume(s.workerDeaths)) {
        s.resume();
        resumed++;
      } else {
        this.retire(s, new SessionWorkerDeathsError(s.workerDeaths, cause));
        failed++;
      }
    }
    this.pool.dropData();
    this.counters.resumedRows += resumed;
    this.logger.warn(
      {
        err: cause,
        resumed,
        failed,
        retryInMs: this.restarts.waitMs(Date.now()),
        event: 'session-worker-died',
      },
      "the model's session worker died; its running rows resume on a fresh worker (their KV cache is recomputed)",
    );
  }

  /** A row leaves the batch: its KV and LoRA slots are freed at once; the caller gets its result or error. */
  private retire(s: Sequence, err?: unknown): void {
    const i = this.running.indexOf(s);
    if (i >= 0) this.running.splice(i, 1);
    if (s.kvSlot >= 0) this.pool.release(s.kvSlot);
    s.kvSlot = -1;
    if (s.loraSlot > 0) this.slots.release(s.versionId!);
    s.loraSlot = 0;
    if (err === undefined) s.complete();
    else s.fail(err);
  }

  private apply(events: PolicyEvent[]): void {
    for (const e of events) {
      if (e.kind === 'build') {
        const s = this.running.find((r) => r.versionId === e.versionId);
        if (s?.spec.adapter) this.merged.ensure(e.versionId, s.spec.adapter.adapter);
      } else {
        this.counters.switches++;
        this.logger.info(
          e.kind === 'merge'
            ? { versionId: e.versionId, afterSteps: e.afterSteps, event: 'auto-merge' }
            : { versionId: e.versionId, reason: e.reason, event: 'auto-unmerge' },
          e.kind === 'merge' ? 'AUTO: serving the batch on merged weights' : 'AUTO: back to side-loading',
        );
      }
    }
  }

  /**
   * A merged build failed: MERGED requests still queued for it fail now; running MERGED rows waiting for its
   * rebuild (after a worker death) fail in the loop (rebuildMerged), which alone touches running rows.
   */
  private mergedFailed(versionId: string, err: unknown): void {
    this.mergedFailures.set(versionId, err);
    for (const q of this.waiting.values())
      for (const s of q.filter((x) => x.versionId === versionId && x.spec.mode === 'MERGED')) {
        q.splice(q.indexOf(s), 1);
        s.fail(
          new DeltagateError('INTERNAL_SERVER_ERROR', 'could not build the merged weights', { cause: err }),
        );
      }
  }

  /** MERGED rows whose merged session died with a worker get it built again (AUTO rows: by the policy). */
  private rebuildMerged(): void {
    // Running MERGED rows waiting for a rebuild that failed fail with it (here, between steps).
    for (const [versionId, err] of this.mergedFailures)
      for (const s of this.running.filter((x) => x.versionId === versionId && x.spec.mode === 'MERGED'))
        this.retire(
          s,
          new DeltagateError('INTERNAL_SERVER_ERROR', 'could not build the merged weights', { cause: err }),
        );
    this.mergedFailures.clear();
    const rows = [...this.running];
    for (const q of this.waiting.values()) rows.push(...q);
    for (const s of rows)
      if (s.spec.mode === 'MERGED' && s.spec.adapter && !this.merged.has(s.spec.adapter.versionId))
        this.merged.ensure(s.spec.adapter.versionId, s.spec.adapter.adapter);
  }

  /** Merged sessions of a worker that died are gone: AUTO may build them again. */
  private dropDeadMerged(): void {
    for (const v of this.merged.dropDead()) if (this.policy.mergedFor === v) this.policy.mergedFor = null;
  }
}
