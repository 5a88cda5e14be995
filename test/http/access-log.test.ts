/**
 * src/http/access-log.ts and src/log-format.ts: every request gets an id (the client's sane `x-request-id`,
 * else a fresh UUID) echoed on the response, and exactly one access-log line — method, path without the
 * query string, status (499 when the client left first), ms, request id, route — that never holds the
 * Authorization header. The pretty format turns such a line into one readable line.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestIdOf, trackRequest, type RequestRecord } from '../../src/http/access-log.js';
import { formatLogLine } from '../../src/log-format.js';
import { listen, type Listening } from './helpers.js';

describe('request ids and the access log', () => {
  const lines: Record<string, unknown>[] = [];
  const records: RequestRecord[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  let srv: Listening;

  beforeAll(async () => {
    srv = await listen((req: IncomingMessage, res: ServerResponse) => {
      const info = trackRequest(req, res, logger, (r) => records.push(r));
      if (req.url?.startsWith('/slow')) return; // never answers: the client gives up
      info.route = '/things/:id';
      res.setHeader('content-type', 'text/plain');
      res.end(`id=${requestIdOf(req)}`);
    });
  });
  afterAll(async () => srv?.close());

  const settle = () => new Promise((r) => setTimeout(r, 50));

  it('generates an id when none (or a hostile one) is given, and echoes a sane one', async () => {
    const fresh = await fetch(`${srv.url}/things/1`);
    const id = fresh.headers.get('x-request-id');
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(await fresh.text()).toBe(`id=${id}`);
    const given = await fetch(`${srv.url}/things/2`, { headers: { 'x-request-id': 'trace-42.a:b' } });
    expect(given.headers.get('x-request-id')).toBe('trace-42.a:b');
    for (const bad of ['has space', 'x'.repeat(129), 'quote"d']) {
      const r = await fetch(`${srv.url}/things/3`, { headers: { 'x-request-id': bad } });
      expect(r.headers.get('x-request-id')).not.toBe(bad);
      await r.text();
    }
  });

  it('logs one line per request without the query string or any header', async () => {
    lines.length = 0;
    records.length = 0;
    const r = await fetch(`${srv.url}/things/9?X-Amz-Signature=secret`, {
      method: 'POST',
      headers: { authorization: 'Bearer dg_live_supersecret', 'x-request-id': 'req-9' },
      body: 'x',
    });
    await r.text();
    await settle();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      msg: 'request',
      reqId: 'req-9',
      method: 'POST',
      path: '/things/9',
      status: 200,
      route: '/things/:id',
    });
    expect(typeof lines[0]!.ms).toBe('number');
    const text = JSON.stringify(lines);
    expect(text).not.toContain('supersecret');
    expect(text).not.toContain('Signature');
    expect(records).toEqual([
      { route: '/things/:id', method: 'POST', status: 200, seconds: expect.any(Number) },
    ]);
  });

  it('a client that leaves before the answer is logged as 499, aborted', async () => {
    lines.length = 0;
    const controller = new AbortController();
    const pending = fetch(`${srv.url}/slow`, { signal: controller.signal }).catch(() => 'aborted');
    await settle();
    controller.abort();
    expect(await pending).toBe('aborted');
    await settle();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ path: '/slow', status: 499, aborted: true });
  });
});

describe('DELTAGATE_LOG_FORMAT=pretty', () => {
  it('turns a pino line into one readable line, an error with its stack below', () => {
    const at = new Date(2026, 0, 2, 3, 4, 5, 6).getTime();
    const line = JSON.stringify({
      level: 30,
      time: at,
      pid: 1,
      hostname: 'h',
      service: 'api',
      msg: 'request',
      method: 'GET',
      path: '/v1/models',
      status: 200,
      note: 'two words',
    });
    expect(formatLogLine(line)).toBe(
      '03:04:05.006 INFO  [api] request method=GET path=/v1/models status=200 note="two words"\n',
    );
    const err = JSON.stringify({
      level: 50,
      time: at,
      msg: 'boom',
      err: { type: 'Error', message: 'bad', stack: 'Error: bad\n    at f (x.ts:1:1)' },
    });
    expect(formatLogLine(err)).toBe('03:04:05.006 ERROR boom\n    Error: bad\n        at f (x.ts:1:1)\n');
    expect(formatLogLine(line, true)).toContain('\x1b[32mINFO \x1b[0m');
    expect(formatLogLine('not json')).toBe('not json\n');
  });
});
