/**
 * Request bodies with a byte limit: `readBody(req, limit)` refuses a declared Content-Length over the limit
 * before reading a single byte, and otherwise counts the stream (chunked bodies, or a client that sends more
 * than it declared), stopping as soon as the count passes the limit. Parsing (JSON, GraphQL) is the route's
 * business; so is the shape of the 413 it answers (`closeAfterResponse` keeps the unread rest off the wire).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`request body over ${limit} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

/** The request's Content-Length in bytes, or null when it has none (chunked transfer encoding). */
export function declaredLength(req: IncomingMessage): number | null {
  const header = req.headers['content-length'];
  if (header === undefined) return null;
  // node's parser already refused malformed and conflicting values; this only guards the conversion.
  const n = Number(header);
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}

/**
 * The whole body, at most `limit` bytes. Throws BodyTooLargeError without consuming anything when the
 * declared length is over the limit, and mid-stream when the bytes received pass it.
 */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = declaredLength(req);
  if (declared !== null && declared > limit) throw new BodyTooLargeError(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.byteLength;
    if (size > limit) throw new BodyTooLargeError(limit);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

/**
 * For an answer given without reading the whole body (a 413): the connection closes once the response is
 * out, instead of staying alive with the rest of the body still on its way.
 */
export function closeAfterResponse(req: IncomingMessage, res: ServerResponse): void {
  res.setHeader('connection', 'close');
  res.once('finish', () => req.destroy());
}
