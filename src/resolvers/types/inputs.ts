/**
 * Input types of the contract (PRODUCT.md). Only shapes here: the rules (names, sizes, quotas) are the
 * services', so the same checks hold for every caller.
 */
import { Field, ID, InputType, Int } from 'type-graphql';
import { JSONScalar, SafeIntScalar } from '../scalars.js';
import { DatasetFormatEnum } from './enums.js';

@InputType('CreateCustomerInput')
export class CreateCustomerInput {
  @Field(() => String)
  name!: string;

  @Field(() => Int, { nullable: true })
  maxAdapters?: number | null;

  @Field(() => Int, { nullable: true })
  maxConcurrentJobs?: number | null;

  @Field(() => SafeIntScalar, { nullable: true })
  monthlyTokenLimit?: number | null;
}

@InputType('UploadDatasetInput')
export class UploadDatasetInput {
  @Field(() => String)
  name!: string;

  @Field(() => String, { description: 'The JSONL file.' })
  content!: string;

  @Field(() => DatasetFormatEnum)
  format!: keyof typeof DatasetFormatEnum;
}

@InputType('CreateDatasetUploadInput')
export class CreateDatasetUploadInput {
  @Field(() => String)
  name!: string;

  @Field(() => DatasetFormatEnum)
  format!: keyof typeof DatasetFormatEnum;

  @Field(() => Int, { description: 'Exact size of the file that will be PUT.' })
  sizeBytes!: number;
}

@InputType('CreateAdapterInput')
export class CreateAdapterInput {
  @Field(() => String)
  name!: string;

  @Field(() => ID)
  baseModelId!: string;

  @Field(() => String, { nullable: true })
  description?: string | null;
}

@InputType('CreateAdapterUploadInput')
export class CreateAdapterUploadInput {
  @Field(() => Int, { description: 'Exact size of adapter_model.safetensors.' })
  sizeBytes!: number;
}

@InputType('ImportAdapterVersionInput')
export class ImportAdapterVersionInput {
  @Field(() => ID)
  adapterId!: string;

  @Field(() => JSONScalar, { description: 'adapter_config.json' })
  adapterConfig!: unknown;

  @Field(() => String, { nullable: true, description: 'adapter_model.safetensors, base64.' })
  weightsBase64?: string | null;

  @Field(() => ID, { nullable: true, description: 'Or the id of a completed createAdapterUpload.' })
  uploadId?: string | null;
}

@InputType('SetAdapterAliasInput')
export class SetAdapterAliasInput {
  @Field(() => ID)
  adapterId!: string;

  @Field(() => String)
  alias!: string;

  @Field(() => ID)
  versionId!: string;
}
