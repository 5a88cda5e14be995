/**
 * Per-request bookkeeping of the HTTP server: a request id (the client's `x-request-id` when it is a sane
 * token, else a fresh UUID), echoed as `x-request-id` on the response, and one access-log line when the
 * response is done or abandoned — method, path (no query string: presigned blob URLs carry signatures
 * there), status (499 when the client left before an answer), milliseconds, request id, and the route
 * pattern. Headers are never logged, so neither is `Authorization`.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';

const REQUEST_ID_RE = /^[A-Za-z0-9._:/+=-]{1,128}$/;
const ids = new WeakMap<IncomingMessage, string>();

/** The request's id (set by `trackRequest`). */
export function requestIdOf(req: IncomingMessage): string | undefined {
  return ids.get(req);
}

export interface RequestRecord {
  route: string | null;
  method: string;
  status: number;
  seconds: number;
}

/**
 * Gives the request its id (header in and out) and calls `done` once when the response is over; returns
 * the object the router fills with the matched route pattern.
 */
export function trackRequest(
  req: IncomingMessage,
  res: ServerResponse,
  logger: Logger,
  done?: (r: RequestRecord) => void,
): { route?: string } {
  const started = performance.now();
  const given = req.headers['x-request-id'];
  const id = typeof given === 'string' && REQUEST_ID_RE.test(given) ? given : randomUUID();
  ids.set(req, id);
  res.setHeader('x-request-id', id);
  const info: { route?: string } = {};
  res.once('close', () => {
    const ms = performance.now() - started;
    const status = res.headersSent ? res.statusCode : 499;
    const method = (req.method ?? 'GET').toUpperCase();
    const path = (req.url ?? '/').split('?')[0]!;
    logger.info(
      {
        reqId: id,
        method,
        path: path.length > 512 ? `${path.slice(0, 512)}…` : path,
        status,
        ms: Math.round(ms * 10) / 10,
        ...(res.writableFinished ? {} : { aborted: true }),
        ...(info.route === undefined ? {} : { route: info.route }),
      },
      'request',
    );
    done?.({ route: info.route ?? null, method, status, seconds: ms / 1000 });
  });
  return info;
}
