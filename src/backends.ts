/**
 * The stores every deltagate process opens the same way: the blob store, the base-model registry (the built-in
 * model, written on first use, plus DELTAGATE_BASE_MODELS, each with its serving grid) and the SQL database
 * with migrations applied.
 * Composition only, shared by the API (src/main.ts) and the training worker (src/commands/worker.ts).
 */
import { ConfigError, type BaseModelEntry, type Config } from './config.js';
import { openDatabase, type Db } from './db/database.js';
import { BUILTIN_MODEL_ID, ensureBuiltinModel } from './engine/builtin-model.js';
import { modelDirProblem } from './engine/formats/checkpoint.js';
import { BaseModelRegistry, readBaseModel, type BaseModel } from './services/base-models.js';
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
  const builtin = await readBaseModel({
    id: BUILTIN_MODEL_ID,
    dir: builtinDir,
    servingQuantization: config.servingQuantization,
  });
  const configured = await Promise.all(config.baseModels.map(readConfiguredModel));
  let baseModels: BaseModelRegistry;
  try {
    baseModels = new BaseModelRegistry([builtin, ...configured]);
  } catch (err) {
    throw new ConfigError(VARIABLE, `${VARIABLE}: ${(err as Error).message}`);
  }
  const db = await openDatabase(config.database);
  return { blobs, builtinDir, baseModels, db };
}

const VARIABLE = 'DELTAGATE_BASE_MODELS';

/** One DELTAGATE_BASE_MODELS entry; anything wrong with it is one line naming the variable and the path. */
async function readConfiguredModel(entry: BaseModelEntry): Promise<BaseModel> {
  const problem = await modelDirProblem(entry.dir);
  if (problem !== null) throw new ConfigError(VARIABLE, `${VARIABLE} entry ${entry.dir} ${problem}`);
  try {
    return await readBaseModel(entry);
  } catch (err) {
    throw new ConfigError(VARIABLE, `${VARIABLE} entry ${entry.dir}: ${(err as Error).message}`);
  }
}
