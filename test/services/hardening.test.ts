// The "Hardening" issue's service rules, on SQLite and PostgreSQL: the concurrent-job quota holds under 10
// concurrent startTraining calls, an idempotency key answers CONFLICT for a different input, 10 concurrent
// imports of one adapter all succeed (queued, not refused), and downloadUrl refuses a version whose stored
// weights fail their SHA-256 (directory store and S3).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_MODEL_ID, ensureBuiltinModel } from '../../src/engine/builtin-model.js';
import { InMemoryProgressBus, InProcessJobQueue } from '../../src/queue/index.js';
import { BaseModelRegistry } from '../../src/services/base-models.js';
import { ADMIN, createServices, type Actor, type Services } from '../../src/services/index.js';
import {
  TrainingRunner,
  type TrainingJobPayload,
  type TrainingProgressEvent,
} from '../../src/services/training-runner.js';
import type { BlobStore } from '../../src/storage/blob-store.js';
import { FsBlobStore } from '../../src/storage/fs-store.js';
import { S3BlobStore } from '../../src/storage/s3-store.js';
import { ADAPTER_FILES } from '../../src/storage/keys.js';
import { DB_KINDS, openTestDatabase, type TestDatabase } from '../db/test-databases.js';
import { FACTS_JSONL, factsHyperparameters } from '../e2e/fixtures/facts.js';
import { codeOf, makePeftAdapter } from '../e2e/harness.js';
import { testS3Config } from '../helpers/s3.js';

const logger = pino({ level: 'silent' });
const ADMIN_KEY = 'hardening-admin-key-0123456789abcdef';

describe.each(DB_KINDS)('hardening on %s', (kind) => {
  let t: TestDatabase;
  let dir: string;
  let s: Services;
  let queue: InProcessJobQueue<TrainingJobPayload>;
  let runner: TrainingRunner;
  let modelDir: string;

  const newServices = async (blobs: BlobStore) =>
    createServices({
      db: t.db,
      blobs,
      baseModels: await BaseModelRegistry.load([{ id: BUILTIN_MODEL_ID, dir: modelDir }]),
      limits: { maxDatasetBytes: 100_000, maxInlineDatasetBytes: 50_000, maxAdapterBytes: 10_000_000 },
      adminKey: ADMIN_KEY,
      countTokens: null,
      logger,
    });

  /** A customer with an adapter and a READY dataset. */
  const tenant = async (name: string, maxConcurrentJobs: number) => {
    const c = await s.customers.create(ADMIN, { name, maxConcurrentJobs, maxAdapters: 10 });
    const actor = await s.apiKeys.authenticate(`Bearer ${c.secret}`);
    const adapter = await s.adapters.create(actor, { name: 'facts', baseModelId: BUILTIN_MODEL_ID });
    const dataset = await s.datasets.upload(actor, {
      name: 'facts',
      content: FACTS_JSONL,
      format: 'PROMPT_COMPLETION',
    });
    return { actor, adapterId: adapter.id, datasetId: dataset.id };
  };

  beforeAll(async () => {
    t = await openTestDatabase(kind);
    dir = mkdtempSync(join(tmpdir(), 'dg-hard-'));
    modelDir = await ensureBuiltinModel(dir);
    s = await newServices(
      await FsBlobStore.open({ dir: join(dir, 'blobs'), publicUrl: 'http://127.0.0.1:9' }),
    );
    // No worker: jobs stay QUEUED, which is what the quota counts.
    queue = new InProcessJobQueue({ backoffMs: 50 });
    runner = new TrainingRunner({
      repos: s.repos,
      blobs: s.blobs,
      baseModels: s.baseModels,
      queue,
      bus: new InMemoryProgressBus<TrainingProgressEvent>(),
      logger,
    });
  });
  afterAll(async () => {
    await runner?.close({ timeoutMs: 1000 });
    await queue?.close();
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('maxConcurrentJobs holds under 10 concurrent startTraining calls (distinct keys)', async () => {
    const limit = 2;
    const { actor, adapterId, datasetId } = await tenant('quota', limit);
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        codeOf(
          runner.startTraining(actor, {
            adapterId,
            datasetId,
            idempotencyKey: `k${i}`,
            hyperparameters: factsHyperparameters(2),
          }),
        ),
      ),
    );
    expect(outcomes.filter((c) => c === 'no error')).toHaveLength(limit);
    expect(outcomes.filter((c) => c === 'QUOTA_EXCEEDED')).toHaveLength(10 - limit);
    const customerId = (actor as { customerId: string }).customerId;
    expect(await s.repos.trainingJobs.countActive(customerId)).toBe(limit);
  });

  it('the same idempotency key with a different input is CONFLICT; the same input answers the job', async () => {
    const { actor, adapterId, datasetId } = await tenant('idem', 5);
    const input = {
      adapterId,
      datasetId,
      idempotencyKey: 'nightly',
      hyperparameters: factsHyperparameters(2),
    };
    const first = await runner.startTraining(actor, input);
    // The same input, spelled differently (defaults written out, keys reordered): the same job.
    const again = await runner.startTraining(actor, {
      ...input,
      hyperparameters: { seed: 0, ...factsHyperparameters(2), checkpointEverySteps: 10 },
    });
    expect(again.id).toBe(first.id);
    expect(
      await codeOf(
        runner.startTraining(actor, { ...input, hyperparameters: factsHyperparameters(2, { rank: 4 }) }),
      ),
    ).toBe('CONFLICT');
    expect(await codeOf(runner.startTraining(actor, { ...input, hyperparameters: null }))).toBe('CONFLICT');
    const other = await s.datasets.upload(actor, {
      name: 'other',
      content: FACTS_JSONL,
      format: 'PROMPT_COMPLETION',
    });
    expect(await codeOf(runner.startTraining(actor, { ...input, datasetId: other.id }))).toBe('CONFLICT');
    expect(await codeOf(runner.startTraining(actor, { ...input, promote: 'ALWAYS' }))).toBe('CONFLICT');
    // Concurrent: one job, the different inputs CONFLICT.
    const racing = await Promise.all([
      codeOf(runner.startTraining(actor, { ...input, idempotencyKey: 'race' })),
      codeOf(runner.startTraining(actor, { ...input, idempotencyKey: 'race' })),
      codeOf(
        runner.startTraining(actor, {
          ...input,
          idempotencyKey: 'race',
          hyperparameters: factsHyperparameters(3),
        }),
      ),
    ]);
    expect(racing.filter((c) => c === 'no error').length).toBeGreaterThanOrEqual(1);
    expect(racing.every((c) => c === 'no error' || c === 'CONFLICT')).toBe(true);
    const jobs = await s.trainingJobs.list(actor, null, 50, null);
    expect(jobs.rows.filter((j) => j.idempotencyKey === 'race')).toHaveLength(1);
  });

  it('10 concurrent imports of one adapter all succeed with versions 1-10', async () => {
    const c = await s.customers.create(ADMIN, { name: 'importer' });
    const actor = await s.apiKeys.authenticate(`Bearer ${c.secret}`);
    const adapter = await s.adapters.create(actor, { name: 'many', baseModelId: BUILTIN_MODEL_ID });
    const peft = makePeftAdapter({ rank: 2 });
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, () =>
        s.adapters.importVersion(actor, {
          adapterId: adapter.id,
          adapterConfig: peft.adapterConfig,
          weightsBase64: peft.weightsBase64,
        }),
      ),
    );
    const failures = results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
    expect(failures).toEqual([]);
    const numbers = results.map((r) => (r.status === 'fulfilled' ? r.value.version : -1));
    expect(numbers.sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('downloadUrl refuses a version whose stored weights fail their SHA-256 (directory store)', async () => {
    await downloadUrlRefusesCorruption(s, await tenantActor(s, 'dl-fs'));
  });

  it.runIf(kind === 'postgres')(
    'downloadUrl refuses a version whose stored weights fail their SHA-256 (S3)',
    async () => {
      const s3 = await newServices(new S3BlobStore(await testS3Config('hardening')));
      await downloadUrlRefusesCorruption(s3, await tenantActor(s3, 'dl-s3'));
    },
  );
});

async function tenantActor(s: Services, name: string): Promise<Actor> {
  const c = await s.customers.create(ADMIN, { name });
  return s.apiKeys.authenticate(`Bearer ${c.secret}`);
}

async function downloadUrlRefusesCorruption(s: Services, actor: Actor): Promise<void> {
  const adapter = await s.adapters.create(actor, { name: 'dl', baseModelId: BUILTIN_MODEL_ID });
  const peft = makePeftAdapter({ rank: 2 });
  const input = {
    adapterId: adapter.id,
    adapterConfig: peft.adapterConfig,
    weightsBase64: peft.weightsBase64,
  };
  const good = await s.adapters.importVersion(actor, input);
  const bad = await s.adapters.importVersion(actor, input);
  expect((await s.adapters.downloadUrl(actor, good)).url).toMatch(/^http/);
  // Bit rot / an overwrite behind our back: same size, one byte flipped.
  const key = bad.blobPrefix + ADAPTER_FILES.weights;
  const bytes = Buffer.from(await s.blobs.get(key));
  bytes[bytes.length - 1] ^= 0xff;
  await s.blobs.put(key, bytes);
  const err = await s.adapters.downloadUrl(actor, bad).then(
    () => null,
    (e: unknown) => e as { code?: string; message: string },
  );
  expect(err?.code).toBe('INTERNAL_SERVER_ERROR');
  expect(err?.message).toMatch(/SHA-256/);
  // A missing file is refused too; the good version still answers.
  await s.blobs.delete(key);
  expect(await codeOf(s.adapters.downloadUrl(actor, bad))).toBe('INTERNAL_SERVER_ERROR');
  expect((await s.adapters.downloadUrl(actor, good)).url).toMatch(/^http/);
}
