// The server's own plumbing: the generated admin key (0600 file, stable across restarts), /healthz, unknown
// routes, oversized bodies (413 before parsing; before reading when Content-Length says so), authentication
// from the headers before a byte of the body is read (401), the GraphQL body cap derived from the inline
// limits, and a clean close.
import { statSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { graphqlBodyLimit, resolveAdminKey } from '../../src/main.js';
import { rawRequest } from '../http/helpers.js';
import { createCustomer } from './fixtures/gql-client.js';
import { ADMIN_KEY, gql, makePeftAdapter, ok, startHarness, type Harness } from './harness.js';

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
    expect(body.errors[0].message).toMatch(/^request body over \d+ bytes; /);
  });

  // The request never finishes: a server that read the body before authenticating would wait for the rest
  // and the answer would never come (status null when the wait ends).
  it('answers 401 to a POST without a key from its headers, before reading the body', async () => {
    for (const framing of ['Content-Length: 500000', 'Transfer-Encoding: chunked']) {
      const head = ['POST /graphql HTTP/1.1', 'Host: x', 'Content-Type: application/json', framing].join(
        '\r\n',
      );
      const started = performance.now();
      const answer = await rawRequest(
        h.server.port,
        head,
        framing.startsWith('Transfer') ? '5\r\n{"que' : '{"que',
      );
      expect({ framing, status: answer.status, closed: answer.closed }).toEqual({
        framing,
        status: 401,
        closed: true,
      });
      expect(performance.now() - started).toBeLessThan(2500);
      const body = JSON.parse(answer.text.slice(answer.text.indexOf('\r\n\r\n') + 4));
      expect(body.errors.map((e: { extensions: { code: string } }) => e.extensions.code)).toEqual([
        'UNAUTHENTICATED',
      ]);
    }
  });

  it('answers 401 to a 300 MB POST without a key, without reading it', async () => {
    const head = [
      'POST /graphql HTTP/1.1',
      'Host: x',
      'Content-Type: application/json',
      'Authorization: Bearer dg_live_' + 'x'.repeat(43),
      'Content-Length: 300000000',
    ].join('\r\n');
    const answer = await rawRequest(h.server.port, head, 'x'.repeat(64 * 1024));
    expect([answer.status, answer.closed]).toEqual([401, true]);
  });

  it('closes idempotently', async () => {
    const other = await startHarness('sqlite+fs');
    await Promise.all([other.server.close(), other.server.close()]);
    await expect(fetch(other.graphqlUrl, { method: 'POST' })).rejects.toThrow();
    await other.close();
  });
});

describe('the GraphQL body cap', () => {
  it('is a few MB, derived from the inline dataset and adapter limits', () => {
    const MiB = 1024 * 1024;
    // Defaults: 4 MiB of dataset JSON-escaped (2x) beats 4 MiB of adapter weights in base64 (4/3x).
    expect(graphqlBodyLimit(loadConfig({}))).toBe(8 * MiB + 64 * 1024);
    expect(graphqlBodyLimit(loadConfig({ DELTAGATE_MAX_INLINE_ADAPTER_BYTES: String(30 * MiB) }))).toBe(
      40 * MiB + 64 * 1024,
    );
    // Inline weights never exceed the adapter limit itself.
    expect(graphqlBodyLimit(loadConfig({ DELTAGATE_MAX_ADAPTER_BYTES: '1000' }))).toBe(8 * MiB + 64 * 1024);
  });

  it('refuses a 300 MB POST with a valid key with 413 before reading it', async () => {
    const h = await startHarness('sqlite+fs');
    try {
      const head = [
        'POST /graphql HTTP/1.1',
        'Host: x',
        'Content-Type: application/json',
        `Authorization: Bearer ${ADMIN_KEY}`,
        'Content-Length: 300000000',
      ].join('\r\n');
      const answer = await rawRequest(h.server.port, head, 'x'.repeat(1024));
      expect([answer.status, answer.closed]).toEqual([413, true]);
    } finally {
      await h.close();
    }
  });
});

describe('inline adapter weights', () => {
  it('are capped at DELTAGATE_MAX_INLINE_ADAPTER_BYTES; larger weights go through createAdapterUpload', async () => {
    const h = await startHarness('sqlite+fs', { DELTAGATE_MAX_INLINE_ADAPTER_BYTES: '1000' });
    try {
      const c = await createCustomer(h, 'inline');
      const adapterId = (
        await ok(
          h,
          c.key,
          'mutation { createAdapter(input: { name: "big", baseModelId: "deltagate-tiny" }) { id } }',
        )
      ).createAdapter.id;
      const p = makePeftAdapter({ seed: 9 });
      expect(p.weights.byteLength).toBeGreaterThan(1000);
      const IMPORT =
        'mutation($input: ImportAdapterVersionInput!) { importAdapterVersion(input: $input) { version } }';
      const inline = await gql(h, c.key, IMPORT, {
        input: { adapterId, adapterConfig: p.adapterConfig, weightsBase64: p.weightsBase64 },
      });
      expect(
        inline.errors?.map((e) => [e.extensions?.code, (e.extensions as { field?: string })?.field]),
      ).toEqual([['BAD_USER_INPUT', 'weightsBase64']]);
      expect(inline.errors?.[0]?.message).toMatch(/createAdapterUpload/);
      const up = (
        await ok(
          h,
          c.key,
          'mutation($i: CreateAdapterUploadInput!) { createAdapterUpload(input: $i) { id url headers } }',
          {
            i: { sizeBytes: p.weights.byteLength },
          },
        )
      ).createAdapterUpload;
      expect(
        (await fetch(up.url, { method: 'PUT', headers: up.headers, body: p.weights })).status,
      ).toBeLessThan(300);
      const imported = await ok(h, c.key, IMPORT, {
        input: { adapterId, adapterConfig: p.adapterConfig, uploadId: up.id },
      });
      expect(imported.importAdapterVersion).toEqual({ version: 1 });
    } finally {
      await h.close();
    }
  });
});
