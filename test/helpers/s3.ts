/**
 * S3 for tests: `testS3Config(bucketSuffix)` returns an `S3StorageConfig` for a fresh, created bucket on the
 * server `test/global-setup.ts` started (moto) or was pointed at (MinIO via DELTAGATE_TEST_S3_ENDPOINT).
 * One bucket per test file (or per call) keeps files independent. Fails loudly when no server is available:
 * S3 tests must not silently pass.
 */
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import type { S3StorageConfig } from '../../src/config.js';
import { ensureBucket } from '../../src/storage/s3-store.js';
import type { TestS3Server } from '../global-setup.js';

export function testS3Server(): TestS3Server {
  const server = inject('s3');
  if (server === null || server === undefined) {
    throw new Error(inject('s3Problem') || 'no S3 test server (test/global-setup.ts did not run?)');
  }
  return server;
}

/** True when the server is a real S3 implementation that verifies signatures and checksums (MinIO, AWS). */
export function s3EnforcesSignatures(): boolean {
  return testS3Server().kind === 'external';
}

export async function testS3Config(bucketSuffix: string): Promise<S3StorageConfig> {
  const s = testS3Server();
  const suffix =
    bucketSuffix
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 30) || 'x';
  const config: S3StorageConfig = {
    kind: 's3',
    endpoint: s.endpoint,
    bucket: `dg-${suffix}-${randomBytes(4).toString('hex')}`,
    region: s.region,
    accessKeyId: s.accessKeyId,
    secretAccessKey: s.secretAccessKey,
    forcePathStyle: true,
  };
  await ensureBucket(config);
  return config;
}

/** The same server as `DELTAGATE_*` variables, for code that goes through `loadConfig`. */
export function testS3Env(config: S3StorageConfig): Record<string, string> {
  return {
    DELTAGATE_S3_ENDPOINT: config.endpoint ?? '',
    DELTAGATE_S3_BUCKET: config.bucket,
    DELTAGATE_S3_REGION: config.region,
    DELTAGATE_S3_ACCESS_KEY_ID: config.accessKeyId ?? '',
    DELTAGATE_S3_SECRET_ACCESS_KEY: config.secretAccessKey ?? '',
    DELTAGATE_S3_FORCE_PATH_STYLE: String(config.forcePathStyle),
  };
}
