/**
 * The Kysely table types: one row shape per table, shared by SQLite and PostgreSQL.
 * Portable column choices: timestamps are ISO-8601 text (sortable, same in both), JSON is text parsed in the
 * repositories, booleans are nullable timestamps (`revoked_at`), 64-bit counts come back from `pg` as strings
 * and are converted once in the repositories. The DDL lives in migrations.ts.
 */
import type { ColumnType, Generated } from 'kysely';

/** bigint in PostgreSQL (read back as string by `pg`), integer in SQLite. */
type BigCount = ColumnType<number | string, number | string, number | string>;

export interface CustomersTable {
  id: string;
  name: string;
  max_adapters: number;
  max_concurrent_jobs: number;
  monthly_token_limit: BigCount | null;
  created_at: string;
}

export interface ApiKeysTable {
  id: string;
  customer_id: string;
  name: string | null;
  /** The first characters of the secret, unique: the lookup key (the secret itself is never stored). */
  prefix: string;
  /** hex sha256 of the whole secret; compared with timingSafeEqual. */
  secret_hash: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface DatasetsTable {
  id: string;
  customer_id: string;
  name: string;
  format: string;
  status: string;
  row_count: number | null;
  token_count: BigCount | null;
  size_bytes: BigCount | null;
  sha256: string | null;
  /** JSON array of { line, message }. */
  errors: string | null;
  blob_key: string;
  created_at: string;
  updated_at: string;
}

export interface UploadsTable {
  id: string;
  customer_id: string;
  kind: string;
  blob_key: string;
  size_bytes: BigCount;
  dataset_id: string | null;
  status: string;
  expires_at: string;
  created_at: string;
  completed_at: string | null;
}

export interface AdaptersTable {
  id: string;
  customer_id: string;
  name: string;
  base_model_id: string;
  description: string | null;
  created_at: string;
  /** 0/1 (an integer in both dialects). */
  pinned: Generated<number>;
}

export interface AdapterVersionsTable {
  id: string;
  adapter_id: string;
  customer_id: string;
  version: number;
  sha256: string;
  size_bytes: BigCount;
  rank: number;
  alpha: number;
  /** JSON array of module names. */
  target_modules: string;
  /** JSON object, null when none. */
  metrics: string | null;
  /** JSON array of { name, sizeBytes, sha256 } for each stored file. */
  files: string;
  training_job_id: string | null;
  dataset_id: string | null;
  blob_prefix: string;
  created_at: string;
  /** JSON { operation, method, rank, energy, report } of a derived version (migration 0004); null otherwise. */
  derivation: string | null;
}

/** A derived version's sources, in order (migration 0004). No foreign key to the parent: it may be deleted. */
export interface AdapterVersionParentsTable {
  version_id: string;
  ordinal: number;
  parent_version_id: string;
  weight: number;
  customer_id: string;
}

export interface AdapterAliasesTable {
  adapter_id: string;
  alias: string;
  version_id: string;
  customer_id: string;
  updated_at: string;
}

export interface UsageCountersTable {
  customer_id: string;
  /** 'YYYY-MM' (UTC). */
  period: string;
  requests: BigCount;
  prompt_tokens: BigCount;
  completion_tokens: BigCount;
}

export interface TrainingJobsTable {
  id: string;
  customer_id: string;
  adapter_id: string;
  /** null for jobs that are not training (migration 0004). */
  dataset_id: string | null;
  validation_dataset_id: string | null;
  status: string;
  /** JSON object of resolved hyperparameters. */
  hyperparameters: string;
  /** JSON object of the latest progress, null before the first step. */
  progress: string | null;
  /** JSON array of { step, loss, evalLoss? }, bounded by the writer. */
  loss_history: string;
  error: string | null;
  idempotency_key: string | null;
  /** ALWAYS | IF_BETTER | NEVER: what success does with the `production` alias (migration 0003). */
  promote: Generated<string>;
  result_version_id: string | null;
  attempts: Generated<number>;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  cancel_requested_at: string | null;
  updated_at: string;
  /** TRAINING | SHRINK | MERGE | EXPORT (migration 0004; earlier rows are TRAINING). */
  kind: Generated<string>;
  /** JSON: what a SHRINK/MERGE/EXPORT job does (src/training/derive-spec.ts); null for training. */
  spec: string | null;
  /** JSON: an EXPORT job's stored file (JobArtifact); null before success and once deleted or expired. */
  artifact: string | null;
  /** When the artifact is deleted (ISO-8601), for the sweeper; null without one. */
  artifact_expires_at: string | null;
}

export interface Database {
  customers: CustomersTable;
  api_keys: ApiKeysTable;
  datasets: DatasetsTable;
  uploads: UploadsTable;
  adapters: AdaptersTable;
  adapter_versions: AdapterVersionsTable;
  adapter_aliases: AdapterAliasesTable;
  adapter_version_parents: AdapterVersionParentsTable;
  usage_counters: UsageCountersTable;
  training_jobs: TrainingJobsTable;
}
