/**
 * The job-queue contract shared by `bullmq-queue.ts` (Redis, several processes) and `in-process-queue.ts`
 * (embedded default): idempotent enqueue by job id, retries with exponential backoff, no retry for bad input,
 * cancellation through an AbortSignal. Generic over the payload; it knows nothing about training. The SQL job
 * table (src/db, src/services) is the source of truth: `reconcileJobs` re-enqueues from it at start-up.
 * Delivery is at least once — see docs/QUEUE.md before writing a handler.
 */
import { BadInputError, DeltagateError } from '../shared/errors.js';

export type JobState = 'waiting' | 'active' | 'completed' | 'failed' | 'unknown';

export interface EnqueueOptions {
  /** Total tries including the first; transient errors are retried until this is reached. Default 3. */
  attempts?: number;
}

export interface JobContext<P> {
  id: string;
  payload: P;
  /** 1-based count of starts of this job, stall recoveries and shutdown hand-backs included: only grows,
   * so it can fence side effects. Not the retry count — see `finalAttempt`. */
  attempt: number;
  /** True when a transient failure of this run will not be retried (its failures used up the `attempts`
   * of enqueue): the handler's last chance to record the failure in SQL itself. */
  finalAttempt: boolean;
  /** Aborted by `cancel(id)` (reason: JobCancelledError), by a worker shutdown past its timeout
   * (reason: WorkerShutdownError; the job goes back to waiting and runs again elsewhere), or when the
   * worker lost the job's lock (reason: JobLockLostError; another worker runs it). */
  signal: AbortSignal;
}

export type JobHandler<P> = (job: JobContext<P>) => Promise<void>;

/** A worker's link to its backend: `connecting` (first connect), `ready`, `unreachable` (Redis down: the
 * worker waits and reconnects on its own). The in-process queue is always `ready`. */
export type WorkerConnectionState = 'connecting' | 'ready' | 'unreachable';

export interface WorkerOptions {
  /** Jobs run at the same time by this worker. Default 1. */
  concurrency?: number;
  /** Called on every change of the worker's connection state (also while `startWorker` still waits for
   * Redis), so a composition root can log it and expose readiness. */
  onConnectionChange?: (state: WorkerConnectionState, err?: Error) => void;
}

export interface CloseOptions {
  /** How long to let running handlers finish before aborting them (WorkerShutdownError). */
  timeoutMs?: number;
}

export interface JobWorker {
  close(opts?: CloseOptions): Promise<void>;
  /** The worker's connection state now. */
  connectionState(): WorkerConnectionState;
}

export interface JobQueue<P> {
  /** Idempotent: the job id IS the dedup key. A second enqueue of an id that is still known (waiting, active,
   * or kept after finishing) creates nothing and answers `{ created: false }`. */
  enqueue(jobId: string, payload: P, opts?: EnqueueOptions): Promise<{ created: boolean }>;
  /** A waiting (or backing-off) job is removed; a running one has its signal aborted, in whichever process
   * holds it. Unknown or finished ids are a no-op. */
  cancel(jobId: string): Promise<void>;
  getState(jobId: string): Promise<JobState>;
  /** Runs `handler` for jobs of this queue until the returned worker is closed. */
  startWorker(handler: JobHandler<P>, opts?: WorkerOptions): Promise<JobWorker>;
  /** Closes the producer side and every worker started from this object. */
  close(): Promise<void>;
}

/** Throw from a handler for a failure that retrying cannot fix (bad input): the job fails at once. */
export class UnrecoverableJobError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'UnrecoverableJobError';
  }
}

/** The abort reason of a cancelled job, and the failure recorded when its handler then throws. */
export class JobCancelledError extends Error {
  constructor(readonly jobId: string) {
    super(`job ${jobId} was cancelled`);
    this.name = 'JobCancelledError';
  }
}

/** The abort reason when a worker closes past its timeout: not a failure, the job is handed back. */
export class WorkerShutdownError extends Error {
  constructor() {
    super('worker is shutting down');
    this.name = 'WorkerShutdownError';
  }
}

/** The abort reason when a worker finds it no longer holds a job's lock (blocked event loop, Redis
 * failover): another worker runs or will run the job, so this run must stop touching it. BullMQ only. */
export class JobLockLostError extends Error {
  constructor(readonly jobId: string) {
    super(`lost the lock of job ${jobId}; another worker takes it over`);
    this.name = 'JobLockLostError';
  }
}

/** The producer could not reach its backend (Redis down, connect timeout): a clear error instead of a hang. */
export class QueueUnavailableError extends DeltagateError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INTERNAL_SERVER_ERROR', message, options);
  }
}

/** Bad input never retries. Checked by name and code too, because errors cross module copies and processes. */
export function isUnrecoverableError(err: unknown): boolean {
  if (err instanceof UnrecoverableJobError) return true;
  if (typeof err !== 'object' || err === null) return false;
  const { name, code } = err as { name?: unknown; code?: unknown };
  return (
    name === 'UnrecoverableJobError' ||
    name === 'UnrecoverableError' ||
    name === 'JobCancelledError' ||
    code === 'BAD_USER_INPUT'
  );
}

/** BullMQ's 'exponential' strategy: base · 2^(failures−1), so the in-process queue backs off identically. */
export function backoffDelayMs(baseMs: number, failuresSoFar: number): number {
  return Math.round(baseMs * 2 ** Math.max(0, failuresSoFar - 1));
}

// Defaults both queues share, so the embedded queue behaves like the Redis one.
export const DEFAULT_ATTEMPTS = 3;
/** Base of the exponential backoff between tries. */
export const DEFAULT_BACKOFF_MS = 1000;
/** Default of `JobWorker.close`'s timeout. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 30_000;
/** Time for aborted handlers to return after a shutdown timeout before close gives up waiting. */
export const ABORT_GRACE_MS = 5_000;

/** BullMQ refuses ids with ':' and all-digit ids; the in-process queue refuses them too so both behave alike. */
export function assertValidJobId(jobId: string): void {
  if (jobId.length === 0 || jobId.length > 200 || jobId.includes(':') || /^\d+$/.test(jobId)) {
    throw new BadInputError(`invalid job id ${JSON.stringify(jobId)}`);
  }
}

export function assertValidAttempts(attempts: number): void {
  if (!Number.isInteger(attempts) || attempts < 1 || attempts > 100) {
    throw new BadInputError(`attempts must be an integer in [1, 100], got ${attempts}`);
  }
}

export function assertValidConcurrency(concurrency: number): void {
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new TypeError(`concurrency must be a positive integer, got ${concurrency}`);
  }
}

export interface ReconcileResult {
  /** Ids that the queue did not know and now holds again. */
  created: string[];
  /** Ids the queue still held (waiting, running or kept after finishing). */
  existing: string[];
}

/**
 * Start-up reconciliation: call with every job the SQL table says is QUEUED or RUNNING. Enqueue is
 * idempotent, so jobs the queue still holds are left alone and lost ones (Redis flushed or restarted without
 * persistence, the in-process queue after a restart) come back. Sequential on purpose: a reconciler is not
 * latency sensitive and this keeps Redis load flat.
 */
export async function reconcileJobs<P>(
  queue: JobQueue<P>,
  jobs: Iterable<{ jobId: string; payload: P; attempts?: number }>,
): Promise<ReconcileResult> {
  const result: ReconcileResult = { created: [], existing: [] };
  for (const job of jobs) {
    const opts = job.attempts === undefined ? undefined : { attempts: job.attempts };
    const { created } = await queue.enqueue(job.jobId, job.payload, opts);
    (created ? result.created : result.existing).push(job.jobId);
  }
  return result;
}

/** True when `p` settles within `ms`; never rejects. */
export async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([
      p.then(
        () => true,
        () => true,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
