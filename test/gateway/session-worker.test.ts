// The scheduler with its model's sessions in a session worker (the default): the KV pool's data lives there
// (only bookkeeping on this thread). A worker that dies with a step in flight costs the running rows nothing
// visible: they resume on a fresh worker (prefix recomputed) with the tokens of an uninterrupted run; a row
// that lives through too many deaths, and a worker that cannot start, fail with clear errors after bounded tries.
import { pino } from 'pino';
import { threadId } from 'node:worker_threads';
import type { LoraAdapter } from '../../src/engine/formats/peft.js';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_GATEWAY_OPTIONS } from '../../src/gateway/gateway.js';
import { ModelScheduler, type SchedulerOptions } from '../../src/gateway/scheduler.js';
import type { SequenceSpec } from '../../src/gateway/sequence.js';
import type { RemoteStep } from '../../src/inference/batch-step.js';
import { LoadedModel } from '../../src/inference/model.js';
import { RemoteSession } from '../../src/inference/session-host.js';
import { ServingModel, type ServeSession } from '../../src/inference/serving-model.js';
import { randomAdapter, randomCheckpoint } from '../engine/nn/fixtures.js';

const ckpt = randomCheckpoint({ vocab_size: 64, max_position_embeddings: 256 }, 7);
const adapters: Record<string, LoraAdapter> = {
  v1: randomAdapter(ckpt.config, 4, 101),
  v2: randomAdapter(ckpt.config, 4, 102),
  v3: randomAdapter(ckpt.config, 4, 103),
};
const open: { s: ModelScheduler; m: ServingModel }[] = [];

function scheduler(serving: ServingModel, over: Partial<SchedulerOptions> = {}): ModelScheduler {
  const s = new ModelScheduler(
    serving,
    {
      ...DEFAULT_GATEWAY_OPTIONS,
      kvCacheBytes: 64 * 1024 * 1024,
      maxBatch: 8,
      maxSequence: 128,
      prefillTokens: 16,
      ...over,
    },
    pino({ level: 'silent' }),
  );
  open.push({ s, m: serving });
  return s;
}

const spec = (
  seed: number,
  versionId: string | null,
  more: Partial<SequenceSpec> & { promptLength?: number } = {},
): SequenceSpec => {
  const { promptLength = 5, ...rest } = more;
  return {
    customerId: 'a',
    promptIds: Array.from({ length: promptLength }, (_, i) => (seed * 7 + i * 3) % 60),
    maxTokens: 6,
    adapter: versionId === null ? null : { versionId, adapter: adapters[versionId]! },
    mode: 'SIDELOAD',
    ...rest,
  };
};

afterEach(async () => {
  for (const { s, m } of open.splice(0)) {
    await s.close();
    await m.close();
  }
});

describe('ModelScheduler on a session worker', () => {
  it('keeps the KV data in the worker and runs every session there', async () => {
    const serving = new ServingModel(LoadedModel.fromCheckpoint(ckpt, null));
    const s = scheduler(serving);
    await Promise.all([s.submit(spec(1, 'v1')).result, s.submit(spec(2, null)).result]);
    expect({ remote: s.pool.remote, keys: s.pool.keys.length, values: s.pool.values.length }).toEqual({
      remote: true,
      keys: 0,
      values: 0,
    });
    expect(() => s.pool.view(0, 0, 1)).toThrow(/session worker/);
    for (const kind of ['base', 'stacked'] as const) {
      const session = await serving.session(kind);
      expect(session).toBeInstanceOf(RemoteSession);
      expect((session as RemoteSession).threadId).toBe(serving.host!.worker.threadId);
      expect((session as RemoteSession).threadId).not.toBe(threadId);
    }
  });

  it('a worker killed with a decode step in flight: every running row resumes on a fresh worker with the tokens of a run without the crash', async () => {
    const requests: SequenceSpec[] = [
      spec(1, 'v1', { maxTokens: 16 }),
      spec(2, 'v2', { maxTokens: 20, customerId: 'b' }),
      spec(3, null, { maxTokens: 14 }),
      spec(4, 'v1', { maxTokens: 18, temperature: 0.9, seed: 42, customerId: 'c' }),
      spec(5, 'v3', { maxTokens: 12, mode: 'MERGED', customerId: 'b' }),
    ];
    // Joins as the kill is armed: mid-prefill (40 tokens, 16 a step) when the worker dies.
    const late = spec(6, 'v2', { maxTokens: 10, promptLength: 40 });
    const plain = scheduler(new ServingModel(LoadedModel.fromCheckpoint(ckpt, null)));
    const reference = await Promise.all([...requests, late].map((r) => plain.submit(r).result));
    expect(new Set(reference.map((r) => r.tokenIds.length)).size).toBeGreaterThan(1);

    const serving = new ServingModel(LoadedModel.fromCheckpoint(ckpt, null));
    const s = scheduler(serving);
    const killer = killDuringDecode(serving);
    const seqs = requests.map((r) => s.submit(r));
    while (!seqs.every((q) => q.tokens.length >= 3)) await s.waitForSteps(1);
    const first = serving.host!;
    killer.arm();
    seqs.push(s.submit(late));
    const results = await Promise.all(seqs.map((q) => q.result));

    expect(killer.kills).toBe(1);
    expect(first.alive).toBe(false);
    expect(serving.workerStarts).toBe(2);
    expect(results).toEqual(reference);
    expect(results[4]!.servedMerged).toBe(true);
    const stats = s.stats();
    const ref = plain.stats();
    // Each row's prompt and tokens are counted once; the recomputed prefix is counted apart.
    expect({
      prefillTokens: stats.prefillTokens,
      decodeTokens: stats.decodeTokens,
      workerDeaths: stats.workerDeaths,
      resumedRows: stats.resumedRows,
      running: stats.running,
      waiting: stats.waiting,
      kvSlotsFree: stats.kvSlotsFree,
      refs: stats.adapterSlots.map((e) => e.refs),
    }).toEqual({
      prefillTokens: ref.prefillTokens,
      decodeTokens: ref.decodeTokens,
      workerDeaths: 1,
      resumedRows: 6,
      running: 0,
      waiting: 0,
      kvSlotsFree: 8,
      refs: ref.adapterSlots.map(() => 0),
    });
    expect(stats.recomputedTokens).toBeGreaterThan(5 * 3);
  });

  it('AUTO rows served merged when the worker dies side-load on the fresh one until the policy has the merged weights rebuilt', async () => {
    const rows = [spec(1, 'v1', { maxTokens: 40 }), spec(2, 'v1', { maxTokens: 36, customerId: 'b' })];
    const plain = scheduler(new ServingModel(LoadedModel.fromCheckpoint(ckpt, null)));
    const reference = await Promise.all(rows.map((r) => plain.submit(r).result));

    const serving = new ServingModel(LoadedModel.fromCheckpoint(ckpt, null));
    const s = scheduler(serving, { autoMergeAfterSteps: 2 });
    const killer = killDuringDecode(serving, 2);
    const seqs = rows.map((r) => s.submit({ ...r, mode: 'AUTO' }));
    while (s.stats().mergedFor === null) await s.waitForSteps(1);
    killer.arm();
    while (s.stats().workerDeaths === 0) await s.waitForSteps(1);
    // The merged session died with the worker: AUTO side-loads, then merges again on a rebuilt session.
    expect(s.stats().mergedFor).toBe(null);
    while (s.stats().mergedFor === null && seqs.some((q) => q.state !== 'finished')) await s.waitForSteps(1);
    const results = await Promise.all(seqs.map((q) => q.result));
    // Merged and side-loaded weights give the same greedy tokens.
    expect(results.map((r) => r.tokenIds)).toEqual(reference.map((r) => r.tokenIds));
    expect(results.every((r) => r.servedMerged)).toBe(true);
    expect({ kills: killer.kills, mergedBuilds: killer.mergedBuilds, merged: s.stats().mergedFor }).toEqual({
      kills: 1,
      mergedBuilds: 2,
      merged: 'v1',
    });
  });

  it('a row that loses its cache to as many worker deaths as the bound fails with a clear error; rows that joined later resume', async () => {
    const longRow = spec(1, 'v1', { maxTokens: 60 });
    const joiner = spec(2, 'v2', { maxTokens: 40, customerId: 'b' });
    const plain = scheduler(new ServingModel(LoadedModel.fromCheckpoint(ckpt, null)));
    const reference = await plain.submit(joiner).result;

    const serving = new ServingModel(LoadedModel.fromCheckpoint(ckpt, null));
    const s = scheduler(serving);
    const killer = killDuringDecode(serving, 1);
    const a = s.submit(longRow);
    while (a.tokens.length < 3) await s.waitForSteps(1);
    killer.arm();
    while (s.stats().workerDeaths < 1) await s.waitForSteps(1);
    const b = s.submit(joiner);
    while (b.tokens.length < 3) await s.waitForSteps(1);
    killer.arm();
    const err = await a.result.then(
      () => null,
      (e: unknown) => e as { code?: string; message?: string; cause?: Error },
    );
    expect({ code: err?.code, message: err?.message, cause: err?.cause?.name }).toEqual({
      code: 'INTERNAL_SERVER_ERROR',
      message:
        "generation failed: the model's session worker died 2 times while this request ran; it is not resumed again",
      cause: 'SessionWorkerDiedError',
    });
    expect(await b.result).toEqual(reference);
    expect({ kills: killer.kills, starts: serving.workerStarts, stats: s.stats() }).toMatchObject({
      kills: 2,
      starts: 3,
      stats: { workerDeaths: 2, resumedRows: 2, running: 0, kvSlotsFree: 8 },
    });
    expect(s.stats().adapterSlots.map((e) => e.refs)).toEqual([0, 0]);
  });

  it('a worker that dies at every start fails the waiting rows after the bounded tries, then serves again once it can start', async () => {
    let broken = true;
    const serving = new ServingModel(LoadedModel.fromCheckpoint(ckpt, null), {
      onSessionWorker: (host) => {
        if (broken) void host.worker.terminate();
      },
    });
    const s = scheduler(serving);
    // 10 requests for 8 KV slots: 8 running (re-queued after each death), 2 still queued.
    const seqs = Array.from({ length: 10 }, (_, i) =>
      s.submit(spec(i + 1, i % 2 ? 'v1' : null, { customerId: `c${i % 3}` })),
    );
    const errors = await Promise.all(
      seqs.map((q) =>
        q.result.then(
          () => null,
          (e: unknown) => (e as Error).message,
        ),
      ),
    );
    expect(new Set(errors)).toEqual(
      new Set([
        expect.stringMatching(
          /^generation failed: the model's session worker died 3 times in a row without completing a step \(last: the session worker died \(exit code \d+\)/,
        ),
      ]),
    );
    expect(errors.every((e) => e !== null)).toBe(true);
    // Three starts, not a spin: nothing starts another worker while nothing waits.
    expect(serving.workerStarts).toBe(3);
    await new Promise((r) => setTimeout(r, 100));
    expect(serving.workerStarts).toBe(3);
    expect(s.stats()).toMatchObject({ running: 0, waiting: 0, kvSlotsFree: 8, workerDeaths: 3 });

    broken = false;
    const plain = scheduler(new ServingModel(LoadedModel.fromCheckpoint(ckpt, null)));
    const reference = await plain.submit(spec(1, 'v1')).result;
    expect(await s.submit(spec(1, 'v1')).result).toEqual(reference);
    expect(serving.workerStarts).toBe(4);
    expect(s.stats().adapterSlots.map((e) => e.refs)).toEqual([0]);
  });
});

/**
 * Kills the model's session worker right after it was sent a decode step of at least `minRows` rows (a crash
 * with a step in flight), once per `arm()`.
 */
function killDuringDecode(
  serving: ServingModel,
  minRows = 3,
): { arm: () => void; kills: number; mergedBuilds: number } {
  const real = serving.session.bind(serving);
  const realMerged = serving.mergedSession.bind(serving);
  const state = { armed: false, kills: 0, mergedBuilds: 0, arm: () => void (state.armed = true) };
  const wrap = (session: ServeSession): ServeSession =>
    ({
      inputNames: session.inputNames,
      run: (feeds, fetches) => session.run(feeds, fetches),
      release: () => session.release(),
      runStep: (call: RemoteStep) => {
        const answer = session.runStep!(call);
        if (state.armed && call.rows.length >= minRows && call.rows.every((r) => r.ids.length === 1)) {
          state.armed = false;
          state.kills++;
          void (session as RemoteSession).host.worker.terminate();
        }
        return answer;
      },
      get alive() {
        return (session as RemoteSession).alive;
      },
    }) as ServeSession;
  serving.session = async (kind) => wrap(await real(kind));
  serving.mergedSession = async (adapter) => {
    state.mergedBuilds++;
    return wrap(await realMerged(adapter));
  };
  return state;
}
