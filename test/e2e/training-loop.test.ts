// The training loop below GraphQL, on SQLite + the directory store with the in-process queue and bus (the
// embedded default's wiring): startTraining validation, quota and idempotency, live progress then SUCCEEDED,
// version 1 registered once (also when the job runs again), the adapter answering the facts, cancel within a
// step, bad input failing without retry, tenant isolation, and the start-up reconciler.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_MODEL_ID, ensureBuiltinModel } from '../../src/engine/builtin-model.js';
import { Engine } from '../../src/inference/engine.js';
import { InMemoryProgressBus, InProcessJobQueue } from '../../src/queue/index.js';
import { BaseModelRegistry } from '../../src/services/base-models.js';
import { GenerationService } from '../../src/services/generation.js';
import { ADMIN, createServices, type Actor, type Services } from '../../src/services/index.js';
import {
  TrainingRunner,
  type TrainingJobPayload,
  type TrainingProgressEvent,
} from '../../src/services/training-runner.js';
import { FsBlobStore } from '../../src/storage/fs-store.js';
import { checkpointPrefix } from '../../src/storage/keys.js';
import { createTrainingJobHandler } from '../../src/training/job-handler.js';
import { openTestDatabase, type TestDatabase } from '../db/test-databases.js';
import { FACTS, FACTS_JSONL, factsHyperparameters, waitFor } from './fixtures/facts.js';

const logger = pino({ level: 'silent' });

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as { code?: string }).code ?? `uncoded: ${String(err)}`;
  }
  return 'no error';
}

describe('training jobs on the in-process queue', () => {
  let t: TestDatabase;
  let dir: string;
  let s: Services;
  let queue: InProcessJobQueue<TrainingJobPayload>;
  let bus: InMemoryProgressBus<TrainingProgressEvent>;
  let runner: TrainingRunner;
  let engine: Engine;
  let alice: Actor;
  let bob: Actor;
  const ids = { adapter: '', dataset: '', job: '', version: '' };

  beforeAll(async () => {
    t = await openTestDatabase('sqlite');
    dir = mkdtempSync(join(tmpdir(), 'dg-train-'));
    const modelDir = await ensureBuiltinModel(dir);
    engine = await Engine.load(modelDir);
    s = createServices({
      db: t.db,
      blobs: await FsBlobStore.open({ dir: join(dir, 'blobs'), publicUrl: 'http://127.0.0.1:9' }),
      baseModels: await BaseModelRegistry.load([{ id: BUILTIN_MODEL_ID, dir: modelDir }]),
      limits: { maxDatasetBytes: 100_000, maxInlineDatasetBytes: 50_000, maxAdapterBytes: 10_000_000 },
      adminKey: 'training-admin-key-0123456789abcdef',
      countTokens: null,
      logger,
    });
    queue = new InProcessJobQueue({ backoffMs: 50 });
    bus = new InMemoryProgressBus();
    runner = new TrainingRunner({
      repos: s.repos,
      blobs: s.blobs,
      baseModels: s.baseModels,
      queue,
      bus,
      logger,
      threads: 2,
    });
    await runner.startWorker(1);
    const a = await s.customers.create(ADMIN, { name: 'alice', maxConcurrentJobs: 2 });
    const b = await s.customers.create(ADMIN, { name: 'bob' });
    alice = await s.apiKeys.authenticate(`Bearer ${a.secret}`);
    bob = await s.apiKeys.authenticate(`Bearer ${b.secret}`);
    ids.adapter = (await s.adapters.create(alice, { name: 'facts', baseModelId: BUILTIN_MODEL_ID })).id;
    ids.dataset = (
      await s.datasets.upload(alice, { name: 'facts', content: FACTS_JSONL, format: 'PROMPT_COMPLETION' })
    ).id;
  });
  afterAll(async () => {
    await runner?.close({ timeoutMs: 1000 });
    await queue?.close();
    await engine?.close();
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses bad starts before anything is queued', async () => {
    const start = (over: Record<string, unknown>, who: Actor = alice) =>
      runner.startTraining(who, { adapterId: ids.adapter, datasetId: ids.dataset, ...over });
    const broken = await s.datasets.upload(alice, {
      name: 'broken',
      content: '{"prompt": 1}\n',
      format: 'PROMPT_COMPLETION',
    });
    const cases: [Record<string, unknown>, string][] = [
      [{ hyperparameters: { rank: 0 } }, 'BAD_USER_INPUT'],
      [{ hyperparameters: { maxSequenceLength: 100_000 } }, 'BAD_USER_INPUT'],
      [{ hyperparameters: { targetModules: ['lm_head'] } }, 'BAD_USER_INPUT'],
      [{ hyperparameters: { learningRate: -1 } }, 'BAD_USER_INPUT'],
      [{ hyperparameters: { bogus: 1 } }, 'BAD_USER_INPUT'],
      [{ datasetId: broken.id }, 'BAD_USER_INPUT'],
      [{ datasetId: 'ds_missing' }, 'NOT_FOUND'],
      [{ adapterId: 'ada_missing' }, 'NOT_FOUND'],
    ];
    expect(await Promise.all(cases.map(([over]) => codeOf(start(over))))).toEqual(cases.map(([, c]) => c));
    // Another tenant's adapter and dataset do not exist for bob.
    expect(await codeOf(start({}, bob))).toBe('NOT_FOUND');
    expect(await codeOf(start({}, ADMIN))).toBe('FORBIDDEN');
    expect((await s.repos.trainingJobs.list({ kind: 'all' }, {}, { first: 10 })).rows).toEqual([]);
  });

  it('trains with live progress, registers version 1, and the adapter knows the facts', async () => {
    const job = await runner.startTraining(alice, {
      adapterId: ids.adapter,
      datasetId: ids.dataset,
      hyperparameters: factsHyperparameters(30, { checkpointEverySteps: 5 }),
    });
    ids.job = job.id;
    expect(job.status).toBe('QUEUED');
    const events: (TrainingProgressEvent & { at: number })[] = [];
    for await (const e of await runner.progress(alice, job.id)) events.push({ ...e, at: Date.now() });

    const steps = events.filter((e) => e.status === 'RUNNING' && e.step > 0);
    expect(events.at(-1)!.status).toBe('SUCCEEDED');
    expect(steps.length).toBeGreaterThanOrEqual(25); // snapshots; a late one may be coalesced
    expect(steps.map((e) => e.step)).toEqual([...steps.map((e) => e.step)].sort((x, y) => x - y));
    expect(steps.at(-1)!).toMatchObject({ step: 30, totalSteps: 30 });
    // Live, not a burst at the end: the first step arrived well before the terminal event.
    expect(events.at(-1)!.at - steps[0]!.at).toBeGreaterThan(1000);

    const done = await runner.cancel(alice, job.id); // cancelling a finished job changes nothing
    expect(done.status).toBe('SUCCEEDED');
    expect(done.lossHistory.map((p) => p.step)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(done.progress).toMatchObject({ step: 30, totalSteps: 30 });
    expect(done.finishedAt).not.toBeNull();
    const version = await s.adapters.getVersion(alice, done.resultVersionId!);
    ids.version = version.id;
    expect(version).toMatchObject({
      version: 1,
      rank: 8,
      alpha: 16,
      trainingJobId: job.id,
      datasetId: ids.dataset,
      targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    });
    expect(version.files.map((f) => f.name)).toEqual([
      'adapter_config.json',
      'adapter_model.safetensors',
      'metrics.json',
    ]);
    expect(
      (await s.blobs.list(version.blobPrefix)).map((o) => o.key.slice(version.blobPrefix.length)),
    ).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'metrics.json']);
    // Checkpoints are removed once the version is registered.
    expect(await s.blobs.list(checkpointPrefix(done.customerId, job.id))).toEqual([]);

    const gen = new GenerationService({
      repos: s.repos,
      blobs: s.blobs,
      baseModels: s.baseModels,
      adapters: s.adapters,
      logger,
      loadEngine: async () => engine,
    });
    let tuned = 0;
    let base = 0;
    for (const [prompt, completion] of FACTS) {
      const maxTokens = completion.length + 3;
      if ((await gen.generate(alice, { adapter: 'facts', prompt, maxTokens })).text === completion) tuned++;
      if ((await gen.generate(alice, { prompt, maxTokens })).text === completion) base++;
    }
    expect({ tuned, base }).toEqual({ tuned: FACTS.length, base: 0 });
  });

  it('a second run of a finished job registers nothing more', async () => {
    const handler = createTrainingJobHandler({
      repos: s.repos,
      blobs: s.blobs,
      bus,
      logger,
      modelDirOf: (id) => s.baseModels.get(id)?.dir ?? null,
      threads: 2,
    });
    const signal = new AbortController().signal;
    // A duplicate delivery of a finished job is a no-op …
    await handler({ id: ids.job, payload: { jobId: ids.job }, attempt: 2, finalAttempt: false, signal });
    // … and a job that really runs twice (its status still RUNNING, e.g. a lost lock) keeps the first version.
    await s.repos.trainingJobs.update(ids.job, ['SUCCEEDED'], { status: 'RUNNING', resultVersionId: null });
    await handler({ id: ids.job, payload: { jobId: ids.job }, attempt: 3, finalAttempt: false, signal });
    const job = await s.trainingJobs.get(alice, ids.job);
    expect({ status: job.status, resultVersionId: job.resultVersionId }).toEqual({
      status: 'SUCCEEDED',
      resultVersionId: ids.version,
    });
    const versions = await s.adapters.versionsOf(alice, [ids.adapter]);
    expect(versions.map((v) => v.id)).toEqual([ids.version]);
  });

  it('one job per idempotency key, even for concurrent submissions; cancel stops it within a step', async () => {
    const input = {
      adapterId: ids.adapter,
      datasetId: ids.dataset,
      idempotencyKey: 'retry-me',
      hyperparameters: factsHyperparameters(400),
    };
    const [j1, j2, j3] = await Promise.all([
      runner.startTraining(alice, input),
      runner.startTraining(alice, input),
      runner.startTraining(alice, input),
    ]);
    expect(new Set([j1!.id, j2!.id, j3!.id]).size).toBe(1);
    const all = await s.repos.trainingJobs.list({ kind: 'all' }, {}, { first: 100 });
    expect(all.rows.filter((j) => j.idempotencyKey === 'retry-me')).toHaveLength(1);

    // Tenant isolation: bob sees, cancels and subscribes to nothing of alice's.
    expect(await codeOf(s.trainingJobs.get(bob, j1!.id))).toBe('NOT_FOUND');
    expect(await codeOf(runner.cancel(bob, j1!.id))).toBe('NOT_FOUND');
    expect(await codeOf(runner.progress(bob, j1!.id))).toBe('NOT_FOUND');
    expect((await s.trainingJobs.list(bob, null, 10, null)).rows).toEqual([]);

    const events: TrainingProgressEvent[] = [];
    const stream = (async () => {
      for await (const e of await runner.progress(alice, j1!.id)) events.push(e);
    })();
    await waitFor('a few steps', async () => events.some((e) => e.step >= 3));
    const cancelled = await runner.cancel(alice, j1!.id);
    const at = Date.now();
    expect(cancelled.status).toBe('CANCELLED');
    await stream;
    expect(events.at(-1)!.status).toBe('CANCELLED');
    await waitFor('the handler to stop', async () => (await queue.getState(j1!.id)) !== 'active', 5000, 20);
    expect(Date.now() - at).toBeLessThan(3000);
    const after = await s.trainingJobs.get(alice, j1!.id);
    expect(after).toMatchObject({ status: 'CANCELLED', resultVersionId: null });
    expect(after.progress!.step).toBeLessThan(400);
    expect((await s.adapters.versionsOf(alice, [ids.adapter])).map((v) => v.id)).toEqual([ids.version]);
    // The same key now answers the cancelled job rather than starting another.
    expect((await runner.startTraining(alice, input)).id).toBe(j1!.id);
  });

  it('bad input found by the worker fails the job at once, without retry', async () => {
    // Written past the service's checks, as an older API version might have: the trainer refuses it.
    const job = await s.repos.trainingJobs.insert({
      customerId: (alice as { customerId: string }).customerId,
      adapterId: ids.adapter,
      datasetId: ids.dataset,
      validationDatasetId: null,
      hyperparameters: { ...factsHyperparameters(2), rank: -3 },
      idempotencyKey: null,
    });
    await queue.enqueue(job.id, { jobId: job.id }, { attempts: 3 });
    const failed = await waitFor('FAILED', async () => {
      const j = await s.trainingJobs.get(alice, job.id);
      return j.status === 'FAILED' ? j : null;
    });
    expect(failed.attempts).toBe(1);
    expect(failed.error).toMatch(/rank/);
    expect(await queue.getState(job.id)).toBe('failed');
  });

  it('a transient storage error is retried with backoff, then the job succeeds', async () => {
    let failures = 0;
    // The real store, failing its first read of a dataset the way a flaky S3 connection does.
    const flaky = Object.create(s.blobs) as typeof s.blobs;
    flaky.get = async (key: string) => {
      if (key.includes('/datasets/') && failures === 0) {
        failures++;
        throw new Error('socket hang up');
      }
      return s.blobs.get(key);
    };
    const q = new InProcessJobQueue<TrainingJobPayload>({ backoffMs: 200 });
    const r = new TrainingRunner({
      repos: s.repos,
      blobs: flaky,
      baseModels: s.baseModels,
      queue: q,
      bus,
      logger,
      threads: 2,
    });
    await r.startWorker(1);
    try {
      const job = await r.startTraining(alice, {
        adapterId: ids.adapter,
        datasetId: ids.dataset,
        hyperparameters: factsHyperparameters(2),
      });
      const done = await waitFor('SUCCEEDED', async () => {
        const j = await s.trainingJobs.get(alice, job.id);
        return j.status === 'SUCCEEDED' ? j : null;
      });
      expect({ failures, attempts: done.attempts }).toEqual({ failures: 1, attempts: 2 });
      expect(
        new Date(done.finishedAt!).getTime() - new Date(done.startedAt!).getTime(),
      ).toBeGreaterThanOrEqual(200);
    } finally {
      await r.close({ timeoutMs: 1000 });
      await q.close();
    }
  });

  it('the concurrent-job quota and the start-up reconciler', async () => {
    const quotaInput = {
      adapterId: ids.adapter,
      datasetId: ids.dataset,
      hyperparameters: factsHyperparameters(2),
    };
    // A QUEUED job the queue never heard of (lost on a restart): the reconciler brings it back.
    const lost = await s.repos.trainingJobs.insert({
      customerId: (alice as { customerId: string }).customerId,
      adapterId: ids.adapter,
      datasetId: ids.dataset,
      validationDatasetId: null,
      hyperparameters: factsHyperparameters(2),
      idempotencyKey: null,
    });
    const other = await runner.startTraining(alice, quotaInput);
    expect(await codeOf(runner.startTraining(alice, quotaInput))).toBe('QUOTA_EXCEEDED');
    const r = await runner.reconcile();
    expect(r.created).toContain(lost.id);
    for (const id of [lost.id, other.id]) {
      await waitFor(
        `job ${id} to finish`,
        async () => (await s.trainingJobs.get(alice, id)).status === 'SUCCEEDED',
      );
    }
    const versions = await s.adapters.versionsOf(alice, [ids.adapter]);
    expect(versions.map((v) => v.version)).toEqual([1, 2, 3, 4]);
  });
});
