/**
 * Dataset, its validation errors, the presigned DatasetUpload ticket and the adapter-weights Upload ticket.
 */
import { Field, ID, Int, ObjectType } from 'type-graphql';
import { DateTimeScalar, JSONScalar, SafeIntScalar } from '../scalars.js';
import { DatasetFormatEnum, DatasetStatusEnum } from './enums.js';

@ObjectType('DatasetError', { description: 'A validation error; line 0 is about the file as a whole.' })
export class DatasetErrorType {
  @Field(() => Int)
  line!: number;

  @Field(() => String)
  message!: string;
}

@ObjectType('Dataset')
export class DatasetType {
  @Field(() => ID)
  id!: string;

  @Field(() => String)
  name!: string;

  @Field(() => DatasetFormatEnum)
  format!: keyof typeof DatasetFormatEnum;

  @Field(() => DatasetStatusEnum)
  status!: keyof typeof DatasetStatusEnum;

  @Field(() => Int, { nullable: true })
  rowCount!: number | null;

  @Field(() => SafeIntScalar, {
    nullable: true,
    description: 'Tokens of all text fields with the built-in tokenizer.',
  })
  tokenCount!: number | null;

  @Field(() => SafeIntScalar, { nullable: true })
  sizeBytes!: number | null;

  @Field(() => String, { nullable: true })
  sha256!: string | null;

  @Field(() => [DatasetErrorType])
  errors!: DatasetErrorType[];

  @Field(() => DateTimeScalar)
  createdAt!: string;

  @Field(() => DateTimeScalar)
  updatedAt!: string;
}

@ObjectType('DatasetUpload', {
  description: 'PUT the file to `url` with exactly `headers`, then completeDatasetUpload.',
})
export class DatasetUploadType {
  @Field(() => DatasetType)
  dataset!: DatasetType;

  @Field(() => ID)
  uploadId!: string;

  @Field(() => String)
  url!: string;

  @Field(() => JSONScalar, { description: 'Header name → value, to send with the PUT.' })
  headers!: Record<string, string>;

  @Field(() => DateTimeScalar)
  expiresAt!: Date;
}

@ObjectType('Upload', {
  description: 'A presigned PUT for adapter weights; pass `id` to importAdapterVersion.',
})
export class UploadType {
  @Field(() => ID)
  id!: string;

  @Field(() => String)
  url!: string;

  @Field(() => JSONScalar)
  headers!: Record<string, string>;

  @Field(() => DateTimeScalar)
  expiresAt!: Date;
}
