/**
 * The composition root of the API process: `startServer(config, { logger })` wires the concrete pieces —
 * SQL (migrated), blob store, base models, services, the GraphQL schema — into one node http server with
 * Apollo Server on POST /graphql, graphql-ws on the same path, the directory store's presigned-URL handler
 * on /blobs/ and /healthz. Authentication, rate limiting and error mapping are applied here, before any
 * resolver runs. `deltagate serve` (src/commands/serve.ts) adds signals and the admin-key banner.
 */
import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { ApolloServer, HeaderMap } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { useServer } from 'graphql-ws/use/ws';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import type { Config } from './config.js';
import { openBackends } from './backends.js';
import { loadTokenizer } from './engine/formats/tokenizer.js';
import { createContext, type GraphQLContext } from './resolvers/context.js';
import { asDeltagateError, createFormatError, toGraphQLError } from './resolvers/error-mapping.js';
import { graphql } from './resolvers/graphql-runtime.js';
import { buildDeltagateSchema } from './resolvers/schema.js';
import { createRateLimiter, securityRules, type RateLimiter } from './resolvers/security/index.js';
import { createServices, type Actor, type Services } from './services/index.js';
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
/** Request bodies above this are refused with 413 before parsing. */
function bodyLimit(config: Config): number {
  const inlineAdapter = Math.ceil((config.limits.maxAdapterBytes * 4) / 3);
  return Math.max(config.limits.maxInlineDatasetBytes * 2, inlineAdapter) + 1024 * 1024;
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

class BodyTooLargeError extends Error {}

async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.byteLength;
    if (size > limit) throw new BodyTooLargeError();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function clientAddress(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? 'unknown';
}

/**
 * Authentication + rate limiting for one request or WebSocket operation. Failed attempts spend from the
 * caller's address bucket, so guessing keys is throttled too; successful ones from the key's own bucket.
 */
async function authorize(
  services: Services,
  limiter: RateLimiter,
  authorization: string | null | undefined,
  address: string,
): Promise<Actor> {
  let actor: Actor;
  try {
    actor = await services.apiKeys.authenticate(authorization);
  } catch (err) {
    limiter.consume(`ip:${address}`);
    throw err;
  }
  limiter.consume(actor.role === 'ADMIN' ? 'admin' : `key:${actor.apiKeyId}`);
  return actor;
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
    countTokens: tokenizer ? (text) => tokenizer.encode(text, { addBos: false }).length : null,
    logger,
    executionProvider: config.executionProvider,
    training: { queue, bus, threads: training.threads },
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
  const limiter = createRateLimiter({ perMinute: config.limits.rateLimitPerMinute });
  const schema = await buildDeltagateSchema();
  const formatError = createFormatError(logger, { production: config.production });
  const blobHandler = blobs instanceof FsBlobStore ? createBlobHttpHandler(blobs) : null;
  const maxBody = bodyLimit(config);

  let apollo: ApolloServer<GraphQLContext> | null = null;
  const httpServer: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      logger.error({ err }, 'unhandled error in the HTTP handler');
      if (!res.headersSent)
        sendJson(res, 500, { error: { code: 'INTERNAL_SERVER_ERROR', message: 'internal error' } });
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (blobHandler && (await blobHandler(req, res))) return;
    if (url.pathname === '/healthz') return sendJson(res, 200, { ok: true });
    if (url.pathname !== '/graphql' || apollo === null) {
      return sendJson(res, 404, {
        error: { code: 'NOT_FOUND', message: `no route ${req.method} ${url.pathname}` },
      });
    }
    let body: unknown;
    if (req.method === 'POST') {
      let text: string;
      try {
        text = await readBody(req, maxBody);
      } catch (err) {
        if (err instanceof BodyTooLargeError) {
          // The rest of the body is never read: close the connection instead of keeping it alive.
          res.setHeader('connection', 'close');
          res.once('finish', () => req.destroy());
          return sendJson(res, 413, {
            errors: [
              { message: `request body over ${maxBody} bytes`, extensions: { code: 'BAD_USER_INPUT' } },
            ],
          });
        }
        throw err;
      }
      const isJson = /^application\/(graphql-response\+)?json\b/i.test(req.headers['content-type'] ?? '');
      if (isJson) {
        try {
          body = JSON.parse(text);
        } catch {
          return sendJson(res, 400, {
            errors: [{ message: 'malformed JSON body', extensions: { code: 'BAD_REQUEST' } }],
          });
        }
      } else {
        // Not JSON: Apollo's CSRF prevention and content negotiation answer it (text/plain is refused).
        body = text;
      }
    }
    const headers = new HeaderMap();
    for (const [key, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers.set(key, Array.isArray(value) ? value.join(', ') : value);
    }
    const response = await apollo.executeHTTPGraphQLRequest({
      httpGraphQLRequest: { method: (req.method ?? 'GET').toUpperCase(), headers, search: url.search, body },
      context: async () => {
        try {
          const actor = await authorize(services, limiter, req.headers.authorization, clientAddress(req));
          return createContext(actor, services, logger);
        } catch (err) {
          const known = asDeltagateError(err);
          if (known) throw toGraphQLError(known);
          throw err;
        }
      },
    });
    for (const [key, value] of response.headers) res.setHeader(key, value);
    res.statusCode = response.status ?? 200;
    if (response.body.kind === 'complete') {
      res.end(response.body.string);
      return;
    }
    for await (const chunk of response.body.asyncIterator) res.write(chunk);
    res.end();
  }

  // graphql-ws on the same path: the key is checked at connect (a bad key never gets a connection) and
  // again for every operation, so revocation also stops new subscriptions on an open socket.
  const wsServer = new WebSocketServer({ server: httpServer, path: '/graphql', maxPayload: 1024 * 1024 });
  const wsCleanup = useServer<Record<string, unknown>, { actor?: Actor; address: string }>(
    {
      schema,
      validate: (wsSchema, document) =>
        graphql.validate(wsSchema, document, [...graphql.specifiedRules, ...securityRules()]),
      onConnect: async (ctx) => {
        const authorization = ctx.connectionParams?.authorization;
        const address = ctx.extra.request.socket.remoteAddress ?? 'unknown';
        (ctx.extra as { address: string }).address = address;
        try {
          (ctx.extra as { actor?: Actor }).actor = await authorize(
            services,
            limiter,
            typeof authorization === 'string' ? authorization : null,
            address,
          );
          return true;
        } catch (err) {
          logger.info({ code: asDeltagateError(err)?.code, address }, 'refused a WebSocket connection');
          return false;
        }
      },
      context: async (ctx) => {
        const authorization = ctx.connectionParams?.authorization;
        const actor = await authorize(
          services,
          limiter,
          typeof authorization === 'string' ? authorization : null,
          (ctx.extra as { address?: string }).address ?? 'unknown',
        ).catch((err: unknown) => {
          const known = asDeltagateError(err);
          throw known ? toGraphQLError(known) : err;
        });
        return createContext(actor, services, logger);
      },
      // Subscription errors (a refused subscribe, a failing event) get the same codes as HTTP ones.
      onError: (_ctx, _id, _payload, errors) => errors.map((e) => formatError(e.toJSON(), e)),
      onNext: (_ctx, _id, _payload, _args, result) =>
        result.errors?.length
          ? { ...result, errors: result.errors.map((e) => formatError(e.toJSON(), e)) }
          : undefined,
    },
    wsServer,
  );

  apollo = new ApolloServer<GraphQLContext>({
    schema,
    csrfPrevention: true,
    introspection: !config.production,
    includeStacktraceInErrorResponses: !config.production,
    validationRules: securityRules(),
    formatError,
    logger: {
      debug: (m) => logger.debug(m),
      info: (m) => logger.info(m),
      warn: (m) => logger.warn(m),
      error: (m) => logger.error(m),
    },
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer }),
      {
        async serverWillStart() {
          return {
            async drainServer() {
              await wsCleanup.dispose();
            },
          };
        },
      },
    ],
  });
  await apollo.start();

  // Per-request ceilings: a slow or stalled client cannot hold a connection forever.
  httpServer.requestTimeout = 120_000;
  httpServer.headersTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(config.port === 0 ? 0 : config.port, config.host, () => {
      httpServer.off('error', reject);
      resolve();
    });
  });
  const port = (httpServer.address() as AddressInfo).port;
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  logger.info(
    {
      url: `${url}/graphql`,
      database: config.database.kind,
      storage: config.storage.kind,
      baseModels: baseModels.list().map((m) => m.id),
    },
    'deltagate API listening',
  );

  let closing: Promise<void> | null = null;
  return {
    url,
    port,
    services,
    adminKey,
    close() {
      closing ??= (async () => {
        await apollo!.stop();
        wsServer.close();
        // Running jobs get 10 s; then they go back to the queue (SQL keeps them RUNNING; the reconciler or
        // another worker resumes them from their last checkpoint).
        clearInterval(reconciler);
        await runner.close({ timeoutMs: 10_000 });
        await queue.close();
        await bus.close();
        await services.generation.close();
        await db.destroy();
      })();
      return closing;
    },
  };
}
