// The OpenAI-compatible REST API (/v1) through the real server, driven by the official `openai` client:
// models.list / retrieve, completions and chat completions (plain and streamed: the deltas add up to the
// plain text, usage matches), `name` / `name@alias` / `name@vN` resolving as GraphQL's adapter reference does
// and giving GraphQL's text for the same greedy request, tenant isolation (another tenant's adapter is the
// same 404 as an unknown one), every error status (400 naming the parameter, 401, 403, 404, 413, 429 with
// Retry-After, 500) with OpenAI's error shape, a raw SSE check of the framing, and a closed stream taking its
// row out of the gateway's running batch.
import { mkdtempSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI, { APIError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_CONFIG, makeTinyModel } from '../../src/engine/builtin-model.js';
import { linearShape, parseModelConfig, type LinearModule } from '../../src/engine/formats/hf-config.js';
import { loraScale, serializePeftAdapter, type LoraWeights } from '../../src/engine/formats/peft.js';
import { rawRequest } from '../http/helpers.js';
import { createCustomer } from './fixtures/gql-client.js';
import { waitFor } from './fixtures/facts.js';
import { ADMIN_KEY, makePeftAdapter, ok, startHarness, type Harness, type Loose } from './harness.js';

const GENERATE = `mutation($input: GenerateInput!) {
  generate(input: $input) { text finishReason usage { promptTokens completionTokens totalTokens } adapterVersion { id } }
}`;
const IMPORT = `mutation($input: ImportAdapterVersionInput!) { importAdapterVersion(input: $input) { id version } }`;

/** A PEFT adapter for the built-in model whose weights are large enough to change what greedy decoding picks. */
function strongAdapter(seed: number) {
  const base = parseModelConfig(BUILTIN_CONFIG);
  const modules: LinearModule[] = ['q_proj', 'v_proj', 'up_proj', 'down_proj'];
  const rank = 4;
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 0.5;
  const weights = new Map<string, LoraWeights>();
  for (let layer = 0; layer < base.numLayers; layer++) {
    for (const m of modules) {
      const { inFeatures, outFeatures } = linearShape(base, m);
      weights.set(`${layer}.${m}`, {
        a: Float32Array.from({ length: rank * inFeatures }, rand),
        b: Float32Array.from({ length: outFeatures * rank }, rand),
      });
    }
  }
  const { adapterConfig, weights: bytes } = serializePeftAdapter({
    rank,
    alpha: 2 * rank,
    useRslora: false,
    scale: loraScale(2 * rank, rank, false),
    dropout: 0,
    targetModules: modules,
    baseModelName: 'deltagate-tiny',
    weights,
  });
  return { adapterConfig, weightsBase64: Buffer.from(bytes).toString('base64') };
}

interface Failure {
  status: number | undefined;
  type: string | undefined;
  code: string | null | undefined;
  param: string | null | undefined;
  message: string;
  retryAfter: string | null;
}

/** The OpenAI error a call fails with (it must fail). */
async function failure(p: Promise<unknown>): Promise<Failure> {
  try {
    await p;
  } catch (err) {
    if (!(err instanceof APIError)) throw err;
    const body = err.error as { message?: string } | undefined;
    return {
      status: err.status,
      type: err.type,
      code: err.code,
      param: err.param,
      message: body?.message ?? err.message,
      retryAfter: err.headers?.get('retry-after') ?? null,
    };
  }
  throw new Error('the call succeeded');
}

describe('the OpenAI-compatible API', () => {
  let h: Harness;
  let dir: string;
  let A: { id: string; key: string };
  let B: { id: string; key: string };
  let a: OpenAI;
  let b: OpenAI;
  const v: Record<string, string> = {};
  let adapterId = '';

  const client = (apiKey: string) => new OpenAI({ baseURL: `${h.server.url}/v1`, apiKey, maxRetries: 0 });
  const graphqlText = async (key: string, input: Record<string, unknown>) =>
    (await ok(h, key, GENERATE, { input })).generate;

  beforeAll(async () => {
    // A second base model without a tokenizer (a llama2.c-style checkpoint): chat must say it cannot.
    dir = mkdtempSync(join(tmpdir(), 'dg-oai-'));
    const noTok = join(dir, 'no-tok');
    await makeTinyModel(noTok);
    await rm(join(noTok, 'tokenizer.json'));
    await rm(join(noTok, 'tokenizer_config.json'));
    h = await startHarness('sqlite+fs', { DELTAGATE_BASE_MODELS: `${noTok}#none` });
    A = await createCustomer(h, 'Acme');
    B = await createCustomer(h, 'Globex');
    a = client(A.key);
    b = client(B.key);
    adapterId = (
      await ok(
        h,
        A.key,
        `mutation { createAdapter(input: { name: "helper", baseModelId: "deltagate-tiny" }) { id } }`,
      )
    ).createAdapter.id;
    // An adapter with no version yet: not addressable, so not listed.
    await ok(
      h,
      A.key,
      `mutation { createAdapter(input: { name: "empty", baseModelId: "deltagate-tiny" }) { id } }`,
    );
    for (const [name, seed] of [
      ['v1', 5],
      ['v2', 6],
      ['v3', 7],
    ] as const) {
      // Large enough weights that the versions answer differently.
      const p = strongAdapter(seed);
      const d = await ok(h, A.key, IMPORT, {
        input: { adapterId, adapterConfig: p.adapterConfig, weightsBase64: p.weightsBase64 },
      });
      v[name] = d.importAdapterVersion.id;
    }
    await ok(h, A.key, `mutation($i: SetAdapterAliasInput!) { setAdapterAlias(input: $i) { id } }`, {
      i: { adapterId, alias: 'production', versionId: v.v1 },
    });
    await ok(h, A.key, `mutation($i: SetAdapterAliasInput!) { setAdapterAlias(input: $i) { id } }`, {
      i: { adapterId, alias: 'canary', versionId: v.v3 },
    });
  });
  afterAll(async () => {
    await h?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('models.list: the base models and every addressable name of the caller, nothing of another tenant', async () => {
    const ids = async (c: OpenAI) => {
      const out: string[] = [];
      for await (const m of c.models.list()) out.push(m.id);
      return out;
    };
    expect(await ids(a)).toEqual([
      'deltagate-tiny',
      'no-tok',
      'helper',
      'helper@canary',
      'helper@production',
      'helper@v1',
      'helper@v2',
      'helper@v3',
    ]);
    expect(await ids(b)).toEqual(['deltagate-tiny', 'no-tok']);
    const page = await a.models.list();
    const helper = page.data.find((m) => m.id === 'helper@v2')!;
    expect(helper).toMatchObject({ object: 'model', owned_by: A.id, parent: 'deltagate-tiny' });
    expect(Number.isInteger(helper.created) && helper.created > 1.6e9).toBe(true);
    expect(await a.models.retrieve('helper@canary')).toMatchObject({ id: 'helper@canary', object: 'model' });
    expect(await a.models.retrieve('deltagate-tiny')).toMatchObject({ id: 'deltagate-tiny', parent: null });
    for (const [c, id] of [
      [b, 'helper'],
      [b, v.v1!],
      [a, 'nobody'],
      [a, 'helper@v9'],
    ] as const) {
      expect(await failure(c.models.retrieve(id)), id).toMatchObject({
        status: 404,
        code: 'model_not_found',
        param: 'model',
        message: `The model '${id}' does not exist or you do not have access to it.`,
      });
    }
  });

  it('completions: name, name@alias, name@vN and a base model give GraphQL generate’s text and usage', async () => {
    const prompt = 'Once upon a time';
    const texts: Record<string, string> = {};
    for (const [model, adapter] of [
      ['helper', 'helper'],
      ['helper@production', 'helper@production'],
      ['helper@canary', 'helper@canary'],
      ['helper@v2', 'helper@v2'],
      [v.v3!, v.v3!],
      ['deltagate-tiny', null],
    ] as const) {
      const c = await a.completions.create({ model, prompt, max_tokens: 12, temperature: 0 });
      const g = await graphqlText(A.key, { adapter, prompt, maxTokens: 12 });
      expect(c, model).toMatchObject({
        object: 'text_completion',
        model,
        choices: [{ index: 0, text: g.text, logprobs: null, finish_reason: g.finishReason.toLowerCase() }],
        usage: {
          prompt_tokens: g.usage.promptTokens,
          completion_tokens: g.usage.completionTokens,
          total_tokens: g.usage.totalTokens,
        },
      });
      expect(c.id).toMatch(/^cmpl-[0-9a-f]{32}$/);
      texts[model] = c.choices[0]!.text;
    }
    // The bare name serves production (v1); the aliases and numbers reach their own versions.
    expect(texts.helper).toBe(texts['helper@production']);
    expect(texts['helper@canary']).toBe(texts[v.v3!]);
    expect(new Set([texts.helper, texts['helper@v2'], texts['helper@canary']]).size).toBe(3);
    // Byte-level tokens: one per UTF-8 byte, plus BOS.
    const one = await a.completions.create({ model: 'deltagate-tiny', prompt: 'héllo', max_tokens: 1 });
    expect(one.usage).toEqual({ prompt_tokens: 7, completion_tokens: 1, total_tokens: 8 });
    // Token ids work as a prompt too (also on the model without a tokenizer).
    const ids = await a.completions.create({ model: 'no-tok', prompt: [1, 72, 105], max_tokens: 3 });
    expect(ids.usage?.prompt_tokens).toBe(3);
  });

  it('chat completions: the same chat template as GraphQL messages, max_completion_tokens, stop', async () => {
    const messages = [
      { role: 'system' as const, content: 'You are terse.' },
      { role: 'user' as const, content: 'Say hi' },
    ];
    const c = await a.chat.completions.create({ model: 'helper@v2', messages, max_completion_tokens: 10 });
    const g = await graphqlText(A.key, { adapter: 'helper@v2', messages, maxTokens: 10 });
    expect(c).toMatchObject({
      object: 'chat.completion',
      model: 'helper@v2',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: g.text, refusal: null },
          logprobs: null,
          finish_reason: g.finishReason.toLowerCase(),
        },
      ],
      usage: { prompt_tokens: g.usage.promptTokens, completion_tokens: g.usage.completionTokens },
    });
    expect(c.id).toMatch(/^chatcmpl-/);
    // Text parts and the `developer` role are accepted (rendered as text and as system).
    const parts = await a.chat.completions.create({
      model: 'helper@v2',
      messages: [
        { role: 'developer', content: [{ type: 'text', text: 'You are terse.' }] },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Say ' },
            { type: 'text', text: 'hi' },
          ],
        },
      ],
      max_tokens: 10,
    });
    expect(parts.choices[0]!.message.content).toBe(g.text);
    // A stop sequence cuts the text before it; finish_reason stop.
    const long = await a.completions.create({
      model: 'helper@v2',
      prompt: 'Once upon a time',
      max_tokens: 12,
    });
    const text = long.choices[0]!.text;
    const stopAt = text.slice(3, 5);
    expect(stopAt).toHaveLength(2);
    const cut = await a.completions.create({
      model: 'helper@v2',
      prompt: 'Once upon a time',
      max_tokens: 12,
      stop: [stopAt],
    });
    expect(cut.choices[0]).toMatchObject({
      text: text.slice(0, text.indexOf(stopAt)),
      finish_reason: 'stop',
    });
  });

  it('streaming: deltas add up to the plain text, one role chunk first, usage last with include_usage', async () => {
    const messages = [{ role: 'user' as const, content: 'Tell me a story' }];
    const plain = await a.chat.completions.create({ model: 'helper', messages, max_tokens: 16 });
    const stream = await a.chat.completions.create({
      model: 'helper',
      messages,
      max_tokens: 16,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: 'assistant', content: '', refusal: null });
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === 'helper')).toBe(true);
    const content = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(content).toBe(plain.choices[0]!.message.content);
    const finishes = chunks.filter((c) => c.choices[0]?.finish_reason);
    expect(finishes.map((c) => c.choices[0]!.finish_reason)).toEqual([plain.choices[0]!.finish_reason]);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual(plain.usage);
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);

    const prompt = 'The end is';
    const whole = await a.completions.create({ model: 'helper@v2', prompt, max_tokens: 16 });
    const parts: OpenAI.Completions.Completion[] = [];
    for await (const c of await a.completions.create({
      model: 'helper@v2',
      prompt,
      max_tokens: 16,
      stream: true,
    }))
      parts.push(c);
    expect(parts.every((c) => c.object === 'text_completion' && c.usage === undefined)).toBe(true);
    expect(parts.map((c) => c.choices[0]!.text).join('')).toBe(whole.choices[0]!.text);
    expect(parts.at(-1)!.choices[0]!.finish_reason).toBe(whole.choices[0]!.finish_reason);
  });

  it('raw SSE: data: lines, blank-line framing, [DONE] last, text/event-stream', async () => {
    const res = await fetch(`${h.server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${A.key}` },
      body: JSON.stringify({
        model: 'deltagate-tiny',
        messages: [{ role: 'user', content: 'Hi' }],
        max_tokens: 5,
        stream: true,
        stream_options: { include_usage: true },
      }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('no-cache');
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const body = await res.text();
    expect(body.endsWith('data: [DONE]\n\n')).toBe(true);
    const events = body.split('\n\n').slice(0, -1);
    expect(events.every((e) => e.startsWith('data: ') && !e.includes('\n'))).toBe(true);
    expect(events.at(-1)).toBe('data: [DONE]');
    const json = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)) as Loose);
    expect(json[0].choices[0].delta.role).toBe('assistant');
    expect(json.at(-2).choices[0].finish_reason).toBe('length');
    expect(json.at(-1)).toMatchObject({ choices: [], usage: { completion_tokens: 5 } });
  });

  it('closing the stream takes the row out of the running batch', async () => {
    const gateway = h.server.services.generation.gateway;
    const stepsBefore = (await gateway.stats()).models['deltagate-tiny']!.steps;
    const controller = new AbortController();
    const stream = await a.completions.create(
      { model: 'helper@v2', prompt: 'Go on', max_tokens: 400, stream: true },
      { signal: controller.signal },
    );
    let seen = 0;
    for await (const c of stream) {
      seen += c.choices[0]?.text.length ?? 0;
      if (seen >= 3) break; // leaves the loop: the SDK aborts the request
    }
    const model = async () => (await gateway.stats()).models['deltagate-tiny']!;
    await waitFor(
      'the aborted row to leave the batch',
      async () => {
        const m = await model();
        return m.running === 0 && m.waiting === 0;
      },
      5_000,
      20,
    );
    const steps = (await model()).steps;
    await new Promise((r) => setTimeout(r, 300));
    expect((await model()).steps).toBe(steps); // nothing generates for a client that left
    expect(steps - stepsBefore).toBeLessThan(100); // far from the 400 tokens asked for
    expect((await model()).kvSlotsFree).toBe((await model()).kvSlots);
  });

  it('400: bad JSON, wrong types, unknown fields, unsupported features, n > 1, max_tokens past the context — nothing queued', async () => {
    const gateway = h.server.services.generation.gateway;
    const stepsBefore = (await gateway.stats()).models['deltagate-tiny']!.steps;
    const cases: [Record<string, unknown>, string | null, string | null][] = [
      [{ model: 'helper', prompt: 'x', max_tokens: 'ten' }, 'max_tokens', 'invalid_type'],
      [{ model: 'helper', prompt: 'x', temperature: 3 }, 'temperature', 'invalid_value'],
      [{ model: 'helper', prompt: 'x', n: 2 }, 'n', 'unsupported_value'],
      [{ model: 'helper', prompt: 'x', best_of: 3 }, 'best_of', 'unsupported_parameter'],
      [{ model: 'helper', prompt: 'x', echo: true }, 'echo', 'unsupported_parameter'],
      [{ model: 'helper', prompt: 'x', bogus: 1 }, 'bogus', 'unknown_parameter'],
      [{ model: 'helper', prompt: ['a', 'b'] }, 'prompt', 'unsupported_value'],
      [{ model: 'helper', prompt: 'x', max_tokens: 4096 }, 'max_tokens', null],
      [
        { model: 'helper', prompt: 'x'.repeat(300), max_tokens: 300 },
        'max_tokens',
        'context_length_exceeded',
      ],
      [{ model: 'helper', prompt: '' }, 'prompt', null],
      [
        { model: 'helper', prompt: 'x', stream_options: { include_usage: true } },
        'stream_options',
        'invalid_value',
      ],
      [{ prompt: 'x' }, 'model', 'missing_required_parameter'],
    ];
    for (const [body, param, code] of cases) {
      const f = await failure(a.completions.create(body as never));
      expect(f, JSON.stringify(body).slice(0, 80)).toMatchObject({
        status: 400,
        type: 'invalid_request_error',
        param,
        code,
      });
    }
    const chatCases: [Record<string, unknown>, string, string | null][] = [
      [{ model: 'helper', messages: [] }, 'messages', 'invalid_value'],
      [{ model: 'helper', messages: [{ role: 'robot', content: 'x' }] }, 'messages[0].role', 'invalid_value'],
      [
        { model: 'helper', messages: [{ role: 'tool', content: 'x' }] },
        'messages[0].role',
        'unsupported_parameter',
      ],
      [
        { model: 'helper', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }] },
        'messages[0].content[0].type',
        'unsupported_parameter',
      ],
      [
        { model: 'helper', messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function' }] },
        'tools',
        'unsupported_parameter',
      ],
      [
        { model: 'helper', messages: [{ role: 'user', content: 'x' }], logprobs: true },
        'logprobs',
        'unsupported_parameter',
      ],
      [
        {
          model: 'helper',
          messages: [{ role: 'user', content: 'x' }],
          response_format: { type: 'json_object' },
        },
        'response_format',
        'unsupported_parameter',
      ],
      [
        { model: 'helper', messages: [{ role: 'user', content: 'x' }], max_completion_tokens: 5000 },
        'max_completion_tokens',
        null,
      ],
      [{ model: 'helper', messages: [{ role: 'user', content: 'x' }], stop: [1] }, 'stop', 'invalid_type'],
      [{ model: 'no-tok', messages: [{ role: 'user', content: 'x' }] }, 'messages', null],
    ];
    for (const [body, param, code] of chatCases) {
      const f = await failure(a.chat.completions.create(body as never));
      expect(f, JSON.stringify(body).slice(0, 80)).toMatchObject({ status: 400, param, code });
    }
    expect(
      (
        await failure(
          a.chat.completions.create({ model: 'no-tok', messages: [{ role: 'user', content: 'x' }] }),
        )
      ).message,
    ).toMatch(/no tokenizer/);
    // Lenient where OpenAI is: neutral values of unsupported features and `user` are accepted.
    const lenient = await a.chat.completions.create({
      model: 'helper',
      messages: [{ role: 'user', content: 'x' }],
      max_tokens: 1,
      user: 'u-1',
      logprobs: false,
      frequency_penalty: 0,
      presence_penalty: 0,
      n: 1,
      tools: [],
      response_format: { type: 'text' },
      logit_bias: {},
      seed: 3,
      top_p: 1,
    });
    expect(lenient.choices[0]!.finish_reason).toBe('length');
    // Malformed JSON, and a body that is not an object.
    for (const raw of ['{"model": ', '[1,2]']) {
      const res = await fetch(`${h.server.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${A.key}` },
        body: raw,
      });
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({
        error: { message: expect.any(String), type: 'invalid_request_error', param: null, code: null },
      });
    }
    // The refusals reached no batch step (the lenient request ran one token: prefill + no decode).
    const stepsAfter = (await gateway.stats()).models['deltagate-tiny']!.steps;
    expect(stepsAfter - stepsBefore).toBeLessThanOrEqual(2);
  });

  it('401, 403, 404, 413 and unknown /v1 paths in OpenAI’s shape', async () => {
    expect(await failure(client('dg_live_not-a-key').models.list())).toMatchObject({
      status: 401,
      code: 'invalid_api_key',
    });
    const noKey = await fetch(`${h.server.url}/v1/models`);
    expect(noKey.status).toBe(401);
    expect(((await noKey.json()) as Loose).error).toMatchObject({
      type: 'invalid_request_error',
      code: 'invalid_api_key',
    });
    expect(
      await failure(client(ADMIN_KEY).completions.create({ model: 'deltagate-tiny', prompt: 'x' })),
    ).toMatchObject({ status: 403, type: 'permission_error', code: 'permission_denied' });
    // Another tenant's adapter, by name or version id, reads exactly like one that does not exist.
    for (const model of ['helper', 'helper@v2', v.v1!, 'nobody']) {
      const f = await failure(
        b.chat.completions.create({ model, messages: [{ role: 'user', content: 'x' }] }),
      );
      expect(f).toEqual({
        status: 404,
        type: 'invalid_request_error',
        code: 'model_not_found',
        param: 'model',
        message: `The model '${model}' does not exist or you do not have access to it.`,
        retryAfter: null,
      });
    }
    // Over the 1 MiB body limit: 413 from the declared length, before the body is read.
    const big = await rawRequest(
      h.server.port,
      `POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${A.key}\r\nContent-Type: application/json\r\nContent-Length: ${2 * 1024 * 1024}`,
    );
    expect(big.status).toBe(413);
    expect(big.closed).toBe(true);
    expect(JSON.parse(big.text.slice(big.text.indexOf('\r\n\r\n') + 4))).toMatchObject({
      error: { type: 'invalid_request_error', code: 'request_too_large' },
    });
    // Without a key the body is not read either: 401 first.
    const anon = await rawRequest(
      h.server.port,
      `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100`,
    );
    expect(anon.status).toBe(401);
    const res = await fetch(`${h.server.url}/v1/embeddings`, {
      method: 'POST',
      headers: { authorization: `Bearer ${A.key}` },
    });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      error: {
        message: 'Invalid URL (POST /v1/embeddings)',
        type: 'invalid_request_error',
        param: null,
        code: null,
      },
    });
  });

  it('429 insufficient_quota past the monthly limit (no retry), 500 for an adapter that fails its SHA-256 check', async () => {
    const capped = await createCustomer(h, 'Capped', { monthlyTokenLimit: 10 });
    const c = client(capped.key);
    await c.completions.create({ model: 'deltagate-tiny', prompt: 'Hello there', max_tokens: 4 });
    const f = await failure(c.completions.create({ model: 'deltagate-tiny', prompt: 'Hi', max_tokens: 4 }));
    expect(f).toMatchObject({ status: 429, type: 'insufficient_quota', code: 'insufficient_quota' });

    const p = makePeftAdapter({ seed: 9, rank: 4, modules: ['q_proj'] });
    const v4 = (
      await ok(h, A.key, IMPORT, {
        input: { adapterId, adapterConfig: p.adapterConfig, weightsBase64: p.weightsBase64 },
      })
    ).importAdapterVersion;
    const actor = { role: 'CUSTOMER' as const, customerId: A.id, apiKeyId: 'test' };
    const stored = await h.server.services.adapters.getVersion(actor, v4.id);
    const key = `${stored.blobPrefix}adapter_model.safetensors`;
    const good = await h.server.services.blobs.get(key);
    const flipped = Uint8Array.from(good);
    flipped[flipped.length - 3]! ^= 0x01;
    await h.server.services.blobs.put(key, flipped);
    const broken = await failure(
      a.completions.create({ model: 'helper@v4', prompt: 'Hello', max_tokens: 2 }),
    );
    expect(broken).toMatchObject({ status: 500, type: 'server_error' });
    expect(broken.message).toMatch(/SHA-256/);
    await h.server.services.blobs.put(key, good);
  });
});

describe('the OpenAI-compatible API under the rate limits GraphQL uses', () => {
  let h: Harness;
  let key = '';

  beforeAll(async () => {
    h = await startHarness('sqlite+fs', {
      DELTAGATE_RATE_LIMIT_PER_MINUTE: '4',
      DELTAGATE_GENERATION_TOKENS_PER_MINUTE: '120',
    });
    key = (await createCustomer(h, 'Tight')).key;
  });
  afterAll(async () => h?.close());

  it('the generation token budget and the per-key request limit answer 429 with Retry-After', async () => {
    const c = new OpenAI({ baseURL: `${h.server.url}/v1`, apiKey: key, maxRetries: 0 });
    // 1: reserves 4 + the prompt (2 bytes: 1 token) of the 120-token bucket, and spends them.
    const first = await c.completions.create({ model: 'deltagate-tiny', prompt: 'Hi', max_tokens: 4 });
    expect(first.usage?.completion_tokens).toBe(4);
    // 2: 119 + 1 is more than the 115 left: the token budget refuses it before it is queued.
    const tokens = await failure(
      c.completions.create({ model: 'deltagate-tiny', prompt: 'Hi', max_tokens: 119 }),
    );
    expect(tokens).toMatchObject({ status: 429, type: 'tokens', code: 'rate_limit_exceeded' });
    expect(Number(tokens.retryAfter)).toBeGreaterThanOrEqual(1);
    // GraphQL's generate draws from the same bucket.
    const r = await fetch(`${h.server.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({
        query: `mutation { generate(input: { prompt: "Hi", maxTokens: 119 }) { text } }`,
      }),
    });
    expect(((await r.json()) as Loose).errors[0].extensions.code).toBe('RATE_LIMITED');
    // 4 requests a minute per key, both APIs together: this is the 4th, then the 5th is refused.
    await c.models.list();
    const requests = await failure(c.models.list());
    expect(requests).toMatchObject({ status: 429, type: 'requests', code: 'rate_limit_exceeded' });
    expect(Number(requests.retryAfter)).toBeGreaterThanOrEqual(1);
  });
});
