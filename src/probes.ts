/**
 * The operational probes of the API process, wired by the composition root (src/main.ts) and handed to the
 * HTTP layer as plain functions (src/http/ reaches neither SQL nor Redis itself):
 *
 * - readiness checks for `/readyz`: SQL (`select 1`), blob storage (a HEAD of a sentinel key: absent is
 *   fine, an unreachable store is not) and Redis (PING, when DELTAGATE_REDIS_URL is set);
 * - metric sources for `/metrics`: training jobs by status (one grouped SQL query) and the BullMQ training
 *   queue's job counts by state (with Redis).
 *
 * Its Redis connection is its own, with no offline queue and one retry, so a probe while Redis is down fails
 * at once instead of queueing; ioredis keeps reconnecting in the background, so the probe passes again once
 * Redis is back.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { Db } from './db/database.js';
import type { ReadinessCheck } from './http/readiness.js';
import { TRAINING_QUEUE_NAME } from './services/training-runner.js';
import type { BlobStore } from './storage/blob-store.js';

/** A key no artifact uses; HEAD of it costs one request and finds nothing. */
export const READINESS_SENTINEL_KEY = 'health/readyz-sentinel';

export interface Probes {
  readiness: ReadinessCheck[];
  trainingJobCounts(): Promise<Record<string, number>>;
  /** Absent without Redis. */
  queueCounts?: () => Promise<Record<string, number>>;
  close(): Promise<void>;
}

export interface ProbeDeps {
  db: Db;
  blobs: BlobStore;
  redisUrl: string | null;
  /** The BullMQ prefix of the training queue (default 'deltagate'). */
  queuePrefix?: string;
  logger: Logger;
}

const JOB_STATUSES = ['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'];
const QUEUE_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed'] as const;

/** Resolves once `redis` is ready, or rejects when it fails first or `ms` pass. */
function whenReady(redis: Redis, ms: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      redis.off('error', onError);
      if (err) reject(err);
      else resolve();
    };
    const onReady = () => done();
    const onError = (err: Error) => done(err);
    const timer = setTimeout(() => done(new Error(`Redis not ready within ${ms} ms`)), ms);
    redis.on('ready', onReady);
    redis.on('error', onError);
  });
}

export function createProbes(deps: ProbeDeps): Probes {
  const { db, blobs, logger } = deps;
  const readiness: ReadinessCheck[] = [
    {
      name: 'sql',
      check: async () => {
        await sql`select 1`.execute(db);
      },
    },
    {
      name: 'blobs',
      check: async () => {
        await blobs.head(READINESS_SENTINEL_KEY);
      },
    },
  ];
  const trainingJobCounts = async () => {
    const rows = await db
      .selectFrom('training_jobs')
      .select(['status', sql<number | string>`count(*)`.as('n')])
      .groupBy('status')
      .execute();
    const out: Record<string, number> = Object.fromEntries(JOB_STATUSES.map((s) => [s, 0]));
    for (const r of rows) out[r.status] = Number(r.n);
    return out;
  };
  if (deps.redisUrl === null) return { readiness, trainingJobCounts, close: async () => undefined };

  const redis = new Redis(deps.redisUrl, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    lazyConnect: true,
  });
  let down = false;
  redis.on('error', (err) => {
    if (!down) logger.warn({ err }, 'readiness probe: redis error');
    down = true;
  });
  redis.on('ready', () => (down = false));
  redis.connect().catch(() => undefined); // reported by the probes; ioredis keeps retrying
  const queue = new Queue(TRAINING_QUEUE_NAME, {
    connection: redis,
    prefix: deps.queuePrefix ?? 'deltagate',
  });
  queue.on('error', () => undefined); // the connection's own handler logs it
  readiness.push({
    name: 'redis',
    check: async () => {
      await whenReady(redis, 2_000);
      const pong = await redis.ping();
      if (pong !== 'PONG') throw new Error(`PING answered ${pong}`);
    },
  });
  return {
    readiness,
    trainingJobCounts,
    queueCounts: async () => {
      await whenReady(redis, 1_000);
      const counts = await queue.getJobCounts(...QUEUE_STATES);
      return Object.fromEntries(QUEUE_STATES.map((s) => [s, counts[s] ?? 0]));
    },
    close: async () => {
      await queue.close().catch(() => undefined);
      redis.disconnect();
    },
  };
}
