/**
 * trainingJob and trainingJobs (read side) with their nested fields. startTraining, cancelTrainingJob and
 * the trainingJobProgress subscription belong to issue 5 and will join this resolver.
 */
import { Arg, Ctx, FieldResolver, ID, Int, Query, Resolver, Root } from 'type-graphql';
import type { Adapter } from '../db/repositories/adapters.js';
import type { AdapterVersion } from '../db/repositories/adapter-versions.js';
import type { Dataset } from '../db/repositories/datasets.js';
import type { TrainingJob, TrainingJobStatus } from '../db/repositories/training-jobs.js';
import type { GraphQLContext } from './context.js';
import { pageRequest, toConnection, type ConnectionShape } from './pagination.js';
import { AdapterType, AdapterVersionType } from './types/adapter.js';
import { DatasetType } from './types/dataset.js';
import { TrainingJobStatusEnum } from './types/enums.js';
import { TrainingJobConnection, TrainingJobType } from './types/training-job.js';

@Resolver(() => TrainingJobType)
export class TrainingJobResolver {
  @Query(() => TrainingJobType, { nullable: true })
  async trainingJob(@Ctx() ctx: GraphQLContext, @Arg('id', () => ID) id: string): Promise<TrainingJob> {
    return ctx.services.trainingJobs.get(ctx.actor, id);
  }

  @Query(() => TrainingJobConnection)
  async trainingJobs(
    @Ctx() ctx: GraphQLContext,
    @Arg('status', () => TrainingJobStatusEnum, { nullable: true }) status: TrainingJobStatus | null,
    @Arg('first', () => Int, { nullable: true }) first: number | null,
    @Arg('after', () => String, { nullable: true }) after: string | null,
  ): Promise<ConnectionShape<TrainingJob>> {
    const req = pageRequest(first, after);
    return toConnection(
      await ctx.services.trainingJobs.list(ctx.actor, status ?? null, req.first, req.after),
      req,
    );
  }

  @FieldResolver(() => AdapterType, { nullable: true })
  async adapter(@Ctx() ctx: GraphQLContext, @Root() job: TrainingJob): Promise<Adapter | null> {
    return ctx.loaders.adapter.load(job.adapterId);
  }

  @FieldResolver(() => DatasetType, { nullable: true })
  async dataset(@Ctx() ctx: GraphQLContext, @Root() job: TrainingJob): Promise<Dataset | null> {
    return ctx.loaders.dataset.load(job.datasetId);
  }

  @FieldResolver(() => DatasetType, { nullable: true })
  async validationDataset(@Ctx() ctx: GraphQLContext, @Root() job: TrainingJob): Promise<Dataset | null> {
    return job.validationDatasetId === null ? null : ctx.loaders.dataset.load(job.validationDatasetId);
  }

  @FieldResolver(() => AdapterVersionType, { nullable: true })
  async resultVersion(@Ctx() ctx: GraphQLContext, @Root() job: TrainingJob): Promise<AdapterVersion | null> {
    return job.resultVersionId === null ? null : ctx.loaders.adapterVersion.load(job.resultVersionId);
  }
}
