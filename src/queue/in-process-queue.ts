/**
 * The single-process JobQueue for the embedded defaults (no DELTAGATE_REDIS_URL): jobs live in memory, with
 * the same semantics as bullmq-queue.ts — idempotent enqueue by id, exponential backoff, no retry for bad
 * input or cancelled jobs, per-worker concurrency, cancel through the handler's AbortSignal. Memory is lost
 * on restart by design: the SQL job table is the source of truth and `reconcileJobs` (job-queue.ts) refills
 * this queue at start-up. Payloads go through JSON like they would through Redis.
 */
import type { Logger } from 'pino';
import {
  ABORT_GRACE_MS,
  assertValidAttempts,
  assertValidConcurrency,
  assertValidJobId,
  backoffDelayMs,
  type CloseOptions,
  DEFAULT_ATTEMPTS,
  DEFAULT_BACKOFF_MS,
  DEFAULT_CLOSE_TIMEOUT_MS,
  type EnqueueOptions,
  isUnrecoverableError,
  JobCancelledError,
  type JobHandler,
  type JobQueue,
  type JobState,
  type JobWorker,
  QueueUnavailableError,
  type WorkerConnectionState,
  settlesWithin,
  type WorkerOptions,
  WorkerShutdownError,
} from './job-queue.js';

export interface InProcessQueueOptions {
  /** Tries per job unless `enqueue` says otherwise. Default 3. */
  defaultAttempts?: number;
  /** Base of the exponential backoff between tries. Default 1000 ms. */
  backoffMs?: number;
  /** Finished jobs remembered for `getState` and dedup, oldest forgotten first. Default 1000. */
  keepFinished?: number;
  /** Default of `JobWorker.close`'s timeout. Default 30 s. */
  closeTimeoutMs?: number;
  logger?: Logger;
}

type EntryState = 'waiting' | 'delayed' | 'active' | 'completed' | 'failed';

interface Entry {
  id: string;
  /** JSON text, parsed afresh for every attempt so a handler cannot leak mutations into a retry. */
  payloadJson: string;
  state: EntryState;
  attemptsStarted: number;
  failures: number;
  maxAttempts: number;
  controller?: AbortController;
  timer?: NodeJS.Timeout;
  failedReason?: string;
}

class InProcessWorker<P> implements JobWorker {
  readonly running = new Map<string, Promise<void>>();
  closing = false;
  private closed: Promise<void> | undefined;

  constructor(
    private readonly queue: InProcessJobQueue<P>,
    readonly handler: JobHandler<P>,
    readonly concurrency: number,
    private readonly defaultTimeoutMs: number,
  ) {}

  get freeSlots(): number {
    return this.closing ? 0 : this.concurrency - this.running.size;
  }

  /** Nothing to connect to: always ready. */
  connectionState(): WorkerConnectionState {
    return 'ready';
  }

  close(opts?: CloseOptions): Promise<void> {
    this.closed ??= this.shutdown(opts?.timeoutMs ?? this.defaultTimeoutMs);
    return this.closed;
  }

  private async shutdown(timeoutMs: number): Promise<void> {
    this.closing = true;
    if (!(await settlesWithin(Promise.all(this.running.values()), timeoutMs))) {
      for (const id of this.running.keys()) this.queue.abortForShutdown(id);
      await settlesWithin(Promise.all(this.running.values()), ABORT_GRACE_MS);
    }
    this.queue.forgetWorker(this);
  }
}

export class InProcessJobQueue<P> implements JobQueue<P> {
  private readonly jobs = new Map<string, Entry>();
  private readonly waiting: string[] = [];
  private readonly finished: string[] = [];
  private readonly workers = new Set<InProcessWorker<P>>();
  private readonly defaultAttempts: number;
  private readonly backoffMs: number;
  private readonly keepFinished: number;
  private readonly closeTimeoutMs: number;
  private closed = false;

  constructor(private readonly opts: InProcessQueueOptions = {}) {
    this.defaultAttempts = opts.defaultAttempts ?? DEFAULT_ATTEMPTS;
    this.backoffMs = opts.backoffMs ?? DEFAULT_BACKOFF_MS;
    this.keepFinished = opts.keepFinished ?? 1000;
    this.closeTimeoutMs = opts.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    assertValidAttempts(this.defaultAttempts);
  }

  async enqueue(jobId: string, payload: P, opts?: EnqueueOptions): Promise<{ created: boolean }> {
    assertValidJobId(jobId);
    const maxAttempts = opts?.attempts ?? this.defaultAttempts;
    assertValidAttempts(maxAttempts);
    if (this.closed) throw new QueueUnavailableError('the in-process queue is closed');
    if (this.jobs.has(jobId)) return { created: false };
    const payloadJson = JSON.stringify(payload);
    if (payloadJson === undefined) throw new TypeError('job payload must be JSON-serializable');
    this.jobs.set(jobId, {
      id: jobId,
      payloadJson,
      state: 'waiting',
      attemptsStarted: 0,
      failures: 0,
      maxAttempts,
    });
    this.waiting.push(jobId);
    this.dispatch();
    return { created: true };
  }

  async cancel(jobId: string): Promise<void> {
    const entry = this.jobs.get(jobId);
    if (entry === undefined) return;
    if (entry.state === 'waiting' || entry.state === 'delayed') {
      // Removed like BullMQ removes a waiting job: afterwards the id is unknown and may be enqueued again.
      clearTimeout(entry.timer);
      this.removeFromWaiting(jobId);
      this.jobs.delete(jobId);
    } else if (entry.state === 'active') {
      entry.controller?.abort(new JobCancelledError(jobId));
    }
  }

  async getState(jobId: string): Promise<JobState> {
    const state = this.jobs.get(jobId)?.state;
    if (state === undefined) return 'unknown';
    return state === 'delayed' ? 'waiting' : state;
  }

  /** Why a finished job failed (the handler's error message), for tests and diagnostics. */
  failedReason(jobId: string): string | undefined {
    return this.jobs.get(jobId)?.failedReason;
  }

  async startWorker(handler: JobHandler<P>, opts?: WorkerOptions): Promise<JobWorker> {
    if (this.closed) throw new QueueUnavailableError('the in-process queue is closed');
    const concurrency = opts?.concurrency ?? 1;
    assertValidConcurrency(concurrency);
    const worker = new InProcessWorker(this, handler, concurrency, this.closeTimeoutMs);
    this.workers.add(worker);
    this.dispatch();
    return worker;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.workers].map((w) => w.close()));
    for (const entry of this.jobs.values()) clearTimeout(entry.timer);
  }

  /** @internal Called by a worker whose close timed out. */
  abortForShutdown(jobId: string): void {
    this.jobs.get(jobId)?.controller?.abort(new WorkerShutdownError());
  }

  /** @internal */
  forgetWorker(worker: InProcessWorker<P>): void {
    this.workers.delete(worker);
  }

  private dispatch(): void {
    for (const worker of this.workers) {
      while (worker.freeSlots > 0 && this.waiting.length > 0) {
        const entry = this.jobs.get(this.waiting.shift()!)!;
        const run = this.run(worker, entry);
        worker.running.set(entry.id, run);
      }
    }
  }

  private async run(worker: InProcessWorker<P>, entry: Entry): Promise<void> {
    // Yield first so `dispatch` has registered this run before anything below can finish it.
    await null;
    const controller = new AbortController();
    entry.state = 'active';
    entry.attemptsStarted += 1;
    entry.controller = controller;
    let error: unknown;
    let ok = false;
    try {
      const payload = JSON.parse(entry.payloadJson) as P;
      await worker.handler({
        id: entry.id,
        payload,
        attempt: entry.attemptsStarted,
        finalAttempt: entry.failures + 1 >= entry.maxAttempts,
        signal: controller.signal,
      });
      ok = true;
    } catch (err) {
      error = err;
    }
    entry.controller = undefined;
    worker.running.delete(entry.id);
    this.settle(entry, ok, error, controller.signal);
    this.dispatch();
  }

  private settle(entry: Entry, ok: boolean, error: unknown, signal: AbortSignal): void {
    const log = this.opts.logger;
    if (ok) return this.finish(entry, 'completed');
    const reason: unknown = signal.aborted ? signal.reason : undefined;
    if (reason instanceof WorkerShutdownError) {
      // Handed back, not failed: the next worker (or the reconciler after a restart) runs it again.
      entry.state = 'waiting';
      this.waiting.unshift(entry.id);
      return;
    }
    const message = error instanceof Error ? error.message : String(error);
    if (reason instanceof JobCancelledError || isUnrecoverableError(error)) {
      entry.failedReason = reason instanceof JobCancelledError ? reason.message : message;
      log?.warn({ jobId: entry.id, err: error }, 'job failed without retry');
      return this.finish(entry, 'failed');
    }
    entry.failures += 1;
    entry.failedReason = message;
    if (entry.failures >= entry.maxAttempts) {
      log?.warn({ jobId: entry.id, err: error, attempts: entry.failures }, 'job failed, attempts exhausted');
      return this.finish(entry, 'failed');
    }
    const delay = backoffDelayMs(this.backoffMs, entry.failures);
    log?.info({ jobId: entry.id, err: error, delayMs: delay }, 'job failed, retrying after backoff');
    entry.state = 'delayed';
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      if (this.jobs.get(entry.id) !== entry || this.closed) return;
      entry.state = 'waiting';
      this.waiting.push(entry.id);
      this.dispatch();
    }, delay);
  }

  private finish(entry: Entry, state: 'completed' | 'failed'): void {
    entry.state = state;
    this.finished.push(entry.id);
    while (this.finished.length > this.keepFinished) {
      const old = this.finished.shift()!;
      const oldEntry = this.jobs.get(old);
      if (oldEntry?.state === 'completed' || oldEntry?.state === 'failed') this.jobs.delete(old);
    }
  }

  private removeFromWaiting(jobId: string): void {
    const i = this.waiting.indexOf(jobId);
    if (i >= 0) this.waiting.splice(i, 1);
  }
}
