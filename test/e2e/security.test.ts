// The API's guards through HTTP and WebSocket against the real server: CSRF prevention, depth/alias/page-size
// bombs refused before execution, graphql-ws authentication at connect, per-key rate limiting, and
// introspection off in production. Storage/database independent, so SQLite + directory store only.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_KEY, codes, gql, ok, startHarness, wsClient, type Harness } from './harness.js';

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
