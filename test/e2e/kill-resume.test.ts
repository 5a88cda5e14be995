// Issue 5's durability promise with API and worker as separate processes on Redis (BullMQ) + PostgreSQL + S3
// (moto): a `deltagate worker` process killed with SIGKILL mid-training → after its lock lapses a second
// worker process resumes the job from its last checkpoint in S3 (not step 0), the job ends SUCCEEDED with
// exactly one registered version, and progress reached this process over Redis throughout.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../../src/db/database.js';
import { BUILTIN_MODEL_ID, ensureBuiltinModel } from '../../src/engine/builtin-model.js';
import { BullMqJobQueue, RedisProgressBus } from '../../src/queue/index.js';
import { BaseModelRegistry } from '../../src/services/base-models.js';
import { ADMIN, createServices, type Actor, type Services } from '../../src/services/index.js';
import {
  TRAINING_QUEUE_NAME,
  TrainingRunner,
  type TrainingJobPayload,
  type TrainingProgressEvent,
} from '../../src/services/training-runner.js';
import { createBlobStore } from '../../src/storage/create-blob-store.js';
import { checkpointPrefix } from '../../src/storage/keys.js';
import { createTestPgSchema, type TestPgSchema } from '../helpers/env.js';
import { testS3Config, testS3Env } from '../helpers/s3.js';
import { FACTS_JSONL, factsHyperparameters, waitFor } from './fixtures/facts.js';

const REDIS_URL = process.env.DELTAGATE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const LOCK_MS = 3000;
const STEPS = 60;
const EVERY = 5;
const logger = pino({ level: 'silent' });

interface Worker {
  child: ChildProcess;
  ready: Promise<void>;
}

describe('kill -9 a training worker mid-job (Redis + PostgreSQL + S3, separate processes)', () => {
  const prefix = `dgtest-kill-${randomBytes(4).toString('hex')}`;
  const children: ChildProcess[] = [];
  let pgSchema: TestPgSchema;
  let dataDir: string;
  let workerEnv: Record<string, string>;
  let db: Db;
  let s: Services;
  let queue: BullMqJobQueue<TrainingJobPayload>;
  let bus: RedisProgressBus<TrainingProgressEvent>;
  let runner: TrainingRunner;
  let alice: Actor;

  function startWorker(): Worker {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(import.meta.dirname, 'fixtures', 'worker-process.ts'),
        '--queue-prefix',
        prefix,
        '--lock-ms',
        String(LOCK_MS),
        '--threads',
        '1',
      ],
      { env: { ...process.env, ...workerEnv }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(child);
    let out = '';
    const ready = new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('deltagate worker ready')) resolve();
      });
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      child.once('exit', (code) => reject(new Error(`worker exited (${code}) before ready:\n${out}`)));
    });
    return { child, ready };
  }

  beforeAll(async () => {
    pgSchema = await createTestPgSchema('kill');
    dataDir = mkdtempSync(join(tmpdir(), 'dg-kill-'));
    const s3 = await testS3Config('kill');
    workerEnv = {
      DELTAGATE_DATA_DIR: dataDir,
      DELTAGATE_DATABASE_URL: pgSchema.url,
      DELTAGATE_REDIS_URL: REDIS_URL,
      DELTAGATE_LOG_LEVEL: 'warn',
      ...testS3Env(s3),
    };
    const blobs = await createBlobStore(s3, { publicUrl: 'http://127.0.0.1:9', createBucket: true });
    db = await openDatabase({ kind: 'postgres', url: pgSchema.url });
    const modelDir = await ensureBuiltinModel(dataDir);
    s = createServices({
      db,
      blobs,
      baseModels: await BaseModelRegistry.load([{ id: BUILTIN_MODEL_ID, dir: modelDir }]),
      limits: { maxDatasetBytes: 100_000, maxInlineDatasetBytes: 50_000, maxAdapterBytes: 10_000_000 },
      adminKey: 'kill-admin-key-0123456789abcdefghij',
      countTokens: null,
      logger,
    });
    queue = new BullMqJobQueue({
      redisUrl: REDIS_URL,
      queueName: TRAINING_QUEUE_NAME,
      prefix,
      lockDurationMs: LOCK_MS,
    });
    bus = new RedisProgressBus({ redisUrl: REDIS_URL });
    runner = new TrainingRunner({ repos: s.repos, blobs, baseModels: s.baseModels, queue, bus, logger });
    const a = await s.customers.create(ADMIN, { name: 'alice' });
    alice = await s.apiKeys.authenticate(`Bearer ${a.secret}`);
  });

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await queue?.close();
    await bus?.close();
    await db?.destroy();
    await pgSchema?.drop();
    const redis = new Redis(REDIS_URL);
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      if (keys.length > 0) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
    redis.disconnect();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it(
    'resumes from the last checkpoint on another worker and registers one version',
    { timeout: 120_000 },
    async () => {
      const first = startWorker();
      await first.ready;
      const adapter = await s.adapters.create(alice, { name: 'facts', baseModelId: BUILTIN_MODEL_ID });
      const dataset = await s.datasets.upload(alice, {
        name: 'facts',
        content: FACTS_JSONL,
        format: 'PROMPT_COMPLETION',
      });
      const job = await runner.startTraining(alice, {
        adapterId: adapter.id,
        datasetId: dataset.id,
        hyperparameters: factsHyperparameters(STEPS, { checkpointEverySteps: EVERY }),
      });
      const events: TrainingProgressEvent[] = [];
      const stream = (async () => {
        for await (const e of await runner.progress(alice, job.id)) events.push(e);
      })();

      // Past the second checkpoint, kill the worker without warning.
      await waitFor('step 2×EVERY+2', async () => events.some((e) => e.step >= 2 * EVERY + 2), 60_000, 20);
      first.child.kill('SIGKILL');
      const killedAtStep = Math.max(...events.map((e) => e.step));
      const checkpoints = await s.blobs.list(checkpointPrefix(job.customerId, job.id));
      const saved = checkpoints
        .map((o) => /step-(\d+)\/manifest\.json$/.exec(o.key))
        .filter((m) => m !== null)
        .map((m) => Number(m![1]));
      expect(saved.length).toBeGreaterThan(0);
      const lastSaved = Math.max(...saved);
      expect(lastSaved).toBeGreaterThanOrEqual(2 * EVERY);
      const seenBeforeKill = events.length;

      const second = startWorker();
      await second.ready;
      await stream;
      const after = events.slice(seenBeforeKill);
      expect(events.at(-1)!.status).toBe('SUCCEEDED');
      // The second run announced a resume and its first step continued after the checkpoint, not from 1.
      const resumedAt = after.findIndex((e) => e.message?.startsWith('resumed'));
      expect(resumedAt).toBeGreaterThanOrEqual(0);
      const firstResumedStep = after.slice(resumedAt + 1).find((e) => e.status === 'RUNNING' && e.step > 0);
      expect(firstResumedStep?.step).toBe(lastSaved + 1);
      expect(lastSaved).toBeLessThanOrEqual(killedAtStep);

      const done = await s.trainingJobs.get(alice, job.id);
      expect(done).toMatchObject({ status: 'SUCCEEDED', attempts: 2 });
      expect(done.lossHistory.map((p) => p.step)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
      const versions = await s.adapters.versionsOf(alice, [adapter.id]);
      expect(versions.map((v) => ({ version: v.version, job: v.trainingJobId }))).toEqual([
        { version: 1, job: job.id },
      ]);
      expect(versions[0]!.metrics).toMatchObject({ resumedFromStep: lastSaved, steps: STEPS });
      expect(await s.blobs.list(checkpointPrefix(job.customerId, job.id))).toEqual([]);
      second.child.kill('SIGTERM');
    },
  );
});
