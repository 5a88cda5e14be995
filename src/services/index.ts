/**
 * The service layer in one bundle: business rules over repositories, blob storage and the base-model
 * registry, with no GraphQL types. Built once per process by the composition root (src/main.ts); the
 * resolvers (src/resolvers/) and later the workers call it, always passing the calling Actor.
 */
import type { Logger } from 'pino';
import type { Db } from '../db/database.js';
import { repositoriesFor, type Repositories } from '../db/repositories/index.js';
import type { BlobStore } from '../storage/blob-store.js';
import { AdaptersService } from './adapters.js';
import { ApiKeysService } from './api-keys.js';
import type { BaseModelRegistry } from './base-models.js';
import { CustomersService } from './customers.js';
import { DatasetsService, type TokenCounter } from './datasets.js';
import { TrainingJobsService } from './training-jobs.js';

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
}

export function createServices(deps: ServiceDeps): Services {
  const repos = repositoriesFor(deps.db);
  const apiKeys = new ApiKeysService(repos, deps.adminKey);
  return {
    repos,
    blobs: deps.blobs,
    baseModels: deps.baseModels,
    apiKeys,
    customers: new CustomersService(repos, apiKeys),
    datasets: new DatasetsService(repos, deps.blobs, deps.limits, deps.countTokens, deps.logger),
    adapters: new AdaptersService(repos, deps.blobs, deps.baseModels, deps.limits, deps.logger),
    trainingJobs: new TrainingJobsService(repos),
  };
}

export type { Actor, CustomerActor } from './actor.js';
export { ADMIN, requireAdmin, requireCustomer, scopeOf } from './actor.js';
export type { BaseModel } from './base-models.js';
export { BaseModelRegistry } from './base-models.js';
