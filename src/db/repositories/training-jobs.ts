/**
 * Job rows — training, derived versions (SHRINK, MERGE) and exports (`kind`) — the source of truth for a job's
 * lifecycle (QUEUED → RUNNING → SUCCEEDED | FAILED | CANCELLED); BullMQ only carries the id. The queue, worker
 * and progress pub/sub live in src/queue and src/training; the start/cancel rules in src/services.
 */
import type { Selectable } from 'kysely';
import type { Db } from '../database.js';
import { nowIso } from '../database.js';
import { newId } from '../ids.js';
import type { TrainingJobsTable } from '../schema.js';
import { ALL, inScope, pageById, parseJson, type Page, type PageArgs, type Scope } from './scope.js';

export type TrainingJobStatus = 'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED';

/**
 * What a job does (migration 0004): TRAINING (a QLoRA run on a dataset), SHRINK / MERGE (a derived adapter
 * version from other versions, src/training/derive-handler.ts) or EXPORT (a version merged into its base model,
 * stored as a downloadable file). All share this table, the queue, the progress stream and cancel.
 */
export type JobKind = 'TRAINING' | 'SHRINK' | 'MERGE' | 'EXPORT';
export const JOB_KINDS: readonly JobKind[] = ['TRAINING', 'SHRINK', 'MERGE', 'EXPORT'];

/** The file an EXPORT job stored (blob `key`), until it expires or its version is deleted. */
export interface JobArtifact {
  key: string;
  /** What a client should call it, e.g. `support-v3-q8_0.gguf`. */
  fileName: string;
  format: 'GGUF' | 'HF';
  quantize: string;
  sizeBytes: number;
  sha256: string;
  createdAt: string;
  expiresAt: string;
}
export const TERMINAL_JOB_STATUSES: readonly TrainingJobStatus[] = ['SUCCEEDED', 'FAILED', 'CANCELLED'];

/** What a successful job does with the adapter's `production` alias (src/training/promotion.ts). */
export type PromotePolicy = 'ALWAYS' | 'IF_BETTER' | 'NEVER';
export const PROMOTE_POLICIES: readonly PromotePolicy[] = ['ALWAYS', 'IF_BETTER', 'NEVER'];

export interface TrainingProgress {
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number | null;
  evalLoss: number | null;
  learningRate: number | null;
  tokensPerSecond: number | null;
  etaSeconds: number | null;
}

export interface LossPoint {
  step: number;
  loss: number;
  evalLoss?: number | null;
}

export interface TrainingJob {
  id: string;
  customerId: string;
  adapterId: string;
  /** null for jobs that are not training. */
  datasetId: string | null;
  validationDatasetId: string | null;
  status: TrainingJobStatus;
  kind: JobKind;
  /** What a SHRINK / MERGE / EXPORT job does (src/training/derive-spec.ts); null for training. */
  spec: Record<string, unknown> | null;
  artifact: JobArtifact | null;
  hyperparameters: Record<string, unknown>;
  progress: TrainingProgress | null;
  lossHistory: LossPoint[];
  error: string | null;
  idempotencyKey: string | null;
  promote: PromotePolicy;
  resultVersionId: string | null;
  attempts: number;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  cancelRequestedAt: string | null;
  updatedAt: string;
}

type Row = Selectable<TrainingJobsTable>;

function toJob(r: Row): TrainingJob {
  return {
    id: r.id,
    customerId: r.customer_id,
    adapterId: r.adapter_id,
    datasetId: r.dataset_id,
    validationDatasetId: r.validation_dataset_id,
    status: r.status as TrainingJobStatus,
    kind: (JOB_KINDS as readonly string[]).includes(r.kind) ? (r.kind as JobKind) : 'TRAINING',
    // `?? null`: rows read from a database before migration 0004 have no such columns.
    spec: parseJson<Record<string, unknown> | null>(r.spec ?? null, null),
    artifact: parseJson<JobArtifact | null>(r.artifact ?? null, null),
    hyperparameters: parseJson<Record<string, unknown>>(r.hyperparameters, {}),
    progress: parseJson<TrainingProgress | null>(r.progress, null),
    lossHistory: parseJson<LossPoint[]>(r.loss_history, []),
    error: r.error,
    idempotencyKey: r.idempotency_key,
    promote: (PROMOTE_POLICIES as readonly string[]).includes(r.promote)
      ? (r.promote as PromotePolicy)
      : 'NEVER',
    resultVersionId: r.result_version_id,
    attempts: Number(r.attempts),
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    cancelRequestedAt: r.cancel_requested_at,
    updatedAt: r.updated_at,
  };
}

export class TrainingJobsRepository {
  constructor(private readonly db: Db) {}

  /** Throws the driver's unique violation when (customer, idempotency key) is taken. */
  async insert(
    input: {
      customerId: string;
      adapterId: string;
      datasetId: string | null;
      validationDatasetId: string | null;
      hyperparameters: Record<string, unknown>;
      idempotencyKey: string | null;
      /** Default NEVER (rows written without one, as before migration 0003). */
      promote?: PromotePolicy;
      /** Default TRAINING. */
      kind?: JobKind;
      spec?: Record<string, unknown> | null;
    },
    db: Db = this.db,
  ): Promise<TrainingJob> {
    const now = nowIso();
    const row: Row = {
      id: newId('trainingJob'),
      customer_id: input.customerId,
      adapter_id: input.adapterId,
      dataset_id: input.datasetId,
      validation_dataset_id: input.validationDatasetId,
      status: 'QUEUED',
      hyperparameters: JSON.stringify(input.hyperparameters),
      progress: null,
      loss_history: '[]',
      error: null,
      idempotency_key: input.idempotencyKey,
      promote: input.promote ?? 'NEVER',
      result_version_id: null,
      attempts: 0,
      created_at: now,
      started_at: null,
      finished_at: null,
      cancel_requested_at: null,
      updated_at: now,
      kind: input.kind ?? 'TRAINING',
      spec: input.spec === undefined || input.spec === null ? null : JSON.stringify(input.spec),
      artifact: null,
      artifact_expires_at: null,
    };
    await db.insertInto('training_jobs').values(row).execute();
    return toJob(row);
  }

  async findById(scope: Scope, id: string, db: Db = this.db): Promise<TrainingJob | null> {
    const r = await db
      .selectFrom('training_jobs')
      .selectAll()
      .where('id', '=', id)
      .$call(inScope(scope))
      .executeTakeFirst();
    return r ? toJob(r) : null;
  }

  async findByIds(scope: Scope, ids: readonly string[]): Promise<TrainingJob[]> {
    if (ids.length === 0) return [];
    const rows = await this.db
      .selectFrom('training_jobs')
      .selectAll()
      .where('id', 'in', [...ids])
      .$call(inScope(scope))
      .execute();
    return rows.map(toJob);
  }

  async findByIdempotencyKey(customerId: string, key: string, db: Db = this.db): Promise<TrainingJob | null> {
    const r = await db
      .selectFrom('training_jobs')
      .selectAll()
      .where('customer_id', '=', customerId)
      .where('idempotency_key', '=', key)
      .executeTakeFirst();
    return r ? toJob(r) : null;
  }

  async list(
    scope: Scope,
    filter: { status?: TrainingJobStatus | null; kind?: JobKind | null },
    page: PageArgs,
  ): Promise<Page<TrainingJob>> {
    let q = this.db.selectFrom('training_jobs').selectAll().$call(inScope(scope));
    if (filter.status) q = q.where('status', '=', filter.status);
    if (filter.kind) q = q.where('kind', '=', filter.kind);
    return pageById(q, page, toJob);
  }

  /** EXPORT jobs of an adapter that still hold an artifact (their spec names the version exported). */
  async listWithArtifacts(adapterId: string, db: Db = this.db): Promise<TrainingJob[]> {
    const rows = await db
      .selectFrom('training_jobs')
      .selectAll()
      .where('adapter_id', '=', adapterId)
      .where('kind', '=', 'EXPORT')
      .where('artifact', 'is not', null)
      .execute();
    return rows.map(toJob);
  }

  /** Jobs whose artifact expired before `now` (oldest first), for the sweeper. */
  async listExpiredArtifacts(now: string, limit: number): Promise<TrainingJob[]> {
    const rows = await this.db
      .selectFrom('training_jobs')
      .selectAll()
      .where('artifact_expires_at', '<', now)
      .where('artifact', 'is not', null)
      .orderBy('artifact_expires_at')
      .limit(limit)
      .execute();
    return rows.map(toJob);
  }

  /**
   * Forgets a job's artifact (compare-and-set on its key: an artifact replaced meanwhile is kept). Returns
   * whether this call cleared it — the caller then deletes the blob (row first: never a row pointing at
   * nothing).
   */
  async clearArtifact(id: string, key: string, db: Db = this.db): Promise<boolean> {
    const job = await this.findById(ALL, id, db);
    if (job?.artifact?.key !== key) return false;
    const res = await db
      .updateTable('training_jobs')
      .set({ artifact: null, artifact_expires_at: null, updated_at: nowIso() })
      .where('id', '=', id)
      .where('artifact', '=', JSON.stringify(job.artifact))
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  async countActive(customerId: string, db: Db = this.db): Promise<number> {
    const r = await db
      .selectFrom('training_jobs')
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .where('customer_id', '=', customerId)
      .where('status', 'in', ['QUEUED', 'RUNNING'])
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  /**
   * Compare-and-set update: applies `patch` only while the job is in one of `from` (e.g. only a RUNNING job
   * may succeed). Returns the updated job or null when the status had moved on.
   */
  async update(
    id: string,
    from: readonly TrainingJobStatus[],
    patch: {
      status?: TrainingJobStatus;
      progress?: TrainingProgress | null;
      lossHistory?: LossPoint[];
      error?: string | null;
      resultVersionId?: string | null;
      startedAt?: string | null;
      finishedAt?: string | null;
      cancelRequestedAt?: string | null;
      incrementAttempts?: boolean;
      artifact?: JobArtifact | null;
    },
    db: Db = this.db,
  ): Promise<TrainingJob | null> {
    const res = await db
      .updateTable('training_jobs')
      .set((eb) => ({
        updated_at: nowIso(),
        ...(patch.status !== undefined ? { status: patch.status } : {}),
        ...(patch.progress !== undefined
          ? { progress: patch.progress === null ? null : JSON.stringify(patch.progress) }
          : {}),
        ...(patch.lossHistory !== undefined ? { loss_history: JSON.stringify(patch.lossHistory) } : {}),
        ...(patch.error !== undefined ? { error: patch.error } : {}),
        ...(patch.resultVersionId !== undefined ? { result_version_id: patch.resultVersionId } : {}),
        ...(patch.startedAt !== undefined ? { started_at: patch.startedAt } : {}),
        ...(patch.finishedAt !== undefined ? { finished_at: patch.finishedAt } : {}),
        ...(patch.cancelRequestedAt !== undefined ? { cancel_requested_at: patch.cancelRequestedAt } : {}),
        ...(patch.incrementAttempts ? { attempts: eb('attempts', '+', 1) } : {}),
        ...(patch.artifact !== undefined
          ? {
              artifact: patch.artifact === null ? null : JSON.stringify(patch.artifact),
              artifact_expires_at: patch.artifact?.expiresAt ?? null,
            }
          : {}),
      }))
      .where('id', '=', id)
      .where('status', 'in', [...from])
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) !== 1) return null;
    return this.findById(ALL, id, db);
  }
}
