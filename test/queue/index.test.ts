/**
 * The composition helpers of src/queue/index.ts pick the implementation from `redisUrl` the way
 * `Config.redisUrl` is meant to (null → in-process queue and in-memory bus; a URL → BullMQ and Redis).
 * Behaviour of each implementation is tested in its own file.
 */
import { describe, expect, it } from 'vitest';
import {
  BullMqJobQueue,
  createJobQueue,
  createProgressBus,
  InMemoryProgressBus,
  InProcessJobQueue,
  RedisProgressBus,
} from '../../src/queue/index.js';
import { deleteKeys, REDIS_URL, uniquePrefix } from './helpers.js';

describe('createJobQueue / createProgressBus', () => {
  it('choose in-process without a Redis URL and Redis-backed with one', async () => {
    const local = createJobQueue({ redisUrl: null, queueName: 'training' });
    const prefix = uniquePrefix('index');
    const remote = createJobQueue({ redisUrl: REDIS_URL, queueName: 'training', prefix });
    const localBus = createProgressBus({ redisUrl: null });
    const remoteBus = createProgressBus({ redisUrl: REDIS_URL });
    expect([
      local instanceof InProcessJobQueue,
      remote instanceof BullMqJobQueue,
      localBus instanceof InMemoryProgressBus,
      remoteBus instanceof RedisProgressBus,
    ]).toEqual([true, true, true, true]);
    expect(await remote.getState('job_none')).toBe('unknown');
    await Promise.all([local.close(), remote.close(), localBus.close(), remoteBus.close()]);
    await deleteKeys(prefix);
  });
});
