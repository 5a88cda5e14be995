/**
 * src/http/body.ts on a real socket: a declared Content-Length over the limit is refused before a byte is
 * consumed (the request stream never starts flowing), bodies at the limit are read whole, and a chunked
 * body is refused as soon as the count passes the limit.
 */
import type { IncomingMessage } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { BodyTooLargeError, declaredLength, readBody } from '../../src/http/body.js';
import { sendJson } from '../../src/http/json.js';
import { listen, rawRequest, type Listening } from './helpers.js';

describe('readBody', () => {
  let srv: Listening | undefined;
  afterEach(async () => srv?.close());

  /** Serves readBody(req, limit) and records what the handler saw. */
  async function serve(limit: number) {
    type Seen = { declared: number | null; error: unknown; flowing: boolean | null; bytes: number | null };
    const seen: Seen[] = [];
    srv = await listen(async (req: IncomingMessage, res) => {
      const entry: Seen = { declared: declaredLength(req), error: null, flowing: null, bytes: null };
      seen.push(entry);
      try {
        entry.bytes = (await readBody(req, limit)).length;
        sendJson(res, 200, { bytes: entry.bytes });
      } catch (err) {
        entry.error = err;
        entry.flowing = req.readableFlowing;
        res.setHeader('connection', 'close');
        res.once('finish', () => req.destroy());
        sendJson(res, 413, {});
      }
    });
    return seen;
  }

  it('refuses a declared length over the limit without consuming the body', async () => {
    const seen = await serve(100);
    const answer = await rawRequest(
      srv!.port,
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101',
      'x'.repeat(50),
    );
    expect(answer.status).toBe(413);
    expect(seen[0]!.declared).toBe(101);
    expect(seen[0]!.error).toBeInstanceOf(BodyTooLargeError);
    expect((seen[0]!.error as BodyTooLargeError).limit).toBe(100);
    expect(seen[0]!.flowing).toBe(null); // nobody ever read from the stream
  });

  it('reads a body of exactly the limit', async () => {
    const seen = await serve(100);
    const res = await fetch(srv!.url, { method: 'POST', body: 'y'.repeat(100) });
    expect(await res.json()).toEqual({ bytes: 100 });
    expect(seen[0]!.declared).toBe(100);
  });

  it('refuses a chunked body once the count passes the limit', async () => {
    const seen = await serve(4);
    const head = 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked';
    const answer = await rawRequest(srv!.port, head, '3\r\nabc\r\n3\r\ndef\r\n');
    expect(answer.status).toBe(413);
    expect(seen[0]!.declared).toBe(null);
    expect(seen[0]!.error).toBeInstanceOf(BodyTooLargeError);
  });
});
