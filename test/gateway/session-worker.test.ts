// The scheduler with its model's sessions in a session worker (the default): the KV pool's data lives there
// (only bookkeeping on this thread), and a worker that dies while a step is in flight fails the running rows
// with a clear error while the next request runs on a fresh worker with the same tokens.
import { pino } from 'pino';
import { threadId } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_GATEWAY_OPTIONS } from '../../src/gateway/gateway.js';
import { ModelScheduler } from '../../src/gateway/scheduler.js';
import type { SequenceSpec } from '../../src/gateway/sequence.js';
import type { RemoteStep } from '../../src/inference/batch-step.js';
import { LoadedModel } from '../../src/inference/model.js';
import { RemoteSession } from '../../src/inference/session-host.js';
import { ServingModel, type ServeSession } from '../../src/inference/serving-model.js';
import { randomAdapter, randomCheckpoint } from '../engine/nn/fixtures.js';

const ckpt = randomCheckpoint({ vocab_size: 64, max_position_embeddings: 256 }, 7);
const adapter = randomAdapter(ckpt.config, 4, 101);
const open: { s: ModelScheduler; m: ServingModel }[] = [];

function scheduler(serving: ServingModel): ModelScheduler {
  const s = new ModelScheduler(
    serving,
    {
      ...DEFAULT_GATEWAY_OPTIONS,
      kvCacheBytes: 64 * 1024 * 1024,
      maxBatch: 8,
      maxSequence: 128,
      prefillTokens: 16,
    },
    pino({ level: 'silent' }),
  );
  open.push({ s, m: serving });
  return s;
}

const spec = (seed: number, withAdapter: boolean, maxTokens = 6): SequenceSpec => ({
  customerId: 'a',
  promptIds: Array.from({ length: 5 }, (_, i) => (seed * 7 + i * 3) % 60),
  maxTokens,
  adapter: withAdapter ? { versionId: 'v1', adapter } : null,
  mode: 'SIDELOAD',
});

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
    await Promise.all([s.submit(spec(1, true)).result, s.submit(spec(2, false)).result]);
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

  it('a worker that dies mid-step fails the rows in flight; the next request runs on a fresh worker', async () => {
    const serving = new ServingModel(LoadedModel.fromCheckpoint(ckpt, null));
    const s = scheduler(serving);
    const reference = await s.submit(spec(1, true)).result;
    const first = serving.host!;
    const real = serving.session.bind(serving);
    let killNext = true;
    serving.session = async (kind) => {
      const session = await real(kind);
      if (!killNext) return session;
      killNext = false;
      // The step is posted, then the worker is killed before it can answer: a crash with a call in flight.
      const dying: ServeSession = {
        inputNames: session.inputNames,
        run: (feeds, fetches) => session.run(feeds, fetches),
        release: () => session.release(),
        runStep: (call: RemoteStep) => {
          const answer = session.runStep!(call);
          void first.worker.terminate();
          return answer;
        },
      };
      return dying;
    };
    const crashed = s.submit(spec(1, true));
    const err = await crashed.result.then(
      () => null,
      (e: unknown) => e as { code?: string; cause?: Error },
    );
    expect({ code: err?.code, cause: err?.cause?.name, message: err?.cause?.message }).toEqual({
      code: 'INTERNAL_SERVER_ERROR',
      cause: 'SessionWorkerDiedError',
      message: expect.stringMatching(/session worker died \(exit code 1\)/),
    });
    expect(first.alive).toBe(false);
    expect(s.stats()).toMatchObject({ running: 0, kvSlotsFree: 8 });

    const again = await s.submit(spec(1, true)).result;
    expect(again.tokenIds).toEqual(reference.tokenIds);
    expect(serving.host).not.toBe(first);
    expect(serving.host!.worker.threadId).not.toBe(first.worker.threadId);
    expect(s.stats().adapterSlots.map((e) => e.refs)).toEqual([0]);
  });
});
