/**
 * Builds the executable GraphQL schema from the type-graphql resolvers. Used by the server (src/main.ts)
 * and by `npm run schema` (scripts/print-schema.ts), whose output is the checked-in schema/schema.graphql;
 * test/resolvers/schema.test.ts fails when the two differ.
 */
import 'reflect-metadata';
import type { GraphQLSchema } from 'graphql';
import { buildSchema } from 'type-graphql';
import { AdapterAliasResolver, AdapterResolver, AdapterVersionResolver } from './adapter-resolver.js';
import { guardSchemaArguments } from './argument-guard.js';
import { CustomerResolver } from './customer-resolver.js';
import { DatasetResolver } from './dataset-resolver.js';
import {
  AdapterLineageResolver,
  AdapterVersionParentResolver,
  DerivedJobResolver,
  JobArtifactResolver,
} from './derived-version-resolver.js';
import { GenerationResolver } from './generation-resolver.js';
import { graphql } from './graphql-runtime.js';
import { TrainingJobResolver } from './training-job-resolver.js';

/** Resolver classes; later issues append theirs here. */
export const RESOLVERS = [
  CustomerResolver,
  DatasetResolver,
  AdapterResolver,
  AdapterVersionResolver,
  AdapterAliasResolver,
  TrainingJobResolver,
  DerivedJobResolver,
  JobArtifactResolver,
  AdapterLineageResolver,
  AdapterVersionParentResolver,
  GenerationResolver,
] as const;

/**
 * type-graphql insists on a PubSub once any @Subscription exists, even when every subscription brings its
 * own `subscribe` (ours do: the progress bus and the generation stream, src/queue and src/services).
 */
const NO_PUBSUB = {
  publish: () => undefined,
  subscribe: (): AsyncIterable<unknown> => {
    throw new Error('subscriptions here use their own subscribe functions');
  },
};

let cached: Promise<GraphQLSchema> | null = null;

/**
 * type-graphql keeps global metadata, so the schema is built once per process and shared. Every argument is
 * checked before its resolver runs (argument-guard.ts: id shapes, no NUL or control characters in strings).
 */
export function buildDeltagateSchema(): Promise<GraphQLSchema> {
  cached ??= buildSchema({
    resolvers: [...RESOLVERS],
    validate: false,
    emitSchemaFile: false,
    pubSub: NO_PUBSUB,
  }).then(guardSchemaArguments);
  return cached;
}

/** The SDL as checked in: sorted so the file only changes when the schema does. */
export async function printDeltagateSchema(): Promise<string> {
  return graphql.printSchema(graphql.lexicographicSortSchema(await buildDeltagateSchema())) + '\n';
}
