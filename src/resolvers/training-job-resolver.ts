/**
 * Training jobs over GraphQL: trainingJob(s) with their nested fields, startTraining, cancelTrainingJob and
 * the trainingJobProgress subscription (graphql-ws). Thin: the rules are src/services/training-jobs.ts and
 * training-runner.ts; a job's run is src/training/job-handler.ts.
 */
import {
  Arg,
  Ctx,
  FieldResolver,
  ID,
  Int,
  Mutation,
  Query,
  Resolver,
  Root,
  Subscription,
} from 'type-graphql';
import type { SubscribeResolverData } from 'type-graphql';
import type { Adapter } from '../db/repositories/adapters.js';
import type { AdapterVersion } from '../db/repositories/adapter-versions.js';
import type { Dataset } from '../db/repositories/datasets.js';
import type { JobKind, TrainingJob, TrainingJobStatus } from '../db/repositories/training-jobs.js';
import type { TrainingProgressEvent } from '../services/training-runner.js';
import type { GraphQLContext } from './context.js';
import { pageRequest, toConnection, type ConnectionShape } from './pagination.js';
import { AdapterType, AdapterVersionType } from './types/adapter.js';
import { DatasetType } from './types/dataset.js';
import { JobKindEnum, TrainingJobStatusEnum } from './types/enums.js';
import {
  StartTrainingInput,
  TrainingJobConnection,
  TrainingJobProgressType,
  TrainingJobType,
} from './types/training-job.js';

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
    @Arg('kind', () => JobKindEnum, { nullable: true }) kind: JobKind | null,
  ): Promise<ConnectionShape<TrainingJob>> {
    const req = pageRequest(first, after);
    return toConnection(
      await ctx.services.trainingJobs.list(ctx.actor, status ?? null, req.first, req.after, kind ?? null),
      req,
    );
  }

  @Mutation(() => TrainingJobType, {
    description: 'Queue a QLoRA job; with an idempotencyKey, a repeated call answers the same job.',
  })
  async startTraining(
    @Ctx() ctx: GraphQLContext,
    @Arg('input', () => StartTrainingInput) input: StartTrainingInput,
  ): Promise<TrainingJob> {
    return ctx.services.trainingJobs.start(ctx.actor, {
      adapterId: input.adapterId,
      datasetId: input.datasetId,
      validationDatasetId: input.validationDatasetId ?? null,
      hyperparameters: input.hyperparameters ? { ...input.hyperparameters } : null,
      idempotencyKey: input.idempotencyKey ?? null,
      promote: input.promote ?? null,
    });
  }

  @Mutation(() => TrainingJobType, { description: 'Stops a queued or running job (within a step).' })
  async cancelTrainingJob(@Ctx() ctx: GraphQLContext, @Arg('id', () => ID) id: string): Promise<TrainingJob> {
    return ctx.services.trainingJobs.cancel(ctx.actor, id);
  }

  @Subscription(() => TrainingJobProgressType, {
    description:
      'The current state first, then one event per step/eval/status change; ends at a terminal status.',
    subscribe: ({ args, context }: SubscribeResolverData<unknown, { id: string }, GraphQLContext>) =>
      context.services.trainingJobs.progress(context.actor, args.id),
  })
  trainingJobProgress(
    @Root() event: TrainingProgressEvent,
    @Arg('id', () => ID) _id: string,
  ): TrainingProgressEvent {
    return event;
  }

  @FieldResolver(() => AdapterType, { nullable: true })
  async adapter(@Ctx() ctx: GraphQLContext, @Root() job: TrainingJob): Promise<Adapter | null> {
    return ctx.loaders.adapter.load(job.adapterId);
  }

  @FieldResolver(() => DatasetType, { nullable: true })
  async dataset(@Ctx() ctx: GraphQLContext, @Root() job: TrainingJob): Promise<Dataset | null> {
    return job.datasetId === null ? null : ctx.loaders.dataset.load(job.datasetId);
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
