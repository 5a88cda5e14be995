// The KV slot pool: allocation, row moves and re-striding keep every row's valid prefix intact.
import { describe, expect, it } from 'vitest';
import { KvPool } from '../../src/inference/kv-pool.js';

/** Fills slot s's first `len` positions with values that name (layer, which, slot, head, position, d). */
function fill(pool: KvPool, slot: number, len: number): void {
  pool.lengths[slot] = len;
  for (let l = 0; l < pool.layers; l++)
    for (const [w, buf] of [pool.keys[l]!, pool.values[l]!].entries())
      for (let h = 0; h < pool.kvHeads; h++)
        for (let p = 0; p < len; p++)
          for (let d = 0; d < pool.headDim; d++)
            buf[((slot * pool.kvHeads + h) * pool.stride + p) * pool.headDim + d] = code(l, w, slot, h, p, d);
}
const code = (l: number, w: number, s: number, h: number, p: number, d: number) =>
  ((((l * 2 + w) * 16 + s) * 4 + h) * 512 + p) * 8 + d;

function check(pool: KvPool, slot: number, origin: number, len: number): void {
  expect(pool.lengths[slot]).toBe(len);
  for (let l = 0; l < pool.layers; l++)
    for (const [w, buf] of [pool.keys[l]!, pool.values[l]!].entries())
      for (let h = 0; h < pool.kvHeads; h++)
        for (let p = 0; p < len; p++)
          for (let d = 0; d < pool.headDim; d++)
            if (
              buf[((slot * pool.kvHeads + h) * pool.stride + p) * pool.headDim + d] !==
              code(l, w, origin, h, p, d)
            )
              throw new Error(`slot ${slot} (from ${origin}) layer ${l} head ${h} pos ${p} differs`);
}

describe('KvPool', () => {
  it('allocates the lowest free slot and releases', () => {
    const pool = new KvPool(1, 3, 2, 8, 8);
    expect([pool.allocate(), pool.allocate(), pool.allocate(), pool.allocate()]).toEqual([0, 1, 2, null]);
    pool.release(1);
    expect([pool.free, pool.allocate()]).toEqual([1, 1]);
  });

  it('moves rows (also in a cycle) and re-strides up and down without losing a prefix', () => {
    const pool = new KvPool(2, 4, 2, 256, 8);
    pool.restride(16);
    for (const [s, len] of [
      [0, 5],
      [1, 16],
      [2, 1],
    ] as const) {
      pool.allocate();
      fill(pool, s, len);
    }
    pool.arrange(
      new Map([
        [0, 1],
        [1, 3],
        [2, 0],
      ]),
    );
    check(pool, 1, 0, 5);
    check(pool, 3, 1, 16);
    check(pool, 0, 2, 1);
    expect(pool.isUsed(2)).toBe(false);
    pool.restride(256);
    check(pool, 1, 0, 5);
    check(pool, 3, 1, 16);
    check(pool, 0, 2, 1);
    pool.restride(16);
    check(pool, 1, 0, 5);
    check(pool, 3, 1, 16);
    expect(() => pool.restride(8)).toThrow(/holds 16 > stride 8/);
  });
});
