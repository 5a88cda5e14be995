// The server's own plumbing: the generated admin key (0600 file, stable across restarts), /healthz, unknown
// routes, oversized bodies (413 before parsing; before reading when Content-Length says so), and a clean close.
import { statSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveAdminKey } from '../../src/main.js';
import { rawRequest } from '../http/helpers.js';
import { ok, startHarness, type Harness } from './harness.js';

describe('server', () => {
  let h: Harness;
  beforeAll(async () => {
    // No DELTAGATE_ADMIN_KEY: the server generates one in the data dir.
    h = await startHarness('sqlite+fs', {
      DELTAGATE_ADMIN_KEY: '',
      DELTAGATE_MAX_INLINE_DATASET_BYTES: '1000',
      DELTAGATE_MAX_ADAPTER_BYTES: '1000',
    });
  });
  afterAll(async () => h?.close());

  it('generates an admin key once, kept 0600 in the data dir, and accepts it', async () => {
    const { key, generated, file } = h.server.adminKey;
    expect(generated).toBe(true);
    expect(file).toBe(join(h.config.dataDir, 'admin-key'));
    expect(statSync(file!).mode & 0o777).toBe(0o600);
    expect(readFileSync(file!, 'utf8').trim()).toBe(key);
    expect(await resolveAdminKey(h.config)).toEqual({ key, generated: false, file });
    expect((await ok(h, key, '{ viewer { role } }')).viewer.role).toBe('ADMIN');
  });

  it('answers /healthz, 404s unknown routes and refuses oversized bodies before parsing', async () => {
    expect(await (await fetch(`${h.server.url}/healthz`)).json()).toEqual({ ok: true });
    expect((await fetch(`${h.server.url}/nope`)).status).toBe(404);
    const res = await fetch(h.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${h.server.adminKey.key}` },
      body: JSON.stringify({ query: '{ viewer { role } }', pad: 'x'.repeat(3 * 1024 * 1024) }),
    });
    expect(res.status).toBe(413);
  });

  it('answers 413 on a declared oversized body before any of it is sent', async () => {
    const head = [
      'POST /graphql HTTP/1.1',
      'Host: x',
      'Content-Type: application/json',
      `Authorization: Bearer ${h.server.adminKey.key}`,
      'Content-Length: 50000000',
    ].join('\r\n');
    const answer = await rawRequest(h.server.port, head);
    expect(answer.status).toBe(413);
    expect(answer.closed).toBe(true);
    const body = JSON.parse(answer.text.slice(answer.text.indexOf('\r\n\r\n') + 4));
    expect(body.errors[0].extensions.code).toBe('BAD_USER_INPUT');
    expect(body.errors[0].message).toMatch(/^request body over \d+ bytes$/);
  });

  it('closes idempotently', async () => {
    const other = await startHarness('sqlite+fs');
    await Promise.all([other.server.close(), other.server.close()]);
    await expect(fetch(other.graphqlUrl, { method: 'POST' })).rejects.toThrow();
    await other.close();
  });
});
