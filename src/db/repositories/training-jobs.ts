/**
 * Training job rows — the source of truth for a job's lifecycle (QUEUED → RUNNING → SUCCEEDED | FAILED |
 * CANCELLED); BullMQ only carries the id. Ready for issue 5: the queue, worker and progress pub/sub live
 * in src/queue and src/training; the start/cancel rules in src/services.
 */
import type { Selectable } from 'kysely';
import type { Db } from '../database.js';
import { nowIso } from '../database.js';
import { newId } from '../ids.js';
import type { TrainingJobsTable } from '../schema.js';
import { ALL, inScope, pageById, parseJson, type Page, type PageArgs, type Scope } from './scope.js';

export type TrainingJobStatus = 'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED';
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
  datasetId: string;
  validationDatasetId: string | null;
  status: TrainingJobStatus;
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
      datasetId: string;
      validationDatasetId: string | null;
      hyperparameters: Record<string, unknown>;
      idempotencyKey: string | null;
      /** Default NEVER (rows written without one, as before migration 0003). */
      promote?: PromotePolicy;
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
    filter: { status?: TrainingJobStatus | null },
    page: PageArgs,
  ): Promise<Page<TrainingJob>> {
    let q = this.db.selectFrom('training_jobs').selectAll().$call(inScope(scope));
    if (filter.status) q = q.where('status', '=', filter.status);
    return pageById(q, page, toJob);
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
      }))
      .where('id', '=', id)
      .where('status', 'in', [...from])
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) !== 1) return null;
    return this.findById(ALL, id, db);
  }
}
