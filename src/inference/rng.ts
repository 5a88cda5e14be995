/**
 * A small seeded PRNG (xoshiro128**, seeded through splitmix32) with a serialisable state, so sampling is
 * reproducible per seed and training can checkpoint/restore it exactly (dropout masks, data shuffling).
 * Not cryptographic. Used by sampler.ts; the trainer stores `getState()` in its checkpoints.
 */
import { BadInputError } from '../shared/errors.js';

/** Four uint32 words; any value not all zero is a valid state. */
export type RngState = [number, number, number, number];

const rotl = (x: number, k: number): number => ((x << k) | (x >>> (32 - k))) >>> 0;

export class Rng {
  private s: Uint32Array = new Uint32Array(4);

  /** `seed`: any safe integer (or a float, whose bits are hashed); same seed ⇒ same stream. */
  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new BadInputError(`rng seed must be a finite number, got ${seed}`);
    // splitmix32 over both 32-bit halves of the seed spreads small seeds (0, 1, 2…) into unrelated states.
    let x = (seed >>> 0) ^ Math.imul(Math.floor(seed / 2 ** 32) >>> 0, 0x9e3779b9);
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if (this.s.every((v) => v === 0)) this.s[0] = 1;
  }

  /** The next uint32 (xoshiro128** 1.1). */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits (two draws). */
  nextFloat(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 2 ** 26 + lo) / 2 ** 53;
  }

  getState(): RngState {
    return [this.s[0]!, this.s[1]!, this.s[2]!, this.s[3]!];
  }

  setState(state: readonly number[]): void {
    if (state.length !== 4 || state.some((v) => !Number.isInteger(v) || v < 0 || v > 0xffffffff)) {
      throw new BadInputError(`rng state must be four uint32 words, got ${JSON.stringify(state)}`);
    }
    if (state.every((v) => v === 0)) throw new BadInputError('rng state must not be all zero');
    this.s.set(state);
  }

  /** A fresh generator at the given state. */
  static fromState(state: readonly number[]): Rng {
    const r = new Rng(0);
    r.setState(state);
    return r;
  }
}
