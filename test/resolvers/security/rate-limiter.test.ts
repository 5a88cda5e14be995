/**
 * The per-key token bucket on an injected clock: burst, refusal with RATE_LIMITED and a retry-after, refill,
 * isolation between keys, and bounded memory under many keys.
 */
import { describe, expect, it } from 'vitest';
import { RateLimitedError } from '../../../src/shared/errors.js';
import {
  createGenerationBudget,
  createRateLimiter,
  generationCost,
  RateLimitExceededError,
} from '../../../src/resolvers/security/index.js';
import type { Actor } from '../../../src/services/index.js';

function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('createRateLimiter', () => {
  it('lets a burst through, then refuses with RATE_LIMITED and when to retry', () => {
    const c = clock();
    const rl = createRateLimiter({ perMinute: 60, now: c.now });
    for (let i = 0; i < 60; i++) rl.consume('key-a');
    let err: unknown;
    try {
      rl.consume('key-a');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RateLimitedError);
    expect(err).toBeInstanceOf(RateLimitExceededError);
    expect([(err as RateLimitExceededError).code, (err as RateLimitExceededError).retryAfterSeconds]).toEqual(
      ['RATE_LIMITED', 1],
    );
  });

  it('refills continuously at perMinute/60 a second, up to the burst', () => {
    const c = clock();
    const rl = createRateLimiter({ perMinute: 120, burst: 10, now: c.now });
    for (let i = 0; i < 10; i++) expect(rl.tryConsume('k')).toBe(true);
    expect(rl.tryConsume('k')).toBe(false);
    c.advance(500); // 1 token back
    expect([rl.tryConsume('k'), rl.tryConsume('k')]).toEqual([true, false]);
    c.advance(3_600_000);
    expect(rl.remaining('k')).toBe(10);
  });

  it('does not slow other keys when one is bursting', () => {
    const c = clock();
    const rl = createRateLimiter({ perMinute: 5, now: c.now });
    for (let i = 0; i < 5; i++) rl.consume('noisy');
    expect(() => rl.consume('noisy')).toThrow(RateLimitExceededError);
    expect(() => rl.consume('quiet')).not.toThrow();
    expect(rl.remaining('quiet')).toBe(4);
  });

  it('keeps memory bounded: full buckets are forgotten past maxKeys', () => {
    const c = clock();
    const rl = createRateLimiter({ perMinute: 60, now: c.now, maxKeys: 100 });
    for (let i = 0; i < 100; i++) rl.consume(`k${i}`);
    expect(rl.size).toBe(100);
    c.advance(60_000); // all refilled
    rl.consume('new');
    expect(rl.size).toBe(1);
    expect(() => createRateLimiter({ perMinute: 0 })).toThrow(RangeError);
  });
});

describe('createGenerationBudget', () => {
  const customer = (customerId: string, apiKeyId = `key-${customerId}`): Actor => ({
    role: 'CUSTOMER',
    customerId,
    apiKeyId,
  });

  it('costs maxTokens (default 64) plus the prompt: ids exactly, text and messages at 4 UTF-8 bytes a token', () => {
    expect([
      generationCost({ prompt: 'Hello', maxTokens: 10 }),
      generationCost({ promptIds: [1, 2, 3], maxTokens: 10 }),
      generationCost({ prompt: '' }),
      generationCost({ prompt: 'é'.repeat(4), maxTokens: 1 }),
      generationCost({ prompt: 'x', maxTokens: -5 }),
      generationCost({
        messages: [
          { role: 'system', content: 'Be brief.' },
          { role: 'user', content: 'Hi' },
        ],
        maxTokens: 10,
      }),
    ]).toEqual([12, 13, 64, 3, 65, 10 + (4 + 3) + (4 + 1)]);
  });

  it('charges per customer (every key of it), refuses past the budget, and settles what was unused', () => {
    const c = clock();
    const budget = createGenerationBudget({ tokensPerMinute: 100, now: c.now });
    const a = budget.reserve(customer('a', 'k1'), { promptIds: [1], maxTokens: 59 }); // 60
    expect(a.tokens).toBe(60);
    let err: unknown;
    try {
      budget.reserve(customer('a', 'k2'), { promptIds: [1], maxTokens: 59 }); // another key, same customer
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RateLimitExceededError);
    expect((err as RateLimitExceededError).retryAfterSeconds).toBe(12); // 20 tokens missing at 100/min
    // Another customer has its own bucket.
    expect(budget.reserve(customer('b'), { promptIds: [1], maxTokens: 59 }).tokens).toBe(60);
    // The first generation used 10 of its 60: 50 come back, once.
    a.settle(10);
    a.settle(0);
    expect(budget.reserve(customer('a'), { promptIds: [1], maxTokens: 89 }).tokens).toBe(90);
    expect(() => budget.reserve(customer('a'), { promptIds: [], maxTokens: 1 })).toThrow(
      RateLimitExceededError,
    );
  });

  it('lets a request bigger than the bucket run once the bucket is full', () => {
    const c = clock();
    const budget = createGenerationBudget({ tokensPerMinute: 100, now: c.now });
    expect(budget.reserve({ role: 'ADMIN' }, { prompt: 'x', maxTokens: 5000 }).tokens).toBe(100);
    expect(() => budget.reserve({ role: 'ADMIN' }, { maxTokens: 5000 })).toThrow(RateLimitExceededError);
    c.advance(60_000);
    expect(budget.reserve({ role: 'ADMIN' }, { maxTokens: 5000 }).tokens).toBe(100);
  });
});
