/**
 * The per-request GraphQL context: the authenticated Actor (never null: unauthenticated requests are refused
 * before execution, src/http/graphql.ts), the service bundle, this request's DataLoaders and the request
 * guards resolvers apply (the generation token budget, the inline adapter limit). Resolvers read only this.
 */
import type { Logger } from 'pino';
import type { Actor, Services } from '../services/index.js';
import { createLoaders, type Loaders } from './loaders.js';
import type { GenerationBudget } from './security/index.js';

/** Limits the transport sets and resolvers enforce (absent: not enforced, as in service-level tests). */
export interface RequestGuards {
  /** Generation reserves its tokens here before the service runs it (src/resolvers/security). */
  generationBudget?: GenerationBudget;
  /** `importAdapterVersion.weightsBase64` decoded size limit; larger weights use createAdapterUpload. */
  maxInlineAdapterBytes?: number;
}

export interface GraphQLContext {
  actor: Actor;
  services: Services;
  loaders: Loaders;
  logger: Logger;
  /** Aborted when the client goes away before the answer (the HTTP connection closed): long work stops. */
  signal?: AbortSignal;
  guards: RequestGuards;
}

export function createContext(
  actor: Actor,
  services: Services,
  logger: Logger,
  signal?: AbortSignal,
  guards: RequestGuards = {},
): GraphQLContext {
  return {
    actor,
    services,
    loaders: createLoaders(actor, services),
    logger,
    ...(signal ? { signal } : {}),
    guards,
  };
}
