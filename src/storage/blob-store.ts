/**
 * The blob storage interface every artifact goes through (datasets, adapter versions, checkpoints, uploads),
 * and its named errors. Implementations: `s3-store.ts` (S3/MinIO/moto) and `fs-store.ts` (a directory, the
 * embedded default, served by `blob-http.ts`). Keys follow `keys.ts`; both stores refuse keys that could
 * escape their prefix. `createBlobStore` (in `create-blob-store.ts`) picks one from `Config.storage`.
 */
import { createHash } from 'node:crypto';
import { BadInputError, ConflictError } from '../shared/errors.js';

export interface PutOptions {
  contentType?: string;
  /** Create-only: `ConflictError` (BlobExistsError) if the key already exists; never overwrites. */
  ifNoneMatch?: boolean;
  /** Expected hex sha256 of the body: a mismatch is `ChecksumMismatchError` and nothing is stored. */
  sha256?: string;
}

export interface PutResult {
  key: string;
  size: number;
  /** Hex sha256 of what was stored. */
  sha256: string;
}

export interface PresignPutOptions {
  expiresInSeconds: number;
  /** The exact body size the URL accepts. */
  contentLength: number;
  contentType?: string;
  /** Hex sha256 the uploader must send as `x-amz-checksum-sha256` (base64); the store refuses other bodies. */
  sha256?: string;
}

export interface PresignedPut {
  url: string;
  /** Headers the uploader must send with the PUT, exactly. */
  headers: Record<string, string>;
  expiresAt: Date;
}

export interface PresignedGet {
  url: string;
  expiresAt: Date;
}

export interface BlobStore {
  /** 'fs' or 's3', for logs and tests. */
  readonly kind: 'fs' | 's3';
  put(key: string, body: Uint8Array, opts?: PutOptions): Promise<PutResult>;
  /** For large bodies (S3: multipart). Same guarantees as `put`. */
  putStream?(key: string, body: AsyncIterable<Uint8Array>, opts?: PutOptions): Promise<PutResult>;
  /** `NotFoundError` when absent. */
  get(key: string): Promise<Uint8Array>;
  /** `NotFoundError` when absent. */
  stream(key: string): Promise<NodeJS.ReadableStream>;
  head(key: string): Promise<{ size: number; etag?: string } | null>;
  /** Idempotent: deleting an absent key is fine. */
  delete(key: string): Promise<void>;
  /** Deletes every key starting with `prefix` (which must end in '/'); returns how many. */
  deletePrefix(prefix: string): Promise<number>;
  /** Every key starting with `prefix`, sorted by key. */
  list(prefix: string): Promise<{ key: string; size: number }[]>;
  presignPut(key: string, opts: PresignPutOptions): Promise<PresignedPut>;
  presignGet(key: string, opts: { expiresInSeconds: number }): Promise<PresignedGet>;
}

/** S3's own ceiling for presigned URLs (SigV4): 7 days. */
export const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;

export class InvalidBlobKeyError extends BadInputError {
  constructor(key: string, why: string) {
    super(`invalid storage key ${JSON.stringify(key.slice(0, 200))}: ${why}`);
  }
}

export class ChecksumMismatchError extends BadInputError {
  constructor(key: string, expected: string, actual?: string) {
    super(
      `checksum mismatch for ${key}: expected sha256 ${expected}${actual === undefined ? '' : `, got ${actual}`}`,
    );
  }
}

export class BlobExistsError extends ConflictError {
  constructor(readonly key: string) {
    super(`object ${key} already exists`);
  }
}

export function assertPresignSeconds(seconds: number): void {
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > MAX_PRESIGN_SECONDS) {
    throw new BadInputError(
      `presigned URL lifetime must be an integer 1-${MAX_PRESIGN_SECONDS} s (got ${seconds})`,
    );
  }
}

export function assertContentLength(n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new BadInputError(`content length must be a non-negative integer (got ${n})`);
  }
}

/** The checksum form every store, upload and stored-file record uses: lowercase hex sha256. */
export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

const HASH_SLICE_BYTES = 4 * 1024 * 1024;

/**
 * `sha256Hex` for buffers that may be large (adapter weights, checkpoints): 4 MiB slices (≈3 ms each here)
 * with a turn of the event loop between them, so hashing a 256 MiB adapter (≈180 ms) never holds the API's
 * event loop for more than a slice.
 */
export async function sha256HexSliced(data: Uint8Array): Promise<string> {
  if (data.byteLength <= HASH_SLICE_BYTES) return sha256Hex(data);
  const hash = createHash('sha256');
  for (let at = 0; at < data.byteLength; at += HASH_SLICE_BYTES) {
    hash.update(data.subarray(at, at + HASH_SLICE_BYTES));
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return hash.digest('hex');
}

export function assertSha256Hex(sha256: string): void {
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new BadInputError(`sha256 must be 64 lowercase hex digits`);
}
