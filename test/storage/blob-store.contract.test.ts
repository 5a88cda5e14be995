/**
 * One contract, every BlobStore: the same table runs against FsBlobStore (served over HTTP by blob-http.ts)
 * and S3BlobStore on the suite's S3 server (moto, or MinIO via DELTAGATE_TEST_S3_ENDPOINT), the latter with
 * both checksum settings. Cases that need the *server* to verify presigned signatures or checksums run where
 * the server does (the directory store, MinIO/AWS); moto verifies neither, so there they are skipped by name.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BlobExistsError,
  ChecksumMismatchError,
  InvalidBlobKeyError,
  MAX_PRESIGN_SECONDS,
  assertSha256Hex,
  sha256Hex,
  sha256HexSliced,
  type BlobStore,
} from '../../src/storage/blob-store.js';
import { createBlobHttpHandler } from '../../src/storage/blob-http.js';
import { FsBlobStore } from '../../src/storage/fs-store.js';
import { S3BlobStore } from '../../src/storage/s3-store.js';
import { NotFoundError } from '../../src/shared/errors.js';
import { s3EnforcesSignatures, testS3Config } from '../helpers/s3.js';

interface Harness {
  store: BlobStore;
  /** The server checks presigned signatures, expiry and checksums itself. */
  enforces: boolean;
  /** Moves the store's clock forward (fs) or waits (real S3). */
  advance(seconds: number): Promise<void>;
  close(): Promise<void>;
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const MiB = 1024 * 1024;

async function fsHarness(): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'dg-blobs-'));
  let offset = 0;
  const ref: { handler?: ReturnType<typeof createBlobHttpHandler> } = {};
  const server: Server = createServer((req, res) => {
    void ref.handler!(req, res).then((handled) => {
      if (!handled) res.writeHead(404).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const store = await FsBlobStore.open({
    dir,
    publicUrl: `http://127.0.0.1:${port}`,
    now: () => Date.now() + offset,
  });
  ref.handler = createBlobHttpHandler(store);
  return {
    store,
    enforces: true,
    advance: async (s) => {
      offset += s * 1000;
    },
    close: async () => {
      await new Promise((r) => server.close(r));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function s3Harness(checksums: 'WHEN_REQUIRED' | 'WHEN_SUPPORTED'): Promise<Harness> {
  const config = await testS3Config(`contract-${checksums}`);
  const store = new S3BlobStore(config, { checksums, partSize: 5 * MiB, multipartThreshold: 5 * MiB });
  return {
    store,
    enforces: s3EnforcesSignatures(),
    advance: (s) => new Promise((r) => setTimeout(r, s * 1000)),
    close: async () => store.destroy(),
  };
}

const HARNESSES: [string, () => Promise<Harness>][] = [
  ['FsBlobStore', fsHarness],
  ['S3BlobStore (checksums WHEN_REQUIRED)', () => s3Harness('WHEN_REQUIRED')],
  ['S3BlobStore (checksums WHEN_SUPPORTED)', () => s3Harness('WHEN_SUPPORTED')],
];

describe('sha256Hex', () => {
  it('is the lowercase hex digest the stores and records use (FIPS 180-2 vectors)', () => {
    expect(sha256Hex(new TextEncoder().encode('abc'))).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
    expect(sha256Hex(new Uint8Array(0))).toBe(
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
    expect(() => assertSha256Hex(sha256Hex(randomBytes(100)))).not.toThrow();
  });

  it('sha256HexSliced gives the same digest, yielding to the event loop between 4 MiB slices', async () => {
    const MiB = 1024 * 1024;
    for (const size of [0, 5, 4 * MiB - 1, 4 * MiB, 4 * MiB + 1, 9 * MiB + 7]) {
      const data = randomBytes(size);
      expect({ size, sha: await sha256HexSliced(data) }).toEqual({ size, sha: sha256Hex(data) });
    }
    // A timer set before a 12 MiB hash starts fires before the hash is done: it did not hold the loop.
    const order: string[] = [];
    setImmediate(() => order.push('event loop'));
    await sha256HexSliced(randomBytes(12 * MiB)).then(() => order.push('hash'));
    expect(order).toEqual(['event loop', 'hash']);
  });
});

describe.each(HARNESSES)('%s', (_name, make) => {
  let h: Harness;
  let store: BlobStore;
  beforeAll(async () => {
    h = await make();
    store = h.store;
  });
  afterAll(async () => h?.close());

  it('puts, gets, streams, heads and deletes', async () => {
    const body = bytes('{"text":"hello"}\n');
    const put = await store.put('customers/c1/datasets/d1/data.jsonl', body, {
      contentType: 'application/jsonl',
    });
    expect(put).toEqual({
      key: 'customers/c1/datasets/d1/data.jsonl',
      size: body.byteLength,
      sha256: sha(body),
    });
    expect(text(await store.get(put.key))).toBe('{"text":"hello"}\n');
    const chunks: Buffer[] = [];
    for await (const c of await store.stream(put.key)) chunks.push(Buffer.from(c as Uint8Array));
    expect(text(Buffer.concat(chunks))).toBe('{"text":"hello"}\n');
    expect((await store.head(put.key))?.size).toBe(body.byteLength);
    await store.delete(put.key);
    expect(await store.head(put.key)).toBeNull();
    await expect(store.get(put.key)).rejects.toBeInstanceOf(NotFoundError);
    await expect(store.stream(put.key)).rejects.toBeInstanceOf(NotFoundError);
    await store.delete(put.key); // idempotent
  });

  it('overwrites by default and keeps the original on a create-only put', async () => {
    const key = 'customers/c1/uploads/u-overwrite';
    await store.put(key, bytes('one'));
    await store.put(key, bytes('two'));
    expect(text(await store.get(key))).toBe('two');
    const err = await store.put(key, bytes('three'), { ifNoneMatch: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BlobExistsError);
    expect((err as BlobExistsError).code).toBe('CONFLICT');
    expect(text(await store.get(key))).toBe('two');
  });

  it('lets exactly one of several concurrent create-only puts win', async () => {
    const key = 'customers/c1/adapters/a1/v1/adapter_model.safetensors';
    const bodies = Array.from({ length: 6 }, (_, i) => bytes(`writer ${i} ${'x'.repeat(20_000)}`));
    const results = await Promise.allSettled(bodies.map((b) => store.put(key, b, { ifNoneMatch: true })));
    const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
    expect(won).toHaveLength(1);
    for (const r of results) {
      if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(BlobExistsError);
    }
    expect(sha(await store.get(key))).toBe(sha(bodies[won[0]!]!));
  });

  it('refuses a body whose sha256 is not the expected one and leaves no object', async () => {
    const key = 'customers/c1/uploads/u-checksum';
    const err = await store
      .put(key, bytes('corrupted'), { sha256: sha(bytes('original')) })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChecksumMismatchError);
    expect(await store.head(key)).toBeNull();
    await store.put(key, bytes('original'), { sha256: sha(bytes('original')) });
    expect(text(await store.get(key))).toBe('original');
  });

  it('lists by prefix (sorted, with sizes) and deletes by prefix without touching neighbours', async () => {
    const keys = [
      'customers/c2/adapters/a/v1/adapter_config.json',
      'customers/c2/adapters/a/v1/adapter_model.safetensors',
      'customers/c2/adapters/a/v2/adapter_config.json',
      'customers/c20/adapters/a/v1/adapter_config.json',
    ];
    for (const [i, k] of keys.entries()) await store.put(k, new Uint8Array(i + 1));
    expect(await store.list('customers/c2/')).toEqual([
      { key: keys[0], size: 1 },
      { key: keys[1], size: 2 },
      { key: keys[2], size: 3 },
    ]);
    expect((await store.list('customers/c2/adapters/a/v')).map((o) => o.key)).toEqual(keys.slice(0, 3));
    expect(await store.list('customers/nobody/')).toEqual([]);
    expect(await store.deletePrefix('customers/c2/adapters/a/v1/')).toBe(2);
    expect((await store.list('customers/c2/')).map((o) => o.key)).toEqual([keys[2]]);
    expect((await store.list('customers/c20/')).map((o) => o.key)).toEqual([keys[3]]);
    await expect(store.deletePrefix('customers/c2')).rejects.toBeInstanceOf(InvalidBlobKeyError);
    await expect(store.deletePrefix('')).rejects.toBeInstanceOf(InvalidBlobKeyError);
  });

  it('streams a multi-part body (11 MiB in uneven chunks) intact', async () => {
    const key = 'customers/c1/jobs/j1/checkpoints/step-10/adapter_model.safetensors';
    const body = randomBytes(11 * MiB + 123);
    async function* chunks() {
      for (let i = 0; i < body.length; i += 3 * MiB + 7)
        yield body.subarray(i, Math.min(body.length, i + 3 * MiB + 7));
    }
    const put = await store.putStream!(key, chunks(), { ifNoneMatch: true });
    expect(put).toEqual({ key, size: body.length, sha256: sha(body) });
    expect(sha(await store.get(key))).toBe(sha(body));
    await expect(store.putStream!(key, chunks(), { ifNoneMatch: true })).rejects.toBeInstanceOf(
      BlobExistsError,
    );
    const bad = await store.putStream!(`${key}.2`, chunks(), { sha256: sha(bytes('other')) }).catch(
      (e: unknown) => e,
    );
    expect(bad).toBeInstanceOf(ChecksumMismatchError);
    expect(await store.head(`${key}.2`)).toBeNull();
  });

  it.each([
    '../escape',
    'customers/../../etc/passwd',
    '/customers/c1/x',
    'customers//x',
    'customers/c1/',
    'customers/./x',
    'customers\\c1\\x',
    'customers/c1/\u0000x',
    'customers/c1/line\nbreak',
    '',
  ])('refuses the key %j everywhere', async (key) => {
    await expect(store.put(key, bytes('x'))).rejects.toBeInstanceOf(InvalidBlobKeyError);
    await expect(store.get(key)).rejects.toBeInstanceOf(InvalidBlobKeyError);
    await expect(store.head(key)).rejects.toBeInstanceOf(InvalidBlobKeyError);
    await expect(store.delete(key)).rejects.toBeInstanceOf(InvalidBlobKeyError);
    await expect(store.presignGet(key, { expiresInSeconds: 60 })).rejects.toBeInstanceOf(InvalidBlobKeyError);
    await expect(store.presignPut(key, { expiresInSeconds: 60, contentLength: 1 })).rejects.toBeInstanceOf(
      InvalidBlobKeyError,
    );
  });

  it('caps presigned URLs at 7 days and refuses a negative size', async () => {
    const key = 'customers/c1/uploads/u-long';
    await expect(store.presignGet(key, { expiresInSeconds: MAX_PRESIGN_SECONDS + 1 })).rejects.toThrow(
      /lifetime/,
    );
    await expect(store.presignPut(key, { expiresInSeconds: 0, contentLength: 1 })).rejects.toThrow(
      /lifetime/,
    );
    await expect(store.presignPut(key, { expiresInSeconds: 60, contentLength: -1 })).rejects.toThrow(
      /content length/,
    );
    const ok = await store.presignGet(key, { expiresInSeconds: MAX_PRESIGN_SECONDS });
    expect(ok.expiresAt.getTime() - Date.now()).toBeGreaterThan((MAX_PRESIGN_SECONDS - 60) * 1000);
  });

  it('accepts a presigned PUT with its headers, then serves it through a presigned GET', async () => {
    const key = 'customers/c1/uploads/u-presigned';
    const body = bytes('{"prompt":"a","completion":"b"}\n');
    const put = await store.presignPut(key, {
      expiresInSeconds: 300,
      contentLength: body.byteLength,
      contentType: 'application/jsonl',
    });
    expect(put.headers['content-type']).toBe('application/jsonl');
    const r = await fetch(put.url, { method: 'PUT', headers: put.headers, body });
    expect(r.status, await r.text()).toBe(200);
    expect(sha(await store.get(key))).toBe(sha(body));
    const get = await store.presignGet(key, { expiresInSeconds: 300 });
    const g = await fetch(get.url);
    expect(g.status).toBe(200);
    expect(text(new Uint8Array(await g.arrayBuffer()))).toBe(text(body));
  });

  it('accepts a presigned PUT bound to a sha256 only with the matching body', async (ctx) => {
    if (!h.enforces) ctx.skip(); // moto stores whatever it is sent
    const key = 'customers/c1/uploads/u-presigned-sha';
    const body = bytes('right body');
    const put = await store.presignPut(key, {
      expiresInSeconds: 300,
      contentLength: body.byteLength,
      sha256: sha(body),
    });
    const wrong = bytes('wrong body');
    const bad = await fetch(put.url, { method: 'PUT', headers: put.headers, body: wrong });
    expect(bad.status).toBeGreaterThanOrEqual(400);
    expect(await store.head(key)).toBeNull();
    const good = await fetch(put.url, { method: 'PUT', headers: put.headers, body });
    expect(good.status).toBe(200);
    expect(text(await store.get(key))).toBe('right body');
  });

  it('refuses a presigned PUT with another size than signed', async (ctx) => {
    if (!h.enforces) ctx.skip(); // moto does not check presigned signatures
    const key = 'customers/c1/uploads/u-size';
    const put = await store.presignPut(key, { expiresInSeconds: 300, contentLength: 4 });
    const r = await fetch(put.url, { method: 'PUT', headers: put.headers, body: bytes('12345678') });
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(await store.head(key)).toBeNull();
  });

  it('refuses presigned URLs used for another key or another method', async (ctx) => {
    if (!h.enforces) ctx.skip(); // moto does not check presigned signatures
    const key = 'customers/c1/uploads/u-bound';
    await store.put(key, bytes('secret'));
    await store.put('customers/c9/uploads/u-bound', bytes('other tenant'));
    const get = await store.presignGet(key, { expiresInSeconds: 300 });
    const otherKey = get.url.replace('/customers/c1/', '/customers/c9/');
    expect(otherKey).not.toBe(get.url);
    expect((await fetch(otherKey)).status).toBe(403);
    const asPut = await fetch(get.url, { method: 'PUT', body: bytes('overwrite') });
    expect(asPut.status).toBe(403);
    expect(text(await store.get(key))).toBe('secret');
    const put = await store.presignPut(key, { expiresInSeconds: 300, contentLength: 3 });
    expect((await fetch(put.url)).status).toBe(403);
  });

  it('refuses an expired presigned URL', async (ctx) => {
    if (!h.enforces) ctx.skip(); // moto does not check expiry
    const key = 'customers/c1/uploads/u-expired';
    await store.put(key, bytes('x'));
    const get = await store.presignGet(key, { expiresInSeconds: 1 });
    const put = await store.presignPut(key, { expiresInSeconds: 1, contentLength: 1 });
    await h.advance(2.5);
    expect((await fetch(get.url)).status).toBe(403);
    expect((await fetch(put.url, { method: 'PUT', headers: put.headers, body: bytes('y') })).status).toBe(
      403,
    );
    expect(text(await store.get(key))).toBe('x');
  });

  it('leaves no temp files or stray objects behind (directory store)', async (ctx) => {
    if (!(store instanceof FsBlobStore)) ctx.skip();
    const fsStore = store as FsBlobStore;
    expect(await readdir(join(fsStore.dir, '.tmp'))).toEqual([]);
    expect(await readdir(fsStore.dir)).toEqual(expect.arrayContaining(['objects', 'signing-key']));
    expect((await readdir(fsStore.dir)).sort()).toEqual(['.tmp', 'objects', 'signing-key']);
  });
});
