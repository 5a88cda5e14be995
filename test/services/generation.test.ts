// The generation service below the API, on SQLite + the directory blob store with the real engine: adapter
// references (name → production else latest, name@alias, name@vN, version id, null), merged = side-loaded =
// the engine given the same PEFT files, SHA-256 refusal of a flipped byte, the LRU byte budget (full slot
// table after each step), AUTO's choice, maxTokens limits, usage and quota, the request queue, streaming, and
// a session worker dying mid-generation (the request resumes; usage and observers count it once).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_MODEL_ID, ensureBuiltinModel } from '../../src/engine/builtin-model.js';
import { parseModelConfig } from '../../src/engine/formats/hf-config.js';
import { parsePeftAdapter, type LoraAdapter } from '../../src/engine/formats/peft.js';
import { BUILTIN_CONFIG } from '../../src/engine/builtin-model.js';
import { Engine } from '../../src/inference/engine.js';
import { BaseModelRegistry } from '../../src/services/base-models.js';
import { GenerationService, type GenerationChunk } from '../../src/services/generation.js';
import { adapterBytes } from '../../src/gateway/adapter-cache.js';
import { ADMIN, createServices, type Actor, type Services } from '../../src/services/index.js';
import { FsBlobStore } from '../../src/storage/fs-store.js';
import { ADAPTER_FILES } from '../../src/storage/keys.js';
import { openTestDatabase, type TestDatabase } from '../db/test-databases.js';
import { makePeftAdapter } from '../e2e/harness.js';

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as { code?: string }).code ?? `uncoded: ${String(err)}`;
  }
  return 'no error';
}

const BASE = parseModelConfig(BUILTIN_CONFIG);
const logger = pino({ level: 'silent' });

describe('GenerationService', () => {
  let t: TestDatabase;
  let dir: string;
  let s: Services;
  let engine: Engine;
  let gen: GenerationService;
  let alice: Actor;
  let bob: Actor;
  let aliceId: string;
  const peft1 = makePeftAdapter({ seed: 11, rank: 4, modules: ['q_proj', 'v_proj', 'down_proj'] });
  const peft2 = makePeftAdapter({ seed: 22, rank: 2 });
  const v = { one: '', two: '', bobs: '' };
  let loaded1: LoraAdapter;

  const service = (options = {}) =>
    new GenerationService({
      repos: s.repos,
      blobs: s.blobs,
      baseModels: s.baseModels,
      adapters: s.adapters,
      logger,
      options,
      loadModel: async () => engine.model,
    });

  beforeAll(async () => {
    t = await openTestDatabase('sqlite');
    dir = mkdtempSync(join(tmpdir(), 'dg-gen-'));
    const modelDir = await ensureBuiltinModel(dir);
    engine = await Engine.load(modelDir);
    s = createServices({
      db: t.db,
      blobs: await FsBlobStore.open({ dir: join(dir, 'blobs'), publicUrl: 'http://127.0.0.1:9' }),
      baseModels: await BaseModelRegistry.load([{ id: BUILTIN_MODEL_ID, dir: modelDir }]),
      limits: { maxDatasetBytes: 1000, maxInlineDatasetBytes: 500, maxAdapterBytes: 10_000_000 },
      adminKey: 'generation-admin-key-0123456789abcdef',
      countTokens: null,
      logger,
    });
    const a = await s.customers.create(ADMIN, { name: 'alice', monthlyTokenLimit: 100_000 });
    const b = await s.customers.create(ADMIN, { name: 'bob' });
    alice = await s.apiKeys.authenticate(`Bearer ${a.secret}`);
    bob = await s.apiKeys.authenticate(`Bearer ${b.secret}`);
    aliceId = a.customer.id;
    const adapter = await s.adapters.create(alice, { name: 'facts', baseModelId: BUILTIN_MODEL_ID });
    for (const [key, p] of [
      ['one', peft1],
      ['two', peft2],
    ] as const) {
      const ver = await s.adapters.importVersion(alice, {
        adapterId: adapter.id,
        adapterConfig: p.adapterConfig,
        weightsBase64: p.weightsBase64,
      });
      v[key] = ver.id;
    }
    const bobsAdapter = await s.adapters.create(bob, { name: 'facts', baseModelId: BUILTIN_MODEL_ID });
    v.bobs = (
      await s.adapters.importVersion(bob, {
        adapterId: bobsAdapter.id,
        adapterConfig: peft1.adapterConfig,
        weightsBase64: peft1.weightsBase64,
      })
    ).id;
    loaded1 = parsePeftAdapter(peft1.adapterConfig, peft1.weights, BASE);
    gen = service();
  });
  afterAll(async () => {
    await engine?.close();
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('resolves every kind of reference in the caller tenant only', async () => {
    const ref = async (adapter: string | null, who: Actor = alice) =>
      (await gen.generate(who, { adapter, prompt: 'hi', maxTokens: 1 })).adapterVersion?.id ?? null;
    expect(await ref(null)).toBeNull();
    expect(await ref('facts')).toBe(v.two); // no production alias yet: the latest version
    expect(await ref('facts@v1')).toBe(v.one);
    expect(await ref(v.one)).toBe(v.one);
    const adapter = await s.adapters.getByName(alice, 'facts');
    await s.adapters.setAlias(alice, { adapterId: adapter.id, alias: 'production', versionId: v.one });
    await s.adapters.setAlias(alice, { adapterId: adapter.id, alias: 'canary', versionId: v.two });
    expect(await ref('facts')).toBe(v.one); // production wins over latest
    expect(await ref('facts@canary')).toBe(v.two);
    expect(await ref('facts', bob)).toBe(v.bobs); // names are per customer
    for (const bad of ['facts@v9', 'facts@nope', 'nothing', v.bobs, 'facts/../x']) {
      expect(await codeOf(ref(bad)), bad).toBe('NOT_FOUND');
    }
    expect(await codeOf(gen.generate(ADMIN, { prompt: 'hi' }))).toBe('FORBIDDEN');
  });

  it('MERGED and SIDELOAD answer what the engine answers with the same PEFT files', async () => {
    const prompt = 'The tiny model says';
    const direct = await engine.generate({ prompt, adapter: loaded1, maxTokens: 12, mode: 'sideload' });
    const merged = await gen.generate(alice, { adapter: 'facts@v1', prompt, maxTokens: 12, mode: 'MERGED' });
    const side = await gen.generate(alice, { adapter: 'facts@v1', prompt, maxTokens: 12, mode: 'SIDELOAD' });
    expect(side).toMatchObject({
      text: direct.text,
      mode: 'SIDELOAD',
      finishReason: direct.finishReason.toUpperCase(),
    });
    expect(merged).toMatchObject({ text: direct.text, mode: 'MERGED' });
    expect(side.usage).toEqual(direct.usage);
  });

  it('refuses maxTokens beyond the context before any work', async () => {
    for (const maxTokens of [0, -1, 512, 10_000, 1.5]) {
      expect(await codeOf(gen.generate(alice, { prompt: 'hi', maxTokens })), String(maxTokens)).toBe(
        'BAD_USER_INPUT',
      );
    }
    // Fits alone, but not with the prompt.
    expect(await codeOf(gen.generate(alice, { prompt: 'x'.repeat(100), maxTokens: 500 }))).toBe(
      'BAD_USER_INPUT',
    );
    expect(await codeOf(gen.generate(alice, { prompt: '' }))).toBe('BAD_USER_INPUT');
  });

  it('counts usage per customer and enforces the monthly token limit', async () => {
    const before = await s.repos.usage.get(aliceId);
    const r = await gen.generate(alice, { prompt: 'count me', maxTokens: 5 });
    const after = await s.repos.usage.get(aliceId);
    expect({
      requests: after.requests - before.requests,
      promptTokens: after.promptTokens - before.promptTokens,
      completionTokens: after.completionTokens - before.completionTokens,
    }).toEqual({
      requests: 1,
      promptTokens: r.usage.promptTokens,
      completionTokens: r.usage.completionTokens,
    });
    expect(r.usage.totalTokens).toBe(r.usage.promptTokens + r.usage.completionTokens);

    const c = await s.customers.create(ADMIN, { name: 'frugal', monthlyTokenLimit: 10 });
    const frugal = await s.apiKeys.authenticate(`Bearer ${c.secret}`);
    await gen.generate(frugal, { prompt: 'abcdefgh', maxTokens: 4 });
    expect(await codeOf(gen.generate(frugal, { prompt: 'again', maxTokens: 4 }))).toBe('QUOTA_EXCEEDED');
  });

  it('a session worker that dies mid-generation: the request finishes with the text of a run without the crash, counted once', async () => {
    const input = { adapter: 'facts@v1', prompt: 'Survive this', maxTokens: 24, mode: 'SIDELOAD' as const };
    const whole = await gen.generate(alice, input);
    expect(whole.tokenIds.length).toBeGreaterThan(6);
    const { scheduler } = await gen.gateway.model(s.baseModels.require(BUILTIN_MODEL_ID));
    const seen: { outcome: string; completionTokens: number }[] = [];
    const unobserve = gen.observe((o) =>
      seen.push({ outcome: o.outcome, completionTokens: o.completionTokens }),
    );
    const before = { usage: await s.repos.usage.get(aliceId), stats: scheduler.stats() };
    const chunks: GenerationChunk[] = [];
    const streamed = (async () => {
      for await (const c of await gen.generateStream(alice, input)) chunks.push(c);
    })();
    await scheduler.waitForSteps(3);
    void scheduler.model.host!.worker.terminate();
    await streamed;
    unobserve();
    const after = { usage: await s.repos.usage.get(aliceId), stats: scheduler.stats() };
    expect(chunks.map((c) => c.text).join('')).toBe(whole.text);
    expect(chunks.at(-1)).toMatchObject({ finishReason: whole.finishReason, usage: whole.usage });
    expect({
      requests: after.usage.requests - before.usage.requests,
      promptTokens: after.usage.promptTokens - before.usage.promptTokens,
      completionTokens: after.usage.completionTokens - before.usage.completionTokens,
      observed: seen,
      workerDeaths: after.stats.workerDeaths - before.stats.workerDeaths,
      resumedRows: after.stats.resumedRows - before.stats.resumedRows,
    }).toEqual({
      requests: 1,
      promptTokens: whole.usage.promptTokens,
      completionTokens: whole.usage.completionTokens,
      observed: [{ outcome: 'ok', completionTokens: whole.usage.completionTokens }],
      workerDeaths: 1,
      resumedRows: 1,
    });
  });

  it('streams deltas that add up to the generated text, the last chunk with the finishReason', async () => {
    const input = { adapter: 'facts@v1', prompt: 'Stream this', maxTokens: 16, mode: 'SIDELOAD' as const };
    const whole = await gen.generate(alice, input);
    const chunks: GenerationChunk[] = [];
    for await (const c of await gen.generateStream(alice, input)) chunks.push(c);
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.map((c) => c.index)).toEqual(chunks.map((_, i) => i));
    expect(chunks.slice(0, -1).every((c) => c.finishReason === null)).toBe(true);
    expect(chunks.at(-1)!.finishReason).toBe(whole.finishReason);
    expect(chunks.map((c) => c.text).join('')).toBe(whole.text);
    // Refusals come before the stream starts.
    expect(await codeOf(gen.generateStream(alice, { ...input, maxTokens: 9999 }))).toBe('BAD_USER_INPUT');
  });

  it('refuses an adapter whose stored bytes no longer match their SHA-256', async () => {
    const version = await s.adapters.getVersion(alice, v.two);
    const key = version.blobPrefix + ADAPTER_FILES.weights;
    const good = await s.blobs.get(key);
    const bad = Uint8Array.from(good);
    bad[bad.length - 5]! ^= 0x01;
    await s.blobs.put(key, bad);
    const fresh = service(); // nothing cached
    expect(await codeOf(fresh.generate(alice, { adapter: 'facts@v2', prompt: 'hi', maxTokens: 1 }))).toBe(
      'INTERNAL_SERVER_ERROR',
    );
    await expect(fresh.generate(alice, { adapter: 'facts@v2', prompt: 'hi' })).rejects.toThrow(/SHA-256/);
    expect(fresh.gateway.cache.stats().entries).toBe(0);
    await s.blobs.put(key, good);
    expect(
      (await fresh.generate(alice, { adapter: 'facts@v2', prompt: 'hi', maxTokens: 1 })).adapterVersion?.id,
    ).toBe(v.two);
  });

  it('AUTO side-loads, and serves an adapter that holds the whole batch long enough on merged weights', async () => {
    const g = service({ autoMergeAfterSteps: 3 });
    const first = await g.generate(alice, { adapter: 'facts@v1', prompt: 'hi', maxTokens: 2 });
    expect(first.mode).toBe('SIDELOAD');
    // The merged weights are built in a worker thread once the adapter held the batch for 3 steps.
    let mode = first.mode;
    for (let i = 0; i < 50 && mode !== 'MERGED'; i++)
      mode = (await g.generate(alice, { adapter: 'facts@v1', prompt: 'hi', maxTokens: 8 })).mode;
    expect(mode).toBe('MERGED');
    expect((await g.generate(alice, { prompt: 'hi', maxTokens: 1 })).mode).toBe('AUTO');
    await g.close();
  });

  it('keeps parsed adapters within the host cache byte budget (LRU)', async () => {
    const size = adapterBytes(parsePeftAdapter(peft2.adapterConfig, peft2.weights, BASE));
    const g = service({ adapterCacheBytes: size + 1 });
    const cache = g.gateway.cache;
    const one = await s.adapters.getVersion(alice, v.one);
    const two = await s.adapters.getVersion(alice, v.two);
    await cache.get(two, BASE);
    expect(cache.has(v.two)).toBe(true);
    await cache.get(one, BASE); // larger than the whole budget: served, never kept
    expect([cache.has(v.one), cache.has(v.two)]).toEqual([false, true]);
    await cache.pin(one, BASE); // pinned: kept outside the budget
    expect(cache.stats()).toMatchObject({ entries: 2, pinned: 1, bytes: size + adapterBytes(loaded1) });
    expect(cache.stats().misses).toBe(3);
  });

  it('follows the owner pinning an adapter: its served version stays in memory and in a batch slot', async () => {
    const g = service();
    const adapter = await s.adapters.getByName(alice, 'facts');
    const served = await s.adapters.resolveReference(alice, 'facts');
    const pinned = await s.adapters.setPinned(alice, adapter.id, true);
    expect(pinned.pinned).toBe(true);
    await g.applyPin(alice, pinned);
    expect(g.gateway.cache.isPinned(served.id)).toBe(true);
    const { scheduler } = await g.gateway.model(s.baseModels.require(BUILTIN_MODEL_ID));
    expect(scheduler.slots.snapshot()).toEqual([{ versionId: served.id, slot: 1, refs: 0, pinned: true }]);
    // Another customer cannot pin it; the owner can unpin.
    expect(await codeOf(s.adapters.setPinned(bob, adapter.id, true))).toBe('NOT_FOUND');
    await g.applyPin(alice, await s.adapters.setPinned(alice, adapter.id, false));
    expect(g.gateway.cache.isPinned(served.id)).toBe(false);
    expect(scheduler.slots.snapshot()[0]!.pinned).toBe(false);
    // At most 4 pinned adapters per customer.
    for (let i = 0; i < 4; i++) {
      const a = await s.adapters.create(alice, { name: `pin-${i}`, baseModelId: BUILTIN_MODEL_ID });
      await s.adapters.setPinned(alice, a.id, true);
    }
    expect(await codeOf(s.adapters.setPinned(alice, adapter.id, true))).toBe('QUOTA_EXCEEDED');
    await g.close();
  });

  it('queues requests past the batch and refuses past the queue limit', async () => {
    const g = service({ maxBatch: 1, maxQueued: 1 });
    const results = await Promise.allSettled([
      g.generate(alice, { prompt: 'one', maxTokens: 8 }),
      g.generate(alice, { prompt: 'two', maxTokens: 8 }),
      g.generate(alice, { prompt: 'three', maxTokens: 8 }),
    ]);
    const outcomes = results.map((r) =>
      r.status === 'fulfilled' ? 'ok' : (r.reason as { code: string }).code,
    );
    expect(outcomes.sort()).toEqual(['RATE_LIMITED', 'ok', 'ok']);
  });
});
