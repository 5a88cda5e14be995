/**
 * `S3BlobStore`: the BlobStore on S3 or any S3-protocol server (MinIO, moto), with @aws-sdk/client-s3 v3.
 * Every put carries its SHA-256 as `ChecksumSHA256` so the server refuses a corrupted body; create-only puts
 * send `If-None-Match: *` (412, or 409 on some servers → BlobExistsError); bodies past `multipartThreshold`
 * go multipart with per-part checksums, aborted on any failure. Presigning uses a second client with
 * `requestChecksumCalculation/responseChecksumValidation: 'WHEN_REQUIRED'` (RELIABILITY.md). Not the directory
 * store (`fs-store.ts`); the bucket is created only by `ensureBucket`, for dev and tests.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
  type CompletedPart,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { NotFoundError } from '../shared/errors.js';
import type { S3StorageConfig } from '../config.js';
import {
  BlobExistsError,
  ChecksumMismatchError,
  InvalidBlobKeyError,
  assertContentLength,
  assertPresignSeconds,
  assertSha256Hex,
  sha256Hex,
  type BlobStore,
  type PresignPutOptions,
  type PresignedGet,
  type PresignedPut,
  type PutOptions,
  type PutResult,
} from './blob-store.js';
import { assertValidKey, assertValidPrefix } from './keys.js';

export type ChecksumSetting = 'WHEN_REQUIRED' | 'WHEN_SUPPORTED';

export interface S3BlobStoreOptions {
  /** Checksum behaviour of the data client (the presigning client is always WHEN_REQUIRED). */
  checksums?: ChecksumSetting;
  /** Bodies at least this large go multipart. Default 64 MiB. */
  multipartThreshold?: number;
  /** Multipart part size; S3's minimum is 5 MiB. Default 8 MiB. */
  partSize?: number;
}

const MiB = 1024 * 1024;

const b64 = (hex: string): string => Buffer.from(hex, 'hex').toString('base64');

function status(e: unknown): number | undefined {
  return (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

function errName(e: unknown): string {
  return e instanceof S3ServiceException || e instanceof Error ? e.name : '';
}

const CHECKSUM_ERRORS = new Set([
  'BadDigest',
  'InvalidDigest',
  'XAmzContentChecksumMismatch',
  'InvalidChecksum',
]);

export function s3ClientConfig(config: S3StorageConfig, checksums: ChecksumSetting): S3ClientConfig {
  return {
    region: config.region,
    ...(config.endpoint === null ? {} : { endpoint: config.endpoint }),
    forcePathStyle: config.forcePathStyle,
    ...(config.accessKeyId !== null && config.secretAccessKey !== null
      ? { credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey } }
      : {}),
    requestChecksumCalculation: checksums,
    responseChecksumValidation: checksums,
    maxAttempts: 3,
  };
}

/** Creates the bucket when it is missing (dev stacks and tests; production buckets are provisioned). */
export async function ensureBucket(config: S3StorageConfig): Promise<void> {
  const client = new S3Client(s3ClientConfig(config, 'WHEN_REQUIRED'));
  try {
    try {
      await client.send(new HeadBucketCommand({ Bucket: config.bucket }));
      return;
    } catch (e) {
      if (status(e) !== 404 && errName(e) !== 'NotFound' && errName(e) !== 'NoSuchBucket') throw e;
    }
    try {
      await client.send(new CreateBucketCommand({ Bucket: config.bucket }));
    } catch (e) {
      if (errName(e) !== 'BucketAlreadyOwnedByYou' && errName(e) !== 'BucketAlreadyExists') throw e;
    }
  } finally {
    client.destroy();
  }
}

export class S3BlobStore implements BlobStore {
  readonly kind = 's3' as const;
  readonly bucket: string;
  readonly client: S3Client;
  private readonly presigner: S3Client;
  private readonly multipartThreshold: number;
  private readonly partSize: number;

  constructor(
    readonly config: S3StorageConfig,
    options: S3BlobStoreOptions = {},
  ) {
    this.bucket = config.bucket;
    this.client = new S3Client(s3ClientConfig(config, options.checksums ?? 'WHEN_REQUIRED'));
    this.presigner = new S3Client(s3ClientConfig(config, 'WHEN_REQUIRED'));
    this.partSize = Math.max(5 * MiB, options.partSize ?? 8 * MiB);
    this.multipartThreshold = Math.max(this.partSize, options.multipartThreshold ?? 64 * MiB);
  }

  destroy(): void {
    this.client.destroy();
    this.presigner.destroy();
  }

  private mapPutError(e: unknown, key: string): unknown {
    const s = status(e);
    const name = errName(e);
    if (s === 412 || name === 'PreconditionFailed' || name === 'ConditionalRequestConflict')
      return new BlobExistsError(key);
    if (s === 409 && name !== 'OperationAborted') return new BlobExistsError(key);
    if (CHECKSUM_ERRORS.has(name)) return new ChecksumMismatchError(key, 'sent with the body');
    return e;
  }

  async put(key: string, body: Uint8Array, opts: PutOptions = {}): Promise<PutResult> {
    assertValidKey(key);
    if (opts.sha256 !== undefined) assertSha256Hex(opts.sha256);
    if (body.byteLength >= this.multipartThreshold) return this.putStream(key, [body], opts);
    const sha256 = sha256Hex(body);
    // Refuse before sending: the caller's expected checksum is the contract, the server's check guards transit.
    if (opts.sha256 !== undefined && opts.sha256 !== sha256)
      throw new ChecksumMismatchError(key, opts.sha256, sha256);
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ContentLength: body.byteLength,
          ContentType: opts.contentType ?? 'application/octet-stream',
          ChecksumAlgorithm: 'SHA256',
          ChecksumSHA256: b64(sha256),
          ...(opts.ifNoneMatch ? { IfNoneMatch: '*' } : {}),
        }),
      );
    } catch (e) {
      throw this.mapPutError(e, key);
    }
    return { key, size: body.byteLength, sha256 };
  }

  /** Multipart when the body is larger than one part; a single put otherwise. */
  async putStream(
    key: string,
    body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    opts: PutOptions = {},
  ) {
    assertValidKey(key);
    if (opts.sha256 !== undefined) assertSha256Hex(opts.sha256);
    const whole = createHash('sha256');
    let size = 0;
    let pending: Uint8Array[] = [];
    let pendingBytes = 0;
    let uploadId: string | undefined;
    const parts: CompletedPart[] = [];

    const flushPart = async (): Promise<void> => {
      const part = Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      if (uploadId === undefined) {
        const created = await this.client.send(
          new CreateMultipartUploadCommand({
            Bucket: this.bucket,
            Key: key,
            ContentType: opts.contentType ?? 'application/octet-stream',
            ChecksumAlgorithm: 'SHA256',
          }),
        );
        uploadId = created.UploadId!;
      }
      const PartNumber = parts.length + 1;
      const ChecksumSHA256 = b64(sha256Hex(part));
      const r = await this.client.send(
        new UploadPartCommand({
          Bucket: this.bucket,
          Key: key,
          UploadId: uploadId,
          PartNumber,
          Body: part,
          ContentLength: part.byteLength,
          ChecksumSHA256,
        }),
      );
      parts.push({ PartNumber, ETag: r.ETag, ChecksumSHA256 });
    };

    try {
      for await (const chunk of body) {
        whole.update(chunk);
        size += chunk.byteLength;
        let rest = chunk;
        while (pendingBytes + rest.byteLength >= this.partSize) {
          const take = this.partSize - pendingBytes;
          pending.push(rest.subarray(0, take));
          pendingBytes += take;
          rest = rest.subarray(take);
          await flushPart();
        }
        if (rest.byteLength > 0) {
          pending.push(rest);
          pendingBytes += rest.byteLength;
        }
      }
      if (uploadId === undefined) {
        // Smaller than one part: one ordinary put (which recomputes and checks the sha256).
        return await this.put(key, Buffer.concat(pending, pendingBytes), opts);
      }
      if (pendingBytes > 0) await flushPart();
      const sha256 = whole.digest('hex');
      if (opts.sha256 !== undefined && opts.sha256 !== sha256)
        throw new ChecksumMismatchError(key, opts.sha256, sha256);
      await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: key,
          UploadId: uploadId,
          MultipartUpload: { Parts: parts },
          ...(opts.ifNoneMatch ? { IfNoneMatch: '*' } : {}),
        }),
      );
      return { key, size, sha256 };
    } catch (e) {
      if (uploadId !== undefined) {
        await this.client
          .send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }))
          .catch(() => undefined); // best effort; a lifecycle rule reaps leftovers
      }
      throw this.mapPutError(e, key);
    }
  }

  async get(key: string): Promise<Uint8Array> {
    assertValidKey(key);
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return await r.Body!.transformToByteArray();
    } catch (e) {
      if (status(e) === 404 || errName(e) === 'NoSuchKey') throw new NotFoundError('object', key);
      throw e;
    }
  }

  async stream(key: string): Promise<NodeJS.ReadableStream> {
    assertValidKey(key);
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      const body = r.Body as unknown;
      if (body instanceof Readable) return body;
      return Readable.from(await r.Body!.transformToByteArray());
    } catch (e) {
      if (status(e) === 404 || errName(e) === 'NoSuchKey') throw new NotFoundError('object', key);
      throw e;
    }
  }

  async head(key: string): Promise<{ size: number; etag?: string } | null> {
    assertValidKey(key);
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { size: r.ContentLength ?? 0, ...(r.ETag === undefined ? {} : { etag: r.ETag }) };
    } catch (e) {
      if (status(e) === 404 || errName(e) === 'NotFound' || errName(e) === 'NoSuchKey') return null;
      throw e;
    }
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  async list(prefix: string): Promise<{ key: string; size: number }[]> {
    if (prefix === '' || prefix.endsWith('/')) assertValidPrefix(prefix);
    else assertValidKey(prefix);
    const out: { key: string; size: number }[] = [];
    let token: string | undefined;
    do {
      const r = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const o of r.Contents ?? []) out.push({ key: o.Key!, size: o.Size ?? 0 });
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token !== undefined);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async deletePrefix(prefix: string): Promise<number> {
    if (prefix === '') throw new InvalidBlobKeyError(prefix, 'deletePrefix needs a non-empty prefix');
    assertValidPrefix(prefix);
    const keys = (await this.list(prefix)).map((o) => o.key);
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      const r = await this.client.send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
        }),
      );
      if (r.Errors !== undefined && r.Errors.length > 0) {
        const first = r.Errors[0]!;
        throw new Error(
          `deletePrefix ${prefix}: ${r.Errors.length} objects not deleted (${first.Key}: ${first.Code})`,
        );
      }
    }
    return keys.length;
  }

  async presignPut(key: string, opts: PresignPutOptions): Promise<PresignedPut> {
    assertValidKey(key);
    assertPresignSeconds(opts.expiresInSeconds);
    assertContentLength(opts.contentLength);
    if (opts.sha256 !== undefined) assertSha256Hex(opts.sha256);
    // The SDK signs a Content-Type even when none is given; name it so the uploader sends the signed value.
    const contentType = opts.contentType ?? 'application/octet-stream';
    const headers: Record<string, string> = { 'content-type': contentType };
    if (opts.sha256 !== undefined) headers['x-amz-checksum-sha256'] = b64(opts.sha256);
    const url = await getSignedUrl(
      this.presigner,
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        ContentLength: opts.contentLength,
        ContentType: contentType,
        ...(opts.sha256 === undefined ? {} : { ChecksumSHA256: b64(opts.sha256) }),
      }),
      {
        expiresIn: opts.expiresInSeconds,
        // Bind the size (and checksum) into the signature so the URL accepts exactly one body.
        signableHeaders: new Set(['content-length', 'content-type']),
        unhoistableHeaders: new Set(['x-amz-checksum-sha256']),
      },
    );
    return { url, headers, expiresAt: new Date(Date.now() + opts.expiresInSeconds * 1000) };
  }

  async presignGet(key: string, opts: { expiresInSeconds: number }): Promise<PresignedGet> {
    assertValidKey(key);
    assertPresignSeconds(opts.expiresInSeconds);
    const url = await getSignedUrl(this.presigner, new GetObjectCommand({ Bucket: this.bucket, Key: key }), {
      expiresIn: opts.expiresInSeconds,
    });
    return { url, expiresAt: new Date(Date.now() + opts.expiresInSeconds * 1000) };
  }
}
