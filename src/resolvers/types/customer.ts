/**
 * Customer, ApiKey, Usage and Viewer object types (fields mirror the repository objects, so resolvers return
 * those directly). Field resolvers for relations are in ../customer-resolver.ts.
 */
import { Field, ID, Int, ObjectType } from 'type-graphql';
import { DateTimeScalar, SafeIntScalar } from '../scalars.js';
import { Role } from './enums.js';

@ObjectType('Customer')
export class CustomerType {
  @Field(() => ID)
  id!: string;

  @Field(() => String)
  name!: string;

  @Field(() => Int)
  maxAdapters!: number;

  @Field(() => Int)
  maxConcurrentJobs!: number;

  @Field(() => SafeIntScalar, {
    nullable: true,
    description: 'Tokens per calendar month (UTC); null: unlimited.',
  })
  monthlyTokenLimit!: number | null;

  @Field(() => DateTimeScalar)
  createdAt!: string;
}

@ObjectType('ApiKey')
export class ApiKeyType {
  @Field(() => ID)
  id!: string;

  @Field(() => String, { nullable: true })
  name!: string | null;

  @Field(() => String, { description: 'The first characters of the secret, to recognize the key.' })
  prefix!: string;

  @Field(() => DateTimeScalar)
  createdAt!: string;

  @Field(() => DateTimeScalar, { nullable: true })
  lastUsedAt!: string | null;

  @Field(() => DateTimeScalar, { nullable: true })
  revokedAt!: string | null;
}

@ObjectType('Usage', { description: "A customer's usage in one calendar month (UTC)." })
export class UsageType {
  @Field(() => String, { description: 'YYYY-MM' })
  period!: string;

  @Field(() => SafeIntScalar)
  requests!: number;

  @Field(() => SafeIntScalar)
  promptTokens!: number;

  @Field(() => SafeIntScalar)
  completionTokens!: number;
}

@ObjectType('Viewer')
export class ViewerType {
  @Field(() => Role)
  role!: keyof typeof Role;

  @Field(() => CustomerType, {
    nullable: true,
    description: 'The customer of a customer key; null for the admin.',
  })
  customer!: CustomerType | null;

  @Field(() => ApiKeyType, { nullable: true })
  apiKey!: ApiKeyType | null;
}

@ObjectType('CreateCustomerPayload')
export class CreateCustomerPayload {
  @Field(() => CustomerType)
  customer!: CustomerType;

  @Field(() => ApiKeyType, { description: "The customer's first API key." })
  apiKey!: ApiKeyType;

  @Field(() => String, { description: 'The full secret of `apiKey`: shown once, never again.' })
  secret!: string;
}

@ObjectType('CreateApiKeyPayload')
export class CreateApiKeyPayload {
  @Field(() => ApiKeyType)
  apiKey!: ApiKeyType;

  @Field(() => String, { description: 'The full secret: shown once, never again.' })
  secret!: string;
}
