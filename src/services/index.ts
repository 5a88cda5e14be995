/**
 * The service layer in one bundle: business rules over repositories, blob storage and the base-model
 * registry, with no GraphQL types. Built once per process by the composition root (src/main.ts); the
 * resolvers (src/resolvers/) and later the workers call it, always passing the calling Actor.
 */
import type { Logger } from 'pino';
import type { Db } from '../db/database.js';
import type { ExecutionProvider } from '../engine/onnx/session.js';
import { repositoriesFor, type Repositories } from '../db/repositories/index.js';
import type { JobQueue } from '../queue/job-queue.js';
import type { ProgressBus } from '../queue/progress-bus.js';
import type { BlobStore } from '../storage/blob-store.js';
import { AdaptersService } from './adapters.js';
import { ApiKeysService } from './api-keys.js';
import type { BaseModelRegistry } from './base-models.js';
import { CustomersService } from './customers.js';
import { DatasetsService, type TokenCounter } from './datasets.js';
import { DerivedJobsService } from './derived-jobs.js';
import type { ServingRuntime } from './serving-grid.js';
import { GenerationService, type GenerationOptions } from './generation.js';
import { TrainingJobsService } from './training-jobs.js';
import { TrainingRunner, type TrainingJobPayload, type TrainingProgressEvent } from './training-runner.js';

export interface ServiceLimits {
  maxDatasetBytes: number;
  maxInlineDatasetBytes: number;
  maxAdapterBytes: number;
}

export interface ServiceDeps {
  db: Db;
  blobs: BlobStore;
  baseModels: BaseModelRegistry;
  limits: ServiceLimits;
  /** null: no admin key (only customer keys authenticate). */
  adminKey: string | null;
  /** Counts tokens with the built-in tokenizer; null leaves `tokenCount` unset. */
  countTokens: TokenCounter | null;
  logger: Logger;
  /**
   * onnxruntime execution provider of every session this process creates (DELTAGATE_EXECUTION_PROVIDER):
   * training jobs run here, and `Services.runtime` for generation. Default 'cpu'.
   */
  executionProvider?: ExecutionProvider;
  /** The training queue and progress bus (src/queue); without them jobs can be read but not started. */
  training?: {
    queue: JobQueue<TrainingJobPayload>;
    bus: ProgressBus<TrainingProgressEvent>;
    /** Tries per job (default 3). */
    attempts?: number;
    /** ORT threads per training job run in this process. */
    threads?: number;
    /** Where EXPORT jobs write the model before storing it (default: the OS temp dir). */
    scratchDir?: string;
    /** How long an export artifact is kept (default 7 days). */
    exportTtlMs?: number;
  };
  generation?: GenerationOptions;
}

export interface Services {
  repos: Repositories;
  blobs: BlobStore;
  baseModels: BaseModelRegistry;
  apiKeys: ApiKeysService;
  customers: CustomersService;
  datasets: DatasetsService;
  adapters: AdaptersService;
  trainingJobs: TrainingJobsService;
  /** Derived versions (SHRINK, MERGE) and exports, queued as jobs through `training`. */
  derivedJobs: DerivedJobsService;
  /** Runs start/cancel/progress and, where this process trains, the worker; null without a queue. */
  training: TrainingRunner | null;
  generation: GenerationService;
  /** What `engineLoadOptions(base, runtime)` (serving-grid.ts) needs to load a base model for generation. */
  runtime: ServingRuntime;
}

export function createServices(deps: ServiceDeps): Services {
  const repos = repositoriesFor(deps.db);
  const runtime: ServingRuntime = { executionProvider: deps.executionProvider ?? 'cpu' };
  const apiKeys = new ApiKeysService(repos, deps.adminKey);
  const adapters = new AdaptersService(repos, deps.blobs, deps.baseModels, deps.limits, deps.logger);
  const training = deps.training
    ? new TrainingRunner({
        repos,
        blobs: deps.blobs,
        baseModels: deps.baseModels,
        queue: deps.training.queue,
        bus: deps.training.bus,
        logger: deps.logger,
        attempts: deps.training.attempts,
        threads: deps.training.threads,
        executionProvider: runtime.executionProvider,
        scratchDir: deps.training.scratchDir,
        exportTtlMs: deps.training.exportTtlMs,
      })
    : null;
  return {
    repos,
    blobs: deps.blobs,
    baseModels: deps.baseModels,
    apiKeys,
    customers: new CustomersService(repos, apiKeys),
    datasets: new DatasetsService(repos, deps.blobs, deps.limits, deps.countTokens, deps.logger),
    adapters,
    trainingJobs: new TrainingJobsService(repos, training),
    derivedJobs: new DerivedJobsService({
      repos,
      blobs: deps.blobs,
      baseModels: deps.baseModels,
      runner: training,
      logger: deps.logger,
    }),
    training,
    generation: new GenerationService({
      repos,
      blobs: deps.blobs,
      baseModels: deps.baseModels,
      adapters,
      logger: deps.logger,
      options: deps.generation,
      runtime,
    }),
    runtime,
  };
}

export type { Actor, CustomerActor } from './actor.js';
export { ADMIN, requireAdmin, requireCustomer, scopeOf } from './actor.js';
export type { BaseModel } from './base-models.js';
export { BaseModelRegistry } from './base-models.js';
export type { EngineLoadOptions, ServingRuntime } from './serving-grid.js';
export { engineLoadOptions } from './serving-grid.js';
export { GenerationService } from './generation.js';
export { TrainingRunner } from './training-runner.js';
