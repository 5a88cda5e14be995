/**
 * The custom scalars of the schema, from graphql-scalars: `JSON` (HF configs, adapter configs, metrics,
 * presigned headers), `SafeInt` (byte, token and parameter counts past 2^31) and `DateTime` (ISO-8601,
 * graphql-scalars' DateTimeISO under the conventional name).
 */
import { GraphQLDateTimeISO, GraphQLJSON, GraphQLSafeInt } from 'graphql-scalars';
import { graphql } from './graphql-runtime.js';

export const JSONScalar = GraphQLJSON;
export const SafeIntScalar = GraphQLSafeInt;
export const DateTimeScalar = new graphql.GraphQLScalarType({
  ...GraphQLDateTimeISO.toConfig(),
  name: 'DateTime',
  description: 'An ISO-8601 timestamp in UTC, e.g. 2026-01-31T12:00:00.000Z.',
});
