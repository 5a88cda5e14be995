/**
 * baseModels, adapters, adapter versions and aliases: queries, mutations and the nested fields (batched
 * through the request's DataLoaders). The registry rules are src/services/adapters.ts.
 */
import { Arg, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root } from 'type-graphql';
import type { Adapter } from '../db/repositories/adapters.js';
import type { AdapterAlias, AdapterVersion } from '../db/repositories/adapter-versions.js';
import type { Dataset } from '../db/repositories/datasets.js';
import type { TrainingJob } from '../db/repositories/training-jobs.js';
import type { UploadTicket } from '../services/adapters.js';
import type { BaseModel } from '../services/base-models.js';
import { BadInputError, NotFoundError } from '../shared/errors.js';
import type { GraphQLContext } from './context.js';
import { pageRequest, sliceConnection, toConnection, type ConnectionShape } from './pagination.js';
import {
  AdapterAliasType,
  AdapterConnection,
  AdapterType,
  AdapterVersionConnection,
  AdapterVersionType,
} from './types/adapter.js';
import { BaseModelType } from './types/base-model.js';
import { DatasetType, UploadType } from './types/dataset.js';
import {
  CreateAdapterInput,
  CreateAdapterUploadInput,
  ImportAdapterVersionInput,
  SetAdapterAliasInput,
} from './types/inputs.js';
import { TrainingJobType } from './types/training-job.js';

@Resolver(() => AdapterType)
export class AdapterResolver {
  @Query(() => [BaseModelType])
  baseModels(@Ctx() ctx: GraphQLContext): BaseModel[] {
    return ctx.services.baseModels.list();
  }

  @Query(() => AdapterType, { nullable: true })
  async adapter(@Ctx() ctx: GraphQLContext, @Arg('id', () => ID) id: string): Promise<Adapter> {
    return ctx.services.adapters.get(ctx.actor, id);
  }

  @Query(() => AdapterType, { nullable: true })
  async adapterByName(@Ctx() ctx: GraphQLContext, @Arg('name', () => String) name: string): Promise<Adapter> {
    return ctx.services.adapters.getByName(ctx.actor, name);
  }

  @Query(() => AdapterConnection)
  async adapters(
    @Ctx() ctx: GraphQLContext,
    @Arg('first', () => Int, { nullable: true }) first: number | null,
    @Arg('after', () => String, { nullable: true }) after: string | null,
  ): Promise<ConnectionShape<Adapter>> {
    const req = pageRequest(first, after);
    return toConnection(await ctx.services.adapters.list(ctx.actor, req.first, req.after), req);
  }

  @Mutation(() => AdapterType)
  async createAdapter(
    @Ctx() ctx: GraphQLContext,
    @Arg('input', () => CreateAdapterInput) input: CreateAdapterInput,
  ): Promise<Adapter> {
    return ctx.services.adapters.create(ctx.actor, input);
  }

  @Mutation(() => UploadType, {
    description: 'A presigned PUT for adapter weights too large to send inline.',
  })
  async createAdapterUpload(
    @Ctx() ctx: GraphQLContext,
    @Arg('input', () => CreateAdapterUploadInput) input: CreateAdapterUploadInput,
  ): Promise<{ id: string } & Omit<UploadTicket, 'uploadId'>> {
    const t = await ctx.services.adapters.createWeightsUpload(ctx.actor, input);
    return { id: t.uploadId, url: t.url, headers: t.headers, expiresAt: t.expiresAt };
  }

  @Mutation(() => AdapterVersionType, { description: 'Import a PEFT adapter as the next version.' })
  async importAdapterVersion(
    @Ctx() ctx: GraphQLContext,
    @Arg('input', () => ImportAdapterVersionInput) input: ImportAdapterVersionInput,
  ): Promise<AdapterVersion> {
    // Inline weights are for small adapters: the /graphql body cap is sized for them (docs/API.md).
    const max = ctx.guards.maxInlineAdapterBytes;
    const inline = input.weightsBase64;
    if (max !== undefined && typeof inline === 'string' && Buffer.byteLength(inline, 'base64') > max) {
      throw new BadInputError(
        `weightsBase64 holds more than ${max} bytes, the inline limit: upload larger weights with createAdapterUpload and import them by uploadId`,
        { details: { field: 'weightsBase64', max } },
      );
    }
    return ctx.services.adapters.importVersion(ctx.actor, input);
  }

  @Mutation(() => AdapterType, { description: 'Point an alias (e.g. production) at a version.' })
  async setAdapterAlias(
    @Ctx() ctx: GraphQLContext,
    @Arg('input', () => SetAdapterAliasInput) input: SetAdapterAliasInput,
  ): Promise<Adapter> {
    return ctx.services.adapters.setAlias(ctx.actor, input);
  }

  @Mutation(() => AdapterType, {
    description:
      'Pin (or unpin) an adapter: the version its bare name serves stays in the gateway memory and batch slots. At most 4 per customer.',
  })
  async setAdapterPinned(
    @Ctx() ctx: GraphQLContext,
    @Arg('adapterId', () => ID) adapterId: string,
    @Arg('pinned', () => Boolean) pinned: boolean,
  ): Promise<Adapter> {
    const adapter = await ctx.services.adapters.setPinned(ctx.actor, adapterId, pinned);
    await ctx.services.generation.applyPin(ctx.actor, adapter);
    return adapter;
  }

  @Mutation(() => Boolean, { description: 'CONFLICT while an alias points at the version.' })
  async deleteAdapterVersion(@Ctx() ctx: GraphQLContext, @Arg('id', () => ID) id: string): Promise<boolean> {
    return ctx.services.adapters.deleteVersion(ctx.actor, id);
  }

  @FieldResolver(() => BaseModelType, { nullable: true })
  baseModel(@Ctx() ctx: GraphQLContext, @Root() adapter: Adapter): BaseModel | null {
    return ctx.services.baseModels.get(adapter.baseModelId);
  }

  @FieldResolver(() => AdapterVersionConnection, { description: 'Ascending by version number.' })
  async versions(
    @Ctx() ctx: GraphQLContext,
    @Root() adapter: Adapter,
    @Arg('first', () => Int, { nullable: true }) first: number | null,
    @Arg('after', () => String, { nullable: true }) after: string | null,
  ): Promise<ConnectionShape<AdapterVersion>> {
    const req = pageRequest(first, after);
    return sliceConnection(await ctx.loaders.versionsByAdapter.load(adapter.id), req);
  }

  @FieldResolver(() => AdapterVersionType, { nullable: true })
  async latestVersion(@Ctx() ctx: GraphQLContext, @Root() adapter: Adapter): Promise<AdapterVersion | null> {
    return (await ctx.loaders.versionsByAdapter.load(adapter.id)).at(-1) ?? null;
  }

  @FieldResolver(() => [AdapterAliasType])
  async aliases(@Ctx() ctx: GraphQLContext, @Root() adapter: Adapter): Promise<AdapterAlias[]> {
    return ctx.loaders.aliasesByAdapter.load(adapter.id);
  }
}

@Resolver(() => AdapterVersionType)
export class AdapterVersionResolver {
  @Query(() => AdapterVersionType, { nullable: true })
  async adapterVersion(@Ctx() ctx: GraphQLContext, @Arg('id', () => ID) id: string): Promise<AdapterVersion> {
    return ctx.services.adapters.getVersion(ctx.actor, id);
  }

  @FieldResolver(() => AdapterType)
  async adapter(@Ctx() ctx: GraphQLContext, @Root() version: AdapterVersion): Promise<Adapter> {
    const a = await ctx.loaders.adapter.load(version.adapterId);
    if (a === null) throw new NotFoundError('adapter', version.adapterId);
    return a;
  }

  @FieldResolver(() => DatasetType, { nullable: true, description: 'The training dataset; null if deleted.' })
  async dataset(@Ctx() ctx: GraphQLContext, @Root() version: AdapterVersion): Promise<Dataset | null> {
    return version.datasetId === null ? null : ctx.loaders.dataset.load(version.datasetId);
  }

  @FieldResolver(() => TrainingJobType, { nullable: true })
  async trainingJob(
    @Ctx() ctx: GraphQLContext,
    @Root() version: AdapterVersion,
  ): Promise<TrainingJob | null> {
    return version.trainingJobId === null ? null : ctx.loaders.trainingJob.load(version.trainingJobId);
  }

  @FieldResolver(() => String, {
    description: 'Presigned GET of adapter_model.safetensors (valid one hour).',
  })
  async downloadUrl(@Ctx() ctx: GraphQLContext, @Root() version: AdapterVersion): Promise<string> {
    return (await ctx.services.adapters.downloadUrl(ctx.actor, version)).url;
  }

  @FieldResolver(() => [String], { description: 'Aliases pointing at this version.' })
  async aliases(@Ctx() ctx: GraphQLContext, @Root() version: AdapterVersion): Promise<string[]> {
    const all = await ctx.loaders.aliasesByAdapter.load(version.adapterId);
    return all.filter((a) => a.versionId === version.id).map((a) => a.alias);
  }
}

@Resolver(() => AdapterAliasType)
export class AdapterAliasResolver {
  @FieldResolver(() => AdapterVersionType)
  async version(@Ctx() ctx: GraphQLContext, @Root() alias: AdapterAlias): Promise<AdapterVersion> {
    const v = await ctx.loaders.adapterVersion.load(alias.versionId);
    if (v === null) throw new NotFoundError('adapter version', alias.versionId);
    return v;
  }
}
