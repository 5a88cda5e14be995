// `generate` and `generateStream` through the real server (HTTP + graphql-ws) on embedded defaults: every
// kind of adapter reference, MERGED = SIDELOAD, stream deltas adding up to the text with a final
// finishReason, maxTokens beyond the context refused, usage counted per customer, tenant isolation, and a
// stored adapter with one flipped byte refused by the SHA-256 check.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  codes,
  gql,
  makePeftAdapter,
  ok,
  startHarness,
  wsClient,
  type Harness,
  type Loose,
} from './harness.js';
import { collect, createCustomer, subscriptionCode } from './fixtures/gql-client.js';

const GENERATE = `mutation($input: GenerateInput!) {
  generate(input: $input) { text finishReason mode usage { promptTokens completionTokens totalTokens } adapterVersion { id version } }
}`;
const STREAM = `subscription($input: GenerateInput!) { generateStream(input: $input) { text index finishReason } }`;
const IMPORT = `mutation($input: ImportAdapterVersionInput!) { importAdapterVersion(input: $input) { id version } }`;

describe('generation through GraphQL', () => {
  let h: Harness;
  let A: { id: string; key: string };
  let B: { id: string; key: string };
  const v: Record<string, string> = {};
  let adapterId = '';

  beforeAll(async () => {
    h = await startHarness('sqlite+fs');
    A = await createCustomer(h, 'Acme');
    B = await createCustomer(h, 'Globex');
    adapterId = (
      await ok(
        h,
        A.key,
        `mutation { createAdapter(input: { name: "helper", baseModelId: "deltagate-tiny" }) { id } }`,
      )
    ).createAdapter.id;
    for (const [name, seed] of [
      ['v1', 5],
      ['v2', 6],
      ['v3', 7],
    ] as const) {
      const p = makePeftAdapter({ seed, rank: 4, modules: ['q_proj', 'v_proj', 'up_proj'] });
      const d = await ok(h, A.key, IMPORT, {
        input: { adapterId, adapterConfig: p.adapterConfig, weightsBase64: p.weightsBase64 },
      });
      v[name] = d.importAdapterVersion.id;
    }
    await ok(h, A.key, `mutation($i: SetAdapterAliasInput!) { setAdapterAlias(input: $i) { id } }`, {
      i: { adapterId, alias: 'production', versionId: v.v1 },
    });
  });
  afterAll(async () => h?.close());

  const gen = (key: string, input: Record<string, unknown>) => gql<Loose>(h, key, GENERATE, { input });

  it('resolves name, name@alias, name@vN, a version id and null in the caller tenant', async () => {
    const versionOf = async (adapter: string | null) => {
      const r = await gen(A.key, { adapter, prompt: 'Hello', maxTokens: 2 });
      if (r.errors) return r.errors[0]!.extensions?.code;
      return r.data.generate.adapterVersion?.id ?? null;
    };
    expect(await versionOf(null)).toBeNull();
    expect(await versionOf('helper')).toBe(v.v1); // production alias
    expect(await versionOf('helper@production')).toBe(v.v1);
    expect(await versionOf('helper@v2')).toBe(v.v2);
    expect(await versionOf(v.v3)).toBe(v.v3);
    expect(await versionOf('helper@v9')).toBe('NOT_FOUND');
    expect(await versionOf('nobody')).toBe('NOT_FOUND');
    // Customer B sees none of A's adapters, by name or by id.
    for (const ref of ['helper', v.v1]) {
      expect(await codes(h, B.key, GENERATE, { input: { adapter: ref, prompt: 'Hello' } }), ref).toEqual([
        'NOT_FOUND',
      ]);
    }
  });

  it('MERGED and SIDELOAD answer the same; usage is counted per customer', async () => {
    const input = { adapter: 'helper@v2', prompt: 'Once upon a time', maxTokens: 10 };
    const merged = (await ok(h, A.key, GENERATE, { input: { ...input, mode: 'MERGED' } })).generate;
    const side = (await ok(h, A.key, GENERATE, { input: { ...input, mode: 'SIDELOAD' } })).generate;
    expect(merged.mode).toBe('MERGED');
    expect(side.mode).toBe('SIDELOAD');
    expect(merged.text).toBe(side.text);
    expect(side.usage).toEqual(merged.usage);
    expect(side.usage.promptTokens).toBeGreaterThanOrEqual(16); // byte-level: one token per byte (+ BOS)
    expect(side.usage.totalTokens).toBe(side.usage.promptTokens + side.usage.completionTokens);
    expect(side.finishReason).toMatch(/^(STOP|LENGTH)$/);

    const usageOf = async (key: string) =>
      (await ok(h, key, '{ viewer { customer { usage { requests promptTokens completionTokens } } } }'))
        .viewer.customer.usage;
    const before = await usageOf(B.key);
    const r = (await ok(h, B.key, GENERATE, { input: { prompt: 'abc', maxTokens: 3 } })).generate;
    const after = await usageOf(B.key);
    expect(after).toEqual({
      requests: before.requests + 1,
      promptTokens: before.promptTokens + r.usage.promptTokens,
      completionTokens: before.completionTokens + r.usage.completionTokens,
    });
  });

  it('refuses maxTokens beyond the context', async () => {
    expect(await codes(h, A.key, GENERATE, { input: { prompt: 'hi', maxTokens: 4096 } })).toEqual([
      'BAD_USER_INPUT',
    ]);
    expect(await codes(h, A.key, GENERATE, { input: { prompt: 'x'.repeat(300), maxTokens: 300 } })).toEqual([
      'BAD_USER_INPUT',
    ]);
  });

  it('generateStream: deltas add up to the text, the last chunk carries the finishReason', async () => {
    const input = { adapter: 'helper', prompt: 'The end is', maxTokens: 16, mode: 'SIDELOAD' };
    const whole = (await ok(h, A.key, GENERATE, { input })).generate;
    const client = wsClient(h, `Bearer ${A.key}`);
    try {
      const s = collect<Loose>(client, STREAM, { input });
      await s.done;
      const chunks = s.events.map((e) => e.data.generateStream);
      expect(chunks.length).toBeGreaterThan(1);
      expect(chunks.map((c: Loose) => c.index)).toEqual(chunks.map((_: Loose, i: number) => i));
      expect(chunks.slice(0, -1).every((c: Loose) => c.finishReason === null)).toBe(true);
      expect(chunks.at(-1).finishReason).toBe(whole.finishReason);
      expect(chunks.map((c: Loose) => c.text).join('')).toBe(whole.text);
      // Refusals arrive as errors of the subscription, before any chunk.
      const bad = collect<Loose>(client, STREAM, { input: { ...input, maxTokens: 100_000 } });
      expect(await subscriptionCode(bad.done)).toBe('BAD_USER_INPUT');
      const foreign = collect<Loose>(wsClient(h, `Bearer ${B.key}`), STREAM, { input });
      expect(await subscriptionCode(foreign.done)).toBe('NOT_FOUND');
    } finally {
      await client.dispose();
    }
  });

  it('a stored adapter with one flipped byte is refused by the SHA-256 check', async () => {
    // A version not loaded yet (nothing cached), corrupted in storage after its import.
    const p = makePeftAdapter({ seed: 8, rank: 4, modules: ['q_proj'] });
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
    const r = await gen(A.key, { adapter: 'helper@v4', prompt: 'Hello', maxTokens: 2 });
    expect(r.errors?.map((e) => e.extensions?.code)).toEqual(['INTERNAL_SERVER_ERROR']);
    expect(r.errors?.[0]?.message).toMatch(/SHA-256/);
    // Restored, it loads.
    await h.server.services.blobs.put(key, good);
    const fixed = await ok(h, A.key, GENERATE, {
      input: { adapter: 'helper@v4', prompt: 'Hello', maxTokens: 2 },
    });
    expect(fixed.generate.adapterVersion).toEqual({ id: v4.id, version: 4 });
  });
});
