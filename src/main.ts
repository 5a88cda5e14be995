/**
 * The composition root of the API process: `startServer(config, { logger })` wires the concrete pieces —
 * SQL (migrated), blob store, base models, services, the training queue, worker and reconciler, the GraphQL
 * schema, the rate limiter and generation token budget (one of each, shared by /graphql and the
 * OpenAI-compatible /v1 routes), metrics and readiness probes (src/probes.ts) — and hands them to the HTTP
 * server (src/http/: routing, body limits, Apollo, graphql-ws, /v1, /metrics, /readyz, /blobs/, /healthz).
 * `close()` stops the server first, then the probes, the training side and the database.
 * `deltagate serve` (src/commands/serve.ts) adds signals and the admin-key banner.
 */
import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError, type Config } from './config.js';
import { openBackends } from './backends.js';
import { loadTokenizer } from './engine/formats/tokenizer.js';
import { Metrics } from './http/metrics.js';
import { OPENAI_BODY_LIMIT } from './http/openai/index.js';
import { defaultConsoleDir } from './http/console.js';
import { startHttpServer, type HttpServer } from './http/server.js';
import { createProbes } from './probes.js';
import { buildDeltagateSchema } from './resolvers/schema.js';
import { createGenerationBudget, createRateLimiter } from './resolvers/security/index.js';
import { createServices, type Services } from './services/index.js';
import {
  TRAINING_QUEUE_NAME,
  type TrainingJobPayload,
  type TrainingProgressEvent,
} from './services/training-runner.js';
import { createJobQueue, createProgressBus } from './queue/index.js';
import { createBlobHttpHandler } from './storage/blob-http.js';
import { FsBlobStore } from './storage/fs-store.js';

export interface RunningServer {
  /** e.g. http://127.0.0.1:4000 (no trailing slash); GraphQL is at `${url}/graphql`. */
  url: string;
  port: number;
  services: Services;
  /** The admin key in force and whether this start generated it (the caller prints it once). */
  adminKey: { key: string; generated: boolean; file: string | null };
  close(): Promise<void>;
}

export interface StartServerOptions {
  logger: Logger;
  /** Training queue settings; the defaults suit production (tests shorten the lock, isolate the prefix). */
  training?: {
    /** BullMQ key prefix (default 'deltagate'); `deltagate worker --queue-prefix` must match. */
    queuePrefix?: string;
    lockDurationMs?: number;
    /** ORT threads per training job run in this process. */
    threads?: number;
    /** Run training jobs in this process. Default: only on embedded defaults (no DELTAGATE_REDIS_URL). */
    runWorker?: boolean;
  };
}

const ADMIN_KEY_FILE = 'admin-key';

/**
 * POST /graphql bodies above this are refused with 413 (before reading when Content-Length says so): the
 * largest inline payload plus room for the query and the other fields. An inline dataset arrives as a JSON
 * string (escaping can double quote-heavy JSONL); inline adapter weights as base64 (4/3). Anything larger
 * is uploaded through a presigned URL (createDatasetUpload, createAdapterUpload), never through /graphql.
 */
export function graphqlBodyLimit(config: Config): number {
  const { maxInlineDatasetBytes, maxInlineAdapterBytes } = config.limits;
  const inlineAdapter = 4 * Math.ceil(maxInlineAdapterBytes / 3);
  return Math.max(2 * maxInlineDatasetBytes, inlineAdapter) + 64 * 1024;
}

/** A port that cannot be had, as the one line that says which setting to change; anything else as it is. */
function listenError(err: unknown, config: Config): unknown {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  const where = `port ${config.port} on ${config.host}`;
  if (code === 'EADDRINUSE')
    return new ConfigError(
      'DELTAGATE_PORT',
      `${where} is in use: stop what holds it or set DELTAGATE_PORT to a free port`,
    );
  if (code === 'EACCES')
    return new ConfigError(
      'DELTAGATE_PORT',
      `${where} needs privileges this process lacks: set DELTAGATE_PORT to 1024 or above`,
    );
  if (code === 'EADDRNOTAVAIL')
    return new ConfigError(
      'DELTAGATE_HOST',
      `${where}: no such address here; set DELTAGATE_HOST to one of this host's`,
    );
  return err;
}

/** DELTAGATE_ADMIN_KEY, else `<dataDir>/admin-key` (0600), generated on first start. */
export async function resolveAdminKey(config: Config): Promise<RunningServer['adminKey']> {
  if (config.adminKey !== null) return { key: config.adminKey, generated: false, file: null };
  const file = join(config.dataDir, ADMIN_KEY_FILE);
  await mkdir(config.dataDir, { recursive: true });
  const fresh = `dg_admin_${randomBytes(32).toString('base64url')}`;
  try {
    await writeFile(file, fresh + '\n', { flag: 'wx', mode: 0o600 });
    return { key: fresh, generated: true, file };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const key = (await readFile(file, 'utf8')).trim();
  if (key.length < 24) throw new Error(`${file} holds no usable admin key; delete it to generate a new one`);
  return { key, generated: false, file };
}

export async function startServer(config: Config, options: StartServerOptions): Promise<RunningServer> {
  const { logger } = options;
  await mkdir(config.dataDir, { recursive: true });
  const adminKey = await resolveAdminKey(config);

  const { blobs, builtinDir, baseModels, db } = await openBackends(config);
  const tokenizer = await loadTokenizer(builtinDir);
  const training = options.training ?? {};
  const queue = createJobQueue<TrainingJobPayload>({
    redisUrl: config.redisUrl,
    queueName: TRAINING_QUEUE_NAME,
    logger,
    ...(training.queuePrefix ? { prefix: training.queuePrefix } : {}),
    ...(training.lockDurationMs ? { lockDurationMs: training.lockDurationMs } : {}),
  });
  const bus = createProgressBus<TrainingProgressEvent>({ redisUrl: config.redisUrl, logger });
  const services = createServices({
    db,
    blobs,
    baseModels,
    limits: config.limits,
    adminKey: adminKey.key,
    countTokens: tokenizer ? (text) => tokenizer.countTokens(text) : null,
    logger,
    executionProvider: config.executionProvider,
    training: { queue, bus, threads: training.threads },
    generation: config.gateway,
  });
  const runner = services.training!;
  // Embedded defaults: this process trains. With Redis, `deltagate worker` processes do.
  if (training.runWorker ?? config.redisUrl === null) await runner.startWorker(config.workerConcurrency);
  // SQL is the source of truth: jobs the queue lost (a restart of the in-process queue, a Redis flush) run
  // again, and jobs the queue gave up on (stalled too often) are marked FAILED — at start-up and every minute.
  const reconcile = () =>
    runner.reconcile().catch((err: unknown) => logger.error({ err }, 'could not reconcile training jobs'));
  await reconcile();
  const reconciler = setInterval(() => void reconcile(), 60_000);
  reconciler.unref();

  const probes = createProbes({
    db,
    blobs,
    redisUrl: config.redisUrl,
    queuePrefix: training.queuePrefix,
    logger,
  });
  // One request limiter and one generation token budget for /graphql and /v1 alike.
  const limiter = createRateLimiter({ perMinute: config.limits.rateLimitPerMinute });
  const generationBudget = createGenerationBudget({
    tokensPerMinute: config.limits.generationTokensPerMinute,
  });
  const metrics = new Metrics({
    services,
    limiter,
    logger,
    token: config.metrics.token,
    maxAdapterLabels: config.metrics.adapterLabels,
    trainingJobCounts: probes.trainingJobCounts,
    ...(probes.queueCounts ? { queueCounts: probes.queueCounts } : {}),
  });

  // Stops what started above, in order: running jobs get 10 s, then go back to the queue (SQL keeps them
  // RUNNING; the reconciler or another worker resumes them from their last checkpoint).
  const closeBackground = async () => {
    metrics.close();
    await probes.close();
    clearInterval(reconciler);
    await runner.close({ timeoutMs: 10_000 });
    await queue.close();
    await bus.close();
    await services.generation.close();
    await db.destroy();
  };

  let http: HttpServer;
  try {
    http = await startHttpServer({
      host: config.host,
      port: config.port,
      logger,
      blobHandler: blobs instanceof FsBlobStore ? createBlobHttpHandler(blobs) : null,
      graphql: {
        schema: await buildDeltagateSchema(),
        services,
        limiter,
        production: config.production,
        maxBodyBytes: graphqlBodyLimit(config),
        guards: { generationBudget, maxInlineAdapterBytes: config.limits.maxInlineAdapterBytes },
      },
      openai: { services, limiter, generationBudget, maxBodyBytes: OPENAI_BODY_LIMIT },
      metrics,
      readiness: probes.readiness,
      console:
        config.consoleDir === null
          ? undefined
          : {
              dir: config.consoleDir ?? defaultConsoleDir(),
              // Presigned uploads go straight to S3 from the browser (the bucket needs CORS; docs/CONSOLE.md).
              // The blob directory's presigned URLs name DELTAGATE_PUBLIC_URL, which may differ from the
              // host the browser opened.
              connectOrigins:
                config.storage.kind === 's3'
                  ? config.storage.endpoint === null
                    ? ['https://*.amazonaws.com']
                    : [new URL(config.storage.endpoint).origin]
                  : [new URL(config.publicUrl).origin],
            },
    });
  } catch (err) {
    // e.g. the port is taken: release the worker and the database so the process can exit.
    await closeBackground().catch((closeErr: unknown) =>
      logger.error({ err: closeErr }, 'error while closing after a failed start'),
    );
    throw listenError(err, config);
  }
  logger.info(
    {
      url: `${http.url}/graphql`,
      openai: `${http.url}/v1`,
      database: config.database.kind,
      storage: config.storage.kind,
      baseModels: baseModels.list().map((m) => m.id),
    },
    'deltagate API listening',
  );

  let closing: Promise<void> | null = null;
  return {
    url: http.url,
    port: http.port,
    services,
    adminKey,
    close() {
      closing ??= (async () => {
        await http.close();
        await closeBackground();
      })();
      return closing;
    },
  };
}
