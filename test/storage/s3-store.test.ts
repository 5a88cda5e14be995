/**
 * What the shared contract cannot show about S3BlobStore on moto: the shape of its presigned URLs (SigV4 binds
 * method, key, size, type and checksum; lifetime as asked; no CRC32 hoisted in whatever the data client's
 * checksum setting — the SDK ≥ 3.729 hazard of RELIABILITY.md), that put sends ChecksumSHA256, that a failed
 * multipart upload is aborted, and the config → client mapping. Runs against the suite's S3 server.
 */
import { createHash } from 'node:crypto';
import {
  ListMultipartUploadsCommand,
  PutObjectCommand,
  S3Client,
  HeadObjectCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3StorageConfig } from '../../src/config.js';
import { ChecksumMismatchError } from '../../src/storage/blob-store.js';
import { createBlobStore } from '../../src/storage/create-blob-store.js';
import { S3BlobStore, ensureBucket, s3ClientConfig } from '../../src/storage/s3-store.js';
import { testS3Config } from '../helpers/s3.js';

const MiB = 1024 * 1024;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

let config: S3StorageConfig;
let store: S3BlobStore;
beforeAll(async () => {
  config = await testS3Config('s3-store');
  store = new S3BlobStore(config, {
    checksums: 'WHEN_SUPPORTED',
    partSize: 5 * MiB,
    multipartThreshold: 5 * MiB,
  });
});
afterAll(() => store?.destroy());

function query(url: string): URLSearchParams {
  return new URL(url).searchParams;
}

describe('S3BlobStore presigned URLs', () => {
  it('sign method, key, size, type and checksum, with the asked lifetime', async () => {
    const key = 'customers/c1/uploads/u1';
    const sha256 = sha(new TextEncoder().encode('hello'));
    const put = await store.presignPut(key, { expiresInSeconds: 900, contentLength: 5, sha256 });
    const q = query(put.url);
    expect(new URL(put.url).pathname).toBe(`/${config.bucket}/${key}`);
    expect(q.get('X-Amz-Expires')).toBe('900');
    expect(q.get('X-Amz-SignedHeaders')!.split(';').sort()).toEqual(
      ['content-length', 'content-type', 'host', 'x-amz-checksum-sha256'].sort(),
    );
    expect(put.headers).toEqual({
      'content-type': 'application/octet-stream',
      'x-amz-checksum-sha256': Buffer.from(sha256, 'hex').toString('base64'),
    });
    expect(Math.abs(put.expiresAt.getTime() - (Date.now() + 900_000))).toBeLessThan(5000);
    const get = await store.presignGet(key, { expiresInSeconds: 60 });
    expect(query(get.url).get('X-Amz-Expires')).toBe('60');
    expect(query(get.url).get('x-id')).toBe('GetObject');
  });

  it('never hoist SDK-default CRC32 checksums into the URL, whatever the data client setting', async () => {
    for (const checksums of ['WHEN_SUPPORTED', 'WHEN_REQUIRED'] as const) {
      const s = new S3BlobStore(config, { checksums });
      const q = query(
        (await s.presignPut('customers/c1/uploads/u2', { expiresInSeconds: 60, contentLength: 3 })).url,
      );
      expect([...q.keys()].filter((k) => /checksum/i.test(k))).toEqual([]);
      s.destroy();
    }
    // The hazard itself: a client on the SDK default signs a CRC32 of an empty body into the URL.
    const naive = new S3Client(s3ClientConfig(config, 'WHEN_SUPPORTED'));
    const url = await getSignedUrl(naive, new PutObjectCommand({ Bucket: config.bucket, Key: 'x' }), {
      expiresIn: 60,
    });
    expect([...query(url).keys()].some((k) => /checksum/i.test(k))).toBe(true);
    naive.destroy();
  });

  it('round-trip a presigned PUT/GET through moto with the returned headers', async () => {
    const key = 'customers/c1/uploads/u3';
    const body = new TextEncoder().encode('{"text":"x"}\n');
    const put = await store.presignPut(key, { expiresInSeconds: 60, contentLength: body.byteLength });
    expect((await fetch(put.url, { method: 'PUT', headers: put.headers, body })).status).toBe(200);
    const got = await fetch((await store.presignGet(key, { expiresInSeconds: 60 })).url);
    expect(new TextDecoder().decode(await got.arrayBuffer())).toBe('{"text":"x"}\n');
  });
});

describe('S3BlobStore writes', () => {
  it('stores the SHA-256 it sent with the object', async () => {
    const body = new TextEncoder().encode('checksummed');
    await store.put('customers/c1/uploads/sha', body);
    const h = await store.client.send(
      new HeadObjectCommand({
        Bucket: config.bucket,
        Key: 'customers/c1/uploads/sha',
        ChecksumMode: 'ENABLED',
      }),
    );
    expect(h.ChecksumSHA256).toBe(Buffer.from(sha(body), 'hex').toString('base64'));
  });

  it('aborts a multipart upload that fails its checksum: no object, no dangling upload', async () => {
    const key = 'customers/c1/jobs/j/checkpoints/step-1/big.bin';
    const body = new Uint8Array(6 * MiB).fill(7);
    const err = await store.put(key, body, { sha256: sha(new Uint8Array(1)) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChecksumMismatchError);
    expect(await store.head(key)).toBeNull();
    async function* twoParts() {
      yield body;
      yield body;
    }
    const err2 = await store
      .putStream(key, twoParts(), { sha256: sha(new Uint8Array(1)) })
      .catch((e: unknown) => e);
    expect(err2).toBeInstanceOf(ChecksumMismatchError);
    expect(await store.head(key)).toBeNull();
    const uploads = await store.client.send(new ListMultipartUploadsCommand({ Bucket: config.bucket }));
    expect(uploads.Uploads ?? []).toEqual([]);
  });
});

describe('S3 configuration', () => {
  it('maps the config to client settings', () => {
    expect(s3ClientConfig(config, 'WHEN_REQUIRED')).toMatchObject({
      region: config.region,
      endpoint: config.endpoint,
      forcePathStyle: true,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey },
    });
    const aws = s3ClientConfig(
      { ...config, endpoint: null, accessKeyId: null, secretAccessKey: null },
      'WHEN_REQUIRED',
    );
    expect(aws).not.toHaveProperty('endpoint');
    expect(aws).not.toHaveProperty('credentials');
  });

  it('creates a missing bucket once and reuses it (createBlobStore with createBucket)', async () => {
    const fresh = { ...config, bucket: `${config.bucket}-new` };
    const s = await createBlobStore(fresh, { publicUrl: 'http://unused', createBucket: true });
    await ensureBucket(fresh); // idempotent
    expect(s.kind).toBe('s3');
    await s.put('customers/c1/uploads/a', new Uint8Array([1]));
    expect(await s.list('customers/')).toEqual([{ key: 'customers/c1/uploads/a', size: 1 }]);
    (s as S3BlobStore).destroy();
  });
});
