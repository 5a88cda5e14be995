/**
 * Training jobs for the resolvers: reads (tenant-scoped like everything else) and, when this process has a
 * training runner (src/services/training-runner.ts: validation, quota, idempotency, queue, progress stream),
 * start / cancel / progress through it. The rows are src/db/repositories/training-jobs.ts.
 */
import type { Page, Repositories } from '../db/repositories/index.js';
import type { JobKind, TrainingJob, TrainingJobStatus } from '../db/repositories/training-jobs.js';
import { DeltagateError, NotFoundError } from '../shared/errors.js';
import { scopeOf, type Actor } from './actor.js';
import type { StartTrainingInput, TrainingProgressEvent, TrainingRunner } from './training-runner.js';

export class TrainingJobsService {
  constructor(
    private readonly repos: Repositories,
    /** null: this process cannot queue jobs (reads still work). */
    readonly runner: TrainingRunner | null = null,
  ) {}

  private need(): TrainingRunner {
    if (this.runner === null)
      throw new DeltagateError('INTERNAL_SERVER_ERROR', 'training is not available in this process');
    return this.runner;
  }

  start(actor: Actor, input: StartTrainingInput): Promise<TrainingJob> {
    return this.need().startTraining(actor, input);
  }

  cancel(actor: Actor, id: string): Promise<TrainingJob> {
    return this.need().cancel(actor, id);
  }

  progress(actor: Actor, id: string): Promise<AsyncIterableIterator<TrainingProgressEvent>> {
    return this.need().progress(actor, id);
  }

  async get(actor: Actor, id: string): Promise<TrainingJob> {
    const job = await this.repos.trainingJobs.findById(scopeOf(actor), id);
    if (job === null) throw new NotFoundError('training job', id);
    return job;
  }

  async getMany(actor: Actor, ids: readonly string[]): Promise<TrainingJob[]> {
    return this.repos.trainingJobs.findByIds(scopeOf(actor), ids);
  }

  async list(
    actor: Actor,
    status: TrainingJobStatus | null,
    first: number,
    after: string | null,
    kind: JobKind | null = null,
  ): Promise<Page<TrainingJob>> {
    return this.repos.trainingJobs.list(scopeOf(actor), { status, kind }, { first, after });
  }
}
