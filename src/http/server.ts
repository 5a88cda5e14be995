/**
 * The node HTTP server of the API: `startHttpServer` wires the routes — the directory store's presigned-URL
 * handler on /blobs/*, /healthz (liveness), /readyz (dependencies), /metrics (Prometheus), GraphQL (and
 * graphql-ws) on /graphql, the OpenAI-compatible API on /v1, the web console on / — listens, and returns `close()`, which drains
 * in-flight requests and WebSockets. Every request gets an id (`x-request-id`, access-log.ts) and one
 * access-log line. It builds no services and knows nothing about training: the composition root
 * (src/main.ts) passes those in and closes them after the server.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { BLOB_HTTP_PREFIX } from '../storage/fs-store.js';
import { trackRequest } from './access-log.js';
import { consoleRoutes, type ConsoleOptions } from './console.js';
import { mountGraphQL, type GraphQLOptions } from './graphql.js';
import { sendError, sendJson } from './json.js';
import type { Metrics } from './metrics.js';
import { openAIRoutes, type OpenAIOptions } from './openai/index.js';
import { readinessRoute, type ReadinessCheck } from './readiness.js';
import { Router } from './router.js';

/** A handler that answers its own paths and returns false for every other one (src/storage/blob-http.ts). */
export type BlobHttpHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

export interface HttpServerOptions {
  host: string;
  /** 0: any free port. */
  port: number;
  logger: Logger;
  /** The directory store's presigned-URL handler; null when blobs live in S3. */
  blobHandler: BlobHttpHandler | null;
  graphql: Omit<GraphQLOptions, 'logger'>;
  /** The OpenAI-compatible routes on /v1; absent: not served. */
  openai?: Omit<OpenAIOptions, 'logger'>;
  /** /metrics (and the per-request counters); absent: not served. */
  metrics?: Metrics;
  /** What /readyz checks; absent: no /readyz. */
  readiness?: readonly ReadinessCheck[];
  /** The web console at `/` (src/http/console.ts); absent: not served. */
  console?: Omit<ConsoleOptions, 'logger'>;
}

export interface HttpServer {
  /** e.g. http://127.0.0.1:4000 (no trailing slash); a wildcard host is given as 127.0.0.1. */
  url: string;
  port: number;
  /** Stops accepting, lets in-flight requests finish, closes WebSockets. Idempotent. */
  close(): Promise<void>;
}

/** Per-request ceilings: a slow or stalled client cannot hold a connection forever. */
const REQUEST_TIMEOUT_MS = 120_000;
const HEADERS_TIMEOUT_MS = 30_000;

export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const { logger, blobHandler } = options;
  const router = new Router();
  const { metrics } = options;
  const httpServer = createServer((req, res) => {
    const info = trackRequest(req, res, logger, (r) =>
      metrics?.observeRequest(r.route, r.method, r.status, r.seconds),
    );
    router.handle(req, res, info).catch((err: unknown) => {
      logger.error({ err }, 'unhandled error in the HTTP handler');
      if (!res.headersSent) sendError(res, 500, 'INTERNAL_SERVER_ERROR', 'internal error');
      else res.destroy();
    });
  });
  httpServer.requestTimeout = REQUEST_TIMEOUT_MS;
  httpServer.headersTimeout = HEADERS_TIMEOUT_MS;

  const graphql = await mountGraphQL(httpServer, { ...options.graphql, logger });
  if (blobHandler) {
    router.add({
      methods: '*',
      pattern: `${BLOB_HTTP_PREFIX}*`,
      handler: async (req, res, { url }) => {
        if (!(await blobHandler(req, res)))
          sendError(res, 404, 'NOT_FOUND', `no route ${req.method} ${url.pathname}`);
      },
    });
  }
  router.add({ methods: '*', pattern: '/healthz', handler: (_req, res) => sendJson(res, 200, { ok: true }) });
  if (options.readiness) router.add(readinessRoute(options.readiness, logger));
  if (metrics) router.add(metrics.route());
  router.add(graphql.route);
  if (options.openai) for (const route of openAIRoutes({ ...options.openai, logger })) router.add(route);
  if (options.console)
    for (const route of await consoleRoutes({ ...options.console, logger })) router.add(route);

  try {
    await new Promise<void>((resolve, reject) => {
      httpServer.once('error', reject);
      httpServer.listen(options.port, options.host, () => {
        httpServer.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await graphql.stop(); // nothing is listening; this only releases Apollo and the WebSocket server
    throw err;
  }
  const port = (httpServer.address() as AddressInfo).port;
  const host = options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return { url, port, close: () => graphql.stop() };
}
