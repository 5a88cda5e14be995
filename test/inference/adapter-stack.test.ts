/**
 * Side-load stacks: slot 0 is the zero adapter, ranks are zero-padded to the largest, scales are folded
 * into B, untargeted modules stay zero; validateAdapter refuses matrices that do not fit the base.
 */
import { describe, expect, it } from 'vitest';
import { AdapterShapeMismatchError } from '../../src/engine/formats/peft.js';
import { buildAdapterStack, validateAdapter } from '../../src/inference/adapter-stack.js';
import { randomAdapter, randomCheckpoint } from '../engine/nn/fixtures.js';

describe('buildAdapterStack', () => {
  const { config } = randomCheckpoint();
  it('stacks slots, pads ranks, folds scales', () => {
    const a = randomAdapter(config, 2, 1, ['q_proj'], 4); // scale 2
    const b = randomAdapter(config, 3, 2, ['q_proj', 'v_proj'], 3); // scale 1
    const { slots, rank, feeds } = buildAdapterStack(config, [a, b], ['q_proj', 'v_proj']);
    expect([slots, rank]).toEqual([3, 3]);
    expect(Object.keys(feeds)).toEqual([
      'lora.0.q_proj.A',
      'lora.0.q_proj.B',
      'lora.0.v_proj.A',
      'lora.0.v_proj.B',
      'lora.1.q_proj.A',
      'lora.1.q_proj.B',
      'lora.1.v_proj.A',
      'lora.1.v_proj.B',
    ]);
    const C = config.hiddenSize;
    const qA = feeds['lora.0.q_proj.A']!;
    const qB = feeds['lora.0.q_proj.B']!;
    const out = config.numHeads * config.headDim;
    expect(qA.shape).toEqual([3, 3, C]);
    expect(qB.shape).toEqual([3, out, 3]);
    const A = qA.data as Float32Array;
    const B = qB.data as Float32Array;
    // slot 0: all zero
    expect(A.subarray(0, 3 * C).every((x) => x === 0)).toBe(true);
    expect(B.subarray(0, out * 3).every((x) => x === 0)).toBe(true);
    // slot 1 (a, rank 2): rows 0-1 = a.A, row 2 zero; B columns 0-1 = 2·a.B, column 2 zero
    const wa = a.weights.get('0.q_proj')!;
    expect(Array.from(A.subarray(3 * C, 3 * C + 2 * C))).toEqual(Array.from(wa.a));
    expect(A.subarray(3 * C + 2 * C, 6 * C).every((x) => x === 0)).toBe(true);
    const row5 = B.subarray((out + 5) * 3, (out + 5) * 3 + 3);
    expect(Array.from(row5)).toEqual([Math.fround(2 * wa.b[5 * 2]!), Math.fround(2 * wa.b[5 * 2 + 1]!), 0]);
    // slot 1 has no v_proj: zeros; slot 2 (b) has it
    const vA = feeds['lora.0.v_proj.A']!.data as Float32Array;
    expect(vA.subarray(3 * C, 6 * C).every((x) => x === 0)).toBe(true);
    expect(Array.from(vA.subarray(6 * C, 9 * C))).toEqual(Array.from(b.weights.get('0.v_proj')!.a));
  });

  it('with no adapters is a single zero slot of rank 1', () => {
    const { slots, rank } = buildAdapterStack(config, []);
    expect([slots, rank]).toEqual([1, 1]);
  });
});

describe('validateAdapter', () => {
  const { config } = randomCheckpoint();
  it('accepts a fitting adapter and refuses others with stable codes', () => {
    expect(() => validateAdapter(config, randomAdapter(config, 2, 1))).not.toThrow();
    const other = randomAdapter(randomCheckpoint({ hidden_size: 48 }).config, 2, 1);
    expect(() => validateAdapter(config, other)).toThrow(AdapterShapeMismatchError);
    const deep = randomAdapter(randomCheckpoint({ num_hidden_layers: 3 }).config, 2, 1);
    expect(() => validateAdapter(config, deep)).toThrow(/layers/);
    expect(() => validateAdapter(config, { ...randomAdapter(config, 2, 1), scale: NaN })).toThrow(/scale/);
  });
});
