// The continuous-batching scheduler on a small random model with the real onnxruntime sessions: batch
// invariance, rows joining and leaving, cancellation within a step, tenant fairness under a burst, a failing
// step failing only its rows, AUTO switching to merged weights and back, and the slot tables after all that.
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_GATEWAY_OPTIONS } from '../../src/gateway/gateway.js';
import { ModelScheduler, type SchedulerOptions } from '../../src/gateway/scheduler.js';
import type { SequenceSpec } from '../../src/gateway/sequence.js';
import type { LoraAdapter } from '../../src/engine/formats/peft.js';
import type { EngineSession } from '../../src/engine/onnx/session.js';
import { LoadedModel } from '../../src/inference/model.js';
import { ServingModel } from '../../src/inference/serving-model.js';
import { randomAdapter, randomCheckpoint } from '../engine/nn/fixtures.js';

const logger = pino({ level: 'silent' });
const ckpt = randomCheckpoint({ vocab_size: 64, max_position_embeddings: 256 }, 7);
const { config } = ckpt;
const adapters: LoraAdapter[] = [1, 2, 3, 4].map((s) => randomAdapter(config, 4, 100 + s));
const open: ModelScheduler[] = [];

function scheduler(over: Partial<SchedulerOptions> = {}, serving?: ServingModel): ModelScheduler {
  const s = new ModelScheduler(
    serving ?? new ServingModel(LoadedModel.fromCheckpoint(ckpt, null)),
    {
      ...DEFAULT_GATEWAY_OPTIONS,
      kvCacheBytes: 64 * 1024 * 1024,
      maxBatch: 8,
      maxSequence: 128,
      prefillTokens: 16,
      ...over,
    },
    logger,
  );
  open.push(s);
  return s;
}

function spec(
  customerId: string,
  promptIds: number[],
  adapter: number | null,
  more: Partial<SequenceSpec> = {},
): SequenceSpec {
  return {
    customerId,
    promptIds,
    maxTokens: 12,
    adapter: adapter === null ? null : { versionId: `v${adapter}`, adapter: adapters[adapter]! },
    mode: 'SIDELOAD',
    ...more,
  };
}

const prompt = (n: number, seed: number) => Array.from({ length: n }, (_, i) => (seed * 7 + i * 3) % 60);

afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

describe('ModelScheduler', () => {
  it('gives a greedy request the same tokens alone and inside any mixed batch (rows joining mid-batch)', async () => {
    const requests = [
      spec('a', prompt(5, 1), 0),
      spec('a', prompt(23, 2), 1), // longer than one prefill chunk: fed over two steps
      spec('b', prompt(3, 3), null),
      spec('c', prompt(9, 4), 2, { maxTokens: 4 }), // leaves early
      spec('b', prompt(7, 5), 0),
    ];
    const alone: number[][] = [];
    for (const r of requests) alone.push((await scheduler().submit(r).result).tokenIds);

    const s = scheduler();
    const first = requests.slice(0, 3).map((r) => s.submit(r));
    await s.waitForSteps(3);
    // Two more join while the first three are decoding.
    const later = requests.slice(3).map((r) => s.submit(r));
    const together = await Promise.all([...first, ...later].map((q) => q.result));
    expect(together.map((r) => r.tokenIds)).toEqual(alone);
    expect(s.stats()).toMatchObject({ running: 0, waiting: 0, kvSlotsFree: 8 });
    expect(s.stats().adapterSlots.every((e) => e.refs === 0)).toBe(true);
  });

  it('drops a cancelled request at the next step and keeps serving the others', async () => {
    const s = scheduler();
    const abort = new AbortController();
    const deltas: number[] = [];
    const cancelled = s.submit(spec('a', prompt(4, 1), 1, { maxTokens: 100, signal: abort.signal }));
    const other = s.submit(spec('b', prompt(4, 2), 2, { maxTokens: 30 }));
    await s.waitForSteps(4);
    expect(s.stats().running).toBe(2);
    abort.abort();
    const stepsAtAbort = s.stats().steps;
    await expect(cancelled.result).rejects.toMatchObject({ name: 'RequestAbortedError' });
    expect(s.stats().steps - stepsAtAbort).toBeLessThanOrEqual(1);
    expect(cancelled.tokens.length).toBeLessThan(100);
    deltas.push(cancelled.tokens.length);
    expect((await other.result).tokenIds).toHaveLength(30);
    expect(s.stats().adapterSlots.map((e) => e.refs)).toEqual([0, 0]);
  });

  it("serves customer B's single request within a few steps of a 100-request burst from A", async () => {
    const s = scheduler({ maxBatch: 4, maxRunningPerCustomer: 4, maxQueuedPerCustomer: 200, maxQueued: 300 });
    const burst = Array.from({ length: 100 }, (_, i) =>
      s.submit(spec('A', prompt(4, i), i % 4, { maxTokens: 6 })),
    );
    await s.waitForSteps(2);
    const submittedAt = s.stats().steps;
    const b = s.submit(spec('B', prompt(4, 99), null, { maxTokens: 2 }));
    await b.result;
    const waited = s.stats().steps - submittedAt;
    // A's rows hold all 4 slots; B takes the first one that frees (≤ 6 decode steps + its own 2).
    expect(waited).toBeLessThanOrEqual(10);
    expect((await Promise.all(burst.map((q) => q.result))).length).toBe(100);
  });

  it('refuses past the per-customer queue with RATE_LIMITED and a retry hint', () => {
    const s = scheduler({ maxBatch: 1, maxQueuedPerCustomer: 2 });
    s.submit(spec('a', prompt(3, 1), null)); // admitted at once
    s.submit(spec('a', prompt(3, 2), null));
    s.submit(spec('a', prompt(3, 3), null));
    expect(() => s.submit(spec('a', prompt(3, 4), null))).toThrow(
      expect.objectContaining({ code: 'RATE_LIMITED', details: { retryAfterSeconds: 1 } }),
    );
    expect(() => s.submit(spec('b', prompt(3, 4), null))).not.toThrow();
  });

  it('fails only the rows of a step that throws, and keeps serving', async () => {
    const serving = new ServingModel(LoadedModel.fromCheckpoint(ckpt, null));
    const real = serving.session.bind(serving);
    let failNext = false;
    serving.session = async (kind) => {
      const sess = await real(kind);
      if (!failNext) return sess;
      failNext = false;
      return {
        inputNames: sess.inputNames,
        run: () => Promise.reject(new Error('boom')),
      } as unknown as EngineSession;
    };
    const s = scheduler({}, serving);
    const ok = s.submit(spec('a', prompt(4, 1), null, { maxTokens: 5 }));
    await ok.result;
    failNext = true;
    const bad = s.submit(spec('a', prompt(4, 2), null, { maxTokens: 5 }));
    await expect(bad.result).rejects.toMatchObject({ code: 'INTERNAL_SERVER_ERROR' });
    const after = await s.submit(spec('a', prompt(4, 1), null, { maxTokens: 5 })).result;
    expect(after.tokenIds).toEqual((await ok.result).tokenIds);
    expect(s.stats()).toMatchObject({ running: 0, kvSlotsFree: 8 });
  });

  it('AUTO serves a batch held by one adapter on merged weights and goes back to side-loading when it mixes', async () => {
    const s = scheduler({ autoMergeAfterSteps: 2 });
    const ref = await scheduler().submit(spec('a', prompt(6, 1), 1, { maxTokens: 40 })).result;
    const hot = s.submit(spec('a', prompt(6, 1), 1, { maxTokens: 40, mode: 'AUTO' }));
    // The merged session is built off the loop; wait until the policy switched.
    for (let i = 0; i < 200 && s.stats().mergedFor === null; i++) await new Promise((r) => setTimeout(r, 5));
    expect(s.stats().mergedFor).toBe('v1');
    const mixed = s.submit(spec('b', prompt(5, 2), 2, { maxTokens: 3, mode: 'AUTO' }));
    await mixed.result;
    const hotResult = await hot.result;
    expect(hotResult.servedMerged).toBe(true);
    // Merged and side-loaded weights give the same greedy tokens.
    expect(hotResult.tokenIds).toEqual(ref.tokenIds);
    expect(s.stats().switches).toBeGreaterThanOrEqual(2);
  });
});
