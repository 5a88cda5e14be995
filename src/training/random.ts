/**
 * Seeded, splittable pseudo-random numbers for training: shuffling, validation split, dropout masks.
 * Counter-based on purpose: a stream is derived from (seed, purpose, index), so a resumed run draws exactly
 * what an uninterrupted one would without replaying earlier draws. Not a cryptographic generator.
 * The sampler's PRNG for generation lives in `src/inference/rng.ts`.
 */

/** Mixes a 32-bit value (the murmur3 finalizer): used to derive independent stream seeds. */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** A seed for the stream identified by (seed, ...path); equal inputs always give the same seed. */
export function deriveSeed(seed: number, ...path: number[]): number {
  let h = mix32((seed >>> 0) ^ 0x9e3779b9);
  for (const p of path) h = mix32(h ^ mix32((p >>> 0) + 0x7f4a7c15));
  return h;
}

/** mulberry32: a small, fast 32-bit generator whose whole state is one number (`state`). */
export class Rng {
  state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** Standard normal (Box–Muller). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  /** In-place Fisher–Yates shuffle. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = items[i]!;
      items[i] = items[j]!;
      items[j] = tmp;
    }
    return items;
  }
}
