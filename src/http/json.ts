/**
 * JSON responses of the HTTP layer: `sendJson` (status + body, exact Content-Length), `sendError` (the REST
 * shape `{ error: { code, message } }`) and `sendGraphQLError` (the GraphQL shape `{ errors: [...] }` for
 * answers given before Apollo sees a request). Codes are the stable ones of src/shared/errors.ts; the
 * mapping of DeltagateErrors inside GraphQL results stays in src/resolvers/error-mapping.ts.
 */
import type { ServerResponse } from 'node:http';

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** `{ error: { code, message } }`: 404s, 405s, 413s and 500s of routes that are not GraphQL. */
export function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  sendJson(res, status, { error: { code, message } });
}

/** `{ errors: [{ message, extensions: { code, ...details } }] }`: what a GraphQL client parses. */
export function sendGraphQLError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  details: Record<string, unknown> = {},
): void {
  sendJson(res, status, { errors: [{ message, extensions: { ...details, code } }] });
}
