/**
 * The directory store's HTTP handler (`createBlobHttpHandler`) on a real node:http server: what the shared
 * contract does not cover — other paths fall through, methods, Content-Length rules, tampered query
 * parameters, HEAD, unusual key characters, and a restart keeping issued URLs valid (persistent signing key).
 */
import { request, createServer, type Server } from 'node:http';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBlobHttpHandler } from '../../src/storage/blob-http.js';
import { FsBlobStore } from '../../src/storage/fs-store.js';

let dir: string;
let server: Server;
let base: string;
let store: FsBlobStore;
const fellThrough: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dg-blob-http-'));
  const ref: { handler?: ReturnType<typeof createBlobHttpHandler> } = {};
  server = createServer((req, res) => {
    void ref.handler!(req, res).then((handled) => {
      if (!handled) {
        fellThrough.push(req.url ?? '');
        res.writeHead(418).end();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  store = await FsBlobStore.open({ dir, publicUrl: base });
  ref.handler = createBlobHttpHandler(store);
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await rm(dir, { recursive: true, force: true });
});

/** A raw request, for what fetch will not send (chunked bodies, lying Content-Length). */
function raw(
  method: string,
  url: string,
  headers: Record<string, string | number>,
  body?: Buffer,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', (e) => ((e as NodeJS.ErrnoException).code === 'ECONNRESET' ? resolve(-1) : reject(e)));
    if (body) req.write(body);
    req.end();
  });
}

describe('blob HTTP handler', () => {
  it('leaves other paths to the server', async () => {
    expect((await fetch(`${base}/graphql`)).status).toBe(418);
    expect((await fetch(`${base}/blobsx/a`)).status).toBe(418);
    expect(fellThrough).toEqual(['/graphql', '/blobsx/a']);
  });

  it('lets a browser on any origin use a presigned URL (CORS: the signature is the authority)', async () => {
    const preflight = await fetch(`${base}/blobs/customers/c1/x?sig=whatever`, {
      method: 'OPTIONS',
      headers: {
        origin: 'http://console.example',
        'access-control-request-method': 'PUT',
        'access-control-request-headers': 'content-type,x-amz-checksum-sha256',
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    expect(preflight.headers.get('access-control-allow-methods')).toContain('PUT');
    expect(preflight.headers.get('access-control-allow-headers')).toBe('content-type,x-amz-checksum-sha256');
    // A refused request carries the header too, so the page can read why.
    const refused = await fetch(`${base}/blobs/customers/c1/x`, {
      headers: { origin: 'http://console.example' },
    });
    expect(refused.status).toBe(403);
    expect(refused.headers.get('access-control-allow-origin')).toBe('*');
  });

  it('answers 405 for other methods and 403 without a signature', async () => {
    expect((await fetch(`${base}/blobs/customers/c1/x`, { method: 'DELETE' })).status).toBe(405);
    expect((await fetch(`${base}/blobs/customers/c1/x`)).status).toBe(403);
    expect((await fetch(`${base}/blobs/customers/c1/x?m=GET&exp=99999999999&sig=AAAA`)).status).toBe(403);
  });

  it('requires the signed Content-Length: chunked is 411, a lying length is refused, nothing stored', async () => {
    const key = 'customers/c1/uploads/len';
    const put = await store.presignPut(key, { expiresInSeconds: 60, contentLength: 5 });
    expect(await raw('PUT', put.url, { 'transfer-encoding': 'chunked' }, Buffer.from('12345'))).toBe(411);
    expect(await raw('PUT', put.url, { 'content-length': 6 }, Buffer.from('123456'))).toBe(403);
    // Declares the signed 5, sends 3 and hangs up: the handler must not publish a short object.
    const u = new URL(put.url);
    const sock = connect(Number(u.port), u.hostname);
    await new Promise((r) => sock.once('connect', r));
    sock.write(`PUT ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nContent-Length: 5\r\n\r\n123`);
    await new Promise((r) => setTimeout(r, 100));
    sock.destroy();
    await new Promise((r) => setTimeout(r, 100));
    expect(await readdir(join(dir, '.tmp'))).toEqual([]);
    expect(await store.head(key)).toBeNull();
    expect((await fetch(put.url, { method: 'PUT', body: '12345' })).status).toBe(200);
    expect(new TextDecoder().decode(await store.get(key))).toBe('12345');
  });

  it('refuses a URL whose signed parameters were edited', async () => {
    const key = 'customers/c1/uploads/tamper';
    const put = await store.presignPut(key, {
      expiresInSeconds: 60,
      contentLength: 5,
      contentType: 'text/plain',
    });
    const longer = new URL(put.url);
    longer.searchParams.set('len', '500');
    expect((await fetch(longer, { method: 'PUT', headers: put.headers, body: 'x'.repeat(500) })).status).toBe(
      403,
    );
    const later = new URL(put.url);
    later.searchParams.set('exp', String(Number(later.searchParams.get('exp')) + 3600));
    expect((await fetch(later, { method: 'PUT', headers: put.headers, body: '12345' })).status).toBe(403);
    const wrongType = await fetch(put.url, {
      method: 'PUT',
      headers: { 'content-type': 'text/html' },
      body: '12345',
    });
    expect(wrongType.status).toBe(403);
    expect(await store.head(key)).toBeNull();
  });

  it('serves HEAD and GET with length, 404 for a signed URL to a missing object', async () => {
    const key = 'customers/c1/datasets/d 1 é+%/data.jsonl';
    await store.put(key, new TextEncoder().encode('abc'));
    const get = await store.presignGet(key, { expiresInSeconds: 60 });
    const h = await fetch(get.url, { method: 'HEAD' });
    expect([h.status, h.headers.get('content-length')]).toEqual([200, '3']);
    expect(await (await fetch(get.url)).text()).toBe('abc');
    const missing = await store.presignGet('customers/c1/datasets/none/data.jsonl', { expiresInSeconds: 60 });
    expect((await fetch(missing.url)).status).toBe(404);
  });

  it('keeps issued URLs valid across a reopen (the signing key persists, 0600)', async () => {
    const key = 'customers/c1/uploads/persist';
    await store.put(key, new TextEncoder().encode('kept'));
    const get = await store.presignGet(key, { expiresInSeconds: 60 });
    const reopened = await FsBlobStore.open({ dir, publicUrl: base });
    const url = new URL(get.url);
    expect(() => reopened.verifyPresigned('GET', url.pathname, url.searchParams)).not.toThrow();
    expect((await stat(join(dir, 'signing-key'))).mode & 0o777).toBe(0o600);
    const other = await FsBlobStore.open({ dir: `${dir}-other`, publicUrl: base });
    expect(() => other.verifyPresigned('GET', url.pathname, url.searchParams)).toThrow(/signature/);
    await rm(`${dir}-other`, { recursive: true, force: true });
  });
});
