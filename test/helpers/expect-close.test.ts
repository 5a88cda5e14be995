import { describe, expect, it } from 'vitest';
import { expectClose } from './expect-close.js';

describe('expectClose', () => {
  it('passes within tolerance and fails outside it, NaN included', () => {
    expect(() => expectClose([1, 2], [1, 2 + 1e-7])).not.toThrow();
    expect(() => expectClose([1, 2.1], [1, 2], { label: 'x' })).toThrow(/x: not close.*max \|diff\|/);
    expect(() => expectClose([Number.NaN], [0])).toThrow(/not close/);
    expect(() => expectClose([1], [1, 2])).toThrow(/length/);
  });
});
