/**
 * The queue layer's entry point: re-exports, plus the two choices the composition roots (src/main.ts,
 * src/commands/worker.ts) make from `Config.redisUrl` — BullMQ + Redis pub/sub when it is set, the
 * in-process queue + in-memory bus otherwise (then API and handler must share one process and one object
 * of each). What runs in a job (training) is src/training's and src/services' business, not this layer's.
 */
import type { Logger } from 'pino';
import { BullMqJobQueue, type BullMqQueueOptions } from './bullmq-queue.js';
import { InProcessJobQueue, type InProcessQueueOptions } from './in-process-queue.js';
import type { JobQueue } from './job-queue.js';
import { InMemoryProgressBus, type ProgressBus, RedisProgressBus } from './progress-bus.js';

export * from './bullmq-queue.js';
export * from './in-process-queue.js';
export * from './job-queue.js';
export * from './progress-bus.js';

export type CreateJobQueueOptions = {
  /** null: the in-process queue. */
  redisUrl: string | null;
  queueName: string;
  logger?: Logger;
} & Omit<BullMqQueueOptions, 'redisUrl' | 'queueName' | 'logger'> &
  Omit<InProcessQueueOptions, 'logger'>;

export function createJobQueue<P>(opts: CreateJobQueueOptions): JobQueue<P> {
  const { redisUrl, ...rest } = opts;
  return redisUrl === null ? new InProcessJobQueue<P>(rest) : new BullMqJobQueue<P>({ ...rest, redisUrl });
}

export function createProgressBus<E>(opts: { redisUrl: string | null; logger?: Logger }): ProgressBus<E> {
  return opts.redisUrl === null
    ? new InMemoryProgressBus<E>(opts.logger)
    : new RedisProgressBus<E>({ redisUrl: opts.redisUrl, logger: opts.logger });
}
