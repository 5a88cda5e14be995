// Nested fields are batched per request: listing many adapters with their versions, aliases and latest
// version costs a fixed number of SQL queries, not one per adapter (no N+1). Executed against the real
// schema and services on SQLite, without HTTP.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_MODEL_ID, ensureBuiltinModel } from '../../src/engine/builtin-model.js';
import { createContext } from '../../src/resolvers/context.js';
import { graphql } from '../../src/resolvers/graphql-runtime.js';
import { buildDeltagateSchema } from '../../src/resolvers/schema.js';
import { BaseModelRegistry } from '../../src/services/base-models.js';
import { ADMIN, createServices, type Actor, type Services } from '../../src/services/index.js';
import { FsBlobStore } from '../../src/storage/fs-store.js';
import { openTestDatabase, type TestDatabase } from '../db/test-databases.js';
import { makePeftAdapter } from '../e2e/harness.js';

describe('DataLoaders', () => {
  let t: TestDatabase;
  let s: Services;
  let dir: string;
  let alice: Actor;
  let queries = 0;

  beforeAll(async () => {
    t = await openTestDatabase('sqlite', { log: (e) => void (e.level === 'query' && queries++) });
    dir = mkdtempSync(join(tmpdir(), 'dg-loaders-'));
    s = createServices({
      db: t.db,
      blobs: await FsBlobStore.open({ dir: join(dir, 'blobs'), publicUrl: 'http://127.0.0.1:9' }),
      baseModels: await BaseModelRegistry.load([
        { id: BUILTIN_MODEL_ID, dir: await ensureBuiltinModel(dir) },
      ]),
      limits: { maxDatasetBytes: 1e6, maxInlineDatasetBytes: 1e6, maxAdapterBytes: 1e7 },
      adminKey: null,
      countTokens: null,
      logger: pino({ level: 'silent' }),
    });
    const created = await s.customers.create(ADMIN, { name: 'alice' });
    alice = await s.apiKeys.authenticateKey(created.secret);
    const peft = makePeftAdapter({ rank: 2, modules: ['q_proj'] });
    for (let i = 0; i < 6; i++) {
      const a = await s.adapters.create(alice, { name: `a${i}`, baseModelId: BUILTIN_MODEL_ID });
      for (let v = 0; v < 2; v++) {
        const version = await s.adapters.importVersion(alice, {
          adapterId: a.id,
          adapterConfig: peft.adapterConfig,
          weightsBase64: peft.weightsBase64,
        });
        if (v === 0)
          await s.adapters.setAlias(alice, { adapterId: a.id, alias: 'production', versionId: version.id });
      }
    }
  });
  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answer nested fields of many adapters with a fixed number of queries', async () => {
    const schema = await buildDeltagateSchema();
    const document = graphql.parse(`{
      adapters(first: 10) { edges { node { name
        latestVersion { version }
        aliases { alias version { version adapter { name } } }
        versions { edges { node { version dataset { id } trainingJob { id } } } }
      } } }
    }`);
    queries = 0;
    const result = await graphql.execute({
      schema,
      document,
      contextValue: createContext(alice, s, pino({ level: 'silent' })),
    });
    expect(result.errors).toBeUndefined();
    const edges = (
      result.data as { adapters: { edges: { node: { name: string; latestVersion: { version: number } } }[] } }
    ).adapters.edges;
    expect(edges.map((e) => [e.node.name, e.node.latestVersion.version])).toEqual(
      [0, 1, 2, 3, 4, 5].map((i) => [`a${i}`, 2]),
    );
    // adapters page + versions (batched) + aliases (batched) + alias→version (batched) + version→adapter (batched)
    expect(queries).toBeGreaterThanOrEqual(3);
    expect(queries).toBeLessThanOrEqual(5);
  });
});
