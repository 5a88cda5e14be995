/**
 * Training jobs end to end on the service side: `startTraining` (validation, quota, idempotency key, enqueue by
 * job id), `cancel`, the `trainingJobProgress` stream (tenant-checked; current state first), and the wiring of
 * queue + job handler + start-up reconciler (every QUEUED/RUNNING job in SQL is enqueued again). What one
 * delivery does is src/training/job-handler.ts; the queue and the bus are src/queue. Read-side queries stay in
 * training-jobs.ts. The composition roots (src/main.ts, src/commands/worker.ts) construct this.
 */
import type { Logger } from 'pino';
import { isUniqueViolation } from '../db/database.js';
import { ALL, inTransaction, type Repositories } from '../db/repositories/index.js';
import {
  PROMOTE_POLICIES,
  TERMINAL_JOB_STATUSES,
  type JobKind,
  type PromotePolicy,
  type TrainingJob,
} from '../db/repositories/training-jobs.js';
import { LINEAR_MODULES } from '../engine/formats/hf-config.js';
import type { ExecutionProvider } from '../engine/onnx/session.js';
import {
  isUnrecoverableError,
  type JobHandler,
  type JobQueue,
  type JobWorker,
  type ReconcileResult,
  type WorkerConnectionState,
} from '../queue/job-queue.js';
import { subscribeIterator, type ProgressBus } from '../queue/progress-bus.js';
import type { BlobStore } from '../storage/blob-store.js';
import { createDerivedJobHandler } from '../training/derive-handler.js';
import {
  createTrainingJobHandler,
  progressEventOf,
  type TrainingJobPayload,
  type TrainingProgressEvent,
} from '../training/job-handler.js';
import { BadInputError, ConflictError, NotFoundError, QuotaExceededError } from '../shared/errors.js';
import { requireCustomer, scopeOf, type Actor } from './actor.js';
import type { BaseModel, BaseModelRegistry } from './base-models.js';
import { sweepExpiredArtifacts } from './export-artifacts.js';

export type { TrainingJobPayload, TrainingProgressEvent } from '../training/job-handler.js';
export type { PromotePolicy } from '../db/repositories/training-jobs.js';

export const TRAINING_QUEUE_NAME = 'training';

/**
 * `startTraining`'s default: a new version becomes what the bare adapter name serves only when its held-out
 * eval loss beats the version serving now (docs/API.md, "Which version a name serves").
 */
export const DEFAULT_PROMOTE_POLICY: PromotePolicy = 'IF_BETTER';

export interface StartTrainingInput {
  adapterId: string;
  datasetId: string;
  validationDatasetId?: string | null;
  hyperparameters?: Record<string, unknown> | null;
  /** Same key (per customer) and same input → the same job, however often it is sent; a different input
   * under a used key is CONFLICT. */
  idempotencyKey?: string | null;
  /** What success does with the `production` alias; default DEFAULT_PROMOTE_POLICY. */
  promote?: PromotePolicy | null;
}

/** The GraphQL `TrainingHyperparameters` after defaults, as stored with the job. */
export interface Hyperparameters {
  rank: number;
  alpha: number;
  dropout: number;
  targetModules: string[];
  epochs: number;
  learningRate: number;
  batchSize: number;
  gradientAccumulationSteps: number;
  maxSequenceLength: number;
  warmupRatio: number;
  weightDecay: number;
  seed: number;
  quantization: 'NF4' | 'INT4' | 'NONE';
  checkpointEverySteps: number;
}

export const HYPERPARAMETER_DEFAULTS: Hyperparameters = {
  rank: 8,
  alpha: 16,
  dropout: 0.05,
  targetModules: [...LINEAR_MODULES],
  epochs: 3,
  learningRate: 2e-4,
  batchSize: 4,
  gradientAccumulationSteps: 1,
  maxSequenceLength: 512,
  warmupRatio: 0.03,
  weightDecay: 0,
  seed: 0,
  quantization: 'NF4',
  checkpointEverySteps: 10,
};

function check(cond: boolean, field: string, rule: string, got: unknown): void {
  if (!cond) {
    throw new BadInputError(`hyperparameters.${field} must be ${rule} (got ${JSON.stringify(got)})`, {
      details: { field: `hyperparameters.${field}` },
    });
  }
}

const int = (x: unknown, lo: number, hi: number) =>
  typeof x === 'number' && Number.isSafeInteger(x) && x >= lo && x <= hi;
const real = (x: unknown, lo: number, hi: number, openHi = false) =>
  typeof x === 'number' && Number.isFinite(x) && x >= lo && (openHi ? x < hi : x <= hi);

/** Fills defaults and enforces the limits (BAD_USER_INPUT naming the field) before anything is queued. */
export function normalizeHyperparameters(
  input: Record<string, unknown> | null | undefined,
  base: BaseModel,
): Hyperparameters {
  const given = Object.fromEntries(
    Object.entries(input ?? {}).filter(([, v]) => v !== null && v !== undefined),
  );
  for (const k of Object.keys(given)) {
    check(k in HYPERPARAMETER_DEFAULTS, k, 'a known hyperparameter', k);
  }
  const hp = { ...HYPERPARAMETER_DEFAULTS, ...given } as Hyperparameters;
  check(int(hp.rank, 1, 256), 'rank', 'an integer 1-256', hp.rank);
  check(real(hp.alpha, 1e-6, 4096), 'alpha', 'a number in (0, 4096]', hp.alpha);
  check(real(hp.dropout, 0, 1, true), 'dropout', 'in [0, 1)', hp.dropout);
  check(
    Array.isArray(hp.targetModules) &&
      hp.targetModules.length > 0 &&
      hp.targetModules.every((m) => (LINEAR_MODULES as readonly string[]).includes(m)),
    'targetModules',
    `a non-empty subset of ${LINEAR_MODULES.join(', ')}`,
    hp.targetModules,
  );
  hp.targetModules = LINEAR_MODULES.filter((m) => hp.targetModules.includes(m));
  check(int(hp.epochs, 1, 1000), 'epochs', 'an integer 1-1000', hp.epochs);
  check(real(hp.learningRate, 1e-9, 1), 'learningRate', 'in (0, 1]', hp.learningRate);
  check(int(hp.batchSize, 1, 256), 'batchSize', 'an integer 1-256', hp.batchSize);
  check(
    int(hp.gradientAccumulationSteps, 1, 256),
    'gradientAccumulationSteps',
    'an integer 1-256',
    hp.gradientAccumulationSteps,
  );
  check(
    int(hp.maxSequenceLength, 2, base.contextLength),
    'maxSequenceLength',
    `an integer 2-${base.contextLength} (the base model's context)`,
    hp.maxSequenceLength,
  );
  check(real(hp.warmupRatio, 0, 1, true), 'warmupRatio', 'in [0, 1)', hp.warmupRatio);
  check(real(hp.weightDecay, 0, 1), 'weightDecay', 'in [0, 1]', hp.weightDecay);
  check(int(hp.seed, 0, 2 ** 31 - 1), 'seed', 'an integer 0-2147483647', hp.seed);
  check(
    ['NF4', 'INT4', 'NONE'].includes(hp.quantization),
    'quantization',
    'NF4, INT4 or NONE',
    hp.quantization,
  );
  check(
    int(hp.checkpointEverySteps, 0, 100000),
    'checkpointEverySteps',
    'an integer 0-100000',
    hp.checkpointEverySteps,
  );
  return hp;
}

export interface TrainingRunnerDeps {
  repos: Repositories;
  blobs: BlobStore;
  baseModels: BaseModelRegistry;
  queue: JobQueue<TrainingJobPayload>;
  bus: ProgressBus<TrainingProgressEvent>;
  logger: Logger;
  /** Tries per job (transient failures retry with backoff). Default 3. */
  attempts?: number;
  /** ORT threads per training job. */
  threads?: number;
  /** onnxruntime execution provider of the training sessions (DELTAGATE_EXECUTION_PROVIDER); default 'cpu'. */
  executionProvider?: ExecutionProvider;
  /** First delay before enqueueing again what the queue refused (Redis down); doubles up to 5 s. Default 1 s. */
  enqueueRetryMs?: number;
  /** `trainingJobProgress` reads SQL this often while the bus is not live or silent (Redis down). Default 1 s. */
  progressPollMs?: number;
  /** SQL progress writes of a running job, at most one per this many ms (plus one at every checkpoint and at
   * the end). Default 1 s. */
  progressWriteIntervalMs?: number;
  /** Where EXPORT jobs write the model before storing it (default: the OS temp dir). */
  scratchDir?: string;
  /** How long an export artifact is kept (default 7 days). */
  exportTtlMs?: number;
}

/** A job row to insert, whatever its kind (what `submitJob` validated it into). */
export interface NewJob {
  adapterId: string;
  kind: JobKind;
  datasetId: string | null;
  validationDatasetId: string | null;
  hyperparameters: Record<string, unknown>;
  spec: Record<string, unknown> | null;
  promote: PromotePolicy;
}

/** Where this process's training worker stands (`TrainingRunner.workerReadiness()`), for health checks. */
export interface WorkerReadiness {
  /** True while the worker is connected to its queue and takes jobs. */
  ready: boolean;
  /** `none`: no worker started in this process; `closed`: it was stopped. */
  state: 'none' | WorkerConnectionState | 'closed';
  /** When `state` last changed. */
  since: Date;
  /** Why it is not ready (the last connection error), when known. */
  reason: string | null;
}

/** Retries of a failed enqueue back off up to this; a call against a Redis known to be down costs nothing
 * (the producer fails fast), so the bound is about how soon a job starts once Redis is back. */
const MAX_ENQUEUE_RETRY_MS = 5_000;

export class TrainingRunner {
  private readonly attempts: number;
  private readonly workers: JobWorker[] = [];
  /** Jobs SQL holds QUEUED whose enqueue failed (Redis down): enqueued again by `retryEnqueues`. */
  private readonly unqueued = new Set<string>();
  /** A reconcile failed on an unreachable queue: run it again once the queue answers. */
  private reconcileOwed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelayMs: number;
  private closed = false;
  private readiness: WorkerReadiness = { ready: false, state: 'none', since: new Date(), reason: null };

  constructor(private readonly deps: TrainingRunnerDeps) {
    this.attempts = deps.attempts ?? 3;
    this.retryDelayMs = deps.enqueueRetryMs ?? 1000;
  }

  /**
   * Runs jobs of the queue in this process (the embedded default, or `deltagate worker`). Resolves once the
   * worker takes jobs; against an unreachable Redis it logs that it is waiting (`workerReadiness()` says
   * `unreachable`) and resolves when Redis is back.
   */
  async startWorker(concurrency: number): Promise<JobWorker> {
    const { repos, blobs, bus, baseModels, logger } = this.deps;
    const modelDirOf = (id: string) => baseModels.get(id)?.dir ?? null;
    const training = createTrainingJobHandler({
      repos,
      blobs,
      bus,
      logger,
      modelDirOf,
      threads: this.deps.threads,
      executionProvider: this.deps.executionProvider,
      progressWriteIntervalMs: this.deps.progressWriteIntervalMs,
    });
    const derived = createDerivedJobHandler({
      repos,
      blobs,
      bus,
      logger,
      modelDirOf,
      scratchDir: this.deps.scratchDir,
      exportTtlMs: this.deps.exportTtlMs,
      progressWriteIntervalMs: this.deps.progressWriteIntervalMs,
    });
    // One queue for every kind of job (the payload is the id): the row says which handler runs it.
    const handler: JobHandler<TrainingJobPayload> = async (ctx) => {
      const job = await repos.trainingJobs.findById(ALL, ctx.payload.jobId);
      return job !== null && job.kind !== 'TRAINING' ? derived(ctx) : training(ctx);
    };
    this.setReadiness('connecting', null);
    const worker = await this.deps.queue.startWorker(handler, {
      concurrency,
      onConnectionChange: (state, err) => this.onWorkerConnection(state, err),
    });
    this.workers.push(worker);
    this.setReadiness('ready', null);
    return worker;
  }

  /** The worker's state for a readiness probe: ready only while connected and taking jobs. */
  workerReadiness(): WorkerReadiness {
    return { ...this.readiness };
  }

  private setReadiness(state: WorkerReadiness['state'], reason: string | null): void {
    if (this.readiness.state === state && this.readiness.reason === reason) return;
    this.readiness = { ready: state === 'ready', state, since: new Date(), reason };
  }

  private onWorkerConnection(state: WorkerConnectionState, err?: Error): void {
    if (this.closed) return;
    const { logger } = this.deps;
    const was = this.readiness.state;
    if (state === 'unreachable') {
      if (was !== 'unreachable')
        logger.warn(
          { err: err?.message },
          'training worker: Redis is unreachable; waiting for it (jobs resume when it is back)',
        );
      this.setReadiness('unreachable', err?.message ?? 'Redis is unreachable');
    } else if (state === 'ready') {
      if (was === 'unreachable') logger.info('training worker: Redis is reachable again');
      // Until startWorker resolves, the worker is connected but not yet taking jobs.
      this.setReadiness(this.workers.length > 0 ? 'ready' : 'connecting', null);
      // Whatever could not be enqueued during the outage goes now (and soon again, should the producer's
      // own connection come back a moment later than the worker's).
      this.retryDelayMs = this.deps.enqueueRetryMs ?? 1000;
      if (this.unqueued.size > 0 || this.reconcileOwed) this.scheduleRetry(0);
    } else {
      this.setReadiness(state, this.readiness.reason);
    }
  }

  /**
   * Enqueues every QUEUED/RUNNING job of SQL again (idempotent by job id), so jobs the queue lost (a restart
   * of the in-process queue, a Redis flush) run; a job the queue already gave up on (failed past its stall
   * limit) while SQL still says it is live is marked FAILED.
   */
  async reconcile(): Promise<ReconcileResult> {
    const result: ReconcileResult = { created: [], existing: [] };
    try {
      await this.reconcileInto(result);
      this.reconcileOwed = false;
    } catch (err) {
      if (!isQueueUnavailable(err)) throw err;
      // SQL keeps the jobs QUEUED/RUNNING; they are enqueued once the queue answers again.
      if (!this.reconcileOwed)
        this.deps.logger.warn(
          { err: (err as Error).message },
          'Redis is unreachable; training jobs waiting in SQL are enqueued when it is back',
        );
      this.reconcileOwed = true;
      this.scheduleRetry();
    }
    if (result.created.length > 0)
      this.deps.logger.info({ jobs: result.created }, 're-enqueued training jobs');
    // Export artifacts past their expiry go too (the API calls this every minute, a worker at start-up).
    await sweepExpiredArtifacts(this.deps.repos, this.deps.blobs, this.deps.logger).catch((err: unknown) =>
      this.deps.logger.warn({ err }, 'could not sweep expired export artifacts'),
    );
    return result;
  }

  private async reconcileInto(result: ReconcileResult): Promise<void> {
    for (const status of ['QUEUED', 'RUNNING'] as const) {
      let after: string | null = null;
      for (;;) {
        const page = await this.deps.repos.trainingJobs.list(ALL, { status }, { first: 200, after });
        for (const job of page.rows) {
          const { created } = await this.deps.queue.enqueue(
            job.id,
            { jobId: job.id },
            { attempts: this.attempts },
          );
          (created ? result.created : result.existing).push(job.id);
          this.unqueued.delete(job.id);
          if (!created) {
            const state = await this.deps.queue.getState(job.id);
            if (state === 'failed' || state === 'completed') {
              await this.deps.repos.trainingJobs.update(job.id, ['QUEUED', 'RUNNING'], {
                status: 'FAILED',
                error: 'the queue stopped running this job (its workers died too often)',
                finishedAt: new Date().toISOString(),
              });
            }
          }
        }
        if (!page.hasNextPage) break;
        after = page.rows.at(-1)!.id;
      }
    }
  }

  /** Enqueues again, with backoff, what an unreachable queue refused (jobs stay QUEUED in SQL meanwhile). */
  private scheduleRetry(delayMs = this.retryDelayMs): void {
    if (this.closed) return;
    if (this.retryTimer !== undefined) {
      if (delayMs > 0) return;
      clearTimeout(this.retryTimer);
    }
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.retryEnqueues();
    }, delayMs);
    this.retryTimer.unref();
  }

  private async retryEnqueues(): Promise<void> {
    if (this.closed) return;
    try {
      if (this.reconcileOwed) {
        await this.reconcileInto({ created: [], existing: [] });
        this.reconcileOwed = false;
        this.deps.logger.info('Redis is back: training jobs reconciled');
      }
      for (const id of [...this.unqueued]) {
        const job = await this.deps.repos.trainingJobs.findById(ALL, id);
        if (job !== null && !TERMINAL_JOB_STATUSES.includes(job.status))
          await this.deps.queue.enqueue(id, { jobId: id }, { attempts: this.attempts });
        this.unqueued.delete(id);
      }
      this.retryDelayMs = this.deps.enqueueRetryMs ?? 1000;
    } catch (err) {
      this.deps.logger.debug({ err }, 'training queue still unreachable');
      this.retryDelayMs = Math.min(this.retryDelayMs * 2, MAX_ENQUEUE_RETRY_MS);
      this.scheduleRetry();
    }
  }

  async startTraining(actor: Actor, input: StartTrainingInput): Promise<TrainingJob> {
    requireCustomer(actor);
    const scope = scopeOf(actor);
    const { repos } = this.deps;
    const key = checkIdempotencyKey(input.idempotencyKey);
    const promote = input.promote ?? DEFAULT_PROMOTE_POLICY;
    if (!PROMOTE_POLICIES.includes(promote)) {
      throw new BadInputError(`promote must be one of ${PROMOTE_POLICIES.join(', ')}`, {
        details: { field: 'promote' },
      });
    }
    return this.submitJob(
      actor,
      key,
      (job) => this.differingField(actor, job, input),
      async () => {
        const adapter = await repos.adapters.findById(scope, input.adapterId);
        if (adapter === null) throw new NotFoundError('adapter', input.adapterId);
        const base = this.deps.baseModels.require(adapter.baseModelId);
        const dataset = await repos.datasets.findById(scope, input.datasetId);
        if (dataset === null) throw new NotFoundError('dataset', input.datasetId);
        const usable = async (id: string, what: string) => {
          const d = id === dataset.id ? dataset : await repos.datasets.findById(scope, id);
          if (d === null) throw new NotFoundError('dataset', id);
          if (d.status !== 'READY' || (d.rowCount ?? 0) < 1) {
            throw new BadInputError(`${what} ${id} is ${d.status}; training needs a READY dataset with rows`);
          }
          return d;
        };
        await usable(dataset.id, 'dataset');
        const validationId = input.validationDatasetId ?? null;
        if (validationId !== null) {
          const v = await usable(validationId, 'validation dataset');
          if (v.format !== dataset.format)
            throw new BadInputError(
              `the validation dataset is ${v.format}, the training dataset ${dataset.format}`,
            );
        }
        const hyperparameters = normalizeHyperparameters(input.hyperparameters, base);
        return {
          adapterId: adapter.id,
          kind: 'TRAINING',
          datasetId: dataset.id,
          validationDatasetId: validationId,
          hyperparameters: { ...hyperparameters },
          spec: null,
          promote,
        };
      },
    );
  }

  /**
   * Inserts and enqueues a job of any kind, with the idempotency and quota rules every kind shares: with a
   * key already used, the job it names is answered when `differs` finds nothing different (else CONFLICT) —
   * before `prepare` runs, so a retry is answered even when its checks would now fail (e.g. at the quota);
   * otherwise `prepare` validates (throwing BAD_USER_INPUT / NOT_FOUND) and the row is inserted under the
   * customer's lock with the concurrent-jobs quota, and enqueued by its id.
   */
  async submitJob(
    actor: Actor,
    key: string | null,
    differs: (existing: TrainingJob) => Promise<string | null>,
    prepare: () => Promise<NewJob>,
  ): Promise<TrainingJob> {
    const { customerId } = requireCustomer(actor);
    const scope = scopeOf(actor);
    const { repos } = this.deps;
    if (key !== null) {
      const existing = await repos.trainingJobs.findByIdempotencyKey(customerId, key);
      if (existing) return this.answerExisting(existing, differs, key);
    }
    const row = await prepare();

    // The quota check and the insert are one transaction under the customer's row lock (PostgreSQL; SQLite
    // runs transactions one at a time), so concurrent starts cannot all see "under the quota".
    let outcome: { job: TrainingJob; created: boolean };
    try {
      outcome = await inTransaction(repos.db, async (tx) => {
        await tx.customers.lockForUpdate(customerId);
        if (key !== null) {
          const existing = await tx.trainingJobs.findByIdempotencyKey(customerId, key);
          if (existing) return { job: existing, created: false };
        }
        const customer = await tx.customers.findById(scope, customerId);
        if (customer === null) throw new NotFoundError('customer', customerId);
        const active = await tx.trainingJobs.countActive(customerId);
        if (active >= customer.maxConcurrentJobs) {
          throw new QuotaExceededError(
            `${active} jobs (training, derived versions, exports) are queued or running; the quota is ${customer.maxConcurrentJobs}`,
          );
        }
        const job = await tx.trainingJobs.insert({ customerId, ...row, idempotencyKey: key });
        return { job, created: true };
      });
    } catch (err) {
      // Another process inserted the key between our lookup and insert (SQLite shared by processes).
      if (key !== null && isUniqueViolation(err)) {
        const winner = await repos.trainingJobs.findByIdempotencyKey(customerId, key);
        if (winner) return this.answerExisting(winner, differs, key);
      }
      throw err;
    }
    if (!outcome.created) return this.answerExisting(outcome.job, differs, key!);
    return this.ensureQueued(outcome.job);
  }

  /** The job an idempotency key already names: answered when the input is the same, else CONFLICT. */
  private async answerExisting(
    job: TrainingJob,
    differs: (existing: TrainingJob) => Promise<string | null>,
    key: string,
  ): Promise<TrainingJob> {
    const differing = await differs(job);
    if (differing !== null) {
      throw new ConflictError(
        `idempotency key ${JSON.stringify(key)} was used for job ${job.id} with a different ${differing}; ` +
          'use a new key for a different job',
      );
    }
    return this.ensureQueued(job);
  }

  /** Which part of `input` differs from what `job` was started with (after defaults), or null. */
  private async differingField(
    actor: Actor,
    job: TrainingJob,
    input: StartTrainingInput,
  ): Promise<string | null> {
    if (job.kind !== 'TRAINING') return `kind (it is a ${job.kind} job)`;
    if (input.adapterId !== job.adapterId) return 'adapterId';
    if (input.datasetId !== job.datasetId) return 'datasetId';
    if ((input.validationDatasetId ?? null) !== job.validationDatasetId) return 'validationDatasetId';
    if ((input.promote ?? DEFAULT_PROMOTE_POLICY) !== job.promote) return 'promote';
    const adapter = await this.deps.repos.adapters.findById(scopeOf(actor), job.adapterId);
    const base = adapter === null ? undefined : this.deps.baseModels.get(adapter.baseModelId);
    let given: Hyperparameters;
    try {
      // The job's own base model bounds maxSequenceLength; without it (gone) nothing else can differ.
      given = normalizeHyperparameters(
        input.hyperparameters,
        base ?? ({ contextLength: Number.MAX_SAFE_INTEGER } as BaseModel),
      );
    } catch (err) {
      if (err instanceof BadInputError) return 'hyperparameters';
      throw err;
    }
    return canonicalJson(given) === canonicalJson(job.hyperparameters) ? null : 'hyperparameters';
  }

  /**
   * Enqueue (idempotent by id) a live job. SQL is the source of truth: when the queue cannot be reached
   * (Redis down) the job stays QUEUED and is answered; it is enqueued when the queue is back (a retry with
   * backoff here, and every reconcile).
   */
  private async ensureQueued(job: TrainingJob): Promise<TrainingJob> {
    if (TERMINAL_JOB_STATUSES.includes(job.status)) return job;
    try {
      await this.deps.queue.enqueue(job.id, { jobId: job.id }, { attempts: this.attempts });
    } catch (err) {
      if (isUnrecoverableError(err)) throw err;
      this.deps.logger.warn(
        { err: (err as Error).message, jobId: job.id },
        'training queue unreachable; the job stays QUEUED and is enqueued when it is back',
      );
      this.unqueued.add(job.id);
      this.scheduleRetry();
    }
    return job;
  }

  /** Idempotent: a finished job is returned as it is. A running job stops within a training step. */
  async cancel(actor: Actor, id: string): Promise<TrainingJob> {
    const scope = scopeOf(actor);
    const { repos } = this.deps;
    const job = await repos.trainingJobs.findById(scope, id);
    if (job === null) throw new NotFoundError('training job', id);
    if (TERMINAL_JOB_STATUSES.includes(job.status)) return job;
    const now = new Date().toISOString();
    const updated = await repos.trainingJobs.update(id, ['QUEUED', 'RUNNING'], {
      status: 'CANCELLED',
      cancelRequestedAt: now,
      finishedAt: now,
    });
    if (updated === null) return (await repos.trainingJobs.findById(scope, id))!;
    await this.deps.queue
      .cancel(id)
      .catch((err: unknown) => this.deps.logger.warn({ err, jobId: id }, 'queue cancel failed'));
    await this.deps.bus
      .publish(id, progressEventOf(updated, 'cancelled'))
      .catch((err: unknown) => this.deps.logger.warn({ err }, 'progress publish failed'));
    return updated;
  }

  /**
   * The `trainingJobProgress` stream: NOT_FOUND for another tenant's job (checked before subscribing), the
   * current state first, live events while the job runs, complete after a terminal status.
   */
  async progress(actor: Actor, id: string): Promise<AsyncIterableIterator<TrainingProgressEvent>> {
    const scope = scopeOf(actor);
    const job = await this.deps.repos.trainingJobs.findById(scope, id);
    if (job === null) throw new NotFoundError('training job', id);
    // A finished job's stream is its final state from SQL, at once: no bus (nor Redis) involved.
    if (TERMINAL_JOB_STATUSES.includes(job.status)) return iterate([progressEventOf(job)]);
    const read = async () => {
      const now = await this.deps.repos.trainingJobs.findById(scope, id);
      return now ? [progressEventOf(now)] : [];
    };
    return subscribeIterator(this.deps.bus, id, {
      initial: read,
      isTerminal: (e) => TERMINAL_JOB_STATUSES.includes(e.status),
      // SQL is the record: while the bus is not live (Redis down) or silent, SQL is read instead, so the
      // stream still moves and still ends (a terminal event lost to an outage is found in SQL).
      poll: {
        intervalMs: this.deps.progressPollMs ?? 1000,
        read,
        accept: (polled, last) =>
          last === undefined || polled.status !== last.status || polled.step > last.step,
      },
    });
  }

  /** Stops the workers (running jobs get `timeoutMs` to finish, then go back to the queue). */
  async close(opts: { timeoutMs?: number } = {}): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    for (const w of this.workers.splice(0)) await w.close(opts);
    if (this.readiness.state !== 'none') this.setReadiness('closed', null);
  }
}

/** An idempotency key as given (null: none); BAD_USER_INPUT outside 1-200 characters. */
export function checkIdempotencyKey(key: string | null | undefined): string | null {
  if (key === null || key === undefined) return null;
  if (key.length < 1 || key.length > 200) {
    throw new BadInputError('idempotencyKey must be 1-200 characters', {
      details: { field: 'idempotencyKey' },
    });
  }
  return key;
}

function isQueueUnavailable(err: unknown): boolean {
  return (err as { name?: unknown } | null)?.name === 'QueueUnavailableError';
}

/** JSON with object keys sorted at every level: equal values give equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}

/** An async iterator over a fixed list (what a subscription of a finished job yields). */
function iterate<E>(events: E[]): AsyncIterableIterator<E> {
  const queue = [...events];
  const it: AsyncIterableIterator<E> = {
    next: async () =>
      queue.length > 0 ? { value: queue.shift()!, done: false } : { value: undefined, done: true },
    return: async () => {
      queue.length = 0;
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator]: () => it,
  };
  return it;
}
