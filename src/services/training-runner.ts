/**
 * Training jobs end to end on the service side: `startTraining` (validation, quota, idempotency key, enqueue by
 * job id), `cancel`, the `trainingJobProgress` stream (tenant-checked; current state first), and the wiring of
 * queue + job handler + start-up reconciler (every QUEUED/RUNNING job in SQL is enqueued again). What one
 * delivery does is src/training/job-handler.ts; the queue and the bus are src/queue. Read-side queries stay in
 * training-jobs.ts. The composition roots (src/main.ts, src/commands/worker.ts) construct this.
 */
import type { Logger } from 'pino';
import { isUniqueViolation } from '../db/database.js';
import { ALL, type Repositories } from '../db/repositories/index.js';
import { TERMINAL_JOB_STATUSES, type TrainingJob } from '../db/repositories/training-jobs.js';
import { LINEAR_MODULES } from '../engine/formats/hf-config.js';
import type { ExecutionProvider } from '../engine/onnx/session.js';
import type { JobQueue, JobWorker, ReconcileResult } from '../queue/job-queue.js';
import { subscribeIterator, type ProgressBus } from '../queue/progress-bus.js';
import type { BlobStore } from '../storage/blob-store.js';
import {
  createTrainingJobHandler,
  progressEventOf,
  type TrainingJobPayload,
  type TrainingProgressEvent,
} from '../training/job-handler.js';
import { BadInputError, NotFoundError, QuotaExceededError } from '../shared/errors.js';
import { requireCustomer, scopeOf, type Actor } from './actor.js';
import type { BaseModel, BaseModelRegistry } from './base-models.js';

export type { TrainingJobPayload, TrainingProgressEvent } from '../training/job-handler.js';

export const TRAINING_QUEUE_NAME = 'training';

export interface StartTrainingInput {
  adapterId: string;
  datasetId: string;
  validationDatasetId?: string | null;
  hyperparameters?: Record<string, unknown> | null;
  /** Same key (per customer) → the same job, however often it is sent. */
  idempotencyKey?: string | null;
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
}

export class TrainingRunner {
  private readonly attempts: number;
  private readonly workers: JobWorker[] = [];

  constructor(private readonly deps: TrainingRunnerDeps) {
    this.attempts = deps.attempts ?? 3;
  }

  /** Runs jobs of the queue in this process (the embedded default, or `deltagate worker`). */
  async startWorker(concurrency: number): Promise<JobWorker> {
    const { repos, blobs, bus, baseModels, logger } = this.deps;
    const handler = createTrainingJobHandler({
      repos,
      blobs,
      bus,
      logger,
      modelDirOf: (id) => baseModels.get(id)?.dir ?? null,
      threads: this.deps.threads,
      executionProvider: this.deps.executionProvider,
    });
    const worker = await this.deps.queue.startWorker(handler, { concurrency });
    this.workers.push(worker);
    return worker;
  }

  /**
   * Enqueues every QUEUED/RUNNING job of SQL again (idempotent by job id), so jobs the queue lost (a restart
   * of the in-process queue, a Redis flush) run; a job the queue already gave up on (failed past its stall
   * limit) while SQL still says it is live is marked FAILED.
   */
  async reconcile(): Promise<ReconcileResult> {
    const result: ReconcileResult = { created: [], existing: [] };
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
    if (result.created.length > 0)
      this.deps.logger.info({ jobs: result.created }, 're-enqueued training jobs');
    return result;
  }

  async startTraining(actor: Actor, input: StartTrainingInput): Promise<TrainingJob> {
    const { customerId } = requireCustomer(actor);
    const scope = scopeOf(actor);
    const { repos } = this.deps;
    const key = input.idempotencyKey ?? null;
    if (key !== null && (key.length < 1 || key.length > 200)) {
      throw new BadInputError('idempotencyKey must be 1-200 characters', {
        details: { field: 'idempotencyKey' },
      });
    }
    if (key !== null) {
      const existing = await repos.trainingJobs.findByIdempotencyKey(customerId, key);
      if (existing) return this.ensureQueued(existing);
    }
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

    const customer = await repos.customers.findById(scope, customerId);
    if (customer === null) throw new NotFoundError('customer', customerId);
    const active = await repos.trainingJobs.countActive(customerId);
    if (active >= customer.maxConcurrentJobs) {
      throw new QuotaExceededError(
        `${active} training jobs are queued or running; the quota is ${customer.maxConcurrentJobs}`,
      );
    }
    let job: TrainingJob;
    try {
      job = await repos.trainingJobs.insert({
        customerId,
        adapterId: adapter.id,
        datasetId: dataset.id,
        validationDatasetId: validationId,
        hyperparameters: { ...hyperparameters },
        idempotencyKey: key,
      });
    } catch (err) {
      if (key !== null && isUniqueViolation(err)) {
        const winner = await repos.trainingJobs.findByIdempotencyKey(customerId, key);
        if (winner) return this.ensureQueued(winner);
      }
      throw err;
    }
    return this.ensureQueued(job);
  }

  /** Enqueue (idempotent by id) a live job; a queue that cannot be reached fails the job, not silently. */
  private async ensureQueued(job: TrainingJob): Promise<TrainingJob> {
    if (TERMINAL_JOB_STATUSES.includes(job.status)) return job;
    try {
      await this.deps.queue.enqueue(job.id, { jobId: job.id }, { attempts: this.attempts });
      return job;
    } catch (err) {
      this.deps.logger.error({ err, jobId: job.id }, 'could not enqueue a training job');
      await this.deps.repos.trainingJobs.update(job.id, ['QUEUED'], {
        status: 'FAILED',
        error: `could not enqueue: ${(err as Error).message}`,
        finishedAt: new Date().toISOString(),
      });
      throw err;
    }
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
    return subscribeIterator(this.deps.bus, id, {
      initial: async () => {
        const now = await this.deps.repos.trainingJobs.findById(scope, id);
        return now ? [progressEventOf(now)] : [];
      },
      isTerminal: (e) => TERMINAL_JOB_STATUSES.includes(e.status),
    });
  }

  /** Stops the workers (running jobs get `timeoutMs` to finish, then go back to the queue). */
  async close(opts: { timeoutMs?: number } = {}): Promise<void> {
    for (const w of this.workers.splice(0)) await w.close(opts);
  }
}
