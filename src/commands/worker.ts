/**
 * `deltagate worker`: runs training jobs from Redis (BullMQ) in their own process, so API and workers scale
 * apart and a worker can die (SIGKILL) without losing its job (another worker resumes it from its last
 * checkpoint). Composition root only: the queue is src/queue, one job src/training/job-handler.ts, the runner
 * src/services/training-runner.ts. On embedded defaults (no DELTAGATE_REDIS_URL) `deltagate serve` runs jobs.
 */
import { loadConfig, unknownVariables } from '../config.js';
import { openBackends } from '../backends.js';
import { repositoriesFor } from '../db/repositories/index.js';
import { createJobQueue, createProgressBus } from '../queue/index.js';
import {
  TRAINING_QUEUE_NAME,
  TrainingRunner,
  type TrainingJobPayload,
  type TrainingProgressEvent,
} from '../services/training-runner.js';
import { prettyDestination } from '../log-format.js';
import { createLogger, runUntilSignal } from './command-kit.js';

export const summary = 'run training jobs from Redis (needs DELTAGATE_REDIS_URL)';

const USAGE = `usage: deltagate worker [--concurrency N] [--lock-ms MS] [--threads N] [--queue-prefix P]
  --concurrency N   jobs at once (default DELTAGATE_WORKER_CONCURRENCY, 1)
  --lock-ms MS      the job lease; a dead worker's job resumes elsewhere after about this long (30000)
  --threads N       onnxruntime threads per job (default: all cores)
  --queue-prefix P  Redis key prefix of the queue (default deltagate)
Configured by DELTAGATE_* environment variables (see README). SIGTERM/SIGINT: running jobs get 30 s to
finish, then go back to the queue and resume from their last checkpoint elsewhere.`;

export interface WorkerArgs {
  concurrency?: number;
  lockMs?: number;
  threads?: number;
  queuePrefix?: string;
}

export function parseWorkerArgs(argv: string[]): WorkerArgs | { error: string } | { help: true } {
  const out: WorkerArgs = {};
  const ints: Record<string, keyof WorkerArgs> = {
    '--concurrency': 'concurrency',
    '--lock-ms': 'lockMs',
    '--threads': 'threads',
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '--help' || flag === '-h') return { help: true };
    const value = argv[i + 1];
    if (value === undefined) return { error: `${flag} needs a value` };
    i++;
    if (flag === '--queue-prefix') {
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(value))
        return { error: '--queue-prefix must be 1-64 of [A-Za-z0-9_-]' };
      out.queuePrefix = value;
    } else if (flag in ints) {
      const n = Number(value);
      if (!Number.isSafeInteger(n) || n < 1)
        return { error: `${flag} must be a positive integer, got ${value}` };
      (out as Record<string, number>)[ints[flag]!] = n;
    } else return { error: `unknown option ${flag}` };
  }
  return out;
}

export async function run(argv: string[]): Promise<number> {
  const args = parseWorkerArgs(argv);
  if ('help' in args) {
    console.log(USAGE);
    return 0;
  }
  if ('error' in args) {
    console.error(`deltagate worker: ${args.error}\n${USAGE}`);
    return 2;
  }
  const config = loadConfig(process.env);
  const logger = createLogger(
    config.logLevel,
    'worker',
    config.logFormat === 'pretty' ? prettyDestination() : undefined,
  );
  for (const name of unknownVariables(process.env))
    logger.warn({ variable: name }, 'unknown configuration variable');
  if (config.redisUrl === null) {
    console.error(
      'deltagate worker: DELTAGATE_REDIS_URL is not set. On embedded defaults `deltagate serve` runs training ' +
        'jobs in-process; a separate worker needs Redis (and shared SQL and S3).',
    );
    return 2;
  }

  const { blobs, baseModels, db } = await openBackends(config);
  const queue = createJobQueue<TrainingJobPayload>({
    redisUrl: config.redisUrl,
    queueName: TRAINING_QUEUE_NAME,
    logger,
    ...(args.queuePrefix ? { prefix: args.queuePrefix } : {}),
    ...(args.lockMs ? { lockDurationMs: args.lockMs } : {}),
  });
  const bus = createProgressBus<TrainingProgressEvent>({ redisUrl: config.redisUrl, logger });
  const runner = new TrainingRunner({
    repos: repositoriesFor(db),
    blobs,
    baseModels,
    queue,
    bus,
    logger,
    threads: args.threads,
    executionProvider: config.executionProvider,
  });
  const concurrency = args.concurrency ?? config.workerConcurrency;
  await runner.reconcile();
  await runner.startWorker(concurrency);
  logger.info({ concurrency, pid: process.pid }, 'deltagate worker ready');
  console.log(`deltagate worker ready (pid ${process.pid}, concurrency ${concurrency})`);

  return runUntilSignal(logger, 'draining: running jobs get 30 s, then return to the queue', async () => {
    await runner.close({ timeoutMs: 30_000 });
    await queue.close();
    await bus.close();
    await db.destroy();
  });
}
