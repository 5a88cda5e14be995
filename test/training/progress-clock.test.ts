// A running job's progress in SQL keeps up with the trainer even when each SQL write is slow: it is written on
// a clock (at most every second, and always at every checkpoint and at the end), never queued step by step.
// The trainer is the real one; a wrapper records when it reported each step.
import { rmSync } from 'node:fs';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Repositories } from '../../src/db/repositories/index.js';
import { BUILTIN_MODEL_ID } from '../../src/engine/builtin-model.js';
import { InMemoryProgressBus, RedisProgressBus, type ProgressBus } from '../../src/queue/index.js';
import { ADMIN, type Services } from '../../src/services/index.js';
import type { TrainingProgressEvent } from '../../src/services/training-runner.js';
import { createTrainingJobHandler } from '../../src/training/job-handler.js';
import { type TestDatabase } from '../db/test-databases.js';
import { openBuiltinServices } from '../helpers/builtin-services.js';
import { FACTS_JSONL, factsHyperparameters } from '../e2e/fixtures/facts.js';

/** Every step event the trainer emitted, with when (performance.now()). */
const trainerSteps: { step: number; at: number }[] = [];

vi.mock('../../src/training/trainer.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/training/trainer.js')>();
  return {
    ...real,
    runTraining: (
      options: Parameters<typeof real.runTraining>[0],
      hooks: Parameters<typeof real.runTraining>[1],
    ) =>
      real.runTraining(options, {
        ...hooks,
        onProgress: (e) => {
          if (e.type === 'step') trainerSteps.push({ step: e.step, at: performance.now() });
          hooks?.onProgress?.(e);
        },
      }),
  };
});

const logger = pino({ level: 'silent' });
/** Each SQL progress write takes this long (a loaded database); longer than a training step here. */
const SQL_WRITE_MS = 300;

describe('training progress in SQL keeps up with the trainer', () => {
  let t: TestDatabase;
  let dir: string;
  let s: Services;
  let customerId: string;
  let adapterId: string;
  let datasetId: string;

  beforeAll(async () => {
    const fixture = await openBuiltinServices('clock', logger);
    ({ t, dir, s } = fixture);
    const c = await s.customers.create(ADMIN, { name: 'clock' });
    const actor = await s.apiKeys.authenticate(`Bearer ${c.secret}`);
    customerId = c.customer.id;
    adapterId = (await s.adapters.create(actor, { name: 'clock', baseModelId: BUILTIN_MODEL_ID })).id;
    datasetId = (
      await s.datasets.upload(actor, { name: 'facts', content: FACTS_JSONL, format: 'PROMPT_COMPLETION' })
    ).id;
  });
  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs one job through the handler with every SQL progress write taking `writeMs`. */
  async function run(
    checkpointEverySteps: number,
    {
      writeMs = SQL_WRITE_MS,
      bus = new InMemoryProgressBus<TrainingProgressEvent>() as ProgressBus<TrainingProgressEvent>,
    } = {},
  ) {
    trainerSteps.length = 0;
    const written: { step: number; at: number }[] = [];
    const jobs = Object.create(s.repos.trainingJobs) as Repositories['trainingJobs'];
    jobs.update = async (id, from, patch, db) => {
      if (patch.progress === undefined) return s.repos.trainingJobs.update(id, from, patch, db);
      if (writeMs > 0) await new Promise((r) => setTimeout(r, writeMs)); // a loaded database
      const row = await s.repos.trainingJobs.update(id, from, patch, db);
      if (patch.progress !== null) written.push({ step: patch.progress.step, at: performance.now() });
      return row;
    };
    const handler = createTrainingJobHandler({
      repos: { ...s.repos, trainingJobs: jobs },
      blobs: s.blobs,
      bus,
      logger,
      modelDirOf: (id) => s.baseModels.get(id)?.dir ?? null,
      threads: 2,
    });
    const job = await s.repos.trainingJobs.insert({
      customerId,
      adapterId,
      datasetId,
      validationDatasetId: null,
      hyperparameters: factsHyperparameters(80, { checkpointEverySteps }),
      idempotencyKey: null,
    });
    const events: TrainingProgressEvent[] = [];
    const unsubscribe =
      bus instanceof InMemoryProgressBus
        ? await bus.subscribe(job.id, (e) => events.push(e))
        : async () => {};
    await handler({
      id: job.id,
      payload: { jobId: job.id },
      attempt: 1,
      finalAttempt: true,
      signal: new AbortController().signal,
    });
    await unsubscribe();
    const done = (await s.repos.trainingJobs.findById({ kind: 'all' }, job.id))!;
    /** The step SQL held at time `at` (the newest write finished by then). */
    const sqlStepAt = (at: number) => Math.max(0, ...written.filter((w) => w.at <= at).map((w) => w.step));
    const steps = [...trainerSteps];
    /** SQL holds every step at most 1 s later, plus the write itself and one training step (callbacks wait
     * while a step runs on the event loop); the steps that were not. */
    const lagging = () => {
      const longestStep = Math.max(...steps.slice(1).map((st, i) => st.at - steps[i]!.at));
      const bound = 1000 + writeMs + longestStep + 100;
      return steps.filter((st) => sqlStepAt(st.at + bound) < st.step).map((st) => st.step);
    };
    return { done, written, events, sqlStepAt, steps, lagging };
  }

  it('without checkpoints: never more than ~1 s behind, and totalSteps at SUCCEEDED', async () => {
    const { done, events, steps, written, lagging } = await run(0);
    expect(done.status).toBe('SUCCEEDED');
    expect(done.progress).toMatchObject({ step: 80, totalSteps: 80 });
    expect(steps).toHaveLength(80);
    // Step-by-step writes fell behind by seconds here.
    expect(lagging()).toEqual([]);
    expect(written.length).toBeLessThan(40); // on a clock, not once per step
    // The bus still gets every step, without waiting for SQL.
    expect(events.filter((e) => e.status === 'RUNNING' && e.step > 0).map((e) => e.step)).toEqual(
      Array.from({ length: 80 }, (_, i) => i + 1),
    );
    expect(events.at(-1)!.status).toBe('SUCCEEDED');
  }, 120_000);

  it('during a Redis outage: publishing fails fast, SQL progress keeps up', async () => {
    const bus = new RedisProgressBus<TrainingProgressEvent>({ redisUrl: 'redis://127.0.0.1:1' }); // dead port
    try {
      const { done, lagging, steps } = await run(0, { writeMs: 0, bus });
      expect(done.status).toBe('SUCCEEDED');
      expect(done.progress).toMatchObject({ step: 80, totalSteps: 80 });
      expect(steps).toHaveLength(80);
      expect(lagging()).toEqual([]);
    } finally {
      await bus.close();
    }
  }, 120_000);

  it('with checkpoints: SQL holds at least the checkpoint step before training goes on', async () => {
    const { done, sqlStepAt, steps } = await run(10);
    expect(done.progress).toMatchObject({ step: 80, totalSteps: 80 });
    // The trainer reports step c+1 only after checkpoint c was saved (and, now, flushed to SQL).
    for (const c of [10, 20, 30, 40, 50, 60, 70]) {
      const next = steps.find((st) => st.step === c + 1)!;
      expect({ checkpoint: c, sql: sqlStepAt(next.at) }).toEqual({ checkpoint: c, sql: c });
    }
  }, 120_000);
});
