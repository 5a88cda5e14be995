// Migration 0004 (derived jobs and lineage) on BOTH SQLite and PostgreSQL, applied to a database that already
// holds jobs of 0003: the rows survive unchanged and read back as TRAINING jobs; dataset_id becomes nullable
// (SQLite by a table rebuild) while the idempotency key stays unique, the status index and the foreign keys
// (cascade from adapters and customers) still hold; a derived version's parents cascade with it and keep a
// deleted parent's id; the artifact columns answer the sweeper's queries.
import { Migrator, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isUniqueViolation, migrate, openDatabase, type Db } from '../../src/db/database.js';
import { isPostgres, migrationProvider } from '../../src/db/migrations.js';
import { newId } from '../../src/db/ids.js';
import { AdapterVersionsRepository } from '../../src/db/repositories/adapter-versions.js';
import { ALL, repositoriesFor, tenant, type Repositories } from '../../src/db/repositories/index.js';
import { createTestDatabaseConfig, DB_KINDS } from './test-databases.js';

async function migrateTo(db: Db, name: string): Promise<void> {
  const schema = isPostgres(db as never)
    ? (await sql<{ s: string }>`select current_schema() as s`.execute(db)).rows[0]?.s
    : undefined;
  const migrator = new Migrator({
    db,
    provider: migrationProvider,
    ...(schema ? { migrationTableSchema: schema } : {}),
  });
  const { error } = await migrator.migrateTo(name);
  if (error) throw error;
}

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

async function indexNames(db: Db, table: string): Promise<string[]> {
  const rows = isPostgres(db as never)
    ? (
        await sql<{
          name: string;
        }>`select indexname as name from pg_indexes where schemaname = current_schema() and tablename = ${table}`.execute(
          db,
        )
      ).rows
    : (
        await sql<{
          name: string;
        }>`select name from sqlite_master where type = 'index' and tbl_name = ${table} and name not like 'sqlite_%'`.execute(
          db,
        )
      ).rows;
  return rows.map((r) => r.name).sort();
}

describe.each(DB_KINDS)('migration 0004 on %s', (kind) => {
  let db: Db;
  let drop: () => Promise<void>;
  let r: Repositories;
  const ids = { customer: '', adapter: '', job: '', keyed: '' };

  beforeAll(async () => {
    const t = await createTestDatabaseConfig(kind);
    drop = t.drop;
    db = await openDatabase(t.config, { migrate: false, maxConnections: 2 });
    await migrateTo(db, '0003_training_job_promote');
    r = repositoriesFor(db);
    ids.customer = (
      await r.customers.create({ name: 'c', maxAdapters: 5, maxConcurrentJobs: 5, monthlyTokenLimit: null })
    ).id;
    ids.adapter = (
      await r.adapters.insert({
        customerId: ids.customer,
        name: 'a',
        baseModelId: 'deltagate-tiny',
        description: null,
      })
    ).id;
    // Jobs as 0003 wrote them (its columns only).
    const insert = async (id: string, key: string | null) => {
      await sql`insert into training_jobs (id, customer_id, adapter_id, dataset_id, validation_dataset_id, status,
          hyperparameters, progress, loss_history, error, idempotency_key, result_version_id, attempts, created_at,
          started_at, finished_at, cancel_requested_at, updated_at, promote)
        values (${id}, ${ids.customer}, ${ids.adapter}, ${'ds_x'}, ${null}, ${'SUCCEEDED'}, ${'{"rank":8}'},
          ${'{"step":3,"totalSteps":3,"epoch":1,"loss":0.5,"evalLoss":null,"learningRate":0.01,"tokensPerSecond":9,"etaSeconds":0}'},
          ${'[{"step":3,"loss":0.5}]'}, ${null}, ${key}, ${null}, ${2}, ${'2024-01-01T00:00:00.000Z'},
          ${'2024-01-01T00:00:01.000Z'}, ${'2024-01-01T00:00:02.000Z'}, ${null}, ${'2024-01-01T00:00:02.000Z'},
          ${'IF_BETTER'})`.execute(db);
    };
    ids.job = newId('trainingJob');
    ids.keyed = newId('trainingJob');
    await insert(ids.job, null);
    await insert(ids.keyed, 'k1');
  });
  afterAll(async () => {
    await db?.destroy();
    await drop?.();
  });

  it('keeps every 0003 row as a TRAINING job, unchanged', async () => {
    const before = await r.trainingJobs.findById(ALL, ids.job);
    // Before 0004 dataset_id is NOT NULL.
    expect(
      await caught(sql`update training_jobs set dataset_id = null where id = ${ids.job}`.execute(db)).then(
        (e) => (e as { code?: string }).code,
      ),
    ).toMatch(/^(23502|SQLITE_CONSTRAINT_NOTNULL)$/);
    await migrate(db);
    const after = await r.trainingJobs.findById(ALL, ids.job);
    expect(after).toEqual(before);
    expect(after).toMatchObject({
      kind: 'TRAINING',
      spec: null,
      artifact: null,
      datasetId: 'ds_x',
      promote: 'IF_BETTER',
      attempts: 2,
      lossHistory: [{ step: 3, loss: 0.5 }],
    });
    await migrate(db); // idempotent
  });

  it('takes jobs without a dataset, and still enforces the idempotency key and the indexes', async () => {
    const derived = await r.trainingJobs.insert({
      customerId: ids.customer,
      adapterId: ids.adapter,
      datasetId: null,
      validationDatasetId: null,
      hyperparameters: {},
      idempotencyKey: 'k2',
      promote: 'NEVER',
      kind: 'MERGE',
      spec: { operation: 'MERGE', method: 'CAT' },
    });
    expect(await r.trainingJobs.findById(tenant(ids.customer), derived.id)).toEqual(derived);
    expect(derived).toMatchObject({ kind: 'MERGE', datasetId: null, spec: { operation: 'MERGE' } });
    const again = caught(
      r.trainingJobs.insert({
        customerId: ids.customer,
        adapterId: ids.adapter,
        datasetId: null,
        validationDatasetId: null,
        hyperparameters: {},
        idempotencyKey: 'k1',
      }),
    );
    expect(isUniqueViolation(await again)).toBe(true);
    expect((await r.trainingJobs.list(ALL, { kind: 'MERGE' }, { first: 10 })).rows.map((j) => j.id)).toEqual([
      derived.id,
    ]);
    expect(await indexNames(db, 'training_jobs')).toEqual(
      expect.arrayContaining(['training_jobs_artifact_expiry_idx', 'training_jobs_customer_idx']),
    );
  });

  it('artifacts: written with their expiry, found by the sweeper, cleared by compare-and-set', async () => {
    const job = await r.trainingJobs.insert({
      customerId: ids.customer,
      adapterId: ids.adapter,
      datasetId: null,
      validationDatasetId: null,
      hyperparameters: {},
      idempotencyKey: null,
      kind: 'EXPORT',
      spec: { operation: 'EXPORT', versionId: 'adv_x' },
    });
    await r.trainingJobs.update(job.id, ['QUEUED'], { status: 'RUNNING' });
    const artifact = {
      key: `customers/${ids.customer}/jobs/${job.id}/export/a1/model.gguf`,
      fileName: 'a-v1.gguf',
      format: 'GGUF' as const,
      quantize: 'NONE',
      sizeBytes: 5_000_000_000,
      sha256: 'a'.repeat(64),
      createdAt: '2024-01-01T00:00:00.000Z',
      expiresAt: '2024-01-08T00:00:00.000Z',
    };
    const done = await r.trainingJobs.update(job.id, ['RUNNING'], { status: 'SUCCEEDED', artifact });
    expect(done?.artifact).toEqual(artifact);
    expect((await r.trainingJobs.listWithArtifacts(ids.adapter)).map((j) => j.id)).toEqual([job.id]);
    expect(await r.trainingJobs.listExpiredArtifacts('2024-01-07T00:00:00.000Z', 10)).toEqual([]);
    expect(
      (await r.trainingJobs.listExpiredArtifacts('2024-01-09T00:00:00.000Z', 10)).map((j) => j.id),
    ).toEqual([job.id]);
    expect(await r.trainingJobs.clearArtifact(job.id, 'another/key')).toBe(false);
    expect(await r.trainingJobs.clearArtifact(job.id, artifact.key)).toBe(true);
    expect(await r.trainingJobs.clearArtifact(job.id, artifact.key)).toBe(false);
    expect((await r.trainingJobs.findById(ALL, job.id))?.artifact).toBeNull();
    expect(await r.trainingJobs.listExpiredArtifacts('2024-01-09T00:00:00.000Z', 10)).toEqual([]);
  });

  it('lineage: parents in order with exact weights, kept after the parent goes, cascading with the child', async () => {
    const version = (n: number, derivation: Parameters<typeof r.adapterVersions.insert>[0]['derivation']) =>
      r.adapterVersions.insert({
        id: AdapterVersionsRepository.newId(),
        adapterId: ids.adapter,
        customerId: ids.customer,
        version: n,
        sha256: 'f'.repeat(64),
        sizeBytes: 1,
        rank: 4,
        alpha: 4,
        targetModules: ['q_proj'],
        metrics: null,
        files: [],
        trainingJobId: null,
        datasetId: null,
        blobPrefix: `p${n}/`,
        derivation,
      });
    const p1 = await version(1, null);
    const p2 = await version(2, null);
    const derivation = {
      operation: 'MERGE' as const,
      method: 'SVD' as const,
      rank: 4,
      energy: null,
      report: { modules: [{ module: 'model.layers.0.self_attn.q_proj', droppedEnergy: 1e-3 }] },
    };
    const child = await version(3, derivation);
    expect(child.derivation).toEqual(derivation);
    await r.adapterVersions.insertParents(child.id, ids.customer, [
      { versionId: p2.id, weight: 0.7 },
      { versionId: p1.id, weight: -0.3 },
    ]);
    const parents = () => r.adapterVersions.parentsOf(tenant(ids.customer), [child.id]);
    const want = [
      { versionId: child.id, ordinal: 0, parentVersionId: p2.id, weight: 0.7, customerId: ids.customer },
      { versionId: child.id, ordinal: 1, parentVersionId: p1.id, weight: -0.3, customerId: ids.customer },
    ];
    expect(await parents()).toEqual(want);
    expect(await r.adapterVersions.parentsOf(tenant('cus_other'), [child.id])).toEqual([]);
    expect((await r.adapterVersions.findById(ALL, child.id))?.derivation).toEqual(derivation);
    await r.adapterVersions.delete(ALL, p2.id);
    expect(await parents()).toEqual(want);
    await r.adapterVersions.delete(ALL, child.id);
    expect(await parents()).toEqual([]);
  });

  it('the rebuilt table keeps its foreign keys: deleting the adapter removes its jobs', async () => {
    expect((await r.trainingJobs.list(ALL, {}, { first: 10 })).rows.length).toBeGreaterThan(0);
    await sql`delete from adapter_aliases`.execute(db);
    await sql`delete from adapter_versions where adapter_id = ${ids.adapter}`.execute(db);
    await sql`delete from adapters where id = ${ids.adapter}`.execute(db);
    expect((await r.trainingJobs.list(ALL, {}, { first: 10 })).rows).toEqual([]);
    const orphan = caught(
      r.trainingJobs.insert({
        customerId: ids.customer,
        adapterId: 'ada_gone',
        datasetId: null,
        validationDatasetId: null,
        hyperparameters: {},
        idempotencyKey: null,
      }),
    );
    expect(((await orphan) as { code?: string }).code).toMatch(/^(23503|SQLITE_CONSTRAINT_FOREIGNKEY)$/);
  });
});
