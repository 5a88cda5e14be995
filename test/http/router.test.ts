/**
 * src/http/router.ts: exact, `:param` and trailing-`*` patterns, first match wins, JSON 404 and 405 (with
 * Allow), and the per-route body limit behind `ctx.readBody()` with the router's own 413.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Router } from '../../src/http/router.js';
import { sendJson } from '../../src/http/json.js';
import { listen, rawRequest, type Listening } from './helpers.js';

type ErrorBody = { error: { code: string; message: string } };
const errorOf = async (res: Response) => ((await res.json()) as ErrorBody).error;

describe('Router', () => {
  let srv: Listening;
  beforeAll(async () => {
    const router = new Router()
      .add({ methods: ['GET'], pattern: '/healthz', handler: (_q, res) => sendJson(res, 200, { ok: true }) })
      .add({
        methods: ['GET', 'DELETE'],
        pattern: '/v1/adapters/:id/versions/:n',
        handler: (req, res, { params }) => sendJson(res, 200, { method: req.method, params }),
      })
      .add({
        methods: '*',
        pattern: '/blobs/*',
        handler: (_q, res, { params }) => sendJson(res, 200, { rest: params['*'] }),
      })
      .add({ methods: '*', pattern: '/blobs/shadowed', handler: (_q, res) => sendJson(res, 500, {}) })
      .add({
        methods: ['POST'],
        pattern: '/v1/echo',
        maxBodyBytes: 10,
        handler: async (_q, res, ctx) => sendJson(res, 200, { body: (await ctx.readBody()).toString() }),
      })
      .add({
        methods: ['POST'],
        pattern: '/v1/nobody',
        handler: async (_q, res, ctx) => sendJson(res, 200, { bytes: (await ctx.readBody()).length }),
      });
    srv = await listen((req, res) => router.handle(req, res));
  });
  afterAll(() => srv.close());

  it('matches exact paths, :params (decoded) and trailing * (first route wins)', async () => {
    expect(await (await fetch(`${srv.url}/healthz`)).json()).toEqual({ ok: true });
    const res = await fetch(`${srv.url}/v1/adapters/acme%2Fbot/versions/3?x=1`, { method: 'DELETE' });
    expect(await res.json()).toEqual({ method: 'DELETE', params: { id: 'acme/bot', n: '3' } });
    expect(await (await fetch(`${srv.url}/blobs/a/b/c`)).json()).toEqual({ rest: 'a/b/c' });
    expect(await (await fetch(`${srv.url}/blobs/shadowed`)).json()).toEqual({ rest: 'shadowed' });
  });

  it('answers unknown paths with a JSON 404', async () => {
    for (const path of [
      '/nope',
      '/healthz/',
      '/blobs',
      '/v1/adapters//versions/3',
      '/v1/adapters/%E0%A4%A/versions/1',
    ]) {
      const res = await fetch(`${srv.url}${path}`);
      expect(res.status, path).toBe(404);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect((await errorOf(res)).code).toBe('NOT_FOUND');
    }
    expect((await errorOf(await fetch(`${srv.url}/nope`))).message).toBe('no route GET /nope');
  });

  it('answers a known path with another method with a JSON 405 and Allow', async () => {
    const res = await fetch(`${srv.url}/v1/adapters/a/versions/1`, { method: 'PUT' });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, DELETE');
    expect((await errorOf(res)).code).toBe('METHOD_NOT_ALLOWED');
  });

  it('reads bodies up to the route limit', async () => {
    const res = await fetch(`${srv.url}/v1/echo`, { method: 'POST', body: '0123456789' });
    expect(await res.json()).toEqual({ body: '0123456789' });
    expect(await (await fetch(`${srv.url}/v1/nobody`, { method: 'POST' })).json()).toEqual({ bytes: 0 });
  });

  it('answers 413 before reading when Content-Length is over the limit, and closes the connection', async () => {
    // Headers only: the body never comes, so a server that waited for it would not answer at all.
    const started = Date.now();
    const answer = await rawRequest(srv.port, 'POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000');
    expect(answer.status).toBe(413);
    expect(answer.closed).toBe(true);
    expect(Date.now() - started).toBeLessThan(2000);
    const body = JSON.parse(answer.text.slice(answer.text.indexOf('\r\n\r\n') + 4));
    expect(body).toEqual({ error: { code: 'BAD_USER_INPUT', message: 'request body over 10 bytes' } });
  });

  it('refuses any body on a route that declares no limit', async () => {
    const answer = await rawRequest(srv.port, 'POST /v1/nobody HTTP/1.1\r\nHost: x\r\nContent-Length: 1');
    expect(answer.status).toBe(413);
  });

  it('counts a chunked body and answers 413 once it passes the limit', async () => {
    const head = 'POST /v1/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked';
    const under = await rawRequest(srv.port, head + '\r\nConnection: close', '5\r\nhello\r\n0\r\n\r\n');
    expect(under.status).toBe(200);
    expect(under.text).toContain('{"body":"hello"}');
    // 12 bytes in one chunk, and the terminating chunk never sent: the count alone refuses it.
    const over = await rawRequest(srv.port, head, 'c\r\nhello world!\r\n');
    expect(over.status).toBe(413);
    expect(over.closed).toBe(true);
  });
});
