/**
 * GraphQL on /graphql: `mountGraphQL` starts Apollo Server (CSRF prevention, the security validation rules,
 * introspection off in production) behind a router route, and graphql-ws on WebSocket upgrades of the same
 * path. Every request and WebSocket operation is authenticated and rate limited here (`authorize`) before a
 * resolver runs — an HTTP request from its headers alone, before a byte of its body is read (a stranger's
 * body is never read; then the body is read with the route's byte limit). Any RATE_LIMITED answer carries
 * `Retry-After`. It does not own the node server (server.ts) and installs no signal handlers: stopping is
 * the caller's `stop()`.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { ApolloServer, HeaderMap } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import type { GraphQLFormattedError, GraphQLSchema } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import { createContext, type GraphQLContext, type RequestGuards } from '../resolvers/context.js';
import { asDeltagateError, createFormatError, toGraphQLError } from '../resolvers/error-mapping.js';
import { graphql } from '../resolvers/graphql-runtime.js';
import { securityRules, type RateLimiter } from '../resolvers/security/index.js';
import type { Actor, Services } from '../services/index.js';
import type { DeltagateError } from '../shared/errors.js';
import { BodyTooLargeError, closeAfterResponse } from './body.js';
import { sendGraphQLError } from './json.js';
import type { Route, RouteContext } from './router.js';

export const GRAPHQL_PATH = '/graphql';

export interface GraphQLOptions {
  schema: GraphQLSchema;
  services: Services;
  limiter: RateLimiter;
  logger: Logger;
  /** Production: no introspection, no stack traces in errors. */
  production: boolean;
  /** POST bodies above this are refused with 413 (before reading when Content-Length says so). */
  maxBodyBytes: number;
  /** What resolvers enforce per request: the generation token budget, the inline adapter limit. */
  guards?: RequestGuards;
}

export interface GraphQLEndpoint {
  /** The HTTP route to add to the router (POST/GET /graphql). */
  route: Route;
  /** Stops Apollo (which drains the HTTP server) and closes every WebSocket. */
  stop(): Promise<void>;
}

/**
 * Authentication + rate limiting for one request or WebSocket operation. Failed attempts spend from the
 * caller's address bucket, so guessing keys is throttled too; successful ones from the key's own bucket.
 */
/** The Authorization header (or graphql-ws connection param) as a string, or null. */
function bearerOf(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

export async function authorize(
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

/** The HTTP status of a request refused before Apollo saw it. */
const REFUSAL_STATUS: Partial<Record<DeltagateError['code'], number>> = {
  UNAUTHENTICATED: 401,
  RATE_LIMITED: 429,
};

/** `Retry-After` seconds for a list of GraphQL errors: the longest RATE_LIMITED hint, or null when none. */
export function retryAfterOf(errors: readonly GraphQLFormattedError[] | undefined): number | null {
  let wait: number | null = null;
  for (const e of errors ?? []) {
    if (e.extensions?.code !== 'RATE_LIMITED') continue;
    const s = Number(e.extensions.retryAfterSeconds);
    wait = Math.max(wait ?? 1, Number.isFinite(s) && s > 0 ? Math.ceil(s) : 1);
  }
  return wait;
}

/**
 * Answers a request refused by `authorize` without reading its body: when the body has not fully arrived,
 * the connection closes after the answer instead of waiting for (or draining) the rest.
 */
function refuseBeforeBody(req: IncomingMessage, res: ServerResponse, err: DeltagateError): void {
  if (!req.complete) closeAfterResponse(req, res);
  const extensions = { code: err.code, ...(err.details ?? {}) };
  const wait = retryAfterOf([{ message: err.message, extensions }]);
  if (wait !== null) res.setHeader('retry-after', String(wait));
  sendGraphQLError(res, REFUSAL_STATUS[err.code] ?? 400, err.code, err.message, err.details);
}

/** Mounts graphql-ws on `httpServer` and starts Apollo; add the returned route to the router. */
export async function mountGraphQL(httpServer: Server, options: GraphQLOptions): Promise<GraphQLEndpoint> {
  const { schema, services, logger } = options;
  const formatError = createFormatError(logger, { production: options.production });

  // graphql-ws on the same path: the key is checked at connect (a bad key never gets a connection) and
  // again for every operation, so revocation also stops new operations on an open socket. A refused
  // operation (revoked key, empty bucket) gets its error as that operation's answer; the socket stays open.
  // noServer: the WebSocket server only sees upgrades handed to it, not the HTTP server's own errors (a port
  // in use would otherwise surface as graphql-ws's "Internal error emitted on the WebSocket server").
  const wsServer = new WebSocketServer({ noServer: true, path: GRAPHQL_PATH, maxPayload: 1024 * 1024 });
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) =>
    wsServer.handleUpgrade(req, socket, head, (ws) => wsServer.emit('connection', ws, req)); // 400 off-path
  httpServer.on('upgrade', onUpgrade);
  type SocketState = { address: string; actors: Map<string, Actor> };
  const wsCleanup = useServer<Record<string, unknown>, Partial<SocketState>>(
    {
      schema,
      validate: (wsSchema, document) =>
        graphql.validate(wsSchema, document, [...graphql.specifiedRules, ...securityRules()]),
      onConnect: async (ctx) => {
        const address = ctx.extra.request.socket.remoteAddress ?? 'unknown';
        ctx.extra.address = address;
        ctx.extra.actors = new Map();
        try {
          await authorize(services, options.limiter, bearerOf(ctx.connectionParams?.authorization), address);
          return true;
        } catch (err) {
          logger.info({ code: asDeltagateError(err)?.code, address }, 'refused a WebSocket connection');
          return false;
        }
      },
      onSubscribe: async (ctx, id) => {
        const address = ctx.extra.address ?? 'unknown';
        try {
          const actor = await authorize(
            services,
            options.limiter,
            bearerOf(ctx.connectionParams?.authorization),
            address,
          );
          ctx.extra.actors?.set(id, actor);
        } catch (err) {
          const known = asDeltagateError(err);
          if (known === null) throw err;
          return [toGraphQLError(known)];
        }
        return undefined; // graphql-ws parses and validates as usual
      },
      context: (ctx, id) => {
        const actor = ctx.extra.actors?.get(id);
        ctx.extra.actors?.delete(id);
        if (actor === undefined) throw new Error(`graphql-ws operation ${id} was not authorized`);
        return createContext(actor, services, logger, undefined, options.guards);
      },
      onComplete: (ctx, id) => void ctx.extra.actors?.delete(id),
      // Subscription errors (a refused subscribe, a failing event) get the same codes as HTTP ones.
      onError: (ctx, id, _payload, errors) => {
        ctx.extra.actors?.delete(id);
        return errors.map((e) => formatError(e.toJSON(), e));
      },
      onNext: (_ctx, _id, _payload, _args, result) =>
        result.errors?.length
          ? { ...result, errors: result.errors.map((e) => formatError(e.toJSON(), e)) }
          : undefined,
    },
    wsServer,
  );

  const apollo = new ApolloServer<GraphQLContext>({
    schema,
    csrfPrevention: true,
    introspection: !options.production,
    includeStacktraceInErrorResponses: !options.production,
    validationRules: securityRules(),
    formatError,
    // The process's signals belong to the command (src/commands/command-kit.ts). Apollo's own handler would
    // stop the server and then re-send the signal, which the command takes for a second, impatient one.
    stopOnTerminationSignals: false,
    logger: {
      debug: (m) => logger.debug(m),
      info: (m) => logger.info(m),
      warn: (m) => logger.warn(m),
      error: (m) => logger.error(m),
    },
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer }),
      // Apollo's default landing page loads its explorer from a CDN; the console at `/` is the UI.
      ApolloServerPluginLandingPageDisabled(),
      {
        // RATE_LIMITED anywhere in an answer (the request bucket, the generation budget, a full generation
        // queue): tell HTTP clients when to come back.
        async requestDidStart() {
          return {
            async willSendResponse({ response }) {
              if (response.body.kind !== 'single') return;
              const wait = retryAfterOf(response.body.singleResult.errors);
              if (wait !== null) response.http.headers.set('retry-after', String(wait));
            },
          };
        },
      },
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

  async function handle(req: IncomingMessage, res: ServerResponse, ctx: RouteContext): Promise<void> {
    // Who is asking, from the headers alone: a request without a valid key (or past its rate limit) is
    // answered before a byte of its body is read.
    let actor: Actor;
    try {
      actor = await authorize(
        services,
        options.limiter,
        bearerOf(req.headers.authorization),
        req.socket.remoteAddress ?? 'unknown',
      );
    } catch (err) {
      const known = asDeltagateError(err);
      if (known === null) throw err;
      return refuseBeforeBody(req, res, known);
    }
    let body: unknown;
    if (req.method === 'POST') {
      let text: string;
      try {
        text = (await ctx.readBody()).toString('utf8');
      } catch (err) {
        if (!(err instanceof BodyTooLargeError)) throw err;
        closeAfterResponse(req, res);
        return sendGraphQLError(
          res,
          413,
          'BAD_USER_INPUT',
          `${err.message}; upload larger datasets with createDatasetUpload and larger adapters with createAdapterUpload`,
          { limit: err.limit },
        );
      }
      if (/^application\/(graphql-response\+)?json\b/i.test(req.headers['content-type'] ?? '')) {
        try {
          body = JSON.parse(text);
        } catch {
          return sendGraphQLError(res, 400, 'BAD_REQUEST', 'malformed JSON body');
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
    // A client that closes the connection before the answer aborts long work (a generation leaves the batch).
    const abort = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    const response = await apollo.executeHTTPGraphQLRequest({
      httpGraphQLRequest: {
        method: (req.method ?? 'GET').toUpperCase(),
        headers,
        search: ctx.url.search,
        body,
      },
      context: async () => createContext(actor, services, logger, abort.signal, options.guards),
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

  let stopping: Promise<void> | null = null;
  return {
    route: { methods: '*', pattern: GRAPHQL_PATH, maxBodyBytes: options.maxBodyBytes, handler: handle },
    stop() {
      stopping ??= (async () => {
        await apollo.stop();
        httpServer.off('upgrade', onUpgrade);
        wsServer.close();
      })();
      return stopping;
    },
  };
}
