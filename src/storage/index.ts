/**
 * The storage layer's public surface in one import. The interface and errors are in `blob-store.ts`, the key
 * layout in `keys.ts`, the two implementations in `fs-store.ts` / `s3-store.ts`, the directory store's HTTP
 * handler in `blob-http.ts`; docs/STORAGE.md describes the layout and the guarantees.
 */
export * from './blob-store.js';
export * from './keys.js';
export { createBlobStore, type CreateBlobStoreOptions } from './create-blob-store.js';
export { FsBlobStore, PresignedUrlError, type BlobGrant, type FsBlobStoreOptions } from './fs-store.js';
export { S3BlobStore, ensureBucket, type ChecksumSetting, type S3BlobStoreOptions } from './s3-store.js';
export { createBlobHttpHandler } from './blob-http.js';
