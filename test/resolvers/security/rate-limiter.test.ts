/**
 * The per-key token bucket on an injected clock: burst, refusal with RATE_LIMITED and a retry-after, refill,
 * isolation between keys, and bounded memory under many keys.
 */
import { describe, expect, it } from 'vitest';
import { RateLimitedError } from '../../../src/shared/errors.js';
import { createRateLimiter, RateLimitExceededError } from '../../../src/resolvers/security/index.js';

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
