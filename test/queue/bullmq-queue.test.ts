/**
 * The BullMQ JobQueue on the real Redis (127.0.0.1:6379) against the shared contract
 * (job-queue-contract.ts), plus Redis-only behaviour: fail-fast producers and key hygiene. Each queue gets
 * its own name under a random prefix, deleted afterwards. Cross-process tests: bullmq-cross-process.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { BullMqJobQueue } from '../../src/queue/bullmq-queue.js';
import { QueueUnavailableError } from '../../src/queue/job-queue.js';
import { jobQueueContract, type Payload } from './job-queue-contract.js';
import { deleteKeys, REDIS_URL, uniquePrefix } from './helpers.js';

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
    await expect(q.getState('job_down')).rejects.toThrow(/Redis did not answer within 300 ms/);
    expect(Date.now() - t0).toBeLessThan(2000);
    await q.close();
  });

  it('rejects ids BullMQ cannot store with BAD_USER_INPUT before touching Redis', async () => {
    const q = new BullMqJobQueue<Payload>({ redisUrl: REDIS_URL, queueName: queueName(), prefix });
    await expect(q.enqueue('a:b', {})).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    await expect(q.enqueue('42', {})).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    await q.close();
  });
});
