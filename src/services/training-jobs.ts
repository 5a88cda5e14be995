/**
 * Reading training jobs (tenant-scoped like everything else). Starting and cancelling jobs, the queue and
 * the progress stream are issue 5's: they extend this service; the rows are src/db/repositories/training-jobs.ts.
 */
import type { Page, Repositories } from '../db/repositories/index.js';
import type { TrainingJob, TrainingJobStatus } from '../db/repositories/training-jobs.js';
import { NotFoundError } from '../shared/errors.js';
import { scopeOf, type Actor } from './actor.js';

export class TrainingJobsService {
  constructor(private readonly repos: Repositories) {}

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
  ): Promise<Page<TrainingJob>> {
    return this.repos.trainingJobs.list(scopeOf(actor), { status }, { first, after });
  }
}
