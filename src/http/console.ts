/**
 * The web console (console/, built into console/dist at install) served at `/`: index.html and the hashed
 * files under /assets/. Every file is read into memory once at start-up (with a gzip copy), so a request never
 * touches the disk and no request path is ever joined to a file path — there is nothing to traverse. The page
 * runs under a strict Content-Security-Policy: scripts and styles from this origin only, API calls to this
 * origin (GraphQL, its WebSocket, the blob directory's presigned URLs) plus the S3 endpoint's origin for
 * presigned uploads. When the console was not built, `/` says how to build it.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { Logger } from 'pino';
import { sendError } from './json.js';
import type { Route } from './router.js';

export interface ConsoleOptions {
  /** The built console (index.html + assets/). */
  dir: string;
  /** Origins besides this one the page may send requests to (the S3 endpoint for presigned uploads). */
  connectOrigins?: readonly string[];
  logger: Logger;
}

interface StaticFile {
  body: Buffer;
  gzip: Buffer | null;
  type: string;
  etag: string;
  cacheControl: string;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.css', '.map', '.txt', '.svg']);
/** Asset names carry a content hash (console/build.mjs), so they never change under the same name. */
const IMMUTABLE = 'public, max-age=31536000, immutable';

/** The package's own console/dist: the nearest directory above this file that has a package.json. */
export function defaultConsoleDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return join(dir, 'console', 'dist');
    const up = dirname(dir);
    if (up === dir) return join(process.cwd(), 'console', 'dist');
    dir = up;
  }
}

export function contentSecurityPolicy(connectOrigins: readonly string[] = []): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    `connect-src 'self' ${connectOrigins.join(' ')}`.trim(),
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

async function loadFile(path: string, cacheControl: string): Promise<StaticFile> {
  const body = await readFile(path);
  const ext = extname(path);
  return {
    body,
    gzip: COMPRESSIBLE.has(ext) && body.byteLength > 1024 ? gzipSync(body, { level: 9 }) : null,
    type: CONTENT_TYPES[ext] ?? 'application/octet-stream',
    etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
    cacheControl,
  };
}

/** Reads the built console; null when `dir` has no index.html (not built). */
export async function loadConsole(dir: string): Promise<Map<string, StaticFile> | null> {
  if (!existsSync(join(dir, 'index.html'))) return null;
  const files = new Map<string, StaticFile>();
  // The page names its hashed assets, so the page itself must always be revalidated.
  files.set('/', await loadFile(join(dir, 'index.html'), 'no-cache'));
  const assets = join(dir, 'assets');
  if (existsSync(assets)) {
    for (const entry of await readdir(assets, { withFileTypes: true })) {
      if (entry.isFile())
        files.set(`/assets/${entry.name}`, await loadFile(join(assets, entry.name), IMMUTABLE));
    }
  }
  return files;
}

function acceptsGzip(req: IncomingMessage): boolean {
  return /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
}

function send(req: IncomingMessage, res: ServerResponse, file: StaticFile, csp: string): void {
  const headers: Record<string, string | number> = {
    'content-type': file.type,
    'cache-control': file.cacheControl,
    etag: file.etag,
    vary: 'accept-encoding',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  };
  if (file.type.startsWith('text/html')) {
    headers['content-security-policy'] = csp;
    headers['x-frame-options'] = 'DENY';
  }
  if (req.headers['if-none-match'] === file.etag) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const gzip = file.gzip !== null && acceptsGzip(req);
  const body = gzip ? file.gzip! : file.body;
  if (gzip) headers['content-encoding'] = 'gzip';
  headers['content-length'] = body.byteLength;
  res.writeHead(200, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}

const NOT_BUILT = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>deltagate</title></head>
<body><h1>deltagate</h1><p>The web console is not built. Run <code>npm run build:console</code> (it is built by
<code>npm install</code>), then restart the server. The API is at <code>/graphql</code> and <code>/v1</code>.</p>
</body></html>`;

/** GET/HEAD `/` and `/assets/*`. */
export async function consoleRoutes(options: ConsoleOptions): Promise<Route[]> {
  const files = await loadConsole(options.dir);
  const csp = contentSecurityPolicy(options.connectOrigins);
  if (files === null) {
    options.logger.warn({ dir: options.dir }, 'the web console is not built: `/` explains how to build it');
    return [
      {
        methods: ['GET', 'HEAD'],
        pattern: '/',
        handler: (_req, res) => {
          res.writeHead(503, {
            'content-type': 'text/html; charset=utf-8',
            'cache-control': 'no-cache',
            'content-security-policy': csp,
          });
          res.end(NOT_BUILT);
        },
      },
    ];
  }
  options.logger.debug({ dir: options.dir, files: files.size }, 'serving the web console');
  return [
    { methods: ['GET', 'HEAD'], pattern: '/', handler: (req, res) => send(req, res, files.get('/')!, csp) },
    {
      methods: ['GET', 'HEAD'],
      pattern: '/assets/*',
      handler: (req, res, { url }) => {
        const file = files.get(url.pathname);
        if (file === undefined) sendError(res, 404, 'NOT_FOUND', `no console asset ${url.pathname}`);
        else send(req, res, file, csp);
      },
    },
  ];
}
