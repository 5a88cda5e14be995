// Issue 5's durability promise, through GraphQL, with API and worker as separate processes on Redis
// (BullMQ) + PostgreSQL + S3 (moto): the API (this process, the real server) queues a job, a `deltagate
// worker` process trains it and is killed with SIGKILL mid-training; after its lock lapses a second worker
// process resumes from the last checkpoint in S3 (not step 0). The job ends SUCCEEDED with exactly one
// registered version, and the trainingJobProgress subscription followed it all over Redis.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { checkpointPrefix } from '../../src/storage/keys.js';
import { testS3Env } from '../helpers/s3.js';
import { FACTS_JSONL, factsHyperparameters, waitFor } from './fixtures/facts.js';
import { collect, createCustomer } from './fixtures/gql-client.js';
import { startRedisApi } from './fixtures/server.js';
import { ok, wsClient, type Harness, type Loose } from './harness.js';

const REDIS_URL = process.env.DELTAGATE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
// Above the longest event-loop block of a job start (model + training graph: ~2 s here unloaded, several
// times that on a busy 2-core CI box); a shorter lock makes a live worker lose its job (docs/QUEUE.md).
const LOCK_MS = 8000;
const STEPS = 60;
const EVERY = 5;

const PROGRESS = `subscription($id: ID!) { trainingJobProgress(id: $id) { jobId status step totalSteps message } }`;

describe('kill -9 a training worker mid-job (API + workers as processes on Redis, PostgreSQL, S3)', () => {
  const prefix = `dgtest-kill-${randomBytes(4).toString('hex')}`;
  const children: ChildProcess[] = [];
  /** Every worker's output, shown when the job does not finish (the logs say why). */
  const logs: string[] = [];
  let h: Harness;
  let workerEnv: Record<string, string>;

  function startWorker(): { child: ChildProcess; ready: Promise<void> } {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(import.meta.dirname, 'fixtures', 'worker-process.ts'),
        ...['--queue-prefix', prefix, '--lock-ms', String(LOCK_MS), '--threads', '1'],
      ],
      { env: { ...process.env, ...workerEnv }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(child);
    let out = '';
    const ready = new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        logs.push(`[${child.pid}] ${d.toString()}`);
        if (out.includes('deltagate worker ready')) resolve();
      });
      child.stderr!.on('data', (d: Buffer) => {
        out += d.toString();
        logs.push(`[${child.pid}] ${d.toString()}`);
      });
      child.once('exit', (code) => reject(new Error(`worker exited (${code}) before ready:\n${out}`)));
    });
    return { child, ready };
  }

  beforeAll(async () => {
    h = await startRedisApi(REDIS_URL, { queuePrefix: prefix, lockDurationMs: LOCK_MS });
    const { database, storage } = h.config;
    if (database.kind !== 'postgres' || storage.kind !== 's3') throw new Error('expected PostgreSQL + S3');
    workerEnv = {
      DELTAGATE_DATA_DIR: h.config.dataDir,
      DELTAGATE_DATABASE_URL: database.url,
      DELTAGATE_REDIS_URL: REDIS_URL,
      DELTAGATE_LOG_LEVEL: 'info',
      ...testS3Env(storage),
    };
  });

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await h?.close();
    const redis = new Redis(REDIS_URL);
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      if (keys.length > 0) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
    redis.disconnect();
  });

  it(
    'resumes from the last checkpoint on another worker and registers one version',
    { timeout: 200_000 },
    async () => {
      onTestFailed(() => console.log(`worker output:\n${logs.join('')}`));
      const first = startWorker();
      const A = await createCustomer(h, 'Acme');
      const dataset = (
        await ok(
          h,
          A.key,
          `mutation($input: UploadDatasetInput!) { uploadDataset(input: $input) { id status } }`,
          {
            input: { name: 'facts', content: FACTS_JSONL, format: 'PROMPT_COMPLETION' },
          },
        )
      ).uploadDataset;
      const adapter = (
        await ok(
          h,
          A.key,
          `mutation { createAdapter(input: { name: "facts", baseModelId: "deltagate-tiny" }) { id } }`,
        )
      ).createAdapter;
      // With Redis set the API process does not train: the job waits for a worker.
      const job = (
        await ok(
          h,
          A.key,
          `mutation($input: StartTrainingInput!) { startTraining(input: $input) { id status } }`,
          {
            input: {
              adapterId: adapter.id,
              datasetId: dataset.id,
              hyperparameters: factsHyperparameters(STEPS, { checkpointEverySteps: EVERY }),
            },
          },
        )
      ).startTraining;
      expect(job.status).toBe('QUEUED');
      const client = wsClient(h, `Bearer ${A.key}`);
      const progress = collect<Loose>(client, PROGRESS, { id: job.id });
      const events = () => progress.events.map((e) => e.data.trainingJobProgress);
      await first.ready;

      // Past the second checkpoint, kill the worker without warning.
      await waitFor('step 2×EVERY+2', async () => events().some((e) => e.step >= 2 * EVERY + 2), 60_000, 20);
      first.child.kill('SIGKILL');
      const killedAtStep = Math.max(...events().map((e) => e.step));
      const seenBeforeKill = events().length;
      const customerId = A.id;
      const saved = (await h.server.services.blobs.list(checkpointPrefix(customerId, job.id)))
        .map((o) => /step-(\d+)\/manifest\.json$/.exec(o.key))
        .filter((m) => m !== null)
        .map((m) => Number(m![1]));
      const lastSaved = Math.max(...saved);
      expect(lastSaved).toBeGreaterThanOrEqual(2 * EVERY);
      expect(lastSaved).toBeLessThanOrEqual(killedAtStep);

      const second = startWorker();
      await second.ready;
      await Promise.race([
        progress.done,
        new Promise((_, reject) =>
          setTimeout(
            () => reject(new Error(`no terminal event after 90 s; events ${JSON.stringify(events())}`)),
            90_000,
          ),
        ),
      ]);
      await client.dispose();
      const after = events().slice(seenBeforeKill);
      expect(after.at(-1)).toMatchObject({ status: 'SUCCEEDED', step: STEPS, totalSteps: STEPS });
      // The run that finished announced a resume and continued after a checkpoint (at least the one S3 held
      // at the kill), not from step 1. (On a loaded machine a worker can also lose its lease and restart the
      // run once more, so the last resume is the one that counts.)
      const resumedAt = after.findLastIndex((e) => e.message?.startsWith('resumed'));
      expect(resumedAt).toBeGreaterThanOrEqual(0);
      const firstResumedStep = after
        .slice(resumedAt + 1)
        .find((e) => e.status === 'RUNNING' && e.step > 0)?.step;

      const done = (
        await ok(
          h,
          A.key,
          `query($id: ID!) { trainingJob(id: $id) { status attempts lossHistory { step }
          resultVersion { version metrics trainingJob { id } } } }`,
          { id: job.id },
        )
      ).trainingJob;
      expect(done).toMatchObject({
        status: 'SUCCEEDED',
        resultVersion: { version: 1, trainingJob: { id: job.id } },
      });
      expect(done.lossHistory.map((p: Loose) => p.step)).toEqual(
        Array.from({ length: STEPS }, (_, i) => i + 1),
      );
      expect(done.attempts).toBeGreaterThanOrEqual(2);
      const { resumedFromStep, steps } = done.resultVersion.metrics;
      expect(steps).toBe(STEPS);
      expect(resumedFromStep).toBeGreaterThanOrEqual(lastSaved);
      expect(firstResumedStep).toBe(resumedFromStep + 1);
      const versions = await h.server.services.repos.adapterVersions.listByAdapters({ kind: 'all' }, [
        adapter.id,
      ]);
      expect(versions.map((v) => ({ version: v.version, job: v.trainingJobId }))).toEqual([
        { version: 1, job: job.id },
      ]);
      expect(await h.server.services.blobs.list(checkpointPrefix(customerId, job.id))).toEqual([]);
      second.child.kill('SIGTERM');
    },
  );
});
