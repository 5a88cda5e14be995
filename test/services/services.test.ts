// Service rules below the API, on SQLite and PostgreSQL with the directory blob store: key hashing and
// revocation, the authorization layer, concurrent version numbering, upload size checks and cleanup.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_MODEL_ID, ensureBuiltinModel } from '../../src/engine/builtin-model.js';
import { ApiKeysService, generateSecret, lookupPrefix } from '../../src/services/api-keys.js';
import { BaseModelRegistry } from '../../src/services/base-models.js';
import { ADMIN, createServices, type Actor, type Services } from '../../src/services/index.js';
import { validateAdapterName, validateAliasName, validateSizeBytes } from '../../src/services/validation.js';
import { FsBlobStore } from '../../src/storage/fs-store.js';
import { adapterPrefix, datasetKey } from '../../src/storage/keys.js';
import { DB_KINDS, openTestDatabase, type TestDatabase } from '../db/test-databases.js';
import { codeOf, makePeftAdapter } from '../e2e/harness.js';

const ADMIN_KEY = 'services-admin-key-0123456789abcdef';

describe('validation', () => {
  it('adapter and alias names', () => {
    for (const ok of ['a', 'support', 'a-b_c', '0abc', 'x'.repeat(63)])
      expect(validateAdapterName(ok)).toBe(ok);
    for (const bad of ['', 'A', '-a', '_a', 'a/b', '..', 'a.b', 'x'.repeat(64), 'a b', 'é']) {
      expect(() => validateAdapterName(bad), bad).toThrow(/adapter name/);
    }
    expect(validateAliasName('production')).toBe('production');
    for (const bad of ['v1', 'v22', 'Prod', '../x'])
      expect(() => validateAliasName(bad), bad).toThrow(/alias/);
  });

  it('upload sizes: an integer from 1 to the limit', () => {
    expect([1, 500, 1000].map((n) => validateSizeBytes(n, 1000))).toEqual([1, 500, 1000]);
    for (const bad of [0, -1, 1001, 1.5, Number.NaN, Number.MAX_SAFE_INTEGER + 1]) {
      expect(() => validateSizeBytes(bad, 1000), String(bad)).toThrow(
        `sizeBytes must be an integer 1-1000 (got ${bad})`,
      );
    }
  });

  it('secrets: prefix, entropy, lookup prefix', () => {
    const a = generateSecret();
    const b = generateSecret();
    expect(a).toMatch(/^dg_live_[A-Za-z0-9_-]{43}$/);
    expect(a).not.toBe(b);
    expect(lookupPrefix(a)).toBe(a.slice(0, 20));
    expect(ApiKeysService.isWellFormed(a)).toBe(true);
    expect(ApiKeysService.isWellFormed(a + 'x')).toBe(false);
  });
});

describe.each(DB_KINDS)('services on %s', (kind) => {
  let t: TestDatabase;
  let s: Services;
  let dir: string;
  let alice: Actor;
  let bob: Actor;

  beforeAll(async () => {
    t = await openTestDatabase(kind);
    dir = mkdtempSync(join(tmpdir(), 'dg-svc-'));
    const modelDir = await ensureBuiltinModel(dir);
    s = createServices({
      db: t.db,
      blobs: await FsBlobStore.open({ dir: join(dir, 'blobs'), publicUrl: 'http://127.0.0.1:9' }),
      baseModels: await BaseModelRegistry.load([{ id: BUILTIN_MODEL_ID, dir: modelDir }]),
      limits: { maxDatasetBytes: 1000, maxInlineDatasetBytes: 500, maxAdapterBytes: 10_000_000 },
      adminKey: ADMIN_KEY,
      countTokens: null,
      logger: pino({ level: 'silent' }),
    });
    const a = await s.customers.create(ADMIN, { name: 'alice', maxAdapters: 2 });
    const b = await s.customers.create(ADMIN, { name: 'bob' });
    alice = await s.apiKeys.authenticate(`Bearer ${a.secret}`);
    bob = await s.apiKeys.authenticate(`Bearer ${b.secret}`);
  });
  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('authenticates admin and customer keys; stores only a hash; revocation is immediate', async () => {
    expect(await s.apiKeys.authenticate(`Bearer ${ADMIN_KEY}`)).toEqual({ role: 'ADMIN' });
    expect(alice).toMatchObject({ role: 'CUSTOMER' });
    const alice2 = alice as Extract<Actor, { role: 'CUSTOMER' }>;
    const created = await s.apiKeys.create(alice, alice2.customerId, 'second');
    const row = await s.repos.apiKeys.findByPrefix(lookupPrefix(created.secret));
    expect(row?.secretHash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(row)).not.toContain(created.secret.slice(20));
    expect((await s.apiKeys.authenticate(`Bearer ${created.secret}`)).role).toBe('CUSTOMER');
    await s.apiKeys.revoke(alice, created.apiKey.id);
    expect(await codeOf(s.apiKeys.authenticate(`Bearer ${created.secret}`))).toBe('UNAUTHENTICATED');
    // Same prefix, different secret: found by prefix, refused by the hash comparison.
    const forged = created.secret.slice(0, 20) + 'A'.repeat(43 - 12);
    expect(await codeOf(s.apiKeys.authenticate(`Bearer ${forged}`))).toBe('UNAUTHENTICATED');
    expect(await codeOf(s.apiKeys.authenticate('Basic abc'))).toBe('UNAUTHENTICATED');
    expect(await codeOf(s.apiKeys.revoke(bob, created.apiKey.id))).toBe('NOT_FOUND');
  });

  it('the admin key manages customers but does not act as a tenant', async () => {
    expect(
      await codeOf(s.datasets.upload(ADMIN, { name: 'x', content: '{"text":"a"}', format: 'TEXT' })),
    ).toBe('FORBIDDEN');
    expect(await codeOf(s.customers.list(alice, 10, null))).toBe('FORBIDDEN');
    expect((await s.customers.list(ADMIN, 10, null)).rows.length).toBe(2);
  });

  it('concurrent imports get distinct, consecutive version numbers', async () => {
    const adapter = await s.adapters.create(alice, { name: 'race', baseModelId: BUILTIN_MODEL_ID });
    const peft = makePeftAdapter({ rank: 2 });
    const versions = await Promise.all(
      Array.from({ length: 4 }, () =>
        s.adapters.importVersion(alice, {
          adapterId: adapter.id,
          adapterConfig: peft.adapterConfig,
          weightsBase64: peft.weightsBase64,
        }),
      ),
    );
    expect(versions.map((v) => v.version).sort()).toEqual([1, 2, 3, 4]);
    const stored = await s.blobs.list(
      adapterPrefix((alice as { customerId: string }).customerId, adapter.id),
    );
    expect(stored.map((o) => o.key.split('/').slice(-2).join('/')).sort()).toEqual(
      [1, 2, 3, 4].flatMap((n) => [`v${n}/adapter_config.json`, `v${n}/adapter_model.safetensors`]),
    );
    expect(await codeOf(s.adapters.create(alice, { name: 'race', baseModelId: BUILTIN_MODEL_ID }))).toBe(
      'CONFLICT',
    );
    // Two concurrent creates of one name: exactly one wins, the other is CONFLICT (the unique constraint).
    const outcomes = await Promise.all(
      [0, 1].map(() => codeOf(s.adapters.create(alice, { name: 'second', baseModelId: BUILTIN_MODEL_ID }))),
    );
    expect(outcomes.sort()).toEqual(['CONFLICT', 'no error']);
    expect(await codeOf(s.adapters.create(alice, { name: 'third', baseModelId: BUILTIN_MODEL_ID }))).toBe(
      'QUOTA_EXCEEDED',
    );
  });

  it('resolves generation references within the tenant only', async () => {
    const adapter = await s.adapters.getByName(alice, 'race');
    const v2 = (await s.adapters.versionsOf(alice, [adapter.id]))[1]!;
    expect((await s.adapters.resolveReference(alice, 'race')).version).toBe(4);
    await s.adapters.setAlias(alice, { adapterId: adapter.id, alias: 'production', versionId: v2.id });
    expect((await s.adapters.resolveReference(alice, 'race')).id).toBe(v2.id);
    expect((await s.adapters.resolveReference(alice, 'race@v3')).version).toBe(3);
    expect((await s.adapters.resolveReference(alice, 'race@production')).id).toBe(v2.id);
    expect((await s.adapters.resolveReference(alice, v2.id)).id).toBe(v2.id);
    expect(await codeOf(s.adapters.resolveReference(alice, 'race@staging'))).toBe('NOT_FOUND');
    expect(await codeOf(s.adapters.resolveReference(bob, v2.id))).toBe('NOT_FOUND');
    expect(await codeOf(s.adapters.resolveReference(bob, 'race'))).toBe('NOT_FOUND');
  });

  it('inline datasets and presigned uploads over the limit are refused; nothing is written', async () => {
    const big = '{"text":"' + 'x'.repeat(600) + '"}';
    expect(await codeOf(s.datasets.upload(alice, { name: 'big', content: big, format: 'TEXT' }))).toBe(
      'BAD_USER_INPUT',
    );
    expect(
      await codeOf(s.datasets.createUpload(alice, { name: 'big', format: 'TEXT', sizeBytes: 1001 })),
    ).toBe('BAD_USER_INPUT');
    expect((await s.datasets.list(alice, 10, null)).rows).toEqual([]);
    expect(await codeOf(s.adapters.createWeightsUpload(alice, { sizeBytes: 10_000_001 }))).toBe(
      'BAD_USER_INPUT',
    );
  });

  it('a presigned upload whose size differs from the declared one is INVALID and its file removed', async () => {
    const t1 = await s.datasets.createUpload(alice, { name: 'short', format: 'TEXT', sizeBytes: 100 });
    await s.blobs.put(t1.dataset.blobKey, Buffer.from('{"text":"hi"}\n'));
    const done = await s.datasets.completeUpload(alice, t1.dataset.id);
    expect(done.status).toBe('INVALID');
    expect(done.errors).toEqual([{ line: 0, message: 'uploaded 14 bytes, but the upload declared 100' }]);
    expect(await s.blobs.head(t1.dataset.blobKey)).toBeNull();
    expect(await codeOf(s.datasets.completeUpload(bob, t1.dataset.id))).toBe('NOT_FOUND');
  });

  it('a dataset used by an unfinished training job cannot be deleted', async () => {
    const ds = await s.datasets.upload(alice, {
      name: 'train',
      content: '{"text":"hello"}\n',
      format: 'TEXT',
    });
    const adapter = await s.adapters.getByName(alice, 'race');
    const customerId = (alice as { customerId: string }).customerId;
    const job = await s.repos.trainingJobs.insert({
      customerId,
      adapterId: adapter.id,
      datasetId: ds.id,
      validationDatasetId: null,
      hyperparameters: {},
      idempotencyKey: null,
    });
    expect(await codeOf(s.datasets.delete(alice, ds.id))).toBe('CONFLICT');
    await s.repos.trainingJobs.update(job.id, ['QUEUED'], { status: 'CANCELLED' });
    expect(await s.datasets.delete(alice, ds.id)).toBe(true);
    expect(await s.blobs.head(datasetKey(customerId, ds.id))).toBeNull();
    expect((await s.trainingJobs.get(alice, job.id)).status).toBe('CANCELLED');
    expect(await codeOf(s.trainingJobs.get(bob, job.id))).toBe('NOT_FOUND');
  });
});
