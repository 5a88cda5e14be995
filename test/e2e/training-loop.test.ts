// Training jobs end to end. Below GraphQL (SQLite + directory store, in-process queue and bus: the embedded
// wiring): startTraining validation, quota and idempotency, progress then SUCCEEDED, version 1 registered once
// (also when the job runs again), cancel within a step, bad input failing without retry, a transient error
// retried, tenant isolation, the reconciler, the blob checkpoint store. Then the whole loop through GraphQL as a
// client app runs it: upload → adapter → startTraining → live progress → generate by name knows the facts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_MODEL_ID } from '../../src/engine/builtin-model.js';
import { InMemoryProgressBus, InProcessJobQueue } from '../../src/queue/index.js';
import { ADMIN, type Actor, type Services } from '../../src/services/index.js';
import {
  TrainingRunner,
  type TrainingJobPayload,
  type TrainingProgressEvent,
} from '../../src/services/training-runner.js';
import { FsBlobStore } from '../../src/storage/fs-store.js';
import { checkpointPrefix } from '../../src/storage/keys.js';
import { BlobCheckpointStore } from '../../src/training/blob-checkpoint-store.js';
import { createTrainingJobHandler } from '../../src/training/job-handler.js';
import { type TestDatabase } from '../db/test-databases.js';
import { openBuiltinServices } from '../helpers/builtin-services.js';
import { FACTS, FACTS_JSONL, factsHyperparameters, waitFor } from './fixtures/facts.js';
import { collect, createCustomer, subscriptionCode } from './fixtures/gql-client.js';
import { codes, ok, startHarness, wsClient, type Harness, type Loose } from './harness.js';

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
  let alice: Actor;
  let bob: Actor;
  const ids = { adapter: '', dataset: '', job: '', version: '' };

  beforeAll(async () => {
    const fixture = await openBuiltinServices('train', logger);
    ({ t, dir, s } = fixture);
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

  it('trains with progress events, registers version 1 with its files, drops the checkpoints', async () => {
    const job = await runner.startTraining(alice, {
      adapterId: ids.adapter,
      datasetId: ids.dataset,
      hyperparameters: factsHyperparameters(8, { checkpointEverySteps: 2 }),
    });
    ids.job = job.id;
    expect(job.status).toBe('QUEUED');
    const events: TrainingProgressEvent[] = [];
    for await (const e of await runner.progress(alice, job.id)) events.push(e);

    const steps = events.filter((e) => e.status === 'RUNNING' && e.step > 0);
    expect(events.at(-1)!.status).toBe('SUCCEEDED');
    expect(steps.map((e) => e.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(steps.at(-1)!).toMatchObject({ step: 8, totalSteps: 8 });

    const done = await runner.cancel(alice, job.id); // cancelling a finished job changes nothing
    expect(done.status).toBe('SUCCEEDED');
    expect(done.lossHistory.map((p) => p.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(done.progress).toMatchObject({ step: 8, totalSteps: 8 });
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
    // What the adapter learned is checked through GraphQL below (generate by name).
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

  it('a job with a validation dataset reports its eval loss on it (without one, 4 rows hold nothing out)', async () => {
    const held = await s.datasets.upload(alice, {
      name: 'facts-held-out',
      content: FACTS_JSONL.split('\n').slice(0, 2).join('\n') + '\n',
      format: 'PROMPT_COMPLETION',
    });
    // Its own adapter: the tests below count the versions of the shared one.
    const adapter = await s.adapters.create(alice, {
      name: 'facts-validated',
      baseModelId: BUILTIN_MODEL_ID,
    });
    const job = await runner.startTraining(alice, {
      adapterId: adapter.id,
      datasetId: ids.dataset,
      validationDatasetId: held.id,
      promote: 'NEVER',
      hyperparameters: factsHyperparameters(2),
    });
    for await (const e of await runner.progress(alice, job.id)) void e;
    const done = await s.trainingJobs.get(alice, job.id);
    expect(done.status).toBe('SUCCEEDED');
    const withHeld = await s.adapters.getVersion(alice, done.resultVersionId!);
    expect(withHeld.metrics).toMatchObject({ evalLoss: expect.any(Number) });
    expect(done.lossHistory.at(-1)!.evalLoss).toBe((withHeld.metrics as { evalLoss: number }).evalLoss);
    const first = await s.adapters.getVersion(alice, ids.version);
    expect((first.metrics as { evalLoss: unknown }).evalLoss).toBeNull();
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
    expect(await queue.getState(lost.id)).toBe('unknown');
    const r = await runner.reconcile();
    expect(r.created).toEqual([lost.id]);
    expect(r.existing).toEqual([other.id]);
    expect(['waiting', 'active']).toContain(await queue.getState(lost.id));
    // A second reconcile finds everything in place.
    expect((await runner.reconcile()).created).toEqual([]);
    for (const id of [lost.id, other.id]) {
      await runner.cancel(alice, id);
      await waitFor(
        `job ${id} to stop`,
        async () => !['waiting', 'active'].includes(await queue.getState(id)),
      );
    }
  });
});

const JOB_FIELDS = `id status error attempts startedAt finishedAt progress { step totalSteps loss } lossHistory { step loss }
  resultVersion { id version rank sha256 metrics trainingJob { id } dataset { id } }`;
const START = `mutation($input: StartTrainingInput!) { startTraining(input: $input) { ${JOB_FIELDS} } }`;
const PROGRESS = `subscription($id: ID!) { trainingJobProgress(id: $id) {
  jobId status step totalSteps epoch loss learningRate tokensPerSecond etaSeconds message } }`;
const GENERATE = `mutation($input: GenerateInput!) { generate(input: $input) { text finishReason adapterVersion { version } } }`;

describe('the full loop through GraphQL on embedded defaults (npm start)', () => {
  let h: Harness;
  let A: { id: string; key: string };
  let B: { id: string; key: string };
  const ids = { adapter: '', dataset: '', job: '' };

  beforeAll(async () => {
    h = await startHarness('sqlite+fs');
    A = await createCustomer(h, 'Acme', { maxConcurrentJobs: 2 });
    B = await createCustomer(h, 'Globex');
  });
  afterAll(async () => h?.close());

  it('upload → adapter → startTraining (idempotent) → live progress → SUCCEEDED → generate by name', async () => {
    const ds = await ok(
      h,
      A.key,
      `mutation($input: UploadDatasetInput!) { uploadDataset(input: $input) { id status rowCount } }`,
      { input: { name: 'facts', content: FACTS_JSONL, format: 'PROMPT_COMPLETION' } },
    );
    expect(ds.uploadDataset).toMatchObject({ status: 'READY', rowCount: FACTS.length });
    ids.dataset = ds.uploadDataset.id;
    ids.adapter = (
      await ok(
        h,
        A.key,
        `mutation { createAdapter(input: { name: "facts", baseModelId: "deltagate-tiny" }) { id } }`,
      )
    ).createAdapter.id;

    const input = {
      adapterId: ids.adapter,
      datasetId: ids.dataset,
      idempotencyKey: 'first-run',
      hyperparameters: factsHyperparameters(30),
    };
    const [first, again] = await Promise.all([
      ok(h, A.key, START, { input }),
      ok(h, A.key, START, { input }),
    ]);
    expect(again.startTraining.id).toBe(first.startTraining.id);
    ids.job = first.startTraining.id;

    const client = wsClient(h, `Bearer ${A.key}`);
    const progress = collect<Loose>(client, PROGRESS, { id: ids.job });
    await progress.done;
    await client.dispose();
    const events = progress.events.map((e) => ({ ...e.data.trainingJobProgress, at: e.at }));
    const steps = events.filter((e) => e.status === 'RUNNING' && e.step > 0);
    expect(events.at(-1)).toMatchObject({ jobId: ids.job, status: 'SUCCEEDED', step: 30, totalSteps: 30 });
    expect(steps.length).toBeGreaterThanOrEqual(20);
    expect(steps.every((e) => e.loss > 0 && e.learningRate > 0 && e.tokensPerSecond > 0)).toBe(true);

    const job = (
      await ok(h, A.key, `query($id: ID!) { trainingJob(id: $id) { ${JOB_FIELDS} } }`, { id: ids.job })
    ).trainingJob;
    expect(job).toMatchObject({
      status: 'SUCCEEDED',
      error: null,
      attempts: 1,
      progress: { step: 30, totalSteps: 30 },
      resultVersion: { version: 1, rank: 8, trainingJob: { id: ids.job }, dataset: { id: ids.dataset } },
    });
    expect(job.lossHistory).toHaveLength(30);
    // Live, not a burst at the end: step 1 reached the client well before the job finished (model loading
    // takes part of the run; a burst would arrive at about `finishedAt`).
    const [started, finished] = [Date.parse(job.startedAt), Date.parse(job.finishedAt)];
    expect(finished - steps[0]!.at).toBeGreaterThan(0.25 * (finished - started));
    expect(job.resultVersion.metrics.steps).toBe(30);

    // A late subscriber gets the current (terminal) state once, then completion.
    const late = collect<Loose>(wsClient(h, `Bearer ${A.key}`), PROGRESS, { id: ids.job });
    await late.done;
    expect(late.events.map((e) => e.data.trainingJobProgress.status)).toEqual(['SUCCEEDED']);

    let tuned = 0;
    let base = 0;
    for (const [prompt, completion] of FACTS) {
      const maxTokens = completion.length + 3;
      const a = (await ok(h, A.key, GENERATE, { input: { adapter: 'facts', prompt, maxTokens } })).generate;
      const b = (await ok(h, A.key, GENERATE, { input: { prompt, maxTokens } })).generate;
      expect(a.adapterVersion).toEqual({ version: 1 });
      if (a.text === completion) tuned++;
      if (b.text === completion) base++;
    }
    expect({ tuned, base }).toEqual({ tuned: FACTS.length, base: 0 });
  });

  it('another customer cannot see, cancel or watch the job', async () => {
    const q = `query($id: ID!) { trainingJob(id: $id) { id } }`;
    expect(await codes(h, B.key, q, { id: ids.job })).toEqual(['NOT_FOUND']);
    expect(
      await codes(h, B.key, `mutation($id: ID!) { cancelTrainingJob(id: $id) { id } }`, { id: ids.job }),
    ).toEqual(['NOT_FOUND']);
    expect(
      (await ok(h, B.key, '{ trainingJobs(first: 10) { edges { node { id } } } }')).trainingJobs.edges,
    ).toEqual([]);
    const s = collect<Loose>(wsClient(h, `Bearer ${B.key}`), PROGRESS, { id: ids.job });
    expect(await subscriptionCode(s.done)).toBe('NOT_FOUND');
    expect(s.events).toEqual([]);
    expect(
      await codes(h, B.key, START, { input: { adapterId: ids.adapter, datasetId: ids.dataset } }),
    ).toEqual(['NOT_FOUND']);
  });

  it('cancelTrainingJob stops a running job within a step and registers nothing', async () => {
    const job = (
      await ok(h, A.key, START, {
        input: { adapterId: ids.adapter, datasetId: ids.dataset, hyperparameters: factsHyperparameters(400) },
      })
    ).startTraining;
    const progress = collect<Loose>(wsClient(h, `Bearer ${A.key}`), PROGRESS, { id: job.id });
    await waitFor('two steps', async () => progress.events.some((e) => e.data.trainingJobProgress.step >= 2));
    const cancelled = (
      await ok(h, A.key, `mutation($id: ID!) { cancelTrainingJob(id: $id) { id status } }`, { id: job.id })
    ).cancelTrainingJob;
    expect(cancelled).toEqual({ id: job.id, status: 'CANCELLED' });
    await progress.done;
    expect(progress.events.at(-1)!.data.trainingJobProgress.status).toBe('CANCELLED');
    const adapter = (
      await ok(h, A.key, `query($id: ID!) { adapter(id: $id) { latestVersion { version } } }`, {
        id: ids.adapter,
      })
    ).adapter;
    expect(adapter.latestVersion).toEqual({ version: 1 });
  });
});

describe('BlobCheckpointStore', () => {
  it('keeps the newest two, skips a torn or corrupted checkpoint, clears', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dg-ckpt-'));
    try {
      const blobs = await FsBlobStore.open({ dir, publicUrl: 'http://127.0.0.1:9' });
      const prefix = checkpointPrefix('cus_a', 'job_a');
      const store = new BlobCheckpointStore(blobs, prefix);
      const files = (n: number) => ({
        'state.json': Buffer.from(`{"step":${n}}`),
        'w.bin': Uint8Array.of(n, n, n),
      });
      const hex = (c: { step: number; files: Record<string, Uint8Array> } | null) =>
        c && {
          step: c.step,
          files: Object.fromEntries(
            Object.entries(c.files).map(([k, v]) => [k, Buffer.from(v).toString('hex')]),
          ),
        };
      expect(await store.loadLatest()).toBeNull();
      for (const step of [5, 10, 15]) await store.save(step, files(step));
      const keys = async () => (await blobs.list(prefix)).map((o) => o.key.slice(prefix.length));
      expect(await keys()).toEqual([
        'step-10/manifest.json',
        'step-10/state.json',
        'step-10/w.bin',
        'step-15/manifest.json',
        'step-15/state.json',
        'step-15/w.bin',
      ]);
      expect(hex(await store.loadLatest())).toEqual(hex({ step: 15, files: files(15) }));
      // A save killed before its manifest: invisible.
      await blobs.put(`${prefix}step-20/w.bin`, Uint8Array.of(1));
      expect((await store.loadLatest())!.step).toBe(15);
      // A file overwritten by an overlapping run of the same job: the step is skipped, the previous one used.
      await blobs.put(`${prefix}step-15/w.bin`, Uint8Array.of(9, 9, 9));
      expect(hex(await store.loadLatest())).toEqual(hex({ step: 10, files: files(10) }));
      await store.clear();
      expect(await keys()).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
