/**
 * KvCache state transitions: empty (no past, mask over the new tokens only), after a left-padded prefill,
 * after a decode step, and full. The numerical use of the cache is in batch-decoder.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { HostTensor } from '../../src/engine/ir/types.js';
import { CacheFullError, KvCache } from '../../src/inference/kv-cache.js';

/** present.{0}.key/value for 2 rows, 1 kv head, D = 2, T tokens: value = 100·b + 10·t + d (+0.5 for V). */
function present(t: number): Record<string, HostTensor> {
  const k = new Float32Array(2 * t * 2);
  for (let b = 0; b < 2; b++)
    for (let j = 0; j < t; j++) for (let d = 0; d < 2; d++) k[(b * t + j) * 2 + d] = 100 * b + 10 * j + d;
  return {
    'present.0.key': { dtype: 'float32', shape: [2, 1, t, 2], data: k },
    'present.0.value': { dtype: 'float32', shape: [2, 1, t, 2], data: k.map((x) => x + 0.5) },
  };
}

const mask = (m: HostTensor) => Array.from(m.data as BigInt64Array, Number);

describe('KvCache', () => {
  it('walks empty → prefill → decode → full', () => {
    const c = new KvCache(1, 2, 1, 4, 2);
    expect(c.pastWidth).toBe(0);
    expect(c.pastFeeds()['past.0.key']!.shape).toEqual([2, 1, 0, 2]);
    // Prefill: row 0 has 3 real tokens, row 1 is left-padded by one.
    const pre = Uint8Array.from([1, 1, 1, 0, 1, 1]);
    expect(mask(c.attentionMask(pre, 3))).toEqual([1, 1, 1, 0, 1, 1]);
    c.append(present(3), pre, 3);
    expect(c.length).toBe(3);
    expect(Array.from(c.valid)).toEqual([1, 1, 1, 0, 0, 1, 1, 0]);
    expect(Array.from(c.keys[0]!)).toEqual([0, 1, 10, 11, 20, 21, 0, 0, 100, 101, 110, 111, 120, 121, 0, 0]);
    expect(c.values[0]![2]).toBe(10.5);
    // Decode: the whole capacity is past; unused and padding slots are masked.
    expect(c.pastWidth).toBe(4);
    expect(c.pastFeeds()['past.0.value']!.data).toBe(c.values[0]);
    const one = Uint8Array.from([1, 1]);
    expect(mask(c.attentionMask(one, 1))).toEqual([1, 1, 1, 0, 1, 0, 1, 1, 0, 1]);
    c.append(present(1), one, 1);
    expect(c.length).toBe(4);
    expect(Array.from(c.valid)).toEqual([1, 1, 1, 1, 0, 1, 1, 1]);
    expect(Array.from(c.keys[0]!.subarray(6, 8))).toEqual([0, 1]);
    expect(Array.from(c.keys[0]!.subarray(14, 16))).toEqual([100, 101]);
    expect(() => c.append(present(1), one, 1)).toThrow(CacheFullError);
    expect(c.bytes).toBe(2 * 16 * 4 + 8);
  });
});
