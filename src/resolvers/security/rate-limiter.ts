/**
 * `createRateLimiter({ perMinute })`: one token bucket per key (an API key id, or an IP for anonymous calls),
 * refilled continuously at perMinute/60 tokens a second up to a burst of `burst` (default perMinute).
 * `consume(key, cost)` throws `RateLimitExceededError` (code RATE_LIMITED) with the seconds until `cost`
 * tokens are back; `refund` returns what a reservation did not use. Requests cost 1 (src/http/graphql.ts);
 * generation costs its tokens (./generation-budget.ts). In-process only: each API replica limits on its own.
 */
import { RateLimitedError } from '../../shared/errors.js';

export class RateLimitExceededError extends RateLimitedError {
  constructor(readonly retryAfterSeconds: number) {
    super(`rate limit exceeded; retry in ${retryAfterSeconds} s`, retryAfterSeconds);
  }
}

export interface RateLimiterOptions {
  perMinute: number;
  /** Bucket size: how many requests may arrive at once after idling. Default `perMinute`. */
  burst?: number;
  /** Injectable clock (ms), for tests. */
  now?: () => number;
  /** Buckets kept before full (idle) ones are dropped; bounds memory under many keys. Default 100,000. */
  maxKeys?: number;
}

export interface RateLimiter {
  /** Takes `cost` tokens from `key`'s bucket or throws RateLimitExceededError. */
  consume(key: string, cost?: number): void;
  /** Like consume, but answers instead of throwing. */
  tryConsume(key: string, cost?: number): boolean;
  /** Gives back tokens taken earlier and not used (never above the burst). */
  refund(key: string, tokens: number): void;
  /** Tokens left now (for `X-RateLimit-Remaining`). */
  remaining(key: string): number;
  readonly size: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  const { perMinute, now = () => performance.now(), maxKeys = 100_000 } = options;
  const burst = options.burst ?? perMinute;
  if (!(perMinute > 0) || !(burst >= 1))
    throw new RangeError(`rate limiter needs perMinute > 0 and burst >= 1`);
  const perMs = perMinute / 60_000;
  const buckets = new Map<string, Bucket>();

  const refill = (key: string): Bucket => {
    const t = now();
    let b = buckets.get(key);
    if (b === undefined) {
      if (buckets.size >= maxKeys) sweep(t);
      b = { tokens: burst, at: t };
      buckets.set(key, b);
    } else {
      b.tokens = Math.min(burst, b.tokens + (t - b.at) * perMs);
      b.at = t;
    }
    return b;
  };

  // Drop buckets that would be full by now: forgetting them changes nothing.
  const sweep = (t: number): void => {
    for (const [k, b] of buckets) {
      if (b.tokens + (t - b.at) * perMs >= burst) buckets.delete(k);
    }
  };

  const tryConsume = (key: string, cost = 1): boolean => {
    const b = refill(key);
    if (b.tokens < cost) return false;
    b.tokens -= cost;
    return true;
  };

  return {
    tryConsume,
    consume(key, cost = 1) {
      if (tryConsume(key, cost)) return;
      const b = buckets.get(key)!;
      throw new RateLimitExceededError(Math.max(1, Math.ceil((cost - b.tokens) / perMs / 1000)));
    },
    refund(key, tokens) {
      if (!(tokens > 0)) return;
      const b = refill(key);
      b.tokens = Math.min(burst, b.tokens + tokens);
    },
    remaining(key) {
      return Math.floor(refill(key).tokens);
    },
    get size() {
      return buckets.size;
    },
  };
}
