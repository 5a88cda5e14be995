/**
 * The BullMQ JobQueue on the real Redis (127.0.0.1:6379) against the shared contract
 * (job-queue-contract.ts), plus Redis-only behaviour: fail-fast producers and key hygiene. Each queue gets
 * its own name under a random prefix, deleted afterwards. Cross-process tests: bullmq-cross-process.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { BullMqJobQueue } from '../../src/queue/bullmq-queue.js';
import { JobLockLostError, QueueUnavailableError } from '../../src/queue/job-queue.js';
import { jobQueueContract, type Payload } from './job-queue-contract.js';
import { Redis } from 'ioredis';
import { aborted, deferred, deleteKeys, REDIS_URL, uniquePrefix, waitFor } from './helpers.js';

const prefix = uniquePrefix('bullmq');
const queueName = () => `q${randomBytes(3).toString('hex')}`;

describe('BullMqJobQueue', () => {
  afterAll(() => deleteKeys(prefix));

  jobQueueContract(
    (opts) => new BullMqJobQueue<Payload>({ redisUrl: REDIS_URL, queueName: queueName(), prefix, ...opts }),
  );

  it('a producer fails fast with QueueUnavailableError when Redis cannot be reached', async () => {
    const q = new BullMqJobQueue<Payload>({
      redisUrl: 'redis://127.0.0.1:1', // nothing listens on port 1
      queueName: queueName(),
      prefix,
      connectTimeoutMs: 300,
    });
    const t0 = Date.now();
    await expect(q.enqueue('job_down', {})).rejects.toBeInstanceOf(QueueUnavailableError);
    // Once a connect attempt has failed, calls fail at once instead of waiting out the timeout.
    const t1 = Date.now();
    await expect(q.getState('job_down')).rejects.toThrow(/Redis is unreachable/);
    expect(Date.now() - t1).toBeLessThan(100);
    expect(Date.now() - t0).toBeLessThan(2000);
    await q.close();
  });

  it('rejects ids BullMQ cannot store with BAD_USER_INPUT before touching Redis', async () => {
    const q = new BullMqJobQueue<Payload>({ redisUrl: REDIS_URL, queueName: queueName(), prefix });
    await expect(q.enqueue('a:b', {})).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    await expect(q.enqueue('42', {})).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    await q.close();
  });

  it('a worker that loses a job lock aborts that handler (JobLockLostError) and the job runs again', async () => {
    const name = queueName();
    const q = new BullMqJobQueue<Payload>({
      redisUrl: REDIS_URL,
      queueName: name,
      prefix,
      lockDurationMs: 1000,
      stalledIntervalMs: 300,
    });
    const firstStarted = deferred();
    const reasons: unknown[] = [];
    const runs: number[] = [];
    await q.startWorker(
      async (job) => {
        runs.push(job.attempt);
        if (job.attempt > 1) return;
        firstStarted.resolve();
        reasons.push(await aborted(job.signal));
        throw job.signal.reason;
      },
      { concurrency: 2 },
    );
    await q.enqueue('job_lock', {});
    await firstStarted.promise;
    // What a long event-loop block or a Redis failover looks like from the worker: the lock is gone.
    const admin = new Redis(REDIS_URL);
    await admin.del(`${prefix}:${name}:job_lock:lock`);
    admin.disconnect();
    await waitFor('first run aborted', () => reasons.length === 1, 8000);
    await waitFor('second run completed', async () => (await q.getState('job_lock')) === 'completed', 8000);
    expect(reasons[0]).toBeInstanceOf(JobLockLostError);
    expect(runs).toEqual([1, 2]);
    await q.close();
  });
});
