/**
 * GraphQL on /graphql: `mountGraphQL` starts Apollo Server (CSRF prevention, the security validation rules,
 * introspection off in production) behind a router route — POST bodies read with the route's byte limit —
 * and graphql-ws on WebSocket upgrades of the same path. Every request and WebSocket operation is
 * authenticated and rate limited here (`authorize`) before a resolver runs. It does not own the node server
 * (server.ts) and installs no signal handlers: stopping is the caller's `stop()`.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { ApolloServer, HeaderMap } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import type { GraphQLSchema } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import { createContext, type GraphQLContext } from '../resolvers/context.js';
import { asDeltagateError, createFormatError, toGraphQLError } from '../resolvers/error-mapping.js';
import { graphql } from '../resolvers/graphql-runtime.js';
import { securityRules, type RateLimiter } from '../resolvers/security/index.js';
import type { Actor, Services } from '../services/index.js';
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

/** `authorize`, with a DeltagateError turned into the GraphQL error a client sees. */
function authorizeForGraphQL(
  options: GraphQLOptions,
  authorization: unknown,
  address: string,
): Promise<Actor> {
  const header = typeof authorization === 'string' ? authorization : null;
  return authorize(options.services, options.limiter, header, address).catch((err: unknown) => {
    const known = asDeltagateError(err);
    throw known ? toGraphQLError(known) : err;
  });
}

/** Mounts graphql-ws on `httpServer` and starts Apollo; add the returned route to the router. */
export async function mountGraphQL(httpServer: Server, options: GraphQLOptions): Promise<GraphQLEndpoint> {
  const { schema, services, logger } = options;
  const formatError = createFormatError(logger, { production: options.production });

  // graphql-ws on the same path: the key is checked at connect (a bad key never gets a connection) and
  // again for every operation, so revocation also stops new subscriptions on an open socket.
  const wsServer = new WebSocketServer({ server: httpServer, path: GRAPHQL_PATH, maxPayload: 1024 * 1024 });
  const wsCleanup = useServer<Record<string, unknown>, { actor?: Actor; address: string }>(
    {
      schema,
      validate: (wsSchema, document) =>
        graphql.validate(wsSchema, document, [...graphql.specifiedRules, ...securityRules()]),
      onConnect: async (ctx) => {
        const address = ctx.extra.request.socket.remoteAddress ?? 'unknown';
        ctx.extra.address = address;
        try {
          const authorization = ctx.connectionParams?.authorization;
          ctx.extra.actor = await authorize(
            services,
            options.limiter,
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
        const address = (ctx.extra as { address?: string }).address ?? 'unknown';
        const actor = await authorizeForGraphQL(options, ctx.connectionParams?.authorization, address);
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
    let body: unknown;
    if (req.method === 'POST') {
      let text: string;
      try {
        text = (await ctx.readBody()).toString('utf8');
      } catch (err) {
        if (!(err instanceof BodyTooLargeError)) throw err;
        closeAfterResponse(req, res);
        return sendGraphQLError(res, 413, 'BAD_USER_INPUT', err.message);
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
      context: async () => {
        const actor = await authorizeForGraphQL(
          options,
          req.headers.authorization,
          req.socket.remoteAddress ?? 'unknown',
        );
        return createContext(actor, services, logger, abort.signal);
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

  let stopping: Promise<void> | null = null;
  return {
    route: { methods: '*', pattern: GRAPHQL_PATH, maxBodyBytes: options.maxBodyBytes, handler: handle },
    stop() {
      stopping ??= (async () => {
        await apollo.stop();
        wsServer.close();
      })();
      return stopping;
    },
  };
}
