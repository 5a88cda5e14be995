// Training with Redis down (BullMQ queue + Redis progress bus; SQL is the source of truth): startTraining
// answers the job QUEUED at once and it is enqueued when Redis is back; trainingJobProgress answers from SQL
// without Redis; a worker started against a dead Redis says so, reports not-ready, and runs the waiting job
// once Redis is back. Redis is a throwaway redis-server this file starts, stops and restarts.
import { rmSync } from 'node:fs';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_MODEL_ID } from '../../src/engine/builtin-model.js';
import { BullMqJobQueue, RedisProgressBus } from '../../src/queue/index.js';
import { ADMIN, type Actor, type Services } from '../../src/services/index.js';
import {
  TrainingRunner,
  type TrainingJobPayload,
  type TrainingProgressEvent,
} from '../../src/services/training-runner.js';
import { type TestDatabase } from '../db/test-databases.js';
import { openBuiltinServices } from '../helpers/builtin-services.js';
import { FACTS_JSONL, factsHyperparameters, waitFor } from '../e2e/fixtures/facts.js';
import { redisServerAvailable, TestRedisServer } from '../helpers/redis-server.js';
import { uniquePrefix } from '../queue/helpers.js';

const logs: { level: number; msg: string }[] = [];
const logger = pino(
  { level: 'info' },
  { write: (line: string) => void logs.push(JSON.parse(line) as { level: number; msg: string }) },
);

async function within<T>(ms: number, p: Promise<T>): Promise<T | 'timed out'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timed out'>((r) => (timer = setTimeout(() => r('timed out'), ms)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe.runIf(redisServerAvailable())('training with Redis down', () => {
  let t: TestDatabase;
  let dir: string;
  let s: Services;
  let alice: Actor;
  let adapterId: string;
  let datasetId: string;
  const cleanups: (() => Promise<void>)[] = [];

  /** A runner wired like `deltagate serve`/`worker` with Redis at `url`. */
  const wire = (url: string) => {
    const queue = new BullMqJobQueue<TrainingJobPayload>({
      redisUrl: url,
      queueName: 'training',
      prefix: uniquePrefix('redisdown'),
      logger,
    });
    const bus = new RedisProgressBus<TrainingProgressEvent>({ redisUrl: url, logger });
    const runner = new TrainingRunner({
      repos: s.repos,
      blobs: s.blobs,
      baseModels: s.baseModels,
      queue,
      bus,
      logger,
      threads: 2,
      enqueueRetryMs: 200,
    });
    cleanups.push(async () => {
      await runner.close({ timeoutMs: 1000 });
      await queue.close();
      await bus.close();
    });
    return { queue, bus, runner };
  };
  const input = (over: Record<string, unknown> = {}) => ({
    adapterId,
    datasetId,
    hyperparameters: factsHyperparameters(2),
    ...over,
  });

  beforeAll(async () => {
    const fixture = await openBuiltinServices('redisdown', logger);
    ({ t, dir, s } = fixture);
    const a = await s.customers.create(ADMIN, { name: 'alice', maxConcurrentJobs: 100 });
    alice = await s.apiKeys.authenticate(`Bearer ${a.secret}`);
    adapterId = (await s.adapters.create(alice, { name: 'facts', baseModelId: BUILTIN_MODEL_ID })).id;
    datasetId = (
      await s.datasets.upload(alice, { name: 'facts', content: FACTS_JSONL, format: 'PROMPT_COMPLETION' })
    ).id;
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('startTraining answers the job QUEUED at once; it is enqueued when Redis is back', async () => {
    const redis = await TestRedisServer.create(); // not started: nothing listens on its port
    cleanups.push(() => redis.stop());
    const { queue, runner } = wire(redis.url);
    const t0 = Date.now();
    const job = await runner.startTraining(alice, input({ idempotencyKey: 'while-down' }));
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(job.status).toBe('QUEUED');
    expect((await s.trainingJobs.get(alice, job.id)).status).toBe('QUEUED');
    // A retry with the same key answers the same (still live) job.
    expect((await runner.startTraining(alice, input({ idempotencyKey: 'while-down' }))).id).toBe(job.id);

    await redis.start();
    await waitFor(
      'the job in the queue',
      async () => (await queue.getState(job.id).catch(() => 'unreachable')) === 'waiting',
      15_000,
    );
    expect((await s.trainingJobs.get(alice, job.id)).status).toBe('QUEUED');
    await runner.cancel(alice, job.id);
  }, 30_000);

  it('trainingJobProgress answers from SQL without Redis: a finished job at once, a live one until it ends', async () => {
    const { runner } = wire('redis://127.0.0.1:1'); // nothing listens on port 1
    const customerId = (alice as { customerId: string }).customerId;
    const row = (over: Record<string, unknown> = {}) =>
      s.repos.trainingJobs.insert({
        customerId,
        adapterId,
        datasetId,
        validationDatasetId: null,
        hyperparameters: factsHyperparameters(2),
        idempotencyKey: null,
        ...over,
      });
    const finished = await row();
    await s.repos.trainingJobs.update(finished.id, ['QUEUED'], {
      status: 'SUCCEEDED',
      progress: {
        step: 2,
        totalSteps: 2,
        epoch: 1,
        loss: 1,
        evalLoss: null,
        learningRate: 0.01,
        tokensPerSecond: 1,
        etaSeconds: 0,
      },
      finishedAt: new Date().toISOString(),
    });
    const t0 = Date.now();
    const stream = await runner.progress(alice, finished.id);
    const first = await within(500, stream.next());
    expect(first).toMatchObject({ done: false, value: { status: 'SUCCEEDED', step: 2, totalSteps: 2 } });
    expect(await within(500, stream.next())).toMatchObject({ done: true });
    expect(Date.now() - t0).toBeLessThan(1000);

    // A live job: its current state at once, then SQL's changes, and the end when SQL says so.
    const live = await row();
    const liveStream = await runner.progress(alice, live.id);
    expect(await within(1000, liveStream.next())).toMatchObject({ value: { status: 'QUEUED' } });
    await s.repos.trainingJobs.update(live.id, ['QUEUED'], { status: 'CANCELLED' });
    expect(await within(3000, liveStream.next())).toMatchObject({ value: { status: 'CANCELLED' } });
    expect(await within(500, liveStream.next())).toMatchObject({ done: true });
  }, 30_000);

  it('a worker started against a dead Redis says it waits, is not ready, and runs the job when Redis is back', async () => {
    const redis = await TestRedisServer.create();
    cleanups.push(() => redis.stop());
    const { runner } = wire(redis.url);
    logs.length = 0;
    // What `deltagate worker` does at start: reconcile, then start the worker.
    await runner.reconcile();
    const job = await runner.startTraining(alice, input());
    let started = false;
    const starting = runner.startWorker(1).then(() => (started = true));
    await waitFor(
      'a log line saying Redis is unreachable',
      async () => logs.some((l) => /^training worker: Redis is unreachable; waiting/.test(l.msg)),
      5000,
    );
    expect(runner.workerReadiness()).toMatchObject({ ready: false, state: 'unreachable' });
    expect(started).toBe(false);

    await redis.start();
    expect(await within(20_000, starting)).toBe(true);
    expect(runner.workerReadiness()).toMatchObject({ ready: true, state: 'ready' });
    const done = await waitFor(
      'the job to succeed',
      async () => {
        const j = await s.trainingJobs.get(alice, job.id);
        return j.status === 'SUCCEEDED' ? j : null;
      },
      60_000,
    );
    expect(done.progress).toMatchObject({ step: 2, totalSteps: 2 });

    // Redis going away later flips readiness, and back.
    await redis.stop();
    await waitFor('not ready', async () => !runner.workerReadiness().ready, 10_000);
    expect(runner.workerReadiness().state).toBe('unreachable');
    await redis.start();
    await waitFor('ready again', async () => runner.workerReadiness().ready, 15_000);
  }, 120_000);
});
