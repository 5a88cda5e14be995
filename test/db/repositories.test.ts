// The repositories on BOTH SQLite and PostgreSQL (a fresh database/schema per run): tenant scoping, the
// unique constraints the services rely on (names, version numbers, key prefixes, idempotency keys),
// compare-and-set transitions and pagination.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isUniqueViolation, migrate } from '../../src/db/database.js';
import { isIdOf, newId } from '../../src/db/ids.js';
import { AdapterVersionsRepository } from '../../src/db/repositories/adapter-versions.js';
import {
  inScope,
  inTransaction,
  pageById,
  repositoriesFor,
  tenant,
  ALL,
  type Repositories,
} from '../../src/db/repositories/index.js';
import { DB_KINDS, openTestDatabase, type TestDatabase } from './test-databases.js';

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('ids', () => {
  it('are prefixed, time-ordered and recognizable', () => {
    const a = newId('dataset', 1_000);
    const b = newId('dataset', 2_000);
    expect(a < b).toBe(true);
    expect(isIdOf('dataset', a)).toBe(true);
    expect(isIdOf('adapter', a)).toBe(false);
    expect(isIdOf('dataset', 'ds_../../etc')).toBe(false);
  });
});

describe.each(DB_KINDS)('repositories on %s', (kind) => {
  let t: TestDatabase;
  let r: Repositories;
  let c1: string;
  let c2: string;

  beforeAll(async () => {
    t = await openTestDatabase(kind);
    r = repositoriesFor(t.db);
    c1 = (
      await r.customers.create({
        name: 'one',
        maxAdapters: 5,
        maxConcurrentJobs: 1,
        monthlyTokenLimit: 5_000_000_000,
      })
    ).id;
    c2 = (
      await r.customers.create({ name: 'two', maxAdapters: 5, maxConcurrentJobs: 1, monthlyTokenLimit: null })
    ).id;
  });
  afterAll(async () => t?.close());

  it('migrations are idempotent and customers round-trip (64-bit quota included)', async () => {
    await migrate(t.db);
    expect(await r.customers.findById(ALL, c1)).toEqual({
      id: c1,
      name: 'one',
      maxAdapters: 5,
      maxConcurrentJobs: 1,
      monthlyTokenLimit: 5_000_000_000,
      createdAt: expect.any(String),
    });
    expect(await r.customers.findById(tenant(c2), c1)).toBeNull();
    expect((await r.customers.findByIds(tenant(c2), [c1, c2])).map((c) => c.id)).toEqual([c2]);
  });

  it('paginates by id', async () => {
    const p1 = await r.customers.list(ALL, { first: 1 });
    expect(p1.rows.map((c) => c.id)).toEqual([c1]);
    expect(p1.hasNextPage).toBe(true);
    const p2 = await r.customers.list(ALL, { first: 1, after: c1 });
    expect(p2.rows.map((c) => c.id)).toEqual([c2]);
    expect(p2.hasNextPage).toBe(false);
    expect((await r.customers.list(tenant(c2), { first: 10 })).rows.map((c) => c.id)).toEqual([c2]);
  });

  it('api keys: unique prefix, scoped revoke', async () => {
    const k = await r.apiKeys.create({
      customerId: c1,
      name: 'k',
      prefix: `dg_live_${kind}1`,
      secretHash: 'ab',
    });
    expect(
      isUniqueViolation(
        await caught(r.apiKeys.create({ customerId: c2, name: null, prefix: k.prefix, secretHash: 'cd' })),
      ),
    ).toBe(true);
    expect(await r.apiKeys.revoke(tenant(c2), k.id)).toBeNull();
    expect((await r.apiKeys.findByPrefix(k.prefix))?.revokedAt).toBeNull();
    const revoked = await r.apiKeys.revoke(tenant(c1), k.id);
    expect(revoked?.revokedAt).toEqual(expect.any(String));
    expect((await r.apiKeys.findByPrefix(k.prefix))?.revokedAt).toBe(revoked?.revokedAt);
  });

  it('datasets: tenant-scoped reads, compare-and-set transitions, JSON errors', async () => {
    const id = newId('dataset');
    await r.datasets.insert({
      id,
      customerId: c1,
      name: 'd',
      format: 'TEXT',
      blobKey: 'k',
      status: 'PENDING',
    });
    expect(await r.datasets.findById(tenant(c2), id)).toBeNull();
    expect(await r.datasets.transition(tenant(c2), id, 'PENDING', { status: 'VALIDATING' })).toBeNull();
    expect((await r.datasets.transition(tenant(c1), id, 'PENDING', { status: 'VALIDATING' }))?.status).toBe(
      'VALIDATING',
    );
    expect(await r.datasets.transition(tenant(c1), id, 'PENDING', { status: 'VALIDATING' })).toBeNull();
    const done = await r.datasets.transition(tenant(c1), id, 'VALIDATING', {
      status: 'INVALID',
      rowCount: 2,
      sizeBytes: 3_000_000_000,
      errors: [{ line: 2, message: 'bad' }],
    });
    expect(done).toMatchObject({
      status: 'INVALID',
      rowCount: 2,
      sizeBytes: 3_000_000_000,
      errors: [{ line: 2, message: 'bad' }],
    });
    expect(await r.datasets.delete(tenant(c2), id)).toBe(false);
    expect((await r.datasets.list(tenant(c1), { first: 10 })).rows.map((d) => d.id)).toEqual([id]);
    expect((await r.datasets.list(tenant(c2), { first: 10 })).rows).toEqual([]);
    expect(await r.datasets.delete(tenant(c1), id)).toBe(true);
  });

  it('adapters: unique name per customer, versions unique per number, aliases upsert', async () => {
    const a = await r.adapters.insert({
      customerId: c1,
      name: 'support',
      baseModelId: 'deltagate-tiny',
      description: null,
    });
    await r.adapters.insert({
      customerId: c2,
      name: 'support',
      baseModelId: 'deltagate-tiny',
      description: null,
    });
    expect(
      isUniqueViolation(
        await caught(
          r.adapters.insert({ customerId: c1, name: 'support', baseModelId: 'x', description: null }),
        ),
      ),
    ).toBe(true);
    expect(await r.adapters.countForCustomer(c1)).toBe(1);
    expect(await r.adapters.findByName(c1, 'support')).toEqual(a);

    const base = {
      adapterId: a.id,
      customerId: c1,
      sha256: 'f'.repeat(64),
      sizeBytes: 10,
      rank: 4,
      alpha: 8.5,
      targetModules: ['q_proj', 'v_proj'],
      metrics: { loss: 1.5 },
      files: [{ name: 'adapter_model.safetensors', sizeBytes: 10, sha256: 'f'.repeat(64) }],
      trainingJobId: null,
      datasetId: null,
      blobPrefix: 'p/',
    };
    expect(await r.adapterVersions.nextVersionNumber(a.id)).toBe(1);
    const v1 = await r.adapterVersions.insert({ ...base, id: AdapterVersionsRepository.newId(), version: 1 });
    expect(
      isUniqueViolation(
        await caught(
          r.adapterVersions.insert({ ...base, id: AdapterVersionsRepository.newId(), version: 1 }),
        ),
      ),
    ).toBe(true);
    const v2 = await r.adapterVersions.insert({
      ...base,
      id: AdapterVersionsRepository.newId(),
      version: 2,
      metrics: null,
    });
    expect(await r.adapterVersions.nextVersionNumber(a.id)).toBe(3);
    expect(await r.adapterVersions.findById(ALL, v1.id)).toEqual(v1);
    expect(await r.adapterVersions.findById(tenant(c2), v1.id)).toBeNull();
    expect((await r.adapterVersions.findByNumber(tenant(c1), a.id, 2))?.id).toBe(v2.id);

    await r.adapterVersions.setAlias({
      adapterId: a.id,
      alias: 'production',
      versionId: v1.id,
      customerId: c1,
    });
    await r.adapterVersions.setAlias({
      adapterId: a.id,
      alias: 'production',
      versionId: v2.id,
      customerId: c1,
    });
    const aliases = await r.adapterVersions.listAliases(tenant(c1), [a.id]);
    expect(aliases.map((x) => [x.alias, x.versionId])).toEqual([['production', v2.id]]);
    expect(await r.adapterVersions.listAliases(tenant(c2), [a.id])).toEqual([]);
    expect(await r.adapterVersions.aliasesOfVersion(v2.id)).toEqual(['production']);
    expect((await r.adapterVersions.listByAdapters(tenant(c1), [a.id])).map((v) => v.version)).toEqual([
      1, 2,
    ]);
  });

  it('transactions roll back every write', async () => {
    const before = (await r.customers.list(ALL, { first: 100 })).rows.length;
    await caught(
      inTransaction(t.db, async (tx) => {
        await tx.customers.create({
          name: 'ghost',
          maxAdapters: 1,
          maxConcurrentJobs: 1,
          monthlyTokenLimit: null,
        });
        throw new Error('boom');
      }),
    );
    expect((await r.customers.list(ALL, { first: 100 })).rows.length).toBe(before);
  });

  it('training jobs: idempotency key unique per customer, compare-and-set updates', async () => {
    const a = await r.adapters.insert({
      customerId: c1,
      name: 'jobs',
      baseModelId: 'deltagate-tiny',
      description: null,
    });
    const input = {
      customerId: c1,
      adapterId: a.id,
      datasetId: 'ds_x',
      validationDatasetId: null,
      hyperparameters: { rank: 8 },
      idempotencyKey: 'once',
    };
    const job = await r.trainingJobs.insert(input);
    expect(isUniqueViolation(await caught(r.trainingJobs.insert(input)))).toBe(true);
    await r.trainingJobs.insert({ ...input, idempotencyKey: null });
    await r.trainingJobs.insert({ ...input, idempotencyKey: null });
    expect((await r.trainingJobs.findByIdempotencyKey(c1, 'once'))?.id).toBe(job.id);
    expect(await r.trainingJobs.countActive(c1)).toBe(3);
    expect(await r.trainingJobs.update(job.id, ['RUNNING'], { status: 'SUCCEEDED' })).toBeNull();
    const running = await r.trainingJobs.update(job.id, ['QUEUED'], {
      status: 'RUNNING',
      incrementAttempts: true,
      lossHistory: [{ step: 1, loss: 2 }],
    });
    expect(running).toMatchObject({
      status: 'RUNNING',
      attempts: 1,
      lossHistory: [{ step: 1, loss: 2 }],
      hyperparameters: { rank: 8 },
    });
    expect(
      (await r.trainingJobs.list(tenant(c1), { status: 'RUNNING' }, { first: 10 })).rows.map((j) => j.id),
    ).toEqual([job.id]);
    expect(await r.trainingJobs.findById(tenant(c2), job.id)).toBeNull();
  });

  it('usage counters add up', async () => {
    await r.usage.add(c1, { requests: 1, promptTokens: 10, completionTokens: 5 }, '2026-01');
    await r.usage.add(c1, { requests: 1, promptTokens: 3 }, '2026-01');
    expect(await r.usage.get(c1, '2026-01')).toEqual({
      customerId: c1,
      period: '2026-01',
      requests: 2,
      promptTokens: 13,
      completionTokens: 5,
    });
    expect(await r.usage.get(c2, '2026-01')).toMatchObject({ requests: 0 });
  });

  // The two query helpers every repository builds on, exercised directly on selects, updates and deletes.
  it('inScope filters every kind of query by customer; pageById pages in id order after the cursor', async () => {
    const mk = (customerId: string, name: string) =>
      r.adapters.insert({ customerId, name, baseModelId: 'deltagate-tiny', description: null });
    const a1 = await mk(c1, 'scoped-1');
    const a2 = await mk(c2, 'scoped-2');
    const a3 = await mk(c1, 'scoped-3');
    const ids = [a1.id, a2.id, a3.id];
    const visible = async (scope: typeof ALL) =>
      (
        await t.db
          .selectFrom('adapters')
          .select('id')
          .where('id', 'in', ids)
          .$call(inScope(scope))
          .orderBy('id')
          .execute()
      ).map((x) => x.id);
    expect(await visible(ALL)).toEqual(ids);
    expect(await visible(tenant(c1))).toEqual([a1.id, a3.id]);
    expect(await visible(tenant(c2))).toEqual([a2.id]);

    const updated = await t.db
      .updateTable('adapters')
      .set({ description: 'touched' })
      .where('id', 'in', ids)
      .$call(inScope(tenant(c2)))
      .executeTakeFirst();
    expect(Number(updated.numUpdatedRows)).toBe(1);
    expect((await r.adapters.findByIds(ALL, ids)).map((a) => [a.id, a.description])).toEqual(
      expect.arrayContaining([
        [a1.id, null],
        [a2.id, 'touched'],
        [a3.id, null],
      ]),
    );

    const pageOf = (after: string | null) =>
      pageById(
        t.db.selectFrom('adapters').selectAll().where('id', 'in', ids),
        { first: 2, after },
        (row) => row.id,
      );
    expect(await pageOf(null)).toEqual({ rows: [a1.id, a2.id], hasNextPage: true });
    expect(await pageOf(a2.id)).toEqual({ rows: [a3.id], hasNextPage: false });
    expect(await pageOf(a3.id)).toEqual({ rows: [], hasNextPage: false });

    const deleted = await t.db
      .deleteFrom('adapters')
      .where('id', 'in', ids)
      .$call(inScope(tenant(c1)))
      .executeTakeFirst();
    expect(Number(deleted.numDeletedRows)).toBe(2);
    expect(await visible(ALL)).toEqual([a2.id]);
  });
});
