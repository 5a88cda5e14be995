/**
 * Derived versions and exports over GraphQL: the deriveAdapterVersion / exportAdapterVersion mutations (jobs
 * on the training queue: TrainingJob with `kind`, the same trainingJobProgress stream and cancel), a version's
 * lineage (`parents`, `derivation`) and an EXPORT job's `artifact` with its presigned `downloadUrl`. Thin:
 * the rules are src/services/derived-jobs.ts; the run is src/training/derive-handler.ts.
 */
import { Arg, Ctx, FieldResolver, Mutation, Resolver, Root } from 'type-graphql';
import type {
  AdapterVersion,
  AdapterVersionParent,
  Derivation,
} from '../db/repositories/adapter-versions.js';
import type { JobArtifact, TrainingJob } from '../db/repositories/training-jobs.js';
import type { GraphQLContext } from './context.js';
import { AdapterVersionType } from './types/adapter.js';
import {
  AdapterDerivationType,
  AdapterVersionParentType,
  DeriveAdapterVersionInput,
  ExportAdapterVersionInput,
  JobArtifactType,
} from './types/derived.js';
import { TrainingJobType } from './types/training-job.js';

/** An artifact with the job it belongs to (its downloadUrl's errors name the job). */
type ArtifactOfJob = JobArtifact & { jobId: string; job: TrainingJob };

@Resolver(() => TrainingJobType)
export class DerivedJobResolver {
  @Mutation(() => TrainingJobType, {
    description:
      'Queue a SHRINK or MERGE of stored versions; success registers the next version of `adapterId` with its parents and report. Progress on trainingJobProgress; cancel with cancelTrainingJob.',
  })
  async deriveAdapterVersion(
    @Ctx() ctx: GraphQLContext,
    @Arg('input', () => DeriveAdapterVersionInput) input: DeriveAdapterVersionInput,
  ): Promise<TrainingJob> {
    return ctx.services.derivedJobs.derive(ctx.actor, {
      adapterId: input.adapterId,
      operation: input.operation,
      sources: input.sources.map((s) => ({ versionId: s.versionId, weight: s.weight ?? null })),
      method: input.method ?? null,
      rank: input.rank ?? null,
      energy: input.energy ?? null,
      idempotencyKey: input.idempotencyKey ?? null,
      promote: input.promote ?? null,
    });
  }

  @Mutation(() => TrainingJobType, {
    description:
      "Queue an EXPORT: the version merged into its base model as GGUF or an HF .tar, downloadable from the job's artifact.",
  })
  async exportAdapterVersion(
    @Ctx() ctx: GraphQLContext,
    @Arg('input', () => ExportAdapterVersionInput) input: ExportAdapterVersionInput,
  ): Promise<TrainingJob> {
    return ctx.services.derivedJobs.export(ctx.actor, {
      versionId: input.versionId,
      format: input.format,
      quantize: input.quantize ?? null,
      idempotencyKey: input.idempotencyKey ?? null,
    });
  }

  @FieldResolver(() => JobArtifactType, {
    nullable: true,
    description:
      "An EXPORT job's file once it SUCCEEDED; null before, and once expired or its version deleted.",
  })
  artifact(@Root() job: TrainingJob): ArtifactOfJob | null {
    return job.artifact === null ? null : { ...job.artifact, jobId: job.id, job };
  }
}

@Resolver(() => JobArtifactType)
export class JobArtifactResolver {
  @FieldResolver(() => String, {
    description:
      'Presigned GET of the file (valid one hour), after its size and SHA-256 are checked against the record.',
  })
  async downloadUrl(@Ctx() ctx: GraphQLContext, @Root() artifact: ArtifactOfJob): Promise<string> {
    return ctx.services.derivedJobs.artifactUrl(ctx.actor, artifact.job, artifact);
  }
}

@Resolver(() => AdapterVersionType)
export class AdapterLineageResolver {
  @FieldResolver(() => [AdapterVersionParentType], {
    description: 'The versions this one was derived from, in order, with their weights; [] if not derived.',
  })
  async parents(
    @Ctx() ctx: GraphQLContext,
    @Root() version: AdapterVersion,
  ): Promise<AdapterVersionParent[]> {
    return ctx.loaders.parentsByVersion.load(version.id);
  }

  @FieldResolver(() => AdapterDerivationType, {
    nullable: true,
    description: 'How this version was derived (SHRINK / MERGE); null for trained and imported versions.',
  })
  derivation(@Root() version: AdapterVersion): Derivation | null {
    return version.derivation;
  }
}

@Resolver(() => AdapterVersionParentType)
export class AdapterVersionParentResolver {
  @FieldResolver(() => AdapterVersionType, {
    nullable: true,
    description: 'null once the parent is deleted.',
  })
  async version(
    @Ctx() ctx: GraphQLContext,
    @Root() parent: AdapterVersionParent,
  ): Promise<AdapterVersion | null> {
    return ctx.loaders.adapterVersion.load(parent.parentVersionId);
  }

  @FieldResolver(() => String)
  versionId(@Root() parent: AdapterVersionParent): string {
    return parent.parentVersionId;
  }
}
