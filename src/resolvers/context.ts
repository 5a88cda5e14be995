/**
 * The per-request GraphQL context: the authenticated Actor (never null: unauthenticated requests are refused
 * before execution, src/http/graphql.ts), the service bundle and this request's DataLoaders. Resolvers read
 * only this.
 */
import type { Logger } from 'pino';
import type { Actor, Services } from '../services/index.js';
import { createLoaders, type Loaders } from './loaders.js';

export interface GraphQLContext {
  actor: Actor;
  services: Services;
  loaders: Loaders;
  logger: Logger;
  /** Aborted when the client goes away before the answer (the HTTP connection closed): long work stops. */
  signal?: AbortSignal;
}

export function createContext(
  actor: Actor,
  services: Services,
  logger: Logger,
  signal?: AbortSignal,
): GraphQLContext {
  return { actor, services, loaders: createLoaders(actor, services), logger, ...(signal ? { signal } : {}) };
}
