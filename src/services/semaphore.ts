/**
 * Small in-process concurrency limits for the services: `Semaphore` (at most N at once, a bounded FIFO of
 * waiters, RATE_LIMITED past it) and `KeyedMutex` (one at a time per key). Used by adapters.ts so concurrent
 * imports wait their turn instead of failing.
 */
import { RateLimitedError } from '../shared/errors.js';

export class Semaphore {
  private active = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(
    private readonly permits: number,
    /** Callers allowed to wait; one more is refused with RATE_LIMITED. */
    private readonly maxWaiting: number,
    /** What a refusal says (e.g. "too many adapter imports at once"). */
    private readonly what = 'too many requests at once',
    /** The retry hint of a refusal, in seconds. */
    private readonly retryAfterSeconds = 5,
  ) {
    if (!Number.isSafeInteger(permits) || permits < 1)
      throw new TypeError('permits must be a positive integer');
    if (!Number.isSafeInteger(maxWaiting) || maxWaiting < 0)
      throw new TypeError('maxWaiting must be a non-negative integer');
  }

  /** Runs `fn` when a permit is free (FIFO); RATE_LIMITED at once when `maxWaiting` callers already wait. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.permits) {
      if (this.waiters.length >= this.maxWaiting) {
        throw new RateLimitedError(
          `${this.what}: ${this.active} running and ${this.waiters.length} waiting; try again shortly`,
          this.retryAfterSeconds,
        );
      }
      // The releasing caller hands its permit over directly, so `active` stays counted.
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    } else {
      this.active++;
    }
    try {
      return await fn();
    } finally {
      const next = this.waiters.shift();
      if (next !== undefined) next();
      else this.active--;
    }
  }

  /** Running and waiting callers (tests, metrics). */
  stats(): { active: number; waiting: number } {
    return { active: this.active, waiting: this.waiters.length };
  }
}

/** One holder at a time per key; others queue behind in arrival order. Keys with no holder are forgotten. */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
