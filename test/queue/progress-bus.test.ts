/**
 * Progress pub/sub: both buses (in-memory, and Redis on 127.0.0.1:6379 with a per-file channel prefix) must
 * deliver in order per job id, isolate job ids, stop after unsubscribe, and drive `subscribeIterator`
 * (initial state first, live events, completion at a terminal event, cleanup on return()). The Redis bus is
 * also checked across two connections while a real BullMQ job runs: events arrive as they happen.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { BullMqJobQueue } from '../../src/queue/bullmq-queue.js';
import {
  InMemoryProgressBus,
  type ProgressBus,
  RedisProgressBus,
  subscribeIterator,
} from '../../src/queue/progress-bus.js';
import { deferred, deleteKeys, REDIS_URL, sleep, uniquePrefix, waitFor } from './helpers.js';

interface Progress {
  step: number;
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED';
}
const isTerminal = (e: Progress) => e.status !== 'RUNNING';
const prefix = uniquePrefix('progress');
const channelPrefix = `${prefix}:progress:`;

const admin = new Redis(REDIS_URL);
const buses: ProgressBus<Progress>[] = [];

interface BusKind {
  name: string;
  /** Two handles on one bus: separate connections for Redis, the same object in memory. */
  make(): { pub: ProgressBus<Progress>; sub: ProgressBus<Progress> };
  subscribers(sub: ProgressBus<Progress>, jobId: string): Promise<number>;
}

const kinds: BusKind[] = [
  {
    name: 'InMemoryProgressBus',
    make() {
      const bus = new InMemoryProgressBus<Progress>();
      buses.push(bus);
      return { pub: bus, sub: bus };
    },
    subscribers: async (sub, jobId) => (sub as InMemoryProgressBus<Progress>).subscriberCount(jobId),
  },
  {
    name: 'RedisProgressBus',
    make() {
      const pub = new RedisProgressBus<Progress>({ redisUrl: REDIS_URL, channelPrefix });
      const sub = new RedisProgressBus<Progress>({ redisUrl: REDIS_URL, channelPrefix });
      buses.push(pub, sub);
      return { pub, sub };
    },
    async subscribers(_sub, jobId) {
      const [, count] = (await admin.pubsub('NUMSUB', `${channelPrefix}${jobId}`)) as [string, number];
      return Number(count);
    },
  },
];

afterEach(async () => {
  await Promise.all(buses.splice(0).map((b) => b.close()));
});
afterAll(async () => {
  admin.disconnect();
  await deleteKeys(prefix);
});

describe.each(kinds)('$name', (kind) => {
  it('delivers events of one job in order, only to that job, and nothing after unsubscribe', async () => {
    const { pub, sub } = kind.make();
    const a: Progress[] = [];
    const b: Progress[] = [];
    const unsubA = await sub.subscribe('job_a', (e) => void a.push(e));
    await sub.subscribe('job_b', (e) => void b.push(e));
    await sub.subscribe('job_a', () => {
      throw new Error('a broken listener must not starve the others');
    });
    for (let step = 1; step <= 20; step++) await pub.publish('job_a', { step, status: 'RUNNING' });
    await pub.publish('job_b', { step: 99, status: 'SUCCEEDED' });
    await waitFor('20 events', () => a.length === 20 && b.length === 1);
    expect(a.map((e) => e.step)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(b).toEqual([{ step: 99, status: 'SUCCEEDED' }]);

    await unsubA();
    await pub.publish('job_a', { step: 21, status: 'RUNNING' });
    await pub.publish('job_b', { step: 100, status: 'RUNNING' });
    await waitFor('job_b event', () => b.length === 2);
    await sleep(50);
    expect(a).toHaveLength(20);
  });

  it('subscribeIterator yields the initial state, then live events, and completes at a terminal event', async () => {
    const { pub, sub } = kind.make();
    const gate = deferred();
    const it = subscribeIterator(sub, 'job_it', {
      // Called once the subscription is live: events published meanwhile must come after it, not be lost.
      initial: async (): Promise<Progress[]> => {
        await gate.promise;
        return [{ step: 3, status: 'RUNNING' }];
      },
      isTerminal,
    });
    const first = it.next();
    await waitFor('subscribed', async () => (await kind.subscribers(sub, 'job_it')) === 1);
    await pub.publish('job_it', { step: 4, status: 'RUNNING' });
    await sleep(30);
    gate.resolve();
    expect(await first).toEqual({ value: { step: 3, status: 'RUNNING' }, done: false });
    await pub.publish('job_it', { step: 5, status: 'SUCCEEDED' });
    await pub.publish('job_it', { step: 6, status: 'RUNNING' }); // after the terminal one: never seen
    const rest: Progress[] = [];
    for await (const e of it) rest.push(e);
    expect(rest).toEqual([
      { step: 4, status: 'RUNNING' },
      { step: 5, status: 'SUCCEEDED' },
    ]);
    expect(await kind.subscribers(sub, 'job_it')).toBe(0);
  });

  it('subscribeIterator: a late subscriber of a finished job gets the final state and completion', async () => {
    const { sub } = kind.make();
    const seen: Progress[] = [];
    const it = subscribeIterator(sub, 'job_done', { initial: [{ step: 9, status: 'FAILED' }], isTerminal });
    for await (const e of it) seen.push(e);
    expect(seen).toEqual([{ step: 9, status: 'FAILED' }]);
    expect(await kind.subscribers(sub, 'job_done')).toBe(0);
  });

  it('subscribeIterator cleans up on return() (client disconnect), also while a next() is pending', async () => {
    const { pub, sub } = kind.make();
    const it = subscribeIterator(sub, 'job_gone', { isTerminal });
    const pending = it.next();
    await waitFor('subscribed', async () => (await kind.subscribers(sub, 'job_gone')) === 1);
    await pub.publish('job_gone', { step: 1, status: 'RUNNING' });
    expect(await pending).toEqual({ value: { step: 1, status: 'RUNNING' }, done: false });
    const waiting = it.next();
    expect(await it.return()).toEqual({ value: undefined, done: true });
    expect(await waiting).toEqual({ value: undefined, done: true });
    expect(await kind.subscribers(sub, 'job_gone')).toBe(0);
    expect(await it.next()).toEqual({ value: undefined, done: true });
  });
});

describe('RedisProgressBus with a running BullMQ job', () => {
  const queuePrefix = `${prefix}-bull`;
  afterAll(() => deleteKeys(queuePrefix));

  it('events published by the worker reach another connection in order while the job runs', async () => {
    const workerBus = new RedisProgressBus<Progress>({ redisUrl: REDIS_URL, channelPrefix });
    const apiBus = new RedisProgressBus<Progress>({ redisUrl: REDIS_URL, channelPrefix });
    buses.push(workerBus, apiBus);
    const queue = new BullMqJobQueue<{ steps: number }>({
      redisUrl: REDIS_URL,
      queueName: `q${randomBytes(3).toString('hex')}`,
      prefix: queuePrefix,
    });
    let finishedAt = 0;
    await queue.startWorker(async (job) => {
      for (let step = 1; step <= job.payload.steps; step++) {
        await sleep(100); // a training step
        await workerBus.publish(job.id, {
          step,
          status: step === job.payload.steps ? 'SUCCEEDED' : 'RUNNING',
        });
      }
      finishedAt = Date.now();
    });

    const received: { event: Progress; at: number }[] = [];
    const it = subscribeIterator(apiBus, 'job_live', { initial: [], isTerminal });
    const consumed = (async () => {
      for await (const event of it) received.push({ event, at: Date.now() });
    })();
    await waitFor('subscribed', async () => {
      const [, n] = (await admin.pubsub('NUMSUB', `${channelPrefix}job_live`)) as [string, number];
      return Number(n) === 1;
    });
    await queue.enqueue('job_live', { steps: 6 });
    await consumed;
    await queue.close();

    expect(received.map((r) => r.event.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(received.at(-1)!.event.status).toBe('SUCCEEDED');
    // Not a burst at the end: the first event arrived while five more steps (500 ms) were still to run.
    expect(finishedAt - received[0]!.at).toBeGreaterThanOrEqual(250);
    expect(received.at(-1)!.at - received[0]!.at).toBeGreaterThanOrEqual(300);
  });
});
