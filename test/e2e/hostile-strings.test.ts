// Hardening: a NUL byte (or another control character) in an id or a stored string never reaches SQL.
// PostgreSQL refuses "\u0000" in text ("invalid byte sequence for encoding UTF8"), which used to surface as
// INTERNAL_SERVER_ERROR. Every ID argument of every query, mutation and subscription answers NOT_FOUND (an
// unknown base model: BAD_USER_INPUT, as any unknown base model), every stored or identifying string
// BAD_USER_INPUT (or NOT_FOUND for a lookup), on SQLite and PostgreSQL alike. The table is checked against the
// schema itself, so an ID or String argument added later fails here until it has a case.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getNamedType, isInputObjectType, isObjectType, isScalarType, type GraphQLInputType } from 'graphql';
import { buildDeltagateSchema } from '../../src/resolvers/schema.js';
import { encodeCursor } from '../../src/resolvers/pagination.js';
import {
  ADMIN_KEY,
  gql,
  makePeftAdapter,
  ok,
  startHarness,
  wsClient,
  type Backend,
  type Harness,
} from './harness.js';

const NUL = 'abc\u0000';
const MISSING = 'job_00000000000000000000000000';

interface Case {
  /** `Type.field.arg` or `Type.field.arg.inputField` (the schema walk's names). */
  covers: string;
  who: 'customer' | 'admin';
  query: string;
  variables: () => Record<string, unknown>;
  expected: 'NOT_FOUND' | 'BAD_USER_INPUT';
  subscription?: boolean;
}

/** Every ID- or String-typed argument (and input field) of the schema, as `Type.field.arg[.field…]`. */
async function stringArguments(): Promise<string[]> {
  const schema = await buildDeltagateSchema();
  const out: string[] = [];
  const walk = (type: GraphQLInputType, path: string, seen: Set<string>) => {
    const named = getNamedType(type);
    if (isScalarType(named) && (named.name === 'ID' || named.name === 'String')) out.push(path);
    if (isInputObjectType(named) && !seen.has(named.name)) {
      for (const f of Object.values(named.getFields()))
        walk(f.type, `${path}.${f.name}`, new Set([...seen, named.name]));
    }
  };
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith('__')) continue;
    for (const field of Object.values(type.getFields()))
      for (const arg of field.args) walk(arg.type, `${type.name}.${field.name}.${arg.name}`, new Set());
  }
  return out.sort();
}

/** Free text that is never stored in SQL nor used as a key: a NUL there is content, not an id. */
const FREE_TEXT: Record<string, string> = {
  'Mutation.uploadDataset.input.content':
    'the JSONL file itself (kept in blob storage; a raw NUL makes its line INVALID)',
  'Mutation.generate.input.prompt': 'a prompt is tokenized, never stored',
  'Mutation.generate.input.stop': 'stop sequences are matched against output, never stored',
  'Mutation.generate.input.messages.content': 'chat messages are rendered and tokenized, never stored',
  'Subscription.generateStream.input.messages.content': 'as generate',
  'Subscription.generateStream.input.prompt': 'as generate',
  'Subscription.generateStream.input.stop': 'as generate',
};

describe.each<Backend>(['sqlite+fs', 'postgres+s3'])('hostile strings on %s', (backend) => {
  let h: Harness;
  const A = { id: '', key: '', keyId: '' };
  const ids = { dataset: '', adapter: '', version: '', upload: '' };

  beforeAll(async () => {
    h = await startHarness(backend, {}, { runWorker: false });
    const c = (
      await ok(
        h,
        ADMIN_KEY,
        'mutation { createCustomer(input: { name: "nul" }) { customer { id } apiKey { id } secret } }',
      )
    ).createCustomer;
    Object.assign(A, { id: c.customer.id, key: c.secret, keyId: c.apiKey.id });
    ids.dataset = (
      await ok(h, A.key, 'mutation($i: UploadDatasetInput!) { uploadDataset(input: $i) { id status } }', {
        i: {
          name: 'd',
          format: 'PROMPT_COMPLETION',
          content: '{"prompt":"a","completion":"b"}\n',
        },
      })
    ).uploadDataset.id;
    ids.adapter = (
      await ok(
        h,
        A.key,
        'mutation { createAdapter(input: { name: "a", baseModelId: "deltagate-tiny" }) { id } }',
      )
    ).createAdapter.id;
    const peft = makePeftAdapter();
    ids.version = (
      await ok(
        h,
        A.key,
        'mutation($i: ImportAdapterVersionInput!) { importAdapterVersion(input: $i) { id } }',
        {
          i: { adapterId: ids.adapter, adapterConfig: peft.adapterConfig, weightsBase64: peft.weightsBase64 },
        },
      )
    ).importAdapterVersion.id;
    ids.upload = (
      await ok(h, A.key, 'mutation { createAdapterUpload(input: { sizeBytes: 10 }) { id } }')
    ).createAdapterUpload.id;
  });
  afterAll(async () => h?.close());

  const q = (
    covers: string,
    query: string,
    variables: () => Record<string, unknown>,
    expected: Case['expected'],
    who: Case['who'] = 'customer',
  ): Case => ({ covers, query, variables, expected, who });
  const badCursor = encodeCursor(NUL);

  const CASES: Case[] = [
    q('Query.adapter.id', 'query($v: ID!) { adapter(id: $v) { id } }', () => ({ v: NUL }), 'NOT_FOUND'),
    q(
      'Query.adapterByName.name',
      'query($v: String!) { adapterByName(name: $v) { id } }',
      () => ({ v: NUL }),
      'NOT_FOUND',
    ),
    q(
      'Query.adapterVersion.id',
      'query($v: ID!) { adapterVersion(id: $v) { id } }',
      () => ({ v: NUL }),
      'NOT_FOUND',
    ),
    q(
      'Query.adapters.after',
      'query($v: String) { adapters(after: $v) { edges { cursor } } }',
      () => ({ v: badCursor }),
      'BAD_USER_INPUT',
    ),
    q(
      'Adapter.versions.after',
      'query($a: ID!, $v: String) { adapter(id: $a) { versions(after: $v) { edges { cursor } } } }',
      () => ({ a: ids.adapter, v: badCursor }),
      'BAD_USER_INPUT',
    ),
    q(
      'Query.customer.id',
      'query($v: ID!) { customer(id: $v) { id } }',
      () => ({ v: NUL }),
      'NOT_FOUND',
      'admin',
    ),
    q(
      'Query.customers.after',
      'query($v: String) { customers(after: $v) { edges { cursor } } }',
      () => ({ v: badCursor }),
      'BAD_USER_INPUT',
      'admin',
    ),
    q('Query.dataset.id', 'query($v: ID!) { dataset(id: $v) { id } }', () => ({ v: NUL }), 'NOT_FOUND'),
    q(
      'Query.datasets.after',
      'query($v: String) { datasets(after: $v) { edges { cursor } } }',
      () => ({ v: badCursor }),
      'BAD_USER_INPUT',
    ),
    q(
      'Query.trainingJob.id',
      'query($v: ID!) { trainingJob(id: $v) { id } }',
      () => ({ v: NUL }),
      'NOT_FOUND',
    ),
    q(
      'Query.trainingJobs.after',
      'query($v: String) { trainingJobs(after: $v) { edges { cursor } } }',
      () => ({ v: badCursor }),
      'BAD_USER_INPUT',
    ),
    q(
      'Mutation.cancelTrainingJob.id',
      'mutation($v: ID!) { cancelTrainingJob(id: $v) { id } }',
      () => ({ v: NUL }),
      'NOT_FOUND',
    ),
    q(
      'Mutation.completeDatasetUpload.id',
      'mutation($v: ID!) { completeDatasetUpload(id: $v) { id } }',
      () => ({ v: NUL }),
      'NOT_FOUND',
    ),
    q(
      'Mutation.createAdapter.input.baseModelId',
      'mutation($v: ID!) { createAdapter(input: { name: "b1", baseModelId: $v }) { id } }',
      () => ({ v: NUL }),
      'BAD_USER_INPUT',
    ),
    q(
      'Mutation.createAdapter.input.description',
      'mutation($v: String) { createAdapter(input: { name: "b2", baseModelId: "deltagate-tiny", description: $v }) { id } }',
      () => ({ v: NUL }),
      'BAD_USER_INPUT',
    ),
    q(
      'Mutation.createAdapter.input.name',
      'mutation($v: String!) { createAdapter(input: { name: $v, baseModelId: "deltagate-tiny" }) { id } }',
      () => ({ v: NUL }),
      'BAD_USER_INPUT',
    ),
    q(
      'Mutation.createApiKey.customerId',
      'mutation($v: ID!) { createApiKey(customerId: $v) { secret } }',
      () => ({ v: NUL }),
      'NOT_FOUND',
      'admin',
    ),
    q(
      'Mutation.createApiKey.name',
      'mutation($c: ID!, $v: String) { createApiKey(customerId: $c, name: $v) { secret } }',
      () => ({ c: A.id, v: NUL }),
      'BAD_USER_INPUT',
      'admin',
    ),
    q(
      'Mutation.createCustomer.input.name',
      'mutation($v: String!) { createCustomer(input: { name: $v }) { secret } }',
      () => ({ v: NUL }),
      'BAD_USER_INPUT',
      'admin',
    ),
    q(
      'Mutation.createDatasetUpload.input.name',
      'mutation($v: String!) { createDatasetUpload(input: { name: $v, format: TEXT, sizeBytes: 10 }) { uploadId } }',
      () => ({ v: NUL }),
      'BAD_USER_INPUT',
    ),
    q(
      'Mutation.deleteAdapterVersion.id',
      'mutation($v: ID!) { deleteAdapterVersion(id: $v) }',
      () => ({ v: NUL }),
      'NOT_FOUND',
    ),
    q(
      'Mutation.deleteDataset.id',
      'mutation($v: ID!) { deleteDataset(id: $v) }',
      () => ({ v: NUL }),
      'NOT_FOUND',
    ),
    q(
      'Mutation.generate.input.adapter',
      'mutation($v: String) { generate(input: { adapter: $v, prompt: "x", maxTokens: 1 }) { text } }',
      () => ({ v: NUL }),
      'NOT_FOUND',
    ),
    q(
      'Mutation.generate.input.baseModelId',
      'mutation($v: ID) { generate(input: { baseModelId: $v, prompt: "x", maxTokens: 1 }) { text } }',
      () => ({ v: NUL }),
      'BAD_USER_INPUT',
    ),
    q(
      'Mutation.importAdapterVersion.input.adapterId',
      'mutation($v: ID!) { importAdapterVersion(input: { adapterId: $v, adapterConfig: {}, weightsBase64: "AAAA" }) { id } }',
      () => ({ v: NUL }),
      'NOT_FOUND',
    ),
    q(
      'Mutation.importAdapterVersion.input.uploadId',
      'mutation($a: ID!, $v: ID) { importAdapterVersion(input: { adapterId: $a, adapterConfig: {}, uploadId: $v }) { id } }',
      () => ({ a: ids.adapter, v: NUL }),
      'NOT_FOUND',
    ),
    q(
      'Mutation.importAdapterVersion.input.weightsBase64',
      'mutation($a: ID!, $v: String) { importAdapterVersion(input: { adapterId: $a, adapterConfig: {}, weightsBase64: $v }) { id } }',
      () => ({ a: ids.adapter, v: 'AAAA\u0000' }),
      'BAD_USER_INPUT',
    ),
    q(
      'Mutation.revokeApiKey.id',
      'mutation($v: ID!) { revokeApiKey(id: $v) { id } }',
      () => ({ v: NUL }),
      'NOT_FOUND',
    ),
    q(
      'Mutation.setAdapterAlias.input.adapterId',
      'mutation($v: ID!, $w: ID!) { setAdapterAlias(input: { adapterId: $v, alias: "production", versionId: $w }) { id } }',
      () => ({ v: NUL, w: ids.version }),
      'NOT_FOUND',
    ),
    q(
      'Mutation.setAdapterAlias.input.alias',
      'mutation($a: ID!, $v: String!, $w: ID!) { setAdapterAlias(input: { adapterId: $a, alias: $v, versionId: $w }) { id } }',
      () => ({ a: ids.adapter, v: NUL, w: ids.version }),
      'BAD_USER_INPUT',
    ),
    q(
      'Mutation.setAdapterAlias.input.versionId',
      'mutation($a: ID!, $v: ID!) { setAdapterAlias(input: { adapterId: $a, alias: "production", versionId: $v }) { id } }',
      () => ({ a: ids.adapter, v: NUL }),
      'NOT_FOUND',
    ),
    q(
      'Mutation.setAdapterPinned.adapterId',
      'mutation($v: ID!) { setAdapterPinned(adapterId: $v, pinned: true) { id } }',
      () => ({ v: NUL }),
      'NOT_FOUND',
    ),
    q(
      'Mutation.startTraining.input.adapterId',
      'mutation($v: ID!, $d: ID!) { startTraining(input: { adapterId: $v, datasetId: $d }) { id } }',
      () => ({ v: NUL, d: ids.dataset }),
      'NOT_FOUND',
    ),
    q(
      'Mutation.startTraining.input.datasetId',
      'mutation($a: ID!, $v: ID!) { startTraining(input: { adapterId: $a, datasetId: $v }) { id } }',
      () => ({ a: ids.adapter, v: NUL }),
      'NOT_FOUND',
    ),
    q(
      'Mutation.startTraining.input.validationDatasetId',
      'mutation($a: ID!, $d: ID!, $v: ID) { startTraining(input: { adapterId: $a, datasetId: $d, validationDatasetId: $v }) { id } }',
      () => ({ a: ids.adapter, d: ids.dataset, v: NUL }),
      'NOT_FOUND',
    ),
    q(
      'Mutation.startTraining.input.idempotencyKey',
      'mutation($a: ID!, $d: ID!, $v: String) { startTraining(input: { adapterId: $a, datasetId: $d, idempotencyKey: $v }) { id } }',
      () => ({ a: ids.adapter, d: ids.dataset, v: NUL }),
      'BAD_USER_INPUT',
    ),
    q(
      'Mutation.startTraining.input.hyperparameters.targetModules',
      'mutation($a: ID!, $d: ID!, $v: [String!]) { startTraining(input: { adapterId: $a, datasetId: $d, hyperparameters: { targetModules: $v } }) { id } }',
      () => ({ a: ids.adapter, d: ids.dataset, v: [NUL] }),
      'BAD_USER_INPUT',
    ),
    q(
      'Mutation.deriveAdapterVersion.input.adapterId',
      'mutation($v: ID!, $w: ID!) { deriveAdapterVersion(input: { adapterId: $v, operation: SHRINK, sources: [{ versionId: $w }], rank: 1 }) { id } }',
      () => ({ v: NUL, w: ids.version }),
      'NOT_FOUND',
    ),
    q(
      'Mutation.deriveAdapterVersion.input.sources.versionId',
      'mutation($a: ID!, $v: ID!) { deriveAdapterVersion(input: { adapterId: $a, operation: SHRINK, sources: [{ versionId: $v }], rank: 1 }) { id } }',
      () => ({ a: ids.adapter, v: NUL }),
      'NOT_FOUND',
    ),
    q(
      'Mutation.deriveAdapterVersion.input.idempotencyKey',
      'mutation($a: ID!, $w: ID!, $v: String) { deriveAdapterVersion(input: { adapterId: $a, operation: SHRINK, sources: [{ versionId: $w }], rank: 1, idempotencyKey: $v }) { id } }',
      () => ({ a: ids.adapter, w: ids.version, v: NUL }),
      'BAD_USER_INPUT',
    ),
    q(
      'Mutation.exportAdapterVersion.input.versionId',
      'mutation($v: ID!) { exportAdapterVersion(input: { versionId: $v, format: GGUF }) { id } }',
      () => ({ v: NUL }),
      'NOT_FOUND',
    ),
    q(
      'Mutation.exportAdapterVersion.input.idempotencyKey',
      'mutation($w: ID!, $v: String) { exportAdapterVersion(input: { versionId: $w, format: GGUF, idempotencyKey: $v }) { id } }',
      () => ({ w: ids.version, v: NUL }),
      'BAD_USER_INPUT',
    ),
    q(
      'Mutation.uploadDataset.input.name',
      'mutation($v: String!) { uploadDataset(input: { name: $v, format: TEXT, content: "{\\"text\\":\\"x\\"}" }) { id } }',
      () => ({ v: NUL }),
      'BAD_USER_INPUT',
    ),
    {
      ...q(
        'Subscription.trainingJobProgress.id',
        'subscription($v: ID!) { trainingJobProgress(id: $v) { status } }',
        () => ({ v: NUL }),
        'NOT_FOUND',
      ),
      subscription: true,
    },
    {
      ...q(
        'Subscription.generateStream.input.adapter',
        'subscription($v: String) { generateStream(input: { adapter: $v, prompt: "x", maxTokens: 1 }) { text } }',
        () => ({ v: NUL }),
        'NOT_FOUND',
      ),
      subscription: true,
    },
    {
      ...q(
        'Subscription.generateStream.input.baseModelId',
        'subscription($v: ID) { generateStream(input: { baseModelId: $v, prompt: "x", maxTokens: 1 }) { text } }',
        () => ({ v: NUL }),
        'BAD_USER_INPUT',
      ),
      subscription: true,
    },
  ];

  it('the table covers every ID and String argument of the schema', async () => {
    const covered = new Set([...CASES.map((c) => c.covers), ...Object.keys(FREE_TEXT)]);
    const missing = (await stringArguments()).filter((p) => !covered.has(p));
    expect(missing).toEqual([]);
  });

  async function codesOf(c: Case): Promise<(string | undefined)[]> {
    const key = c.who === 'admin' ? ADMIN_KEY : A.key;
    if (!c.subscription) {
      const r = await gql(h, key, c.query, c.variables());
      return (r.errors ?? []).map((e) => e.extensions?.code);
    }
    const client = wsClient(h, `Bearer ${key}`);
    try {
      return await new Promise((resolve) => {
        const seen: (string | undefined)[] = [];
        client.subscribe(
          { query: c.query, variables: c.variables() },
          {
            next: (v) => seen.push(...(v.errors ?? []).map((e) => e.extensions?.code as string | undefined)),
            error: (e) => {
              const list = Array.isArray(e) ? (e as { extensions?: { code?: string } }[]) : [];
              resolve([...seen, ...list.map((x) => x.extensions?.code)]);
            },
            complete: () => resolve(seen),
          },
        );
      });
    } finally {
      await client.dispose();
    }
  }

  it('every ID argument answers NOT_FOUND, every stored string BAD_USER_INPUT, never INTERNAL_SERVER_ERROR', async () => {
    const got: Record<string, (string | undefined)[]> = {};
    const want: Record<string, string[]> = {};
    for (const c of CASES) {
      got[c.covers] = await codesOf(c);
      want[c.covers] = [c.expected];
    }
    expect(got).toEqual(want);
  });

  it('an id-shaped cursor, a well-formed unknown id and a lone surrogate are ordinary NOT_FOUNDs', async () => {
    const r = await gql(h, A.key, 'query($v: ID!) { trainingJob(id: $v) { id } }', { v: MISSING });
    expect(r.errors?.map((e) => e.extensions?.code)).toEqual(['NOT_FOUND']);
    const s = await gql(h, A.key, 'query($v: ID!) { dataset(id: $v) { id } }', { v: 'ds_\ud800' });
    expect(s.errors?.map((e) => e.extensions?.code)).toEqual(['NOT_FOUND']);
    // Control characters other than NUL in a stored string: refused too (tab and newline stay allowed in text).
    const t = await gql(
      h,
      A.key,
      'mutation($v: String) { createAdapter(input: { name: "tabbed", baseModelId: "deltagate-tiny", description: $v }) { description } }',
      { v: 'line one\n\tline two' },
    );
    expect(t.errors).toBeUndefined();
    const u = await gql(
      h,
      A.key,
      'mutation($v: String) { createAdapter(input: { name: "bell", baseModelId: "deltagate-tiny", description: $v }) { id } }',
      { v: 'ring \u0007' },
    );
    expect(u.errors?.map((e) => e.extensions?.code)).toEqual(['BAD_USER_INPUT']);
  });

  it('a NUL in dataset content is an INVALID line, not a server error', async () => {
    const r = await gql(
      h,
      A.key,
      'mutation($v: String!) { uploadDataset(input: { name: "n", format: TEXT, content: $v }) { status errors { line } } }',
      { v: '{"text":"a\u0000b"}\n{"text":"ok"}\n' },
    );
    expect(r.errors).toBeUndefined();
    expect(r.data).toEqual({ uploadDataset: { status: 'INVALID', errors: [{ line: 1 }] } });
    const esc = await gql(
      h,
      A.key,
      'mutation($v: String!) { uploadDataset(input: { name: "e", format: TEXT, content: $v }) { status } }',
      { v: '{"text":"a\\u0000b","\\u0000":1}\n' },
    );
    expect(esc.errors).toBeUndefined();
    expect(esc.data).toEqual({ uploadDataset: { status: 'INVALID' } });
  });
});
