/**
 * Adapter, AdapterVersion and AdapterAlias. Scalar fields mirror the repository objects; relations
 * (baseModel, versions, aliases, latestVersion, dataset, trainingJob, downloadUrl) are field resolvers in
 * ../adapter-resolver.ts, batched with the request's DataLoaders.
 */
import { Field, Float, ID, Int, ObjectType } from 'type-graphql';
import { connectionType } from '../pagination.js';
import { DateTimeScalar, JSONScalar, SafeIntScalar } from '../scalars.js';

@ObjectType('Adapter')
export class AdapterType {
  @Field(() => ID)
  id!: string;

  @Field(() => String)
  name!: string;

  @Field(() => String, { nullable: true })
  description!: string | null;

  @Field(() => ID)
  baseModelId!: string;

  @Field(() => Boolean, { description: 'Kept in the gateway memory and batch slots (setAdapterPinned).' })
  pinned!: boolean;

  @Field(() => DateTimeScalar)
  createdAt!: string;
}

@ObjectType('AdapterVersion', { description: 'An immutable, numbered version stored in the PEFT layout.' })
export class AdapterVersionType {
  @Field(() => ID)
  id!: string;

  @Field(() => Int)
  version!: number;

  @Field(() => Int)
  rank!: number;

  @Field(() => Float)
  alpha!: number;

  @Field(() => [String])
  targetModules!: string[];

  @Field(() => SafeIntScalar, { description: 'Size of adapter_model.safetensors.' })
  sizeBytes!: number;

  @Field(() => String, { description: 'SHA-256 (hex) of adapter_model.safetensors.' })
  sha256!: string;

  @Field(() => JSONScalar, { nullable: true })
  metrics!: Record<string, unknown> | null;

  @Field(() => DateTimeScalar)
  createdAt!: string;
}

@ObjectType('AdapterAlias')
export class AdapterAliasType {
  @Field(() => String)
  alias!: string;

  @Field(() => DateTimeScalar)
  updatedAt!: string;

  /** Resolved by the field resolver from `versionId`. */
  versionId!: string;
}

export const AdapterConnection = connectionType('Adapter', AdapterType);
export const AdapterVersionConnection = connectionType('AdapterVersion', AdapterVersionType);
