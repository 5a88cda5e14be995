/**
 * A tiny method + path router, so REST routes (`/v1/...`) can sit beside GraphQL. Patterns are exact paths,
 * `:name` segments (`/v1/adapters/:id`) and a trailing `*` (`/blobs/*`); the first route added that matches
 * wins. A path no route knows gets a JSON 404, a known path with another method a JSON 405 with `Allow`.
 * Each route declares its body limit (`maxBodyBytes`, default 0: no body); `ctx.readBody()` applies it.
 * It does no authentication, content negotiation or CORS: those belong to the route (GraphQL: graphql.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BodyTooLargeError, closeAfterResponse, readBody } from './body.js';
import { sendError } from './json.js';

export interface RouteContext {
  url: URL;
  /** Values of the pattern's `:name` segments, decoded; `*` holds the rest of the path after the prefix. */
  params: Record<string, string>;
  /** The body, at most the route's `maxBodyBytes` (BodyTooLargeError past it; the router answers 413). */
  readBody(): Promise<Buffer>;
}

export type RouteHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  ctx: RouteContext,
) => Promise<void> | void;

export interface Route {
  /** Upper-case methods, or '*' for any (the handler answers the ones it does not support). */
  methods: readonly string[] | '*';
  pattern: string;
  maxBodyBytes?: number;
  handler: RouteHandler;
}

type Segment = { literal: string } | { param: string };
interface CompiledRoute extends Route {
  segments: Segment[];
  rest: boolean;
}

function compile(route: Route): CompiledRoute {
  if (!route.pattern.startsWith('/')) throw new Error(`route pattern must start with '/': ${route.pattern}`);
  const rest = route.pattern.endsWith('*');
  const parts = (rest ? route.pattern.slice(0, -1) : route.pattern).split('/').slice(1);
  if (rest) parts.pop(); // '/blobs/*' → ['blobs', ''] → ['blobs']
  const segments = parts.map((p): Segment => (p.startsWith(':') ? { param: p.slice(1) } : { literal: p }));
  return { ...route, segments, rest };
}

/** The params when `pathname` matches the route, else null. */
function match(route: CompiledRoute, pathname: string): Record<string, string> | null {
  const parts = pathname.split('/').slice(1);
  if (route.rest ? parts.length <= route.segments.length : parts.length !== route.segments.length)
    return null;
  const params: Record<string, string> = {};
  for (const [i, segment] of route.segments.entries()) {
    const part = parts[i]!;
    if ('literal' in segment) {
      if (part !== segment.literal) return null;
    } else {
      if (part === '') return null;
      try {
        params[segment.param] = decodeURIComponent(part);
      } catch {
        return null; // malformed percent-encoding: no route
      }
    }
  }
  if (route.rest) params['*'] = parts.slice(route.segments.length).join('/');
  return params;
}

export class Router {
  private readonly routes: CompiledRoute[] = [];

  add(route: Route): this {
    this.routes.push(compile(route));
    return this;
  }

  /**
   * Answers the request: the matching route's handler, or a JSON 404 / 405 / 413. `info.route` is set to the
   * pattern of the route that answers (for metrics: a bounded label, never the raw path), before its handler
   * runs; it stays unset for a 404 / 405.
   */
  async handle(req: IncomingMessage, res: ServerResponse, info: { route?: string } = {}): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    const url = new URL(req.url ?? '/', 'http://localhost');
    const allowed = new Set<string>();
    for (const route of this.routes) {
      const params = match(route, url.pathname);
      if (params === null) continue;
      if (route.methods !== '*' && !route.methods.includes(method)) {
        for (const m of route.methods) allowed.add(m);
        continue;
      }
      const limit = route.maxBodyBytes ?? 0;
      info.route = route.pattern;
      try {
        await route.handler(req, res, { url, params, readBody: () => readBody(req, limit) });
      } catch (err) {
        // A route that did not answer its own 413 gets the REST-shaped one.
        if (!(err instanceof BodyTooLargeError) || res.headersSent) throw err;
        closeAfterResponse(req, res);
        sendError(res, 413, 'BAD_USER_INPUT', err.message);
      }
      return;
    }
    if (allowed.size > 0) {
      res.setHeader('allow', [...allowed].join(', '));
      return sendError(res, 405, 'METHOD_NOT_ALLOWED', `${method} is not allowed on ${url.pathname}`);
    }
    sendError(res, 404, 'NOT_FOUND', `no route ${req.method} ${url.pathname}`);
  }
}
