/**
 * All repositories over one database handle. Services take this bundle; a transaction re-creates it over
 * the transaction handle (`repositoriesFor(trx)`) so every write in it shares one connection.
 */
import type { Db } from '../database.js';
import { AdapterVersionsRepository } from './adapter-versions.js';
import { AdaptersRepository } from './adapters.js';
import { ApiKeysRepository } from './api-keys.js';
import { CustomersRepository } from './customers.js';
import { DatasetsRepository } from './datasets.js';
import { TrainingJobsRepository } from './training-jobs.js';
import { UploadsRepository } from './uploads.js';
import { UsageRepository } from './usage.js';

export interface Repositories {
  db: Db;
  customers: CustomersRepository;
  apiKeys: ApiKeysRepository;
  datasets: DatasetsRepository;
  uploads: UploadsRepository;
  adapters: AdaptersRepository;
  adapterVersions: AdapterVersionsRepository;
  trainingJobs: TrainingJobsRepository;
  usage: UsageRepository;
}

export function repositoriesFor(db: Db): Repositories {
  return {
    db,
    customers: new CustomersRepository(db),
    apiKeys: new ApiKeysRepository(db),
    datasets: new DatasetsRepository(db),
    uploads: new UploadsRepository(db),
    adapters: new AdaptersRepository(db),
    adapterVersions: new AdapterVersionsRepository(db),
    trainingJobs: new TrainingJobsRepository(db),
    usage: new UsageRepository(db),
  };
}

/** Run `fn` in one transaction with repositories bound to it. */
export async function inTransaction<T>(db: Db, fn: (repos: Repositories) => Promise<T>): Promise<T> {
  return db.transaction().execute((trx) => fn(repositoriesFor(trx)));
}

export * from './scope.js';
export type { Customer } from './customers.js';
export type { ApiKey } from './api-keys.js';
export type { Dataset, DatasetError, DatasetFormat, DatasetStatus } from './datasets.js';
export type { Upload, UploadKind } from './uploads.js';
export type { Adapter } from './adapters.js';
export type {
  AdapterAlias,
  AdapterVersion,
  AdapterVersionParent,
  Derivation,
  StoredFile,
} from './adapter-versions.js';
export type {
  JobArtifact,
  JobKind,
  LossPoint,
  PromotePolicy,
  TrainingJob,
  TrainingJobStatus,
  TrainingProgress,
} from './training-jobs.js';
export type { Usage } from './usage.js';
