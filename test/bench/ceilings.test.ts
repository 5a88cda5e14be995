/**
 * Keeps bench/ceilings.ts runnable: tiny sizes, one thread; checks what each measurement reports (formats,
 * bits/param, byte counts), never how fast it was — times are only required to be positive and finite.
 */
import { describe, expect, it } from 'vitest';
import { measureBnb4AndNBits, measureGemvBandwidth, measureMatMulPeak } from '../../bench/ceilings.js';

const positive = (x: number) => Number.isFinite(x) && x > 0;

describe('bench/ceilings', () => {
  it('measures GEMV bandwidth over the requested weight bytes and a MatMul peak', async () => {
    const gemv = await measureGemvBandwidth({ mib: 64, threads: 1 });
    expect(gemv.bytes).toBe(64 * 2 ** 20);
    expect([gemv.bytesPerSecond, gemv.bestBytesPerSecond, gemv.ms].every(positive)).toBe(true);
    const peak = await measureMatMulPeak({ size: 64, threads: 1 });
    expect([peak.flops, peak.bestFlops].every(positive)).toBe(true);
  });

  it('reports fp32, NF4 and int4 rows with their storage', async () => {
    const rows = await measureBnb4AndNBits({ n: 128, k: 256, threads: 1 });
    expect(rows.map((r) => [r.format, r.bitsPerParameter, r.weightBytes])).toEqual([
      ['fp32 MatMul', 32, 128 * 256 * 4],
      ['NF4 MatMulBnb4', 4 + 8 / 64 + (2 * 32 + 32) / (128 * 256), 128 * 256 * (0.5 + 4 / 64)],
      ['int4 MatMulNBits b64 acc4', 4.5625, 128 * 256 * (0.5 + 4 / 64) + 128 * 2],
      ['int4 MatMulNBits b64 acc0', 4.5625, 128 * 256 * (0.5 + 4 / 64) + 128 * 2],
    ]);
    for (const r of rows) expect([r.msM1, r.msM256, r.bestMsM1, r.bestMsM256].every(positive)).toBe(true);
  });
});
