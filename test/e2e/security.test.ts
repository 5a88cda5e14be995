// The API's guards through HTTP and WebSocket against the real server: CSRF prevention, depth/alias/page-size
// bombs refused before execution, graphql-ws authentication at connect and per operation (a revoked key or an
// empty bucket answers the operation, never closes the socket with 4500), per-key rate limiting with
// Retry-After, generation charged by tokens (one `generate` per request), and introspection off in
// production. Storage/database independent, so SQLite + directory store only.
import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCustomer } from './fixtures/gql-client.js';
import { ADMIN_KEY, codes, gql, ok, startHarness, wsClient, type Harness, type Loose } from './harness.js';

describe('API guards', () => {
  let h: Harness;
  let key = '';
  let otherKey = '';

  beforeAll(async () => {
    h = await startHarness('sqlite+fs', { DELTAGATE_RATE_LIMIT_PER_MINUTE: '40' });
    const mk = async (name: string) =>
      (
        await ok(h, ADMIN_KEY, 'mutation($n: String!) { createCustomer(input: { name: $n }) { secret } }', {
          n: name,
        })
      ).createCustomer.secret as string;
    key = await mk('sec');
    otherKey = await mk('other');
  });
  afterAll(async () => h?.close());

  it('CSRF: a text/plain POST (a "simple" cross-site request) is refused without executing', async () => {
    const before = await ok(h, ADMIN_KEY, '{ customers(first: 100) { edges { node { id } } } }');
    const res = await fetch(h.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', authorization: `Bearer ${ADMIN_KEY}` },
      body: JSON.stringify({ query: 'mutation { createCustomer(input: { name: "csrf" }) { secret } }' }),
    });
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/CSRF/);
    const after = await ok(h, ADMIN_KEY, '{ customers(first: 100) { edges { node { id } } } }');
    expect(after.customers.edges.length).toBe(before.customers.edges.length);
  });

  it('a depth bomb is refused before execution', async () => {
    let q = 'id';
    for (let i = 0; i < 20; i++) q = `adapter { versions { edges { node { ${q} } } } }`;
    const r = await gql(h, key, `{ adapterVersion(id: "adv_x") { ${q} } }`);
    expect(r.status).toBe(400);
    expect(r.data).toBeNull();
    expect(r.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('1,000 aliases are refused before execution', async () => {
    const fields = Array.from({ length: 1000 }, (_, i) => `a${i}: viewer { role }`).join(' ');
    const r = await gql(h, key, `{ ${fields} }`);
    expect(r.status).toBe(400);
    expect(r.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('first: 99999999 is refused', async () => {
    expect(await codes(h, key, '{ datasets(first: 99999999) { edges { node { id } } } }')).toEqual([
      'BAD_USER_INPUT',
    ]);
    expect(
      await codes(h, key, '{ datasets(first: 10, after: "bm90LWEtY3Vyc29y") { edges { node { id } } } }'),
    ).toEqual(['BAD_USER_INPUT']);
  });

  it('graphql-ws: a bad key is refused at connect; a good key can run operations', async () => {
    const bad = wsClient(h, 'Bearer dg_live_' + 'x'.repeat(43));
    const closed = await new Promise<{ code: number }>((resolve) => {
      bad.on('closed', (e) => resolve(e as { code: number }));
    });
    expect(closed.code).toBe(4403);
    await bad.dispose();

    const none = wsClient(h, null);
    const closedNone = await new Promise<{ code: number }>((resolve) =>
      none.on('closed', (e) => resolve(e as { code: number })),
    );
    expect(closedNone.code).toBe(4403);
    await none.dispose();

    const good = wsClient(h, `Bearer ${key}`);
    const result = await new Promise<unknown>((resolve, reject) => {
      let value: unknown;
      good.subscribe(
        { query: '{ viewer { role customer { name } } }' },
        {
          next: (v) => (value = v),
          error: reject,
          complete: () => resolve(value),
        },
      );
    });
    expect(result).toEqual({ data: { viewer: { role: 'CUSTOMER', customer: { name: 'sec' } } } });
    await good.dispose();
  });

  it('a burst on one key is rate limited without slowing another key', async () => {
    const results = await Promise.all(Array.from({ length: 60 }, () => gql(h, key, '{ viewer { role } }')));
    const limited = results.filter((r) => r.errors?.[0]?.extensions?.code === 'RATE_LIMITED');
    expect(limited.length).toBeGreaterThan(0);
    expect(limited[0]!.status).toBe(429);
    expect((await ok(h, otherKey, '{ viewer { role } }')).viewer.role).toBe('CUSTOMER');
  });

  it('a 429 carries Retry-After, the same seconds as extensions.retryAfterSeconds', async () => {
    const res = await fetch(h.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ query: '{ viewer { role } }' }),
    });
    const body = (await res.json()) as {
      errors: { extensions: { code: string; retryAfterSeconds: number } }[];
    };
    expect(res.status).toBe(429);
    expect(body.errors[0]!.extensions.code).toBe('RATE_LIMITED');
    expect(body.errors[0]!.extensions.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(res.headers.get('retry-after')).toBe(String(body.errors[0]!.extensions.retryAfterSeconds));
  });
});

/** One operation on an open graphql-ws client: its result, its errors, or how the socket closed. */
function runOnSocket(client: Client, query: string): Promise<unknown> {
  return new Promise((resolve) => {
    let value: unknown;
    client.subscribe(
      { query },
      {
        next: (v) => (value = v),
        error: (err) =>
          resolve(Array.isArray(err) ? { errors: err } : { closed: (err as { code?: number }).code }),
        complete: () => resolve(value),
      },
    );
  });
}

describe('WebSocket operations after connect', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness('sqlite+fs', { DELTAGATE_RATE_LIMIT_PER_MINUTE: '6' });
  });
  afterAll(async () => h?.close());

  it('a key revoked while its socket is open gets UNAUTHENTICATED for the next operation, not a 4500 close', async () => {
    const c = await createCustomer(h, 'revoked-on-ws');
    const keyId = (await ok(h, c.key, '{ viewer { apiKey { id } } }')).viewer.apiKey.id as string;
    const client = wsClient(h, `Bearer ${c.key}`);
    const closes: number[] = [];
    client.on('closed', (e) => closes.push((e as { code: number }).code));
    try {
      expect(await runOnSocket(client, '{ viewer { role } }')).toEqual({
        data: { viewer: { role: 'CUSTOMER' } },
      });
      await ok(h, c.key, 'mutation($id: ID!) { revokeApiKey(id: $id) { id } }', { id: keyId });
      expect(await runOnSocket(client, '{ viewer { role } }')).toEqual({
        errors: [{ message: 'API key revoked', extensions: { code: 'UNAUTHENTICATED' } }],
      });
      expect(closes).toEqual([]);
    } finally {
      await client.dispose();
    }
  });

  it('an operation past the rate limit gets RATE_LIMITED with a retry hint, not a 4500 close', async () => {
    const c = await createCustomer(h, 'busy-on-ws');
    const client = wsClient(h, `Bearer ${c.key}`); // the connect takes 1 of the 6 tokens
    const closes: number[] = [];
    client.on('closed', (e) => closes.push((e as { code: number }).code));
    try {
      for (let i = 0; i < 5; i++) {
        expect(await runOnSocket(client, '{ viewer { role } }')).toEqual({
          data: { viewer: { role: 'CUSTOMER' } },
        });
      }
      const refused = (await runOnSocket(client, '{ viewer { role } }')) as {
        errors?: { extensions: { code: string; retryAfterSeconds: number } }[];
      };
      expect(refused.errors?.map((e) => e.extensions.code)).toEqual(['RATE_LIMITED']);
      expect(refused.errors?.[0]?.extensions.retryAfterSeconds).toBeGreaterThanOrEqual(1);
      expect(closes).toEqual([]);
    } finally {
      await client.dispose();
    }
  });
});

const GENERATE = `mutation($input: GenerateInput!) {
  generate(input: $input) { text usage { promptTokens completionTokens } }
}`;

describe('generation is charged by tokens', () => {
  let h: Harness;
  let A: { id: string; key: string };
  let B: { id: string; key: string };
  const TOKENS_PER_MINUTE = 400;

  beforeAll(async () => {
    h = await startHarness('sqlite+fs', {
      DELTAGATE_GENERATION_TOKENS_PER_MINUTE: String(TOKENS_PER_MINUTE),
    });
    A = await createCustomer(h, 'burst');
    B = await createCustomer(h, 'steady');
    await ok(h, B.key, GENERATE, { input: { prompt: 'warm', maxTokens: 1 } }); // loads the model
  });
  afterAll(async () => h?.close());

  it('refuses a second generate field in one request before anything runs', async () => {
    const usage = async () =>
      (await ok(h, A.key, '{ viewer { customer { usage { requests completionTokens } } } }')).viewer.customer
        .usage;
    const before = await usage();
    const r = await gql(
      h,
      A.key,
      `mutation { a: generate(input: { prompt: "x", maxTokens: 2 }) { text } b: generate(input: { prompt: "y", maxTokens: 2 }) { text } }`,
    );
    expect(r.status).toBe(400);
    expect(r.data).toBeNull();
    expect(r.errors?.map((e) => e.extensions?.code)).toEqual(['BAD_USER_INPUT']);
    expect(r.errors?.[0]?.message).toMatch(/one generate/);
    expect(await usage()).toEqual(before);
  });

  it('a burst on key A is refused by token cost and barely slows key B', async () => {
    const viewer = async (key: string) => {
      const t = performance.now();
      await ok(h, key, '{ viewer { role } }');
      return performance.now() - t;
    };
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const alone: number[] = [];
    for (let i = 0; i < 15; i++) alone.push(await viewer(B.key));

    // 40 requests of 32 tokens each: ~1,300 tokens against a budget of 400 a minute.
    const burst = Promise.all(
      Array.from({ length: 40 }, async () => {
        const t = performance.now();
        const r = await gql(h, A.key, GENERATE, { input: { prompt: 'Once upon a time', maxTokens: 32 } });
        return { code: r.errors?.[0]?.extensions?.code ?? 'OK', ms: performance.now() - t };
      }),
    );
    const during: number[] = [];
    for (let i = 0; i < 15; i++) during.push(await viewer(B.key));
    const results = await burst;

    const accepted = results.filter((r) => r.code === 'OK');
    const refused = results.filter((r) => r.code === 'RATE_LIMITED');
    expect(accepted.length + refused.length).toBe(40);
    // At most the budget's worth ran (each request reserves maxTokens + its prompt).
    expect(accepted.length).toBeLessThanOrEqual(Math.floor(TOKENS_PER_MINUTE / 32));
    expect(refused.length).toBeGreaterThanOrEqual(40 - Math.floor(TOKENS_PER_MINUTE / 32));
    // Refusals are cheap: they come back before the generations that did run.
    expect(median(refused.map((r) => r.ms))).toBeLessThan(median(accepted.map((r) => r.ms)));
    // B's requests during the burst: a generous bound (shared CI cores).
    expect(median(during)).toBeLessThan(Math.max(5 * median(alone), 50));
  });

  it('a generate refused by the token budget carries Retry-After', async () => {
    const res = await fetch(h.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${A.key}` },
      body: JSON.stringify({ query: GENERATE, variables: { input: { prompt: 'x', maxTokens: 300 } } }),
    });
    const body = (await res.json()) as {
      errors: { extensions: { code: string; retryAfterSeconds: number } }[];
    };
    expect(body.errors.map((e) => e.extensions.code)).toEqual(['RATE_LIMITED']);
    expect(res.headers.get('retry-after')).toBe(String(body.errors[0]!.extensions.retryAfterSeconds));
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  });
});

const GENERATE_TEXT = `mutation($input: GenerateInput!) { generate(input: $input) { text usage { completionTokens } } }`;

describe('a finished generateStream gives back what it did not use', () => {
  let h: Harness;
  let C: { id: string; key: string };

  beforeAll(async () => {
    h = await startHarness('sqlite+fs', { DELTAGATE_GENERATION_TOKENS_PER_MINUTE: '200' });
    C = await createCustomer(h, 'streamer');
  });
  afterAll(async () => h?.close());

  it('settles the reservation with the usage of the last chunk', async () => {
    // The greedy text tells which stop string ends the stream after its first token.
    const g = (await ok(h, C.key, GENERATE_TEXT, { input: { prompt: 'Hi', maxTokens: 4 } })).generate;
    expect(g.usage.completionTokens).toBe(4);
    const stop = [g.text.slice(0, 1)];
    const client = wsClient(h, `Bearer ${C.key}`);
    try {
      const chunks: { text: string; finishReason: string | null }[] = [];
      await new Promise<void>((resolve, reject) =>
        client.subscribe(
          {
            query: `subscription($input: GenerateInput!) { generateStream(input: $input) { text finishReason } }`,
            variables: { input: { prompt: 'Hi', maxTokens: 150, stop } },
          },
          { next: (r) => chunks.push((r.data as Loose).generateStream), error: reject, complete: resolve },
        ),
      );
      expect(chunks.at(-1)!.finishReason).toBe('STOP');
      // Spent so far: 4 + 1 and the stream's few tokens, not its reserved 150 + 1; 150 more still fit the 200.
      const next = await gql(h, C.key, GENERATE_TEXT, { input: { prompt: 'Hi', maxTokens: 150 } });
      expect(next.errors).toBeUndefined();
    } finally {
      await client.dispose();
    }
  });
});

describe('production mode', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness('sqlite+fs', { NODE_ENV: 'production' });
  });
  afterAll(async () => h?.close());

  it('turns introspection off and hides stack traces', async () => {
    const r = await gql(h, ADMIN_KEY, '{ __schema { types { name } } }');
    expect(r.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    const nf = await gql(h, ADMIN_KEY, '{ dataset(id: "ds_nope") { id } }');
    expect(nf.errors?.[0]?.extensions).toEqual({ code: 'NOT_FOUND' });
  });
});
