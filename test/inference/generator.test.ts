/**
 * The Generator / Engine API: stories260k greedy from BOS (recorded, and equal to the reference), seeded
 * sampling reproducible, max tokens, EOS, stop sequences, UTF-8-safe streaming on the built-in byte-level
 * model, batched generation with mixed adapters, merged == side-loaded == an independent merge.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyModel } from '../../src/engine/builtin-model.js';
import { loadCheckpoint } from '../../src/engine/formats/checkpoint.js';
import { LINEAR_MODULES, weightName } from '../../src/engine/formats/hf-config.js';
import { loraDelta } from '../../src/engine/formats/peft.js';
import { buildLlamaGraph } from '../../src/engine/nn/llama.js';
import { ReferenceModel } from '../../src/engine/nn/reference.js';
import { prepareWeights } from '../../src/engine/nn/weights.js';
import { EngineSession } from '../../src/engine/onnx/session.js';
import { Engine } from '../../src/inference/engine.js';
import { LoadedModel } from '../../src/inference/model.js';
import { HAVE_STORIES, STORIES_DIR, randomAdapter, randomCheckpoint } from '../engine/nn/fixtures.js';

/**
 * stories260k greedy from BOS, first 30 tokens. Confirmed by the float64 reference forward
 * (src/engine/nn/reference.ts) and by an independent numpy implementation of HF's Llama.
 */
const STORIES_GREEDY_30 = [
  461, 461, 401, 401, 401, 461, 378, 455, 473, 456, 435, 299, 362, 409, 283, 264, 283, 452, 288, 13, 431, 431,
  431, 431, 431, 431, 431, 431, 431, 431,
];

describe.skipIf(!HAVE_STORIES)('stories260k', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await Engine.load(STORIES_DIR, { session: { threads: 1 } });
  });
  afterAll(() => engine.close());

  it('greedy from BOS is the recorded continuation and equals the reference', async () => {
    const r = await engine.generate({ promptIds: [1], maxTokens: 30 });
    expect(r).toEqual({
      promptIds: [1],
      tokenIds: STORIES_GREEDY_30,
      text: '',
      finishReason: 'length',
      usage: { promptTokens: 1, completionTokens: 30, totalTokens: 31 },
    });
    const ckpt = await loadCheckpoint(STORIES_DIR);
    expect(new ReferenceModel(ckpt.config, ckpt.tensors).greedy([1], 30)).toEqual(STORIES_GREEDY_30);
  });

  it('KV-cache decoding equals full recomputation (prefill graph over the whole sequence each step)', async () => {
    const ckpt = await loadCheckpoint(STORIES_DIR);
    const { graph } = buildLlamaGraph(ckpt.config, prepareWeights(ckpt), {
      phase: 'prefill',
      logits: 'last',
    });
    const s = await EngineSession.create(graph, { threads: 1 });
    const seq = [1];
    for (let i = 0; i < 20; i++) {
      const n = seq.length;
      const ids = BigInt64Array.from(seq, (x) => BigInt(x));
      const out = await s.run(
        {
          input_ids: { dtype: 'int64', shape: [1, n], data: ids },
          position_ids: { dtype: 'int64', shape: [1, n], data: BigInt64Array.from(seq, (_, j) => BigInt(j)) },
          attention_mask: { dtype: 'int64', shape: [1, n], data: new BigInt64Array(n).fill(1n) },
        },
        ['logits'],
      );
      const logits = out.logits!.data as Float32Array;
      let best = 0;
      for (let j = 1; j < logits.length; j++) if (logits[j]! > logits[best]!) best = j;
      seq.push(best);
    }
    await s.release();
    expect(seq.slice(1)).toEqual(STORIES_GREEDY_30.slice(0, 20));
  });

  it('merged == side-loaded == an independent merge (greedy tokens)', async () => {
    const ckpt = await loadCheckpoint(STORIES_DIR);
    const adapter = randomAdapter(ckpt.config, 8, 7, ['q_proj', 'v_proj', 'gate_proj', 'down_proj'], 4);
    const req = { promptIds: [1, 403, 261], maxTokens: 20 };
    const merged = await engine.generate({ ...req, adapter, mode: 'merged' });
    const side = await engine.generate({ ...req, adapter, mode: 'sideload' });
    expect(side.tokenIds).toEqual(merged.tokenIds);
    // Independent merge: formats' loraDelta (a plain loop) added to the weights, run by the reference.
    const tensors = new Map(ckpt.tensors);
    for (let l = 0; l < ckpt.config.numLayers; l++) {
      for (const m of LINEAR_MODULES) {
        if (!adapter.weights.has(`${l}.${m}`)) continue;
        const t = tensors.get(weightName(l, m))!;
        const d = loraDelta(adapter, l, m);
        tensors.set(weightName(l, m), { shape: t.shape, data: t.data.map((v, i) => v + d[i]!) });
      }
    }
    expect(new ReferenceModel(ckpt.config, tensors).greedy(req.promptIds, 20)).toEqual(merged.tokenIds);
    const base = await engine.generate(req);
    expect(base.tokenIds).not.toEqual(merged.tokenIds);
  });

  it('a mixed batch (base, adapter A, adapter B) equals each request alone', async () => {
    const a = randomAdapter(engine.config, 4, 21);
    const b = randomAdapter(engine.config, 8, 22, ['k_proj', 'o_proj', 'up_proj']);
    const reqs = [
      { promptIds: [1, 300, 301, 302, 303], maxTokens: 12, adapter: a },
      { promptIds: [1], maxTokens: 8 },
      { promptIds: [1, 400], maxTokens: 15, adapter: b },
      { promptIds: [1, 400], maxTokens: 15, adapter: a, temperature: 0.8, seed: 5 },
    ];
    const batch = await engine.generateBatch(reqs);
    for (let i = 0; i < reqs.length; i++) {
      const alone = await engine.generate(reqs[i]!);
      expect(batch[i]!.tokenIds, `request ${i}`).toEqual(alone.tokenIds);
    }
    expect(batch.map((r) => r.tokenIds.length)).toEqual([12, 8, 15, 15]);
  });

  it('validates adapters against the base before use', async () => {
    const wrong = randomAdapter(randomCheckpoint({ hidden_size: 32 }).config, 2, 1);
    await expect(engine.generate({ promptIds: [1], adapter: wrong })).rejects.toMatchObject({
      code: 'BAD_USER_INPUT',
    });
  });
});

describe('built-in model (byte-level tokenizer)', () => {
  let dir: string;
  let engine: Engine;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dg-gen-'));
    await makeTinyModel(dir, { seed: 3 });
    engine = await Engine.load(dir, { session: { threads: 1 } });
  });
  afterAll(async () => {
    await engine.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('tokenizes the prompt with BOS, streams deltas that concatenate to the text', async () => {
    const deltas: string[] = [];
    const r = await engine.generate(
      { prompt: 'héllo wörld ✓', maxTokens: 40, temperature: 1.5, seed: 9, stopAtEos: false },
      (d) => deltas.push(d),
    );
    expect(r.promptIds[0]).toBe(1);
    expect(r.promptIds).toEqual(engine.tokenizer!.encode('héllo wörld ✓'));
    expect(r.tokenIds).toHaveLength(40);
    expect(deltas.join('')).toBe(r.text);
    // A delta that split a character would have put U+FFFD where the whole decode has the character.
    expect(r.text).toBe(engine.tokenizer!.decode(r.tokenIds));
  });

  it('is reproducible for a seed and differs across seeds', async () => {
    const req = { prompt: 'abc', maxTokens: 24, temperature: 1.0, topK: 50, topP: 0.95, stopAtEos: false };
    const a = await engine.generate({ ...req, seed: 1 });
    const b = await engine.generate({ ...req, seed: 1 });
    const c = await engine.generate({ ...req, seed: 2 });
    expect(b.tokenIds).toEqual(a.tokenIds);
    expect(c.tokenIds).not.toEqual(a.tokenIds);
  });

  it('stops at a stop sequence, cutting the text before it', async () => {
    const free = await engine.generate({
      prompt: 'x',
      maxTokens: 30,
      temperature: 1,
      seed: 4,
      stopAtEos: false,
    });
    const stop = free.text.slice(10, 12);
    expect(stop).toHaveLength(2);
    const r = await engine.generate({
      prompt: 'x',
      maxTokens: 30,
      temperature: 1,
      seed: 4,
      stopAtEos: false,
      stop: [stop],
    });
    expect(r.finishReason).toBe('stop');
    expect(r.text).toBe(free.text.slice(0, free.text.indexOf(stop)));
    expect(r.tokenIds).toEqual(free.tokenIds.slice(0, r.tokenIds.length));
    expect(r.tokenIds.length).toBeLessThan(30);
  });

  it('stops at EOS (included in tokenIds) with finishReason stop', async () => {
    const ckpt = randomCheckpoint({}, 5);
    const probe = await new Engine(LoadedModel.fromCheckpoint(ckpt, null)).generate({
      promptIds: [1, 2, 3],
      maxTokens: 6,
    });
    const eos = probe.tokenIds[3]!;
    const withEos = randomCheckpoint({ eos_token_id: eos }, 5);
    const r = await new Engine(LoadedModel.fromCheckpoint(withEos, null)).generate({
      promptIds: [1, 2, 3],
      maxTokens: 6,
    });
    const first = probe.tokenIds.indexOf(eos);
    expect(r.tokenIds).toEqual(probe.tokenIds.slice(0, first + 1));
    expect(r.finishReason).toBe('stop');
  });

  it('refuses bad requests with BAD_USER_INPUT', async () => {
    for (const req of [
      { promptIds: [] },
      { promptIds: [1, 100000] },
      { prompt: 'a', maxTokens: 0 },
      { prompt: 'a', temperature: -1 },
      { prompt: 'a', maxTokens: 10_000 },
      {},
    ]) {
      await expect(engine.generate(req), JSON.stringify(req)).rejects.toMatchObject({
        code: 'BAD_USER_INPUT',
      });
    }
  });
});
