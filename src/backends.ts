/**
 * The stores every deltagate process opens the same way: the blob store, the base-model registry (the built-in
 * model, written on first use, plus DELTAGATE_BASE_MODELS, each with its serving grid) and the SQL database
 * with migrations applied.
 * Composition only, shared by the API (src/main.ts) and the training worker (src/commands/worker.ts).
 */
import type { Config } from './config.js';
import { openDatabase, type Db } from './db/database.js';
import { BUILTIN_MODEL_ID, ensureBuiltinModel } from './engine/builtin-model.js';
import { BaseModelRegistry } from './services/base-models.js';
import type { BlobStore } from './storage/blob-store.js';
import { createBlobStore } from './storage/create-blob-store.js';

export interface Backends {
  blobs: BlobStore;
  /** Directory of the built-in base model (its tokenizer counts dataset tokens). */
  builtinDir: string;
  baseModels: BaseModelRegistry;
  db: Db;
}

export async function openBackends(config: Config): Promise<Backends> {
  const blobs = await createBlobStore(config.storage, {
    publicUrl: config.publicUrl,
    createBucket: !config.production,
  });
  const builtinDir = await ensureBuiltinModel(config.dataDir);
  const baseModels = await BaseModelRegistry.load([
    { id: BUILTIN_MODEL_ID, dir: builtinDir, servingQuantization: config.servingQuantization },
    ...config.baseModels.map(({ dir, servingQuantization }) => ({ dir, servingQuantization })),
  ]);
  const db = await openDatabase(config.database);
  return { blobs, builtinDir, baseModels, db };
}
