/**
 * The service layer the way most service and training tests need it: a fresh SQLite database, a blob
 * directory and the built-in model in a temp dir, wired by `createServices` (no queue; pass one in `extra`).
 * The caller closes `t` and removes `dir`.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { BUILTIN_MODEL_ID, ensureBuiltinModel } from '../../src/engine/builtin-model.js';
import { BaseModelRegistry } from '../../src/services/base-models.js';
import { createServices, type ServiceDeps, type Services } from '../../src/services/index.js';
import { FsBlobStore } from '../../src/storage/fs-store.js';
import { openTestDatabase, type TestDatabase } from '../db/test-databases.js';

export interface BuiltinServices {
  t: TestDatabase;
  dir: string;
  modelDir: string;
  s: Services;
}

export async function openBuiltinServices(
  name: string,
  logger: Logger,
  extra: Partial<ServiceDeps> = {},
): Promise<BuiltinServices> {
  const t = await openTestDatabase('sqlite');
  const dir = mkdtempSync(join(tmpdir(), `dg-${name}-`));
  const modelDir = await ensureBuiltinModel(dir);
  const s = createServices({
    db: t.db,
    blobs: await FsBlobStore.open({ dir: join(dir, 'blobs'), publicUrl: 'http://127.0.0.1:9' }),
    baseModels: await BaseModelRegistry.load([{ id: BUILTIN_MODEL_ID, dir: modelDir }]),
    limits: { maxDatasetBytes: 100_000, maxInlineDatasetBytes: 50_000, maxAdapterBytes: 10_000_000 },
    adminKey: `${name}-admin-key-0123456789abcdef`,
    countTokens: null,
    logger,
    ...extra,
  });
  return { t, dir, modelDir, s };
}
