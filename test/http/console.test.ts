/**
 * The console's static routes (src/http/console.ts) on a real router: the page and its hashed assets from
 * memory, gzip, ETag/304, HEAD, the security headers, unknown assets, and the page that says how to build the
 * console when it was not built.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { request } from 'node:http';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consoleRoutes, contentSecurityPolicy } from '../../src/http/console.js';
import { Router } from '../../src/http/router.js';
import { listen, type Listening } from './helpers.js';

const logger = pino({ level: 'silent' });
const BIG_JS = `console.log(${JSON.stringify('x'.repeat(5000))});`;
let dir: string;
let built: Listening;
let unbuilt: Listening;

async function serve(consoleDir: string): Promise<Listening> {
  const router = new Router();
  for (const route of await consoleRoutes({
    dir: consoleDir,
    logger,
    connectOrigins: ['http://s3.example:9000'],
  }))
    router.add(route);
  return listen((req, res) => router.handle(req, res, {} as never));
}

/** node's fetch always decompresses; this sees the bytes as sent. */
function rawGet(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    request(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }),
      );
    })
      .on('error', reject)
      .end();
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dg-console-route-'));
  mkdirSync(join(dir, 'assets'));
  writeFileSync(
    join(dir, 'index.html'),
    '<!doctype html><script type="module" src="/assets/app-ABC.js"></script>',
  );
  writeFileSync(join(dir, 'assets', 'app-ABC.js'), BIG_JS);
  built = await serve(dir);
  unbuilt = await serve(join(dir, 'missing'));
});

afterAll(async () => {
  await built.close();
  await unbuilt.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('console routes', () => {
  it('serves the page with a strict CSP and no caching, assets as immutable', async () => {
    const page = await fetch(`${built.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('cache-control')).toBe('no-cache');
    expect(page.headers.get('content-security-policy')).toBe(
      contentSecurityPolicy(['http://s3.example:9000']),
    );
    expect(page.headers.get('content-security-policy')).toContain(
      "connect-src 'self' http://s3.example:9000",
    );
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    const js = await fetch(`${built.url}/assets/app-ABC.js`);
    expect(await js.text()).toBe(BIG_JS);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
  });

  it('gzips for clients that accept it, answers 304 to a matching ETag, and HEAD without a body', async () => {
    const gz = await rawGet(`${built.url}/assets/app-ABC.js`, { 'accept-encoding': 'gzip, br' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(gz.body).toString()).toBe(BIG_JS);
    expect(gz.body.byteLength).toBeLessThan(BIG_JS.length / 10);
    const plain = await rawGet(`${built.url}/assets/app-ABC.js`, {});
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.body.toString()).toBe(BIG_JS);
    const again = await rawGet(`${built.url}/assets/app-ABC.js`, {
      'if-none-match': String(plain.headers.etag),
    });
    expect(again.status).toBe(304);
    expect(again.body.byteLength).toBe(0);
    const head = await fetch(`${built.url}/`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get('content-length'))).toBeGreaterThan(0);
    expect(await head.text()).toBe('');
  });

  it('knows only the files it loaded: anything else under /assets is 404, other methods 405', async () => {
    for (const path of ['/assets/app-XYZ.js', '/assets/..%2Findex.html', '/assets/../index.html', '/assets/'])
      expect([path, (await fetch(`${built.url}${path}`)).status]).toEqual([path, 404]);
    expect((await fetch(`${built.url}/`, { method: 'POST' })).status).toBe(405);
  });

  it('says how to build the console when it was not built', async () => {
    const res = await fetch(`${unbuilt.url}/`);
    expect(res.status).toBe(503);
    expect(await res.text()).toContain('npm run build:console');
    expect((await fetch(`${unbuilt.url}/assets/app-ABC.js`)).status).toBe(404);
  });
});
