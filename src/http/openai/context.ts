/**
 * What every `/v1` route shares: its options (the same services, per-key rate limiter and generation token
 * budget as /graphql), authentication from the headers alone before the body is read — `authorize` of
 * src/http/graphql.ts, so a bad key or an empty bucket is answered without reading the body — and the one
 * rule that turns OpenAI's `model` into a generation reference: a registered base model id means that base
 * model without an adapter; anything else is an adapter reference (`name`, `name@alias`, `name@vN`, a
 * version id) resolved in the caller's tenant exactly as GraphQL's `adapter` is.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { GenerationBudget, RateLimiter } from '../../resolvers/security/index.js';
import type { CustomerActor, Services } from '../../services/index.js';
import type { GenerateInput } from '../../services/generation.js';
import { closeAfterResponse } from '../body.js';
import { authorize } from '../graphql.js';
import { OpenAIError, sendOpenAIError, toOpenAIError } from './errors.js';

export interface OpenAIOptions {
  services: Services;
  /** The per-key request limiter /graphql charges (one bucket per key across both APIs). */
  limiter: RateLimiter;
  /** The per-customer generation token budget GraphQL's generate charges; absent: not enforced. */
  generationBudget?: GenerationBudget;
  logger: Logger;
  /** POST bodies above this are refused with 413 (before reading when Content-Length says so). */
  maxBodyBytes: number;
}

/**
 * The caller, from `Authorization: Bearer …` alone: 401 for a missing or bad key, 429 past the key's request
 * limit, 403 for the admin key (it manages customers; it has no adapters and no token quota to generate with).
 */
export async function authenticate(o: OpenAIOptions, req: IncomingMessage): Promise<CustomerActor> {
  const header = req.headers.authorization;
  const actor = await authorize(
    o.services,
    o.limiter,
    typeof header === 'string' ? header : null,
    req.socket.remoteAddress ?? 'unknown',
  );
  if (actor.role !== 'CUSTOMER')
    throw new OpenAIError(
      403,
      "The admin key does not act for a tenant: use a customer's API key.",
      'permission_error',
      null,
      'permission_denied',
    );
  return actor;
}

/** Answers a request refused before its body was read; the unread rest is not waited for. */
export function refuseBeforeBody(
  req: IncomingMessage,
  res: ServerResponse,
  err: unknown,
  logger: Logger,
): void {
  if (!req.complete) closeAfterResponse(req, res);
  sendOpenAIError(res, toOpenAIError(err, logger, { rateLimitType: 'requests' }));
}

/** OpenAI's `model` as the generation service's reference: a base model id, else an adapter reference. */
export function modelInput(
  services: Services,
  model: string,
): Pick<GenerateInput, 'adapter' | 'baseModelId'> {
  return services.baseModels.get(model) !== null
    ? { adapter: null, baseModelId: model }
    : { adapter: model, baseModelId: null };
}
