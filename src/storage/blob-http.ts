/**
 * The HTTP side of the directory store's presigned URLs: `createBlobHttpHandler(store)` returns a handler the
 * server mounts before GraphQL. It answers `PUT/GET/HEAD /blobs/<key>?…&sig=…` (checked by
 * `FsBlobStore.verifyPresigned`) and returns false for every other path. A PUT must carry exactly the signed
 * Content-Length (and Content-Type / x-amz-checksum-sha256 when signed); the body streams to a temp file and
 * is only published when size and checksum match. The S3 store needs none of this: S3 checks its own URLs.
 * Browsers may use the URLs from any origin (CORS `*`, preflight answered): the signature in the URL is the
 * whole authority, no cookie or key rides along, so the console can upload from whatever host name it was
 * opened at (which need not be DELTAGATE_PUBLIC_URL's).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { DeltagateError, NotFoundError } from '../shared/errors.js';
import { ChecksumMismatchError } from './blob-store.js';
import { BLOB_HTTP_PREFIX, PresignedUrlError, type FsBlobStore } from './fs-store.js';

function reply(res: ServerResponse, status: number, code: string, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: { code, message } });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

class BodyTooLargeError extends Error {}

/** The request body, refusing (mid-stream) anything past `limit` bytes. */
async function* limited(req: IncomingMessage, limit: number): AsyncGenerator<Uint8Array> {
  let seen = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    seen += chunk.byteLength;
    if (seen > limit) throw new BodyTooLargeError();
    yield chunk;
  }
  if (seen !== limit) throw new BodyTooLargeError();
}

export function createBlobHttpHandler(
  store: FsBlobStore,
): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  return async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://blob.invalid');
    if (!url.pathname.startsWith(BLOB_HTTP_PREFIX)) return false;
    const method = req.method ?? 'GET';
    res.setHeader('access-control-allow-origin', '*');
    res.setHeader('access-control-expose-headers', 'etag, content-length');
    if (method === 'OPTIONS') {
      res.writeHead(204, {
        'access-control-allow-methods': 'GET, HEAD, PUT',
        'access-control-allow-headers': String(
          req.headers['access-control-request-headers'] ?? 'content-type',
        ),
        'access-control-max-age': '600',
      });
      res.end();
      return true;
    }
    if (method !== 'PUT' && method !== 'GET' && method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD, PUT');
      reply(res, 405, 'METHOD_NOT_ALLOWED', `${method} is not allowed on blobs`);
      return true;
    }
    let grant;
    try {
      grant = store.verifyPresigned(method, url.pathname, url.searchParams);
    } catch (e) {
      if (e instanceof PresignedUrlError) {
        reply(res, e.status, e.status === 403 ? 'FORBIDDEN' : 'BAD_REQUEST', e.message);
        return true;
      }
      throw e;
    }
    try {
      if (method === 'PUT') await handlePut(store, grant, req, res);
      else await handleGet(store, grant.key, method === 'HEAD', res);
    } catch (e) {
      if (e instanceof NotFoundError) reply(res, 404, 'NOT_FOUND', 'no such object');
      else if (e instanceof BodyTooLargeError)
        reply(res, 400, 'BAD_REQUEST', 'body size does not match the signed Content-Length');
      else if (e instanceof ChecksumMismatchError)
        reply(res, 400, 'BAD_DIGEST', 'body does not match x-amz-checksum-sha256');
      else if (e instanceof DeltagateError) reply(res, e.code === 'CONFLICT' ? 409 : 400, e.code, e.message);
      else reply(res, 500, 'INTERNAL_SERVER_ERROR', 'storage error');
    }
    return true;
  };
}

async function handlePut(
  store: FsBlobStore,
  grant: { key: string; contentLength?: number; contentType?: string; sha256?: string },
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const declared = req.headers['content-length'];
  if (declared === undefined || req.headers['transfer-encoding'] !== undefined) {
    reply(res, 411, 'LENGTH_REQUIRED', 'a Content-Length header is required');
    return;
  }
  if (grant.contentLength === undefined || Number(declared) !== grant.contentLength) {
    reply(res, 403, 'FORBIDDEN', `Content-Length must be ${grant.contentLength} as signed (got ${declared})`);
    return;
  }
  if (grant.contentType !== undefined && req.headers['content-type'] !== grant.contentType) {
    reply(res, 403, 'FORBIDDEN', 'Content-Type does not match the signed one');
    return;
  }
  // The uploader may add a checksum of its own even when none was signed; either way it is enforced.
  const header = req.headers['x-amz-checksum-sha256'];
  let sha256 = grant.sha256;
  if (typeof header === 'string') {
    const fromHeader = Buffer.from(header, 'base64').toString('hex');
    if (sha256 !== undefined && fromHeader !== sha256) {
      reply(res, 403, 'FORBIDDEN', 'x-amz-checksum-sha256 does not match the signed one');
      return;
    }
    sha256 = fromHeader;
  } else if (sha256 !== undefined) {
    reply(res, 403, 'FORBIDDEN', 'x-amz-checksum-sha256 header is required by this URL');
    return;
  }
  const result = await store.putStream(
    grant.key,
    limited(req, grant.contentLength),
    sha256 === undefined ? {} : { sha256 },
  );
  res.writeHead(200, {
    etag: `"${result.sha256}"`,
    'x-amz-checksum-sha256': Buffer.from(result.sha256, 'hex').toString('base64'),
    'content-length': 0,
  });
  res.end();
}

async function handleGet(
  store: FsBlobStore,
  key: string,
  headOnly: boolean,
  res: ServerResponse,
): Promise<void> {
  const head = await store.head(key);
  if (head === null) throw new NotFoundError('object', key);
  res.writeHead(200, {
    'content-type': 'application/octet-stream',
    'content-length': head.size,
    ...(head.etag === undefined ? {} : { etag: head.etag }),
    'cache-control': 'private, no-store',
  });
  if (headOnly) {
    res.end();
    return;
  }
  await pipeline(await store.stream(key), res);
}
