/**
 * The API guards in one import for the server (`src/http/graphql.ts`): validation rules that refuse depth
 * bombs, alias batches, expensive operations and more than one generation before execution, the page-size
 * rule connection resolvers apply, the per-key rate limiter and the per-customer generation token budget.
 * `securityRules()` gives the defaults the server uses.
 */
import { aliasLimit } from './alias-limit.js';
import { costLimit } from './cost-limit.js';
import { depthLimit } from './depth-limit.js';
import { generationLimit } from './generation-limit.js';

export { aliasLimit } from './alias-limit.js';
export { costLimit, type CostOptions } from './cost-limit.js';
export { depthLimit } from './depth-limit.js';
export { GENERATION_FIELDS, generationLimit } from './generation-limit.js';
export {
  createGenerationBudget,
  DEFAULT_MAX_TOKENS,
  generationCost,
  type GenerationBudget,
  type GenerationBudgetOptions,
  type GenerationRequestShape,
  type GenerationReservation,
} from './generation-budget.js';
export { defaultPageSize, maxPageSize, pageSize, PageSizeError } from './page-size.js';
export {
  createRateLimiter,
  RateLimitExceededError,
  type RateLimiter,
  type RateLimiterOptions,
} from './rate-limiter.js';

export const DEFAULT_LIMITS = {
  depth: 10,
  aliases: 30,
  cost: 10_000,
  defaultListSize: 10,
  generations: 1,
} as const;

/** The validation rules with the defaults above; pass them to Apollo's `validationRules`. */
export function securityRules(limits: Partial<typeof DEFAULT_LIMITS> = {}) {
  const l = { ...DEFAULT_LIMITS, ...limits };
  return [
    depthLimit(l.depth),
    aliasLimit(l.aliases),
    costLimit(l.cost, { defaultListSize: l.defaultListSize }),
    generationLimit(l.generations),
  ];
}
