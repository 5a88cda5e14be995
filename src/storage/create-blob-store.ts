/**
 * `createBlobStore(config.storage, { publicUrl })`: the one place that turns the storage configuration into a
 * concrete BlobStore (used by the composition roots). The directory store needs `publicUrl` for its presigned
 * links; the S3 store optionally creates its bucket (`createBucket`, for dev stacks and tests only).
 */
import type { StorageConfig } from '../config.js';
import type { BlobStore } from './blob-store.js';
import { FsBlobStore } from './fs-store.js';
import { S3BlobStore, ensureBucket, type S3BlobStoreOptions } from './s3-store.js';

export interface CreateBlobStoreOptions extends S3BlobStoreOptions {
  /** Base URL of this server, for the directory store's presigned URLs. */
  publicUrl: string;
  /** S3 only: create the bucket when missing. */
  createBucket?: boolean;
}

export async function createBlobStore(
  storage: StorageConfig,
  options: CreateBlobStoreOptions,
): Promise<BlobStore> {
  if (storage.kind === 'fs') return FsBlobStore.open({ dir: storage.dir, publicUrl: options.publicUrl });
  if (options.createBucket) await ensureBucket(storage);
  return new S3BlobStore(storage, options);
}
