/**
 * The training queue's job handler: one delivery of a training job, from its SQL row to a registered
 * adapter version. Loads the job, dataset and adapter; runs `runTraining` with a blob-backed checkpoint store
 * (resuming when a previous delivery left one); streams progress to SQL and the progress bus; registers
 * version N+1 exactly once and marks the job SUCCEEDED in one transaction (./register-version.ts). Jobs of
 * other kinds (SHRINK, MERGE, EXPORT) are ./derive-handler.ts. The queue is src/queue; start, cancel and the
 * subscription are src/services/training-runner.ts. Delivery is at least once (docs/QUEUE.md).
 */
import type { Logger } from 'pino';
import { ALL, tenant, type Repositories } from '../db/repositories/index.js';
import {
  TERMINAL_JOB_STATUSES,
  type TrainingJob,
  type TrainingJobStatus,
  type TrainingProgress,
} from '../db/repositories/training-jobs.js';
import { LINEAR_MODULES, type LinearModule } from '../engine/formats/hf-config.js';
import { serializePeftAdapter, type LoraAdapter } from '../engine/formats/peft.js';
import type { ExecutionProvider } from '../engine/onnx/session.js';
import type { JobHandler } from '../queue/job-queue.js';
import { JobCancelledError, UnrecoverableJobError } from '../queue/job-queue.js';
import type { ProgressBus } from '../queue/progress-bus.js';
import type { BlobStore } from '../storage/blob-store.js';
import { ADAPTER_FILES, checkpointPrefix } from '../storage/keys.js';
import { BadInputError } from '../shared/errors.js';
import { BlobCheckpointStore } from './blob-checkpoint-store.js';
import { errorMessage, isBadInput, publicJobError } from './job-errors.js';
import type { CheckpointFiles, CheckpointStore } from './checkpoint-store.js';
import type { TrainingOptions } from './options.js';
import { ProgressWriter } from './progress-writer.js';
import { registerJobVersion, type Registered } from './register-version.js';
import { runTraining, type TrainingEvent, type TrainingMetrics } from './trainer.js';

/** What the queue carries: only the id; everything else is read from SQL (the source of truth). */
export interface TrainingJobPayload {
  jobId: string;
}

/** One `trainingJobProgress` event: a full snapshot, so a duplicate or a dropped event never misleads. */
export interface TrainingProgressEvent extends TrainingProgress {
  jobId: string;
  status: TrainingJobStatus;
  message: string | null;
}

/** The current state of a job as an event (late subscribers, status changes). */
export function progressEventOf(job: TrainingJob, message: string | null = null): TrainingProgressEvent {
  const p = job.progress;
  return {
    jobId: job.id,
    status: job.status,
    step: p?.step ?? 0,
    totalSteps: p?.totalSteps ?? 0,
    epoch: p?.epoch ?? 0,
    loss: p?.loss ?? null,
    evalLoss: p?.evalLoss ?? null,
    learningRate: p?.learningRate ?? null,
    tokensPerSecond: p?.tokensPerSecond ?? null,
    etaSeconds: p?.etaSeconds ?? null,
    message: message ?? job.error,
  };
}

/**
 * The start of every delivery of a job, training or derived: SQL is the truth — a job that is gone or already
 * finished (a duplicate delivery) runs nothing; otherwise it moves to RUNNING (attempts + 1) and its
 * subscribers hear "started" or "resumed (attempt N)". Returns the RUNNING row, or null when there is nothing
 * to run (also when it was cancelled between the read and the update).
 */
export async function claimDelivery(
  repos: Repositories,
  publish: (event: TrainingProgressEvent) => Promise<void>,
  jobId: string,
  attempt: number,
  log: Logger,
): Promise<TrainingJob | null> {
  const job = await repos.trainingJobs.findById(ALL, jobId);
  if (job === null) {
    log.warn('job not in SQL; nothing to run');
    return null;
  }
  if (TERMINAL_JOB_STATUSES.includes(job.status)) {
    log.info({ status: job.status }, 'job already finished; duplicate delivery ignored');
    return null;
  }
  const running = await repos.trainingJobs.update(jobId, ['QUEUED', 'RUNNING'], {
    status: 'RUNNING',
    startedAt: job.startedAt ?? new Date().toISOString(),
    incrementAttempts: true,
  });
  if (running === null) return null;
  await publish(progressEventOf(running, attempt > 1 ? `resumed (attempt ${attempt})` : 'started'));
  return running;
}

/**
 * The stored hyperparameters (GraphQL names, defaults filled by the service) → trainer options. Unknown or
 * out-of-range values are the trainer's TrainingOptionsError (BAD_USER_INPUT: no retry).
 */
export function trainingOptionsOf(hp: Record<string, unknown>): Partial<TrainingOptions> {
  const num = (k: string) => (typeof hp[k] === 'number' ? (hp[k] as number) : undefined);
  const q = typeof hp.quantization === 'string' ? hp.quantization.toLowerCase() : undefined;
  const modules = Array.isArray(hp.targetModules) ? (hp.targetModules as string[]) : undefined;
  for (const m of modules ?? []) {
    if (!(LINEAR_MODULES as readonly string[]).includes(m))
      throw new BadInputError(`unknown target module ${JSON.stringify(m)}`);
  }
  return {
    rank: num('rank'),
    alpha: num('alpha'),
    dropout: num('dropout'),
    targetModules: modules as LinearModule[] | undefined,
    epochs: num('epochs'),
    learningRate: num('learningRate'),
    batchSize: num('batchSize'),
    gradAccum: num('gradientAccumulationSteps'),
    maxSeqLen: num('maxSequenceLength'),
    warmupRatio: num('warmupRatio'),
    weightDecay: num('weightDecay'),
    seed: num('seed'),
    quantize: q === undefined ? undefined : (q as TrainingOptions['quantize']),
    checkpointEvery: num('checkpointEverySteps'),
  };
}

export interface TrainingJobHandlerDeps {
  repos: Repositories;
  blobs: BlobStore;
  bus: ProgressBus<TrainingProgressEvent>;
  /** The HF directory of a registered base model, or null when this process does not know it. */
  modelDirOf(baseModelId: string): string | null;
  logger: Logger;
  /** Checkpoint every N steps unless the job's hyperparameters say otherwise. Default 10. */
  checkpointEvery?: number;
  /** Loss points kept in SQL (the newest). Default 1000. */
  lossHistoryLimit?: number;
  /** ORT intra-op threads for training. */
  threads?: number;
  /** onnxruntime execution provider of every training session (DELTAGATE_EXECUTION_PROVIDER); default 'cpu'. */
  executionProvider?: ExecutionProvider;
  /** SQL progress writes at most this often (ms); always one at every checkpoint and at the end. Default
   * 1000. Events on the bus go out at every step regardless. */
  progressWriteIntervalMs?: number;
}

/** Step events waiting for the bus beyond this are dropped (events are snapshots; SQL keeps the record). */
const MAX_PENDING_PUBLISHES = 100;

/** Flushes progress to SQL after every checkpoint, so SQL never says less than a saved checkpoint. */
function flushingAtCheckpoints(store: CheckpointStore, flush: () => Promise<void>): CheckpointStore {
  return {
    save: async (step: number, files: CheckpointFiles) => {
      await store.save(step, files);
      await flush();
    },
    loadLatest: () => store.loadLatest(),
  };
}

export function createTrainingJobHandler(deps: TrainingJobHandlerDeps): JobHandler<TrainingJobPayload> {
  const { repos, blobs, bus, logger } = deps;
  const historyLimit = deps.lossHistoryLimit ?? 1000;

  const publish = async (event: TrainingProgressEvent) => {
    // Progress must never fail training: a Redis hiccup costs an event, SQL still has the state.
    await bus
      .publish(event.jobId, event)
      .catch((err: unknown) => logger.warn({ err }, 'progress publish failed'));
  };

  /** Moves a live job to a terminal status (compare-and-set) and tells subscribers. */
  const finish = async (
    jobId: string,
    status: 'FAILED' | 'CANCELLED',
    error: string | null,
  ): Promise<void> => {
    const now = new Date().toISOString();
    const job = await repos.trainingJobs.update(jobId, ['QUEUED', 'RUNNING'], {
      status,
      error,
      finishedAt: now,
    });
    const current = job ?? (await repos.trainingJobs.findById(ALL, jobId));
    if (current) await publish(progressEventOf(current));
  };

  return async ({ payload, attempt, finalAttempt, signal }) => {
    const jobId = payload.jobId;
    const log = logger.child({ jobId, attempt });
    const job = await claimDelivery(repos, publish, jobId, attempt, log);
    if (job === null) return;

    // Cancel arrives through the queue's signal (any process) or, as a fallback, through SQL: a progress
    // write that finds the job no longer RUNNING stops this run too.
    const local = new AbortController();
    const abort = AbortSignal.any([signal, local.signal]);
    const store = new BlobCheckpointStore(blobs, checkpointPrefix(job.customerId, jobId), { logger: log });
    let history = job.lossHistory;
    let progress: TrainingProgress | null = job.progress;

    // SQL on a clock (ProgressWriter); the bus gets every step's snapshot, in order, never waiting for SQL.
    const writer = new ProgressWriter(deps.progressWriteIntervalMs ?? 1000, async (snapshot) => {
      try {
        const updated = await repos.trainingJobs.update(jobId, ['RUNNING'], {
          progress: snapshot.progress,
          lossHistory: snapshot.history,
        });
        if (updated === null) local.abort(new JobCancelledError(jobId));
      } catch (err) {
        log.warn({ err }, 'could not record training progress');
      }
    });
    let published: Promise<void> = Promise.resolve();
    let pendingPublishes = 0;
    const publishInOrder = (event: TrainingProgressEvent, droppable: boolean): Promise<void> => {
      if (droppable && pendingPublishes >= MAX_PENDING_PUBLISHES) return published;
      pendingPublishes++;
      published = published.then(async () => {
        await publish(event);
        pendingPublishes--;
      });
      return published;
    };

    const onProgress = (e: TrainingEvent) => {
      if (e.type === 'step') {
        progress = {
          step: e.step,
          totalSteps: e.totalSteps,
          epoch: e.epoch,
          loss: e.loss,
          evalLoss: progress?.evalLoss ?? null,
          learningRate: e.learningRate,
          tokensPerSecond: e.tokensPerSecond,
          etaSeconds: e.etaSeconds,
        };
        history = [...history.filter((p) => p.step < e.step), { step: e.step, loss: e.loss }].slice(
          -historyLimit,
        );
      } else {
        progress = { ...(progress ?? emptyProgress()), evalLoss: e.evalLoss };
        history = history.map((p) => (p.step === e.step ? { ...p, evalLoss: e.evalLoss } : p));
      }
      writer.offer({ progress, history });
      if (!abort.aborted) {
        void publishInOrder({ jobId, status: 'RUNNING', ...progress, message: null }, true);
      }
    };

    try {
      const [dataset, adapter] = await Promise.all([
        job.datasetId === null ? null : repos.datasets.findById(tenant(job.customerId), job.datasetId),
        repos.adapters.findById(tenant(job.customerId), job.adapterId),
      ]);
      if (job.datasetId === null) throw new BadInputError(`training job ${jobId} has no dataset`);
      if (dataset === null || dataset.status !== 'READY')
        throw new BadInputError(`dataset ${job.datasetId} is missing or not READY`);
      if (adapter === null) throw new BadInputError(`adapter ${job.adapterId} no longer exists`);
      const modelDir = deps.modelDirOf(adapter.baseModelId);
      if (modelDir === null)
        throw new BadInputError(`base model ${adapter.baseModelId} is not available here`);
      const content = await blobs.get(dataset.blobKey);
      const validationContent = await validationContentOf(deps, job);
      const options = trainingOptionsOf(job.hyperparameters);
      const result = await runTraining(
        {
          ...options,
          checkpointEvery: options.checkpointEvery ?? deps.checkpointEvery ?? 10,
          modelDir,
          data: { content },
          ...(validationContent === null ? {} : { validationData: { content: validationContent } }),
          format: dataset.format,
          resume: true,
          threads: deps.threads,
          executionProvider: deps.executionProvider,
        },
        {
          onProgress,
          signal: abort,
          checkpointStore: flushingAtCheckpoints(store, () => writer.flush()),
        },
      );
      await writer.flush(); // the final step is in SQL before the job can be SUCCEEDED
      await published;
      if (abort.aborted) throw abort.reason;
      const registered = await registerVersion(
        deps,
        job,
        adapter.baseModelId,
        result.adapter,
        result.metrics,
        log,
      );
      if (registered === null) {
        // The job left RUNNING while we registered (cancelled): nothing was kept.
        await finish(jobId, 'CANCELLED', null);
        return;
      }
      const { version, promotion } = registered;
      await store.clear().catch((err: unknown) => log.warn({ err }, 'could not delete checkpoints'));
      const done = await repos.trainingJobs.findById(ALL, jobId);
      const message = `registered version ${version.version}${promotion === null ? '' : `; ${promotion}`}`;
      if (done) await publish(progressEventOf(done, message));
      log.info({ versionId: version.id, version: version.version, promotion }, 'training job succeeded');
    } catch (err) {
      await writer.flush();
      await published;
      const reason: unknown = abort.aborted ? abort.reason : null;
      const cancelled =
        (reason as { name?: string } | null)?.name === 'JobCancelledError' ||
        (await repos.trainingJobs.findById(ALL, jobId))?.status === 'CANCELLED';
      const dropCheckpoints = () =>
        store.clear().catch((e: unknown) => log.warn({ err: e }, 'could not delete checkpoints'));
      if (cancelled) {
        log.info('training job cancelled');
        await finish(jobId, 'CANCELLED', null);
        await dropCheckpoints();
        return;
      }
      if (reason !== null) throw reason; // worker shutdown or lost lock: the job runs again elsewhere
      if (isBadInput(err)) {
        log.info({ err: errorMessage(err) }, 'training job failed on bad input');
        await finish(jobId, 'FAILED', publicJobError(err)); // the customer sees no server paths
        await dropCheckpoints();
        throw new UnrecoverableJobError(errorMessage(err), { cause: err });
      }
      if (finalAttempt) {
        log.error({ err }, 'training job failed after its last attempt');
        await finish(jobId, 'FAILED', publicJobError(err)); // the customer sees no server paths
        await dropCheckpoints();
        throw new UnrecoverableJobError(errorMessage(err), { cause: err });
      }
      log.warn({ err }, 'training attempt failed; the queue retries it');
      throw err;
    }
  };
}

function emptyProgress(): TrainingProgress {
  return {
    step: 0,
    totalSteps: 0,
    epoch: 0,
    loss: null,
    evalLoss: null,
    learningRate: null,
    tokensPerSecond: null,
    etaSeconds: null,
  };
}

/** What a version's `metrics` holds in SQL (the full history is metrics.json next to the weights). */
function versionMetrics(m: TrainingMetrics): Record<string, unknown> {
  return {
    steps: m.steps,
    epochs: m.epochs,
    finalLoss: m.finalLoss,
    evalLoss: m.evalLoss,
    tokensPerSecond: m.tokensPerSecond,
    trainTokens: m.trainTokens,
    durationSeconds: m.durationSeconds,
    bitsPerBaseParameter: m.bitsPerBaseParameter,
    quantize: m.quantize,
    trainableParameters: m.trainableParameters,
    resumedFromStep: m.resumedFromStep,
    peakRssBytes: m.peakRssBytes,
  };
}

/**
 * The job's validation dataset (`startTraining.validationDatasetId`), whose eval loss the version's metrics
 * and the IF_BETTER promotion then use; null without one (the trainer holds out a split of the training rows).
 */
async function validationContentOf(
  deps: TrainingJobHandlerDeps,
  job: TrainingJob,
): Promise<Uint8Array | null> {
  if (job.validationDatasetId === null) return null;
  const v = await deps.repos.datasets.findById(tenant(job.customerId), job.validationDatasetId);
  if (v === null || v.status !== 'READY')
    throw new BadInputError(`validation dataset ${job.validationDatasetId} is missing or not READY`);
  return deps.blobs.get(v.blobKey);
}

/**
 * Registers the job's result as version N+1, exactly once (./register-version.ts): the PEFT files plus
 * metrics.json, the metrics summary in SQL, the dataset as lineage. Returns null when the job was cancelled
 * while registering.
 */
async function registerVersion(
  deps: TrainingJobHandlerDeps,
  job: TrainingJob,
  baseModelId: string,
  adapter: LoraAdapter,
  metrics: TrainingMetrics,
  log: Logger,
): Promise<Registered | null> {
  const { adapterConfig, weights } = serializePeftAdapter({ ...adapter, baseModelName: baseModelId });
  const json = (value: unknown) => Buffer.from(JSON.stringify(value, null, 2) + '\n', 'utf8');
  return registerJobVersion(
    deps,
    job,
    {
      files: [
        { name: ADAPTER_FILES.config, bytes: json(adapterConfig), contentType: 'application/json' },
        { name: ADAPTER_FILES.weights, bytes: weights, contentType: 'application/octet-stream' },
        { name: ADAPTER_FILES.metrics, bytes: json(metrics), contentType: 'application/json' },
      ],
      rank: adapter.rank,
      alpha: adapter.alpha,
      targetModules: [...adapter.targetModules],
      metrics: versionMetrics(metrics),
      datasetId: job.datasetId,
      derivation: null,
      parents: [],
    },
    log,
  );
}
