// Issue 2's "Done when", through HTTP against the real server, on SQLite + directory store AND on
// PostgreSQL + S3 (moto): customers, keys, datasets (inline, broken, chat, presigned), PEFT import +
// alias, refused adapters leave nothing behind, tenant isolation (an IDOR table), key revocation.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adapterPrefix } from '../../src/storage/keys.js';
import {
  ADMIN_KEY,
  codes,
  gql,
  makePeftAdapter,
  ok,
  startHarness,
  type Backend,
  type Harness,
  type Loose,
} from './harness.js';

const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

const PC_ROWS = [
  { prompt: 'What is deltagate?', completion: 'A LoRA adapter platform.' },
  { prompt: 'Capital of France?', completion: 'Paris.' },
  { prompt: '2+2?', completion: '4' },
];
const VALID_JSONL = PC_ROWS.map((r) => JSON.stringify(r)).join('\n') + '\n';
// Line 2: not JSON; line 4: missing completion; lines 1 and 3 fine.
const BROKEN_JSONL = [
  JSON.stringify(PC_ROWS[0]),
  '{"prompt": "oops",',
  JSON.stringify(PC_ROWS[1]),
  JSON.stringify({ prompt: 'no completion' }),
].join('\n');
const CHAT_JSONL = [
  {
    messages: [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'hello!' },
    ],
  },
  {
    messages: [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'sum 1+1' },
      { role: 'assistant', content: '2' },
    ],
  },
]
  .map((r) => JSON.stringify(r))
  .join('\n');

const DATASET_FIELDS =
  'id name format status rowCount tokenCount sizeBytes sha256 errors { line message } createdAt';
const UPLOAD = `mutation($input: UploadDatasetInput!) { uploadDataset(input: $input) { ${DATASET_FIELDS} } }`;
const IMPORT = `mutation($input: ImportAdapterVersionInput!) {
  importAdapterVersion(input: $input) { id version rank alpha targetModules sizeBytes sha256 metrics downloadUrl adapter { id } }
}`;

describe.each<Backend>(['sqlite+fs', 'postgres+s3'])('control plane on %s', (backend) => {
  let h: Harness;
  const A = { id: '', key: '', keyId: '' };
  const B = { id: '', key: '', keyId: '' };
  const ids = { dataset: '', pending: '', adapter: '', v1: '', v2: '' };
  const peft = makePeftAdapter();

  beforeAll(async () => {
    h = await startHarness(backend);
  });
  afterAll(async () => h?.close());

  it('the admin creates two customers, each with a first key shown once', async () => {
    for (const [who, name] of [
      [A, 'Acme'],
      [B, 'Globex'],
    ] as const) {
      const d = await ok(
        h,
        ADMIN_KEY,
        `mutation($n: String!) { createCustomer(input: { name: $n, maxAdapters: 3 }) {
        customer { id name maxAdapters } apiKey { id prefix revokedAt } secret } }`,
        { n: name },
      );
      const p = d.createCustomer;
      expect(p.customer).toEqual({ id: expect.stringMatching(/^cus_/), name, maxAdapters: 3 });
      expect(p.secret).toMatch(/^dg_live_[A-Za-z0-9_-]{43}$/);
      expect(p.secret.startsWith(p.apiKey.prefix)).toBe(true);
      Object.assign(who, { id: p.customer.id, key: p.secret, keyId: p.apiKey.id });
    }
    expect(await ok(h, A.key, '{ viewer { role customer { id name } apiKey { id } } }')).toEqual({
      viewer: { role: 'CUSTOMER', customer: { id: A.id, name: 'Acme' }, apiKey: { id: A.keyId } },
    });
    expect((await ok(h, ADMIN_KEY, '{ viewer { role customer { id } } }')).viewer).toEqual({
      role: 'ADMIN',
      customer: null,
    });
    const listed = await ok(
      h,
      ADMIN_KEY,
      '{ customers(first: 10) { edges { node { id } } pageInfo { hasNextPage } } }',
    );
    expect(listed.customers.edges.map((e: Loose) => e.node.id)).toEqual([A.id, B.id]);
  });

  it('a valid prompt/completion dataset is READY with the right counts', async () => {
    const d = (
      await ok(h, A.key, UPLOAD, {
        input: { name: 'faq', content: VALID_JSONL, format: 'PROMPT_COMPLETION' },
      })
    ).uploadDataset;
    expect(d).toMatchObject({
      name: 'faq',
      format: 'PROMPT_COMPLETION',
      status: 'READY',
      rowCount: 3,
      sizeBytes: Buffer.byteLength(VALID_JSONL),
      sha256: sha256(VALID_JSONL),
      errors: [],
    });
    // The built-in tokenizer is byte-level: one token per UTF-8 byte of every text field.
    const bytes = PC_ROWS.reduce(
      (n, r) => n + Buffer.byteLength(r.prompt) + Buffer.byteLength(r.completion),
      0,
    );
    expect(d.tokenCount).toBe(bytes);
    ids.dataset = d.id;
  });

  it('a broken dataset is INVALID with the right line numbers', async () => {
    const d = (
      await ok(h, A.key, UPLOAD, {
        input: { name: 'broken', content: BROKEN_JSONL, format: 'PROMPT_COMPLETION' },
      })
    ).uploadDataset;
    expect(d.status).toBe('INVALID');
    expect(d.errors.map((e: Loose) => e.line)).toEqual([2, 4]);
    expect(d.errors[1].message).toMatch(/completion/);
  });

  it('a chat dataset is READY', async () => {
    const d = (await ok(h, A.key, UPLOAD, { input: { name: 'chat', content: CHAT_JSONL, format: 'CHAT' } }))
      .uploadDataset;
    expect(d).toMatchObject({ status: 'READY', rowCount: 2, format: 'CHAT' });
  });

  it('the presigned path: createDatasetUpload → PUT → completeDatasetUpload', async () => {
    const body = Buffer.from(VALID_JSONL + JSON.stringify({ prompt: 'four?', completion: 'yes' }) + '\n');
    const t = (
      await ok(
        h,
        A.key,
        `mutation($i: CreateDatasetUploadInput!) { createDatasetUpload(input: $i) {
        dataset { id status } uploadId url headers expiresAt } }`,
        { i: { name: 'big', format: 'PROMPT_COMPLETION', sizeBytes: body.byteLength } },
      )
    ).createDatasetUpload;
    expect(t.dataset.status).toBe('PENDING');
    expect(Date.parse(t.expiresAt)).toBeGreaterThan(Date.now());
    // Completing before anything was PUT is refused and leaves the dataset PENDING.
    expect(
      await codes(h, A.key, 'mutation($id: ID!) { completeDatasetUpload(id: $id) { status } }', {
        id: t.dataset.id,
      }),
    ).toEqual(['BAD_USER_INPUT']);
    const put = await fetch(t.url, { method: 'PUT', headers: t.headers, body });
    expect(put.status).toBeLessThan(300);
    const done = (
      await ok(h, A.key, `mutation($id: ID!) { completeDatasetUpload(id: $id) { ${DATASET_FIELDS} } }`, {
        id: t.dataset.id,
      })
    ).completeDatasetUpload;
    expect(done).toMatchObject({
      id: t.dataset.id,
      status: 'READY',
      rowCount: 4,
      sizeBytes: body.byteLength,
      sha256: sha256(body),
    });
    // Idempotent once finished.
    expect(
      (
        await ok(h, A.key, 'mutation($id: ID!) { completeDatasetUpload(id: $id) { status } }', {
          id: t.dataset.id,
        })
      ).completeDatasetUpload.status,
    ).toBe('READY');

    const pending = (
      await ok(
        h,
        A.key,
        `mutation { createDatasetUpload(input: { name: "later", format: TEXT, sizeBytes: 10 }) { dataset { id } } }`,
      )
    ).createDatasetUpload;
    ids.pending = pending.dataset.id;
  });

  it('datasets paginate as a Relay connection', async () => {
    const p1 = (
      await ok(
        h,
        A.key,
        '{ datasets(first: 2) { edges { cursor node { name } } pageInfo { hasNextPage endCursor } } }',
      )
    ).datasets;
    expect(p1.edges.map((e: Loose) => e.node.name)).toEqual(['faq', 'broken']);
    expect(p1.pageInfo.hasNextPage).toBe(true);
    const p2 = (
      await ok(
        h,
        A.key,
        '{ datasets(first: 10, after: "' +
          p1.pageInfo.endCursor +
          '") { edges { node { name } } pageInfo { hasNextPage } } }',
      )
    ).datasets;
    expect(p2.edges.map((e: Loose) => e.node.name)).toEqual(['chat', 'big', 'later']);
    expect(p2.pageInfo.hasNextPage).toBe(false);
  });

  it('adapters: create, names validated, unique per customer, quota', async () => {
    const create =
      'mutation($i: CreateAdapterInput!) { createAdapter(input: $i) { id name baseModel { id contextLength config } } }';
    const a = (
      await ok(h, A.key, create, {
        i: { name: 'support', baseModelId: 'deltagate-tiny', description: 'help desk' },
      })
    ).createAdapter;
    expect(a).toMatchObject({ name: 'support', baseModel: { id: 'deltagate-tiny', contextLength: 512 } });
    expect(a.baseModel.config.hidden_size).toBe(128);
    ids.adapter = a.id;
    expect(await codes(h, A.key, create, { i: { name: 'support', baseModelId: 'deltagate-tiny' } })).toEqual([
      'CONFLICT',
    ]);
    for (const name of ['../etc', 'Upper', 'a/b', '', 'x'.repeat(64), '-lead']) {
      expect(await codes(h, A.key, create, { i: { name, baseModelId: 'deltagate-tiny' } })).toEqual([
        'BAD_USER_INPUT',
      ]);
    }
    expect(await codes(h, A.key, create, { i: { name: 'nope', baseModelId: 'llama-404' } })).toEqual([
      'BAD_USER_INPUT',
    ]);
    // B may use the same name: names are per customer.
    await ok(h, B.key, create, { i: { name: 'support', baseModelId: 'deltagate-tiny' } });
    await ok(h, A.key, create, { i: { name: 'two', baseModelId: 'deltagate-tiny' } });
    await ok(h, A.key, create, { i: { name: 'three', baseModelId: 'deltagate-tiny' } });
    expect(await codes(h, A.key, create, { i: { name: 'four', baseModelId: 'deltagate-tiny' } })).toEqual([
      'QUOTA_EXCEEDED',
    ]);
  });

  it('imports a PEFT adapter as versions 1 and 2, aliases production, serves the file back', async () => {
    const v1 = (
      await ok(h, A.key, IMPORT, {
        input: {
          adapterId: ids.adapter,
          adapterConfig: peft.adapterConfig,
          weightsBase64: peft.weightsBase64,
        },
      })
    ).importAdapterVersion;
    expect(v1).toMatchObject({
      version: 1,
      rank: 4,
      alpha: 8,
      targetModules: ['q_proj', 'v_proj'],
      sizeBytes: peft.weights.byteLength,
      sha256: sha256(peft.weights),
      metrics: null,
      adapter: { id: ids.adapter },
    });
    const downloaded = new Uint8Array(await (await fetch(v1.downloadUrl)).arrayBuffer());
    expect(sha256(downloaded)).toBe(sha256(peft.weights));
    const other = makePeftAdapter({ seed: 7, rank: 2, modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] });
    const v2 = (
      await ok(h, A.key, IMPORT, {
        input: {
          adapterId: ids.adapter,
          adapterConfig: other.adapterConfig,
          weightsBase64: other.weightsBase64,
        },
      })
    ).importAdapterVersion;
    expect(v2).toMatchObject({ version: 2, rank: 2 });
    ids.v1 = v1.id;
    ids.v2 = v2.id;

    const aliased = (
      await ok(
        h,
        A.key,
        `mutation($i: SetAdapterAliasInput!) { setAdapterAlias(input: $i) { id aliases { alias version { id version } } } }`,
        {
          i: { adapterId: ids.adapter, alias: 'production', versionId: v1.id },
        },
      )
    ).setAdapterAlias;
    expect(aliased.aliases).toEqual([{ alias: 'production', version: { id: v1.id, version: 1 } }]);
    expect(
      await codes(h, A.key, `mutation($i: SetAdapterAliasInput!) { setAdapterAlias(input: $i) { id } }`, {
        i: { adapterId: ids.adapter, alias: 'v3', versionId: v1.id },
      }),
    ).toEqual(['BAD_USER_INPUT']);

    const byName = (
      await ok(
        h,
        A.key,
        `{ adapterByName(name: "support") { id latestVersion { version } versions(first: 10) { edges { node { version aliases } } } } }`,
      )
    ).adapterByName;
    expect(byName).toEqual({
      id: ids.adapter,
      latestVersion: { version: 2 },
      versions: {
        edges: [{ node: { version: 1, aliases: ['production'] } }, { node: { version: 2, aliases: [] } }],
      },
    });
    const resolved = await h.server.services.adapters.resolveReference(
      { role: 'CUSTOMER', customerId: A.id, apiKeyId: A.keyId },
      'support',
    );
    expect(resolved.id).toBe(v1.id);
  });

  it('wrongly shaped and hostile adapters are refused with BAD_USER_INPUT and leave nothing behind', async () => {
    const storedBefore = await h.server.services.blobs.list(adapterPrefix(A.id, ids.adapter));
    const countRows = async () =>
      Number(
        (
          await h.server.services.repos.db
            .selectFrom('adapter_versions')
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    const rowsBefore = await countRows();

    const misShaped = makePeftAdapter({ outBy: 1 });
    const hugeHeader = Buffer.alloc(16);
    hugeHeader.writeBigUInt64LE(2n ** 40n, 0);
    const overlapping = Buffer.from(peft.weights);
    // Point the header length past the end of the file.
    overlapping.writeBigUInt64LE(BigInt(overlapping.byteLength), 0);
    const cases: Record<string, unknown>[] = [
      { adapterConfig: misShaped.adapterConfig, weightsBase64: misShaped.weightsBase64 },
      { adapterConfig: peft.adapterConfig, weightsBase64: hugeHeader.toString('base64') },
      { adapterConfig: peft.adapterConfig, weightsBase64: overlapping.toString('base64') },
      { adapterConfig: { ...peft.adapterConfig, r: 8 }, weightsBase64: peft.weightsBase64 },
      {
        adapterConfig: { ...peft.adapterConfig, peft_type: 'PREFIX_TUNING' },
        weightsBase64: peft.weightsBase64,
      },
      { adapterConfig: peft.adapterConfig, weightsBase64: 'not base64 at all!' },
      { adapterConfig: peft.adapterConfig },
    ];
    for (const c of cases) {
      expect(await codes(h, A.key, IMPORT, { input: { adapterId: ids.adapter, ...c } })).toEqual([
        'BAD_USER_INPUT',
      ]);
    }
    expect(await countRows()).toBe(rowsBefore);
    expect(await h.server.services.blobs.list(adapterPrefix(A.id, ids.adapter))).toEqual(storedBefore);
  });

  it('deleteAdapterVersion refuses an aliased version and removes an unaliased one with its files', async () => {
    const del = 'mutation($id: ID!) { deleteAdapterVersion(id: $id) }';
    expect(await codes(h, A.key, del, { id: ids.v1 })).toEqual(['CONFLICT']);
    expect((await ok(h, A.key, del, { id: ids.v2 })).deleteAdapterVersion).toBe(true);
    const keys = (await h.server.services.blobs.list(adapterPrefix(A.id, ids.adapter))).map((o) => o.key);
    expect(keys.every((k) => k.includes('/v1/'))).toBe(true);
    expect(keys.length).toBe(2);
    expect(
      await codes(h, A.key, 'query($id: ID!) { adapterVersion(id: $id) { id } }', { id: ids.v2 }),
    ).toEqual(['NOT_FOUND']);
  });

  it('imports adapter weights through a presigned upload, consuming the upload', async () => {
    const other = makePeftAdapter({ seed: 3 });
    const up = (
      await ok(
        h,
        A.key,
        'mutation($i: CreateAdapterUploadInput!) { createAdapterUpload(input: $i) { id url headers } }',
        {
          i: { sizeBytes: other.weights.byteLength },
        },
      )
    ).createAdapterUpload;
    const put = await fetch(up.url, { method: 'PUT', headers: up.headers, body: other.weights });
    expect(put.status).toBeLessThan(300);
    const input = { adapterId: ids.adapter, adapterConfig: other.adapterConfig, uploadId: up.id };
    const v = (await ok(h, A.key, IMPORT, { input })).importAdapterVersion;
    // Version 2 was deleted above, so its number is free again (ids are never reused).
    expect(v).toMatchObject({ version: 2, sha256: sha256(other.weights) });
    expect(v.id).not.toBe(ids.v2);
    expect(await codes(h, A.key, IMPORT, { input })).toEqual(['NOT_FOUND']);
    expect(await codes(h, B.key, IMPORT, { input: { ...input, adapterId: 'ada_x' } })).toEqual(['NOT_FOUND']);
  });

  it('the other customer sees none of it', async () => {
    const d = await ok(
      h,
      B.key,
      `{ datasets { edges { node { id } } } adapters { edges { node { name versions { edges { node { id } } } } } }
      adapterByName(name: "support") { id latestVersion { id } aliases { alias } } }`,
    );
    expect(d.datasets.edges).toEqual([]);
    expect(d.adapters.edges).toEqual([{ node: { name: 'support', versions: { edges: [] } } }]);
    expect(d.adapterByName.id).not.toBe(ids.adapter);
    expect(d.adapterByName.latestVersion).toBeNull();
    expect(d.adapterByName.aliases).toEqual([]);
  });

  it('IDOR table: every query and mutation with the other customer’s ids is NOT_FOUND', async () => {
    const table: [string, string, Record<string, unknown>][] = [
      ['customer', 'query($id: ID!) { customer(id: $id) { id } }', { id: A.id }],
      ['dataset', 'query($id: ID!) { dataset(id: $id) { id } }', { id: ids.dataset }],
      ['adapter', 'query($id: ID!) { adapter(id: $id) { id } }', { id: ids.adapter }],
      ['adapterVersion', 'query($id: ID!) { adapterVersion(id: $id) { id } }', { id: ids.v1 }],
      [
        'trainingJob',
        'query($id: ID!) { trainingJob(id: $id) { id } }',
        { id: 'job_06h25hmhq9v46yqyn0c33wg76g' },
      ],
      ['createApiKey', 'mutation($id: ID!) { createApiKey(customerId: $id) { secret } }', { id: A.id }],
      ['revokeApiKey', 'mutation($id: ID!) { revokeApiKey(id: $id) { id } }', { id: A.keyId }],
      [
        'completeDatasetUpload',
        'mutation($id: ID!) { completeDatasetUpload(id: $id) { id } }',
        { id: ids.pending },
      ],
      ['deleteDataset', 'mutation($id: ID!) { deleteDataset(id: $id) }', { id: ids.dataset }],
      [
        'importAdapterVersion',
        IMPORT,
        {
          input: {
            adapterId: ids.adapter,
            adapterConfig: peft.adapterConfig,
            weightsBase64: peft.weightsBase64,
          },
        },
      ],
      [
        'setAdapterAlias (adapter)',
        'mutation($i: SetAdapterAliasInput!) { setAdapterAlias(input: $i) { id } }',
        { i: { adapterId: ids.adapter, alias: 'production', versionId: ids.v1 } },
      ],
      ['deleteAdapterVersion', 'mutation($id: ID!) { deleteAdapterVersion(id: $id) }', { id: ids.v1 }],
      [
        'setAdapterPinned',
        'mutation($id: ID!) { setAdapterPinned(adapterId: $id, pinned: true) { id } }',
        { id: ids.adapter },
      ],
    ];
    const bAdapter = (await ok(h, B.key, '{ adapterByName(name: "support") { id } }')).adapterByName.id;
    table.push([
      'setAdapterAlias (version)',
      'mutation($i: SetAdapterAliasInput!) { setAdapterAlias(input: $i) { id } }',
      { i: { adapterId: bAdapter, alias: 'production', versionId: ids.v1 } },
    ]);
    const results = await Promise.all(
      table.map(async ([name, q, v]) => [name, await codes(h, B.key, q, v)] as const),
    );
    expect(Object.fromEntries(results)).toEqual(
      Object.fromEntries(table.map(([name]) => [name, ['NOT_FOUND']])),
    );
    // Listing customers and creating one are the admin's: FORBIDDEN for a customer.
    expect(await codes(h, B.key, '{ customers { edges { node { id } } } }')).toEqual(['FORBIDDEN']);
    expect(await codes(h, B.key, 'mutation { createCustomer(input: { name: "x" }) { secret } }')).toEqual([
      'FORBIDDEN',
    ]);
    // Nothing of A's changed.
    const a = await ok(
      h,
      A.key,
      `query($d: ID!, $a: ID!) { dataset(id: $d) { status } adapter(id: $a) { aliases { alias version { id } } } viewer { role } }`,
      { d: ids.dataset, a: ids.adapter },
    );
    expect(a).toEqual({
      dataset: { status: 'READY' },
      adapter: { aliases: [{ alias: 'production', version: { id: ids.v1 } }] },
      viewer: { role: 'CUSTOMER' },
    });
  });

  it('a revoked key is refused at once; missing and malformed keys too', async () => {
    const created = (
      await ok(
        h,
        ADMIN_KEY,
        'mutation($id: ID!) { createApiKey(customerId: $id, name: "ci") { apiKey { id name } secret } }',
        { id: A.id },
      )
    ).createApiKey;
    expect((await ok(h, created.secret, '{ viewer { customer { id } } }')).viewer.customer.id).toBe(A.id);
    const revoked = (
      await ok(h, A.key, 'mutation($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }', {
        id: created.apiKey.id,
      })
    ).revokeApiKey;
    expect(revoked.revokedAt).not.toBeNull();
    const r = await gql(h, created.secret, '{ viewer { role } }');
    expect(r.status).toBe(401);
    expect(r.errors?.map((e) => e.extensions?.code)).toEqual(['UNAUTHENTICATED']);
    for (const bad of [
      null,
      'dg_live_short',
      created.secret.slice(0, -1) + (created.secret.endsWith('A') ? 'B' : 'A'),
      ADMIN_KEY + 'x',
    ]) {
      expect(await codes(h, bad, '{ viewer { role } }')).toEqual(['UNAUTHENTICATED']);
    }
    // A's original key still works.
    expect((await ok(h, A.key, '{ viewer { role } }')).viewer.role).toBe('CUSTOMER');
  });

  it('deleteDataset removes the row and the file', async () => {
    const blobKey = `customers/${A.id}/datasets/${ids.dataset}/data.jsonl`;
    expect(await h.server.services.blobs.head(blobKey)).not.toBeNull();
    expect(
      (await ok(h, A.key, 'mutation($id: ID!) { deleteDataset(id: $id) }', { id: ids.dataset }))
        .deleteDataset,
    ).toBe(true);
    expect(await h.server.services.blobs.head(blobKey)).toBeNull();
    expect(await codes(h, A.key, 'query($id: ID!) { dataset(id: $id) { id } }', { id: ids.dataset })).toEqual(
      ['NOT_FOUND'],
    );
  });
});
