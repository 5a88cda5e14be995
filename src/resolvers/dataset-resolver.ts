/**
 * dataset, datasets, uploadDataset (inline), createDatasetUpload → PUT → completeDatasetUpload, deleteDataset.
 * The validation and storage rules are src/services/datasets.ts.
 */
import { Arg, Ctx, ID, Int, Mutation, Query, Resolver } from 'type-graphql';
import type { Dataset } from '../db/repositories/datasets.js';
import type { DatasetUploadTicket } from '../services/datasets.js';
import type { GraphQLContext } from './context.js';
import { connectionType, pageRequest, toConnection, type ConnectionShape } from './pagination.js';
import { DatasetType, DatasetUploadType } from './types/dataset.js';
import { CreateDatasetUploadInput, UploadDatasetInput } from './types/inputs.js';

export const DatasetConnection = connectionType('Dataset', DatasetType);

@Resolver(() => DatasetType)
export class DatasetResolver {
  @Query(() => DatasetType, { nullable: true })
  async dataset(@Ctx() ctx: GraphQLContext, @Arg('id', () => ID) id: string): Promise<Dataset> {
    return ctx.services.datasets.get(ctx.actor, id);
  }

  @Query(() => DatasetConnection)
  async datasets(
    @Ctx() ctx: GraphQLContext,
    @Arg('first', () => Int, { nullable: true }) first: number | null,
    @Arg('after', () => String, { nullable: true }) after: string | null,
  ): Promise<ConnectionShape<Dataset>> {
    const req = pageRequest(first, after);
    return toConnection(await ctx.services.datasets.list(ctx.actor, req.first, req.after), req);
  }

  @Mutation(() => DatasetType, {
    description: 'A small inline upload, validated at once (READY or INVALID).',
  })
  async uploadDataset(
    @Ctx() ctx: GraphQLContext,
    @Arg('input', () => UploadDatasetInput) input: UploadDatasetInput,
  ): Promise<Dataset> {
    return ctx.services.datasets.upload(ctx.actor, input);
  }

  @Mutation(() => DatasetUploadType, {
    description: 'A PENDING dataset and a presigned PUT URL for its file.',
  })
  async createDatasetUpload(
    @Ctx() ctx: GraphQLContext,
    @Arg('input', () => CreateDatasetUploadInput) input: CreateDatasetUploadInput,
  ): Promise<DatasetUploadTicket> {
    return ctx.services.datasets.createUpload(ctx.actor, input);
  }

  @Mutation(() => DatasetType, { description: 'Validates what was PUT: READY or INVALID.' })
  async completeDatasetUpload(@Ctx() ctx: GraphQLContext, @Arg('id', () => ID) id: string): Promise<Dataset> {
    return ctx.services.datasets.completeUpload(ctx.actor, id);
  }

  @Mutation(() => Boolean)
  async deleteDataset(@Ctx() ctx: GraphQLContext, @Arg('id', () => ID) id: string): Promise<boolean> {
    return ctx.services.datasets.delete(ctx.actor, id);
  }
}
